"""Identity and time formats (mikey.identities): NTP eras (RFC 5905 §6, RFC 4330 §3), RFC 6509 §3.2
identifiers, 3GPP TS 33.180 §F.2.1 UIDs and key periods; exchanges across the 2036 NTP rollover."""

from __future__ import annotations

import datetime as dt
import json
import pathlib
from typing import Any

import pytest
from pki import make_ca, make_leaf

from mikey.constants import TSType
from mikey.crypto.x509 import CertificateValidator
from mikey.errors import InvalidTimestampError
from mikey.identities import (
    NTP_UNIX_OFFSET,
    key_period_number,
    ntp_from_unix,
    ntp_seconds,
    rfc6509_identifier,
    uid_3gpp,
    unix_from_ntp,
    unix_from_ntp_seconds,
)
from mikey.keystore import Credentials
from mikey.modes.base import State
from mikey.modes.dh import DhInitiator, DhResponder
from mikey.modes.psk import PskInitiator, PskResponder
from mikey.wire import IdPayload, Message, TimestampPayload, TrPayload

VECTORS = pathlib.Path(__file__).parent / "vectors"
SW: dict[str, Any] = json.loads((VECTORS / "mikey_sakke_streamwide.json").read_text())


def _unix(*args: int) -> int:
    return int(dt.datetime(*args, tzinfo=dt.UTC).timestamp())


#: 2036-02-07T06:28:16Z: NTP seconds 2^32, the first second of era 1 (RFC 5905 §6).
ERA1 = _unix(2036, 2, 7, 6, 28, 16)
#: 2036-02-07T06:28:15Z: the last second of era 0.
LAST_ERA0 = ERA1 - 1
Y2040 = _unix(2040, 1, 1)
Y2024 = _unix(2024, 6, 1)


# --- NTP <-> Unix -----------------------------------------------------------------------------


def test_era_boundary_constants() -> None:
    assert ERA1 == (1 << 32) - NTP_UNIX_OFFSET == 2_085_978_496
    assert ntp_from_unix(LAST_ERA0) == 0xFFFFFFFF << 32
    assert ntp_from_unix(ERA1) == 0  # era 1 starts again at seconds 0
    assert ntp_from_unix(ERA1 + 0.5) == 0x80000000


def test_encoding_after_2036_wraps_modulo_2_32() -> None:
    """2040-01-01T00:00:00Z = NTP 4417977600 s, written as 4417977600 - 2^32 = 123010304."""
    assert Y2040 == 2_208_988_800
    assert ntp_from_unix(Y2040) == 123_010_304 << 32
    assert TimestampPayload.ntp_utc(Y2040 + 0.25).ts_value == (123_010_304).to_bytes(4, "big") + b"\x40\x00\x00\x00"


def test_era_1_timestamp_read_with_a_2036_reference() -> None:
    """The bug: era-0-only reading put every post-2036 timestamp 2^32 s in the past."""
    t = TimestampPayload.ntp_utc(ERA1 + 10.5)
    assert t.unix_time(ERA1 + 3) == ERA1 + 10.5
    assert t.unix_time(LAST_ERA0 - 2) == ERA1 + 10.5
    assert t.unix_time(Y2040) == ERA1 + 10.5
    t2040 = TimestampPayload.ntp_utc(Y2040 + 0.75)
    assert t2040.unix_time(Y2040 - 100) == Y2040 + 0.75
    assert unix_from_ntp(ntp_from_unix(Y2040), Y2040) == Y2040


def test_era_0_timestamp_read_with_an_era_1_reference() -> None:
    """A message sent just before the rollover, received just after it."""
    t = TimestampPayload.ntp_utc(LAST_ERA0 - 0.25)
    assert t.ts_value[:4] == b"\xff\xff\xff\xfe"
    assert t.unix_time(ERA1 + 2) == LAST_ERA0 - 0.25
    assert t.unix_time(Y2024) == LAST_ERA0 - 0.25


@pytest.mark.parametrize(
    ("unix", "reference"),
    [
        (Y2024 + 0.5, Y2024),
        (LAST_ERA0, ERA1),
        (ERA1, LAST_ERA0),
        (Y2040, Y2040),
        (_unix(2100, 1, 1), _unix(2100, 1, 1)),  # era 1, late
        (_unix(2140, 1, 1), _unix(2140, 1, 1)),  # era 2
        (_unix(1969, 7, 20), _unix(1969, 7, 20)),  # negative Unix time, era 0
        (_unix(1900, 1, 1), _unix(1900, 1, 2)),  # NTP seconds 0 of era 0
    ],
)
def test_round_trip_near_the_reference(unix: float, reference: float) -> None:
    assert unix_from_ntp(ntp_from_unix(unix), reference) == unix


