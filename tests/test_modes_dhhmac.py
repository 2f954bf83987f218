"""HMAC-authenticated Diffie-Hellman, DH-HMAC (RFC 4650): round trips, KEMAC coverage, tampering."""

from __future__ import annotations

import itertools

import pytest
from twoparty import run

from mikey.constants import DataType, EncrAlg, MacAlg
from mikey.crypto import dh as dh_crypto
from mikey.crypto import kemac as kemac_crypto
from mikey.crypto import prf as prf_crypto
from mikey.errors import (
    AuthenticationError,
    InvalidTimestampError,
    MikeyError,
    ReplayError,
    UnsupportedDHGroupError,
    UnsupportedEncryptionError,
    UnsupportedIDError,
    UnsupportedMACError,
)
from mikey.modes.dhhmac import (
    COMPAT_INIT_WITHOUT_IDR,
    DhHmacInitiator,
    DhHmacResponder,
    auth_key,
    mac_message,
)
from mikey.modes.keytransport import COMPAT_FRESH_RESPONSE_TIMESTAMP, COMPAT_RESPONSE_WITHOUT_IDS
from mikey.replay import ReplayCache
from mikey.wire import DhPayload, ErrorPayload, IdPayload, KemacPayload, Message, TimestampPayload

T0 = 1_717_243_200.0
PSK = bytes(range(1, 17))
IDI = IdPayload.uri("sip:alice@example.com")
IDR = IdPayload.uri("sip:bob@example.com")
XI = 0x1234567890ABCDEF1234567890ABCDEF1234567890ABCDEF1234567890ABCDEF
XR = 0x0FEDCBA9876543210FEDCBA9876543210FEDCBA9876543210FEDCBA98765432


def initiator(**kw) -> DhHmacInitiator:
    kw.setdefault("id_i", IDI)
    kw.setdefault("id_r", IDR)
    return DhHmacInitiator(kw.pop("psk", PSK), **kw)


def exchange(i_kw: dict | None = None, r_kw: dict | None = None):
    r_kw = dict(r_kw or {})
    ex = run(initiator(**(i_kw or {})), DhHmacResponder(r_kw.pop("psk", PSK), **r_kw), T0, complete=False)
    return ex.initiator, ex.responder, ex.i_message, ex.outcome


def remac(data: bytes, key: bytes, mutate) -> bytes:
    msg = Message.decode(data)
    kemac = msg.payloads[-1]
    assert isinstance(kemac, KemacPayload)
    return mac_message(msg.header, mutate(list(msg.payloads[:-1])), int(kemac.mac_alg), key)


@pytest.mark.parametrize("group,mac_alg,prf", list(itertools.product((0, 1, 2), (1, 2), (0, 1))))
def test_round_trip_all_options(group: int, mac_alg: int, prf: int) -> None:
    ini, _, i_msg, out = exchange({"group": group, "mac_alg": mac_alg, "prf": prf, "allowed_groups": (0, 1, 2)},
                                  {"own_ssrcs": [0xBEEF], "allowed_groups": (0, 1, 2)})
    result = ini.receive(out.response, T0)
    assert result.tgk == out.result.tgk and len(result.tgk) == dh_crypto.get_group(group).byte_length
    assert result.authenticated and out.result.authenticated
    assert result.crypto_sessions[0].ssrc == 0xBEEF
    assert [c.master_key for c in result.crypto_sessions] == [c.master_key for c in out.result.crypto_sessions]
    assert result.initiator_id == b"sip:alice@example.com" and result.responder_id == b"sip:bob@example.com"


def test_null_mac_only_when_allowed() -> None:
    with pytest.raises(UnsupportedMACError):
        initiator(mac_alg=MacAlg.NULL)
    ini = initiator(mac_alg=MacAlg.NULL, allow_null_mac=True)
    i_msg = ini.create_message(T0)
    with pytest.raises(UnsupportedMACError) as ei:
        DhHmacResponder(PSK).receive(i_msg, T0)
    assert Message.decode(ei.value.error_message).find(ErrorPayload).error_no == 3
    out = DhHmacResponder(PSK, allow_null_mac=True).receive(i_msg, T0)
    result = ini.receive(out.response, T0)
    assert result.tgk == out.result.tgk and not result.authenticated and not out.result.authenticated


