"""Identity and time formats, below every layer that uses them.

* NTP <-> Unix time (RFC 5905 §6): 64-bit NTP timestamps carry the seconds modulo
  2^32, so a reader picks the era (RFC 5905 §6, RFC 4330 §3).
* MIKEY-SAKKE identifiers: RFC 6509 §3.2 ``"YYYY-MM\\0" tel-uri "\\0"`` and the
  3GPP TS 33.180 §F.2.1 UID, with the key-period arithmetic both use.

Pure functions of their arguments: no clock is read here.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import math

__all__ = [
    "NTP_UNIX_OFFSET",
    "NTP_ERA_SECONDS",
    "ntp_from_unix",
    "unix_from_ntp",
    "unix_from_ntp_seconds",
    "ntp_seconds",
    "rfc6509_identifier",
    "uid_3gpp",
    "key_period_number",
]

#: Seconds between the NTP epoch (1900-01-01) and the Unix epoch (1970-01-01) (RFC 5905 §6).
NTP_UNIX_OFFSET = 2_208_988_800
#: Length of one NTP era: the 32-bit seconds field wraps after 2^32 s (first on 2036-02-07T06:28:16Z).
NTP_ERA_SECONDS = 1 << 32

_HALF_ERA = 1 << 31
_FRACTION = float(1 << 32)
#: The reference used without one: the start of era 1 (2036-02-07T06:28:16Z).  The era
#: closest to it is RFC 4330 §3's rule: seconds with the top bit set are era 0
#: (1968-01-20T03:14:08Z to 2036), the others era 1 (2036 to 2104-02-26T09:42:24Z).
_RFC4330_PIVOT = NTP_ERA_SECONDS - NTP_UNIX_OFFSET


def ntp_from_unix(seconds: float) -> int:
    """The 64-bit NTP timestamp for a Unix time (RFC 5905 §6).

    The seconds field holds NTP seconds modulo 2^32, so times from 2036-02-07T06:28:16Z
    on are written in era 1 (and so on), as the RFC's wire format requires.
    """
    whole = math.floor(seconds)
    frac = int((seconds - whole) * _FRACTION) & 0xFFFFFFFF
    return (((whole + NTP_UNIX_OFFSET) & 0xFFFFFFFF) << 32) | frac


def _reference_seconds(reference: float | None) -> int:
    if reference is None:
        return _RFC4330_PIVOT
    try:
        return math.floor(reference)
    except (ValueError, OverflowError):
        raise ValueError("the reference time must be a finite number of seconds") from None


def unix_from_ntp_seconds(ntp_seconds_field: int, reference: float | None = None) -> int:
    """Unix seconds for a 32-bit NTP seconds field, in the NTP era closest to *reference*.

    *reference* is a Unix time the timestamp is known to be near (the local clock, for a
    received message): the result lies in [reference - 2^31 s, reference + 2^31 s), i.e.
    within 68 years of it (RFC 5905 §6).  Without a reference the RFC 4330 §3 rule
    applies: seconds with the top bit set are era 0 (1968-2036), the others era 1
    (2036-2104).
    """
    era0 = ntp_seconds_field - NTP_UNIX_OFFSET
    # The smallest era0 + k * 2^32 that is >= reference - 2^31.
    return era0 - ((era0 - _reference_seconds(reference) + _HALF_ERA) // NTP_ERA_SECONDS) * NTP_ERA_SECONDS


def unix_from_ntp(ntp: int, reference: float | None = None) -> float:
    """Unix time for a 64-bit NTP timestamp, in the era closest to *reference* (RFC 5905 §6).

    See :func:`unix_from_ntp_seconds` for the era rule, and for the default without a reference.
    """
    era0 = (ntp >> 32) - NTP_UNIX_OFFSET
    whole = era0 - ((era0 - _reference_seconds(reference) + _HALF_ERA) // NTP_ERA_SECONDS) * NTP_ERA_SECONDS
    return whole + (ntp & 0xFFFFFFFF) / _FRACTION


def ntp_seconds(unix_seconds: float) -> int:
    """Whole NTP seconds since 1900-01-01 for a Unix time, not reduced to an era (TS 33.180 §F.2.1)."""
    return math.floor(unix_seconds) + NTP_UNIX_OFFSET


# --- MIKEY-SAKKE identifiers ------------------------------------------------------------------


def rfc6509_identifier(uri: str, when: float | _dt.datetime) -> bytes:
    """``"YYYY-MM\\0" uri "\\0"`` with the UTC month of *when* (RFC 6509 §3.2).

    ``tel`` URIs must be in global notation without separators or parameters.
    """
    if isinstance(when, _dt.datetime):
        moment = when.astimezone(_dt.UTC) if when.tzinfo else when.replace(tzinfo=_dt.UTC)
    else:
        moment = _dt.datetime.fromtimestamp(float(when), _dt.UTC)
    if uri.startswith("tel:"):
        number = uri[4:]
        if not (number.startswith("+") and number[1:].isdigit()):
            raise ValueError("a MIKEY-SAKKE tel URI must be tel:+<digits> (RFC 6509 §3.2)")
    if "\x00" in uri:
        raise ValueError("URI must not contain NUL")
    return f"{moment.year:04d}-{moment.month:02d}\x00{uri}\x00".encode("ascii")


_UID_P0 = b"MIKEY-SAKKE-UID"


def _minimal(value: int) -> bytes:
    """Big-endian in the fewest octets, 0 as one 0x00 octet (Streamwide's encoding)."""
    if value < 0:
        raise ValueError("UID integer parameters must not be negative")
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


def uid_3gpp(uri: str | bytes, kms_uri: str | bytes, key_period: int, offset: int, period_no: int) -> bytes:
    """The MIKEY-SAKKE UID (3GPP TS 33.180 §F.2.1), as Streamwide computes it.

    UID = SHA-256(0x00 || P0 || L0 || ... || P5 || L5) with P0 = "MIKEY-SAKKE-UID",
    P1 = URI, P2 = KMS URI, P3 = key period, P4 = offset, P5 = period number; each
    L is a 2-octet length; integers in the minimum number of octets.
    """
    s = bytearray(b"\x00")
    for p in (
        _UID_P0,
        uri.encode() if isinstance(uri, str) else uri,
        kms_uri.encode() if isinstance(kms_uri, str) else kms_uri,
        _minimal(key_period),
        _minimal(offset),
        _minimal(period_no),
    ):
        s += p + len(p).to_bytes(2, "big")
    return hashlib.sha256(bytes(s)).digest()


def key_period_number(now: float, key_period: int, offset: int = 0) -> int:
    """The key period holding Unix time *now*: (NTP seconds - offset) // period (TS 33.180 §F.2.1)."""
    if key_period <= 0:
        raise ValueError("key period must be positive")
    return (ntp_seconds(now) - offset) // key_period
