"""MIKEY-TICKET key derivations (RFC 6043 §5.1, §6.10, Appendix A.2).

RFC 6043 keeps RFC 3830's PRF (§4.1.2; PRF-HMAC-SHA-256 from RFC 6043 §6.1) and its
constants, but every label is its own; none of them is RFC 3830's label:

==========================  ==========================================================================  =======
what                        label                                                                       section
==========================  ==========================================================================  =======
forked MPKr' / TGK'         const || 0xFF || 0xFFFFFFFF || 0x00 || len16 ID || ID || len8 RAND || RAND  §5.1.1
initial message keys        const || 0xFF || CSB ID || 0x01 || len8 RANDRi || RANDRi || len8 RANDRr ||  §5.1.2
                            RANDRr
response message keys       as above with 0x02                                                          §5.1.2
keys from a TGK/GTGK        const || CS ID || 0xFFFFFFFF || 0x03 || len8 RANDRi || RANDRi || len8 ...   §5.1.3
Initiator Data (Vr) keys    const || 0xFF || 0xFFFFFFFF || 0x04                                         §6.10
keys from the TPK           const || 0xFF || 0xFFFFFFFF || 0x05 || len8 RAND || RAND                    A.2.1
MPKi / MPKr from the MPK    const || 0xFF || 0xFFFFFFFF || 0x06 || len8 RAND || RAND                    A.2.2
==========================  ==========================================================================  =======

Constants: RFC 3830 §4.1.4 (encr 0x150533E1, auth 0x2D22AC75, salt 0x29B88916) for the
message, Initiator Data and TPK keys; RFC 3830 §4.1.3 (TEK 0x2AD01C64, encr 0x15798CEF,
auth 0x1B5C7973, salt 0x39A2C14B) for keys from a TGK; Table 5.1 (MPKr' 0x2B288856, TGK'
0x1512B54A) and Table A.1 (MPKi 0x220E99A2, MPKr 0x1F4D675B).  A forked key and MPKi/MPKr
are as long as the key they come from (§5.1.1, A.2.2).  An absent RAND is written as a
zero length and no octets (§5.1.2, §5.1.3).
"""

from __future__ import annotations

from typing import Final

from ..errors import CryptoError
from .prf import (
    CONST_SALT,
    CONST_TEK,
    CONST_TRANSPORT_AUTH,
    CONST_TRANSPORT_ENCR,
    CONST_TRANSPORT_SALT,
    PRF_MIKEY_1,
    TransportKeys,
    prf,
    prf_many,
)

__all__ = [
    "CONST_FORK_MPKR",
    "CONST_FORK_TGK",
    "CONST_MPKI",
    "CONST_MPKR",
    "LABEL_FORK",
    "LABEL_INITIAL",
    "LABEL_RESPONSE",
    "LABEL_TGK",
    "LABEL_INITIATOR_DATA",
    "LABEL_TPK",
    "LABEL_MPK",
    "message_label",
    "derive_message_keys",
    "derive_exchange_keys",
    "tgk_label",
    "derive_tek_and_salt",
    "fork_label",
    "fork_key",
    "derive_initiator_data_keys",
    "tpk_label",
    "derive_tpk_keys",
    "mpk_label",
    "derive_mpki_mpkr",
    "derive_mpki",
]

#: RFC 6043 Table 5.1: constants for forking.
CONST_FORK_MPKR: Final = 0x2B288856
CONST_FORK_TGK: Final = 0x1512B54A
#: RFC 6043 Table A.1: constants for MPKi and MPKr.
CONST_MPKI: Final = 0x220E99A2
CONST_MPKR: Final = 0x1F4D675B

#: The octet after 0xFF || CSB ID (or 0xFFFFFFFF) that says which derivation a label belongs to.
LABEL_FORK: Final = 0x00
LABEL_INITIAL: Final = 0x01
LABEL_RESPONSE: Final = 0x02
LABEL_TGK: Final = 0x03
LABEL_INITIATOR_DATA: Final = 0x04
LABEL_TPK: Final = 0x05
LABEL_MPK: Final = 0x06

_ALL_ONES: Final = b"\xff\xff\xff\xff"
_ENCR_PREFIX: Final = CONST_TRANSPORT_ENCR.to_bytes(4, "big")
_AUTH_PREFIX: Final = CONST_TRANSPORT_AUTH.to_bytes(4, "big")
_SALT_PREFIX: Final = CONST_TRANSPORT_SALT.to_bytes(4, "big")
#: ``0xFF || 0xFFFFFFFF || 0x05`` (A.2.1) and ``... || 0x06`` (A.2.2): the fixed middle of the TPK and MPK labels.
_TPK_MIDDLE: Final = b"\xff" + _ALL_ONES + bytes((LABEL_TPK,))
_MPK_MIDDLE: Final = b"\xff" + _ALL_ONES + bytes((LABEL_MPK,))
_MPKI_PREFIX: Final = CONST_MPKI.to_bytes(4, "big") + _MPK_MIDDLE
_MPKR_PREFIX: Final = CONST_MPKR.to_bytes(4, "big") + _MPK_MIDDLE