def test_reference_window_is_half_an_era_each_side() -> None:
    """The era chosen puts the time in [reference - 2^31, reference + 2^31) (RFC 5905 §6)."""
    ref = Y2024
    seconds = ntp_seconds(ref) & 0xFFFFFFFF
    lo = (seconds - (1 << 31)) & 0xFFFFFFFF
    assert unix_from_ntp_seconds(lo, ref) == ref - (1 << 31)
    assert unix_from_ntp_seconds((lo - 1) & 0xFFFFFFFF, ref) == ref + (1 << 31) - 1
    assert unix_from_ntp_seconds(seconds, ref) == ref
    assert unix_from_ntp_seconds(seconds, ref + 0.999) == ref  # the reference's fraction does not move the window


def test_without_a_reference_rfc4330_rule() -> None:
    """RFC 4330 §3: top bit set -> 1968-2036 (era 0); clear -> 2036-2104 (era 1)."""
    assert unix_from_ntp_seconds(0x80000000) == _unix(1968, 1, 20, 3, 14, 8)
    assert unix_from_ntp_seconds(0xFFFFFFFF) == LAST_ERA0
    assert unix_from_ntp_seconds(0) == ERA1
    assert unix_from_ntp_seconds(0x7FFFFFFF) == _unix(2104, 2, 26, 9, 42, 23)
    assert TimestampPayload.ntp_utc(Y2040).unix_time() == Y2040
    assert TimestampPayload.ntp_utc(Y2024).to_dict()["unix_time"] == Y2024
    assert TimestampPayload.ntp_utc(Y2040).to_dict()["unix_time"] == Y2040


def test_32_bit_and_ntp_types_use_the_reference_too() -> None:
    """NTP-UTC-32 (RFC 6043 §6.3) and NTP (TS type 1) timestamps, and TR payloads, pick the era alike."""
    value = ntp_from_unix(ERA1 + 7.5).to_bytes(8, "big")
    assert TimestampPayload(TSType.NTP_UTC_32, value[:4]).unix_time(LAST_ERA0) == ERA1 + 7
    assert TimestampPayload(TSType.NTP, value).unix_time(LAST_ERA0) == ERA1 + 7.5
    assert TrPayload(1, TSType.NTP_UTC, value).unix_time(LAST_ERA0) == ERA1 + 7.5
    old = ntp_from_unix(Y2024).to_bytes(8, "big")
    assert TimestampPayload(TSType.NTP_UTC_32, old[:4]).unix_time(Y2040) == Y2024
    assert TimestampPayload.counter(5).unix_time(Y2040) is None


def test_non_finite_reference_is_refused() -> None:
    t = TimestampPayload.ntp_utc(Y2024)
    for bad in (float("nan"), float("inf"), float("-inf")):
        with pytest.raises(ValueError, match="finite"):
            t.unix_time(bad)


def test_wire_timestamp_needs_the_time() -> None:
    """The wire layer reads no clock: the T payload is built from the caller's time."""
    with pytest.raises(TypeError):
        TimestampPayload.ntp_utc()  # type: ignore[call-arg]


# --- exchanges across the rollover -------------------------------------------------------------


PSK = bytes(range(16))
ID_I = IdPayload.uri("sip:alice@example.com")
ID_R = IdPayload.uri("sip:bob@example.com")

#: (Initiator's clock, Responder's clock): each side of 2036-02-07T06:28:16Z, and in 2040.
CLOCKS = [
    (LAST_ERA0, LAST_ERA0),
    (LAST_ERA0 - 2.5, ERA1 + 3.25),
    (ERA1 + 3.0, LAST_ERA0 - 2.0),
    (ERA1, ERA1 + 1),
    (Y2040, Y2040 + 4),
]