def test_kemac_is_null_encryption_and_mac_covers_message() -> None:
    ini, _, i_msg, out = exchange({"dh_private": XI, "csb_id": 0x01020304, "rand": bytes(16)},
                                  {"dh_private": XR})
    for data, dt in ((i_msg, DataType.DHHMAC_INIT), (out.response, DataType.DHHMAC_RESP)):
        msg = Message.decode(data)
        assert msg.data_type == dt
        kemac = msg.payloads[-1]
        assert isinstance(kemac, KemacPayload)
        assert kemac.encr_alg == EncrAlg.NULL and kemac.encr_data == b"" and kemac.mac_alg == MacAlg.HMAC_SHA_1_160
        key = prf_crypto.prf(PSK, (0x2D22AC75).to_bytes(4, "big") + b"\xff" + (0x01020304).to_bytes(4, "big")
                             + bytes(16), 20)
        assert key == auth_key(PSK, 0x01020304, bytes(16), MacAlg.HMAC_SHA_1_160)
        assert kemac.mac == kemac_crypto.compute_mac(1, key, data[:-20])
    group = dh_crypto.get_group(0)
    assert ini.receive(out.response, T0).tgk == pow(2, XI * XR, group.p).to_bytes(192, "big")
    assert [p.NAME for p in Message.decode(out.response).payloads] == ["T", "ID", "ID", "DH", "DH", "KEMAC"]


def test_wrong_psk_is_rejected_unauthenticated() -> None:
    i_msg = initiator().create_message(T0)
    with pytest.raises(AuthenticationError) as ei:
        DhHmacResponder(bytes(16)).receive(i_msg, T0)
    err = Message.decode(ei.value.error_message)
    assert err.find(ErrorPayload).error_no == 0 and err.payloads[-1].NAME == "ERR"


def test_psk_lookup_by_identity() -> None:
    keys = {b"sip:alice@example.com": PSK}
    i_msg = initiator().create_message(T0)
    out = DhHmacResponder(lambda i, r: keys.get(i.data) if i else None).receive(i_msg, T0)
    assert out.result.authenticated
    with pytest.raises(AuthenticationError):
        DhHmacResponder(lambda i, r: None).receive(i_msg, T0)