def _u8(value: int, what: str) -> bytes:
    if not 0 <= value <= 0xFF:
        raise CryptoError(f"{what} must fit in 8 bits")
    return bytes((value,))


def _u32(value: int, what: str) -> bytes:
    if not 0 <= value <= 0xFFFFFFFF:
        raise CryptoError(f"{what} must fit in 32 bits")
    return value.to_bytes(4, "big")


def _rand8(rand: bytes | None, what: str) -> bytes:
    """``length(8) || RAND``; an absent RAND is a zero length (RFC 6043 §5.1.2)."""
    if rand is None:
        return b"\x00"
    if len(rand) > 0xFF:
        raise CryptoError(f"{what} is {len(rand)} octets; its length must fit in 8 bits")
    return bytes((len(rand),)) + rand


def _message_tail(csb_id: int, direction: int, rand_i: bytes | None, rand_r: bytes | None) -> bytes:
    """``0xFF || CSB ID || direction || len8 RANDRi || RANDRi || len8 RANDRr || RANDRr`` (RFC 6043 §5.1.2)."""
    if direction not in (LABEL_INITIAL, LABEL_RESPONSE):
        raise CryptoError("message keys are derived for the initial (0x01) or response (0x02) message")
    if rand_i is None and rand_r is None:
        raise CryptoError("at least one of RANDRi and RANDRr is used (RFC 6043 §5.1.2)")
    return (
        b"\xff" + _u32(csb_id, "CSB ID") + bytes((direction,)) + _rand8(rand_i, "RANDRi") + _rand8(rand_r, "RANDRr")
    )


def message_label(const: int, csb_id: int, direction: int, rand_i: bytes | None, rand_r: bytes | None) -> bytes:
    """Label for the keys protecting a MIKEY-TICKET message (RFC 6043 §5.1.2).

    *direction* is :data:`LABEL_INITIAL` (0x01) or :data:`LABEL_RESPONSE` (0x02).
    """
    tail = _message_tail(csb_id, direction, rand_i, rand_r)
    return _u32(const, "constant") + tail


def derive_message_keys(
    key: bytes,
    csb_id: int,
    direction: int,
    rand_i: bytes | None,
    rand_r: bytes | None,
    *,
    encr_len: int,
    auth_len: int,
    salt_len: int,
    prf_func: int = PRF_MIKEY_1,
) -> TransportKeys:
    """encr_key, auth_key and salt_key from a PSK, envelope key, MPKi or MPKr' (RFC 6043 §5.1.2)."""
    tail = _message_tail(csb_id, direction, rand_i, rand_r)
    encr, auth, salt = prf_many(
        key, [(_ENCR_PREFIX + tail, encr_len), (_AUTH_PREFIX + tail, auth_len), (_SALT_PREFIX + tail, salt_len)],
        prf_func,
    )
    return TransportKeys(encr, auth, salt)


def derive_exchange_keys(
    key: bytes,
    csb_id: int,
    rand_i: bytes | None,
    rand_r: bytes | None,
    *,
    encr_len: int,
    auth_len: int,
    salt_len: int,
    prf_func: int = PRF_MIKEY_1,
) -> tuple[bytes, TransportKeys]:
    """(auth_key of the initial message, the response message's keys) in one PRF pass (RFC 6043 §5.1.2).

    What a KMS needs for a Request or Resolve: it checks the initial message's V (nothing in it is
    encrypted) and protects its response.  The same values as two :func:`derive_message_keys` calls.
    """
    init_tail = _message_tail(csb_id, LABEL_INITIAL, rand_i, rand_r)
    resp_tail = init_tail[:5] + bytes((LABEL_RESPONSE,)) + init_tail[6:]  # 0xFF || CSB ID (4) || 0x02 || ...
    init_auth, encr, auth, salt = prf_many(
        key,
        [(_AUTH_PREFIX + init_tail, auth_len), (_ENCR_PREFIX + resp_tail, encr_len), (_AUTH_PREFIX + resp_tail, auth_len),
         (_SALT_PREFIX + resp_tail, salt_len)],
        prf_func,
    )
    return init_auth, TransportKeys(encr, auth, salt)