@pytest.mark.parametrize(("t_i", "t_r"), CLOCKS)
def test_psk_exchange_across_the_rollover(t_i: float, t_r: float) -> None:
    init = PskInitiator(PSK, v=True, id_i=ID_I, id_r=ID_R)
    resp = PskResponder(PSK)
    i_msg = init.create_message(t_i)
    out = resp.receive(i_msg, t_r)
    assert out.response is not None
    result = init.receive(out.response, t_r + 1)
    assert init.state is State.DONE and resp.state is State.DONE
    assert result.tgk == out.result.tgk and result.authenticated
    t = Message.decode(i_msg).find(TimestampPayload)
    assert t is not None and t.unix_time(t_r) == pytest.approx(t_i, abs=1e-6)


def test_psk_skew_still_enforced_across_the_rollover() -> None:
    i_msg = PskInitiator(PSK).create_message(LAST_ERA0 - 400)
    with pytest.raises(InvalidTimestampError, match=r"-40[0-9] s from the local clock"):
        PskResponder(PSK).receive(i_msg, ERA1 + 5)


_NB = dt.datetime(2035, 1, 1, tzinfo=dt.UTC)
_NA = dt.datetime(2045, 1, 1, tzinfo=dt.UTC)
_CA = make_ca("Era Test Root", not_before=_NB, not_after=_NA)
_ALICE = make_leaf(_CA, "era-alice", san_uris=["sip:alice@example.com"], not_before=_NB, not_after=_NA)
_BOB = make_leaf(_CA, "era-bob", san_uris=["sip:bob@example.com"], not_before=_NB, not_after=_NA)


@pytest.mark.parametrize(("t_i", "t_r"), [CLOCKS[1], CLOCKS[-1]])
def test_dh_exchange_across_the_rollover(t_i: float, t_r: float) -> None:
    """DH also checks the certificates at the message's time (RFC 3830 §4.3), read in the right era."""
    init = DhInitiator(Credentials(_ALICE.key, _ALICE.cert), CertificateValidator([_CA.cert]))
    resp = DhResponder(Credentials(_BOB.key, _BOB.cert), CertificateValidator([_CA.cert]))
    out = resp.receive(init.create_message(t_i), t_r)
    assert out.response is not None
    result = init.receive(out.response, t_r + 1)
    assert result.tgk == out.result.tgk and result.authenticated and out.result.authenticated


# --- MIKEY-SAKKE identifiers -----------------------------------------------------------------


def test_rfc6509_identifier_example() -> None:
    """RFC 6509 §3.2: 2011-02\\0tel:+447700900123\\0."""
    when = dt.datetime(2011, 2, 14, 12, tzinfo=dt.UTC)
    expected = b"2011-02\x00tel:+447700900123\x00"
    assert rfc6509_identifier("tel:+447700900123", when.timestamp()) == expected
    assert rfc6509_identifier("tel:+447700900123", when) == expected
    assert rfc6509_identifier("tel:+447700900123", when.replace(tzinfo=None)) == expected  # naive = UTC
    with pytest.raises(ValueError, match="tel:"):
        rfc6509_identifier("tel:+44 7700 900123", when)
    with pytest.raises(ValueError, match="NUL"):
        rfc6509_identifier("sip:a\x00b@example.org", when)


@pytest.mark.parametrize("case", SW["cases"]["uid"], ids=lambda c: c["source_location"])
def test_uid_3gpp_streamwide(case: dict[str, Any]) -> None:
    """TS 33.180 §F.2.1 UID with Streamwide's minimal-octet integers; the stale case must not match."""
    uid = uid_3gpp(case["uri"], case["kms_uri"], case["key_period"], case["key_period_offset"], case["key_period_no"])
    assert (uid.hex() == case["UID"]) is case["verified"]


def test_uid_refuses_negative_integers() -> None:
    with pytest.raises(ValueError):
        uid_3gpp("sip:a@example.org", "kms.example.org", 86400, -1, 0)


def test_key_period_number() -> None:
    """(NTP seconds - offset) // period, NTP seconds counted from 1900 without wrapping (TS 33.180 §F.2.1)."""
    assert ntp_seconds(0) == NTP_UNIX_OFFSET
    assert key_period_number(0, 86400) == NTP_UNIX_OFFSET // 86400
    assert key_period_number(86400 * 5 - NTP_UNIX_OFFSET, 86400) == 5
    assert key_period_number(86400 * 5 - NTP_UNIX_OFFSET + 3600, 86400, 3600) == 5
    assert key_period_number(ERA1, 2_592_000) == (1 << 32) // 2_592_000  # past 2036: no wrap
    with pytest.raises(ValueError):
        key_period_number(0, 0)