def _flips(data: bytes) -> list[bytes]:
    msg = Message.decode(data)
    spans = [(0, msg.offsets[0])] + [msg.payload_span(i) for i in range(len(msg.payloads))]
    return [data[:p] + bytes([data[p] ^ 1]) + data[p + 1:] for p in ((s + e) // 2 for s, e in spans)]


def test_flipped_byte_in_any_payload_is_rejected() -> None:
    ini, _, i_msg, out = exchange({"dh_private": XI})
    for bad in _flips(i_msg):
        with pytest.raises(MikeyError) as ei:
            DhHmacResponder(PSK).receive(bad, T0)
        assert ei.value.error_message is not None
    for bad in _flips(out.response):
        with pytest.raises(MikeyError):
            DhHmacInitiator.resume(i_msg, XI, PSK).receive(bad, T0)
    assert DhHmacInitiator.resume(i_msg, XI, PSK).receive(out.response, T0).tgk == out.result.tgk


def test_authenticated_failure_gets_maced_error() -> None:
    ini = initiator(group=2, allowed_groups=(0, 2))
    with pytest.raises(MikeyError) as ei:
        DhHmacResponder(PSK).receive(ini.create_message(T0), T0)
    err = Message.decode(ei.value.error_message)
    assert err.find(ErrorPayload).error_no == 6 and err.payloads[-1].NAME == "V"


def test_weak_group_off_by_default_on_both_sides() -> None:
    with pytest.raises(UnsupportedDHGroupError, match="--allow-dh-group 1") as ei:
        initiator(group=1)
    assert ei.value.err_no == 6
    ini = initiator(group=1, allowed_groups=(0, 1), dh_private=XI)
    i_msg = ini.create_message(T0)
    with pytest.raises(UnsupportedDHGroupError, match="768-bit.*--allow-dh-group 1") as ei:
        DhHmacResponder(PSK).receive(i_msg, T0)
    assert Message.decode(ei.value.error_message).find(ErrorPayload).error_no == 6
    out = DhHmacResponder(PSK, allowed_groups=(0, 1)).receive(i_msg, T0)
    assert len(out.result.tgk) == 96
    with pytest.raises(UnsupportedDHGroupError):
        DhHmacInitiator.resume(i_msg, XI, PSK)
    assert DhHmacInitiator.resume(i_msg, XI, PSK, allowed_groups=(0, 1)).receive(out.response, T0).tgk == out.result.tgk


def test_non_null_encryption_is_rejected() -> None:
    ini = initiator(csb_id=5, rand=bytes(16))
    i_msg = ini.create_message(T0)
    msg = Message.decode(i_msg)
    key = auth_key(PSK, 5, bytes(16), 1)
    draft = Message(msg.header, (*msg.payloads[:-1], KemacPayload(EncrAlg.AES_CM_128, b"x" * 4, 1, bytes(20))))
    raw = draft.encode()
    bad = raw[:-20] + kemac_crypto.compute_mac(1, key, raw[:-20])
    with pytest.raises(UnsupportedEncryptionError):
        DhHmacResponder(PSK).receive(bad, T0)


def test_idr_required_unless_compat() -> None:
    ini = DhHmacInitiator(PSK)  # no IDs at all (as MiniSIP sends)
    i_msg = ini.create_message(T0)
    with pytest.raises(UnsupportedIDError) as ei:
        DhHmacResponder(PSK).receive(i_msg, T0)
    assert ei.value.err_no == 7
    out = DhHmacResponder(PSK, compat=[COMPAT_INIT_WITHOUT_IDR], id_r=IDR, initiator_id=IDI).receive(i_msg, T0)
    assert ini.receive(out.response, T0).tgk == out.result.tgk


def test_idr_for_another_responder_is_refused() -> None:
    i_msg = initiator().create_message(T0)
    with pytest.raises(UnsupportedIDError):
        DhHmacResponder(PSK, id_r=IdPayload.uri("sip:carol@example.com")).receive(i_msg, T0)


def test_replay_and_stale_timestamp() -> None:
    cache = ReplayCache()
    i_msg = initiator().create_message(T0)
    DhHmacResponder(PSK, replay_cache=cache).receive(i_msg, T0)
    with pytest.raises(ReplayError):
        DhHmacResponder(PSK, replay_cache=cache).receive(i_msg, T0)
    with pytest.raises(InvalidTimestampError):
        DhHmacResponder(PSK).receive(initiator().create_message(T0 - 3600), T0)


def test_r_message_binding_checks() -> None:
    ini, _, i_msg, out = exchange({"dh_private": XI, "csb_id": 9, "rand": bytes(16)})
    key = auth_key(PSK, 9, bytes(16), 1)
    other = dh_crypto.public_value(dh_crypto.get_group(0), XR)
    no_dhi = remac(out.response, key, lambda ps: ps[:-1] + [DhPayload(0, other)])
    with pytest.raises(AuthenticationError, match="DHi"):
        DhHmacInitiator.resume(i_msg, XI, PSK).receive(no_dhi, T0)
    fresh = remac(out.response, key, lambda ps: [TimestampPayload.ntp_utc(T0 + 2) if p.NAME == "T" else p for p in ps])
    with pytest.raises(InvalidTimestampError):
        DhHmacInitiator.resume(i_msg, XI, PSK).receive(fresh, T0)
    ok = DhHmacInitiator.resume(i_msg, XI, PSK, compat=[COMPAT_FRESH_RESPONSE_TIMESTAMP]).receive(fresh, T0)
    assert ok.tgk == out.result.tgk
    bare = remac(out.response, key, lambda ps: [p for p in ps if p.NAME != "ID"])
    with pytest.raises(UnsupportedIDError):
        DhHmacInitiator.resume(i_msg, XI, PSK).receive(bare, T0)
    assert DhHmacInitiator.resume(i_msg, XI, PSK, compat=[COMPAT_RESPONSE_WITHOUT_IDS]).receive(bare, T0).tgk
    wrong_idi = remac(out.response, key, lambda ps: [IdPayload.uri("sip:x@y") if p == IDI else p for p in ps])
    with pytest.raises(AuthenticationError):
        DhHmacInitiator.resume(i_msg, XI, PSK).receive(wrong_idi, T0)
    with pytest.raises(AuthenticationError):
        DhHmacInitiator.resume(i_msg, XI, bytes(16)).receive(out.response, T0)


def test_psk_and_exponent_not_in_repr() -> None:
    ini = initiator(dh_private=XI)
    res = DhHmacResponder(PSK, dh_private=XR)
    for text in (repr(ini), repr(res)):
        assert PSK.hex() not in text and str(XI) not in text and f"{XR:x}" not in text