def tgk_label(const: int, cs_id: int, rand_i: bytes | None, rand_r: bytes | None) -> bytes:
    """Label for keys from a TGK, TGK' or GTGK (RFC 6043 §5.1.3)."""
    if rand_i is None and rand_r is None:
        raise CryptoError("at least one of RANDRi and RANDRr MUST be used (RFC 6043 §5.1.3)")
    return (
        _u32(const, "constant") + _u8(cs_id, "CS ID") + _ALL_ONES + bytes((LABEL_TGK,))
        + _rand8(rand_i, "RANDRi") + _rand8(rand_r, "RANDRr")
    )


def derive_tek_and_salt(
    tgk: bytes,
    cs_id: int,
    rand_i: bytes | None,
    rand_r: bytes | None,
    tek_len: int,
    salt_len: int,
    prf_func: int = PRF_MIKEY_1,
) -> tuple[bytes, bytes]:
    """TEK (constant 0x2AD01C64) and salting key (0x39A2C14B) for one crypto session (RFC 6043 §5.1.3)."""
    tek, salt = prf_many(
        tgk,
        [(tgk_label(CONST_TEK, cs_id, rand_i, rand_r), tek_len), (tgk_label(CONST_SALT, cs_id, rand_i, rand_r), salt_len)],
        prf_func,
    )
    return tek, salt


def fork_label(const: int, id_data: bytes, rand_kms: bytes) -> bytes:
    """Label for forking MPKr or a TGK (RFC 6043 §5.1.1): 16-bit ID length, 8-bit RANDRkms length."""
    if len(id_data) > 0xFFFF:
        raise CryptoError("ID Data is too long for its 16-bit length")
    if not rand_kms:
        raise CryptoError("RANDRkms must not be empty")
    return (
        _u32(const, "constant") + b"\xff" + _ALL_ONES + bytes((LABEL_FORK,))
        + len(id_data).to_bytes(2, "big") + id_data + _rand8(rand_kms, "RANDRkms")
    )


def fork_key(key: bytes, const: int, id_data: bytes, rand_kms: bytes, prf_func: int = PRF_MIKEY_1) -> bytes:
    """MPKr' (const :data:`CONST_FORK_MPKR`) or TGK' (:data:`CONST_FORK_TGK`), as long as *key* (§5.1.1)."""
    return prf(key, fork_label(const, id_data, rand_kms), len(key), prf_func)


def derive_initiator_data_keys(
    mpk_r: bytes, *, auth_len: int, prf_func: int = PRF_MIKEY_1
) -> bytes:
    """The auth_key of the Vr payload in the Initiator Data, from MPKr not forked (RFC 6043 §6.10)."""
    label = _u32(CONST_TRANSPORT_AUTH, "constant") + b"\xff" + _ALL_ONES + bytes((LABEL_INITIATOR_DATA,))
    return prf(mpk_r, label, auth_len, prf_func)


def tpk_label(const: int, rand: bytes) -> bytes:
    """Label for keys from the Ticket Protection Key (RFC 6043 A.2.1)."""
    return _u32(const, "constant") + _TPK_MIDDLE + _rand8(rand, "RAND")


def derive_tpk_keys(
    tpk: bytes, rand: bytes, *, encr_len: int, auth_len: int, salt_len: int, prf_func: int = PRF_MIKEY_1
) -> TransportKeys:
    """encr_key, auth_key and salt_key protecting a MIKEY base ticket's Ticket Data (RFC 6043 A.2.1)."""
    tail = _TPK_MIDDLE + _rand8(rand, "RAND")
    encr, auth, salt = prf_many(
        tpk, [(_ENCR_PREFIX + tail, encr_len), (_AUTH_PREFIX + tail, auth_len), (_SALT_PREFIX + tail, salt_len)],
        prf_func,
    )
    return TransportKeys(encr, auth, salt)


def mpk_label(const: int, rand: bytes) -> bytes:
    """Label for MPKi / MPKr from the base ticket's MPK (RFC 6043 A.2.2)."""
    return _u32(const, "constant") + _MPK_MIDDLE + _rand8(rand, "RAND")


def derive_mpki_mpkr(mpk: bytes, rand: bytes, prf_func: int = PRF_MIKEY_1) -> tuple[bytes, bytes]:
    """(MPKi, MPKr) from the MPK in a base ticket, each as long as the MPK (RFC 6043 A.2.2)."""
    r8 = _rand8(rand, "RAND")
    mpk_i, mpk_r = prf_many(mpk, [(_MPKI_PREFIX + r8, len(mpk)), (_MPKR_PREFIX + r8, len(mpk))], prf_func)
    return mpk_i, mpk_r


def derive_mpki(mpk: bytes, rand: bytes, prf_func: int = PRF_MIKEY_1) -> bytes:
    """MPKi alone (RFC 6043 A.2.2): a KMS resolving a ticket without forking (flag I = 0) needs no MPKr."""
    return prf(mpk, _MPKI_PREFIX + _rand8(rand, "RAND"), len(mpk), prf_func)
