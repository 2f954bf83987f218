"""MIKEY key derivation: the PRF and the keys derived with it.

* RFC 3830 §4.1.2: the default PRF ``MIKEY-1`` (HMAC-SHA-1 P-function).
* RFC 6043 §6.1: ``PRF-HMAC-SHA-256`` (same construction, SHA-256, m over 256 bits).
* RFC 3830 §4.1.3: keys from the TGK (TEK, auth, encryption and salting keys).
* RFC 3830 §4.1.4: keys protecting the MIKEY message itself (from a PSK or an
  envelope key).
* 3GPP TS 33.180 / TS 33.220 helpers used by MIKEY-SAKKE group keys (GUK-ID, DPCK),
  as implemented by Streamwide's sw_mikey_sakke (see ``mikey_sakke_streamwide.json``).

The inkey is split into 256-bit pieces for both PRFs (RFC 6043 §6.1 replaces only the
hash and the 160).  An empty inkey is rejected with :class:`CryptoError`: RFC 3830 would
give n = 0 pieces and an all-zero output, which is never what a caller wants.  So is an
output longer than :data:`MAX_PRF_OUTPUT` octets.
"""

from __future__ import annotations

import hmac as _stdlib_hmac
from collections.abc import Sequence
from typing import Final, NamedTuple

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as _hmac

from ..constants import PRF
from ..errors import CryptoError, UnsupportedPRFError

__all__ = [
    "MAX_PRF_OUTPUT",
    "PRF_MIKEY_1",
    "PRF_HMAC_SHA_256",
    "CONST_TEK",
    "CONST_AUTH",
    "CONST_ENCR",
    "CONST_SALT",
    "CONST_TRANSPORT_ENCR",
    "CONST_TRANSPORT_AUTH",
    "CONST_TRANSPORT_SALT",
    "TransportKeys",
    "prf",
    "prf_many",
    "derive_tek_and_salt",
    "derive_from_tgk",
    "derive_tek",
    "derive_srtp_salt",
    "derive_srtp_auth_key",
    "derive_srtp_encr_key",
    "derive_transport_key",
    "derive_transport_keys",
    "kdf_ts33220",
    "guk_id",
    "derive_dpck",
]

#: RFC 3830 §6.1 PRF func values.
PRF_MIKEY_1: Final = PRF.MIKEY_1
#: RFC 6043 §6.1.
PRF_HMAC_SHA_256: Final = PRF.PRF_HMAC_SHA_256

# RFC 3830 §4.1.3, Table 4.1.3: keys from the TGK.
CONST_TEK: Final = 0x2AD01C64
CONST_AUTH: Final = 0x1B5C7973
CONST_ENCR: Final = 0x15798CEF
CONST_SALT: Final = 0x39A2C14B

# RFC 3830 §4.1.4, Table 4.1.4: keys from an envelope/pre-shared key.
CONST_TRANSPORT_ENCR: Final = 0x150533E1
CONST_TRANSPORT_AUTH: Final = 0x2D22AC75
CONST_TRANSPORT_SALT: Final = 0x29B88916

_INKEY_PIECE: Final = 32  # 256 bits, for both PRFs

#: The longest PRF output, in octets, this module computes.  Every key MIKEY derives is far
#: shorter: the longest in any registry is 32 octets (an AES-256 SRTP master key, RFC 6188;
#: the AES-CM-256 / HMAC-SHA-256 transport keys, RFC 6043 §6.2).  1024 leaves a 32-fold
#: margin while capping the work a peer-chosen length can cause at 52 HMAC-SHA-1 pairs
#: per inkey piece.
MAX_PRF_OUTPUT: Final = 1024

# prf_func -> (hash factory, output size in octets)
# Hash algorithm instances are immutable; sharing them saves their construction per HMAC.
_HASHES: Final[dict[int, tuple[hashes.HashAlgorithm, int]]] = {
    PRF_MIKEY_1: (hashes.SHA1(), 20),
    PRF_HMAC_SHA_256: (hashes.SHA256(), 32),
}


def _hash_for(prf_func: int) -> tuple[hashes.HashAlgorithm, int]:
    try:
        return _HASHES[prf_func]
    except KeyError:
        raise UnsupportedPRFError(f"unsupported PRF func {prf_func}") from None


def _p_function(base: _hmac.HMAC, label: bytes, m: int) -> bytes:
    """RFC 3830 §4.1.2 P(s, label, m); ``base`` is an HMAC object keyed with s."""
    blocks: list[bytes] = []
    a = label
    for _ in range(m):
        h = base.copy()
        h.update(a)
        a = h.finalize()  # A_i = HMAC(s, A_(i-1))
        h = base.copy()
        h.update(a + label)
        blocks.append(h.finalize())  # HMAC(s, A_i || label)
    return b"".join(blocks)


def _check_out_len(out_len: int) -> None:
    if out_len < 0:
        raise CryptoError("PRF output length must not be negative")
    if out_len > MAX_PRF_OUTPUT:
        raise CryptoError(f"PRF output of {out_len} octets asked for; at most {MAX_PRF_OUTPUT} are computed")


def prf(inkey: bytes, label: bytes, out_len: int, prf_func: int = PRF_MIKEY_1) -> bytes:
    """PRF(inkey, label) truncated to ``out_len`` octets (RFC 3830 §4.1.2, RFC 6043 §6.1).

    ``prf_func`` 0 is MIKEY-1 (HMAC-SHA-1), 1 is PRF-HMAC-SHA-256; anything else raises
    :class:`UnsupportedPRFError`.  The inkey may have any non-zero length; ``out_len``
    is at most :data:`MAX_PRF_OUTPUT` (else :class:`CryptoError`).
    """
    hash_alg, hash_len = _hash_for(prf_func)
    if not inkey:
        raise CryptoError("PRF inkey must not be empty")
    _check_out_len(out_len)
    if out_len == 0:
        return b""
    m = -(-out_len // hash_len)
    if len(inkey) <= _INKEY_PIECE:  # the common case: one piece, no XOR
        return _p_function(_hmac.HMAC(inkey, hash_alg), label, m)[:out_len]
    acc = 0
    total = m * hash_len
    for start in range(0, len(inkey), _INKEY_PIECE):
        base = _hmac.HMAC(inkey[start : start + _INKEY_PIECE], hash_alg)
        acc ^= int.from_bytes(_p_function(base, label, m), "big")
    return acc.to_bytes(total, "big")[:out_len]


def prf_many(inkey: bytes, requests: Sequence[tuple[bytes, int]], prf_func: int = PRF_MIKEY_1) -> list[bytes]:
    """PRF(inkey, label) for several ``(label, out_len)`` requests with one inkey.

    Same output as calling :func:`prf` for each; the HMAC key schedule of each
    inkey piece is computed once, which matters when one TGK or PSK yields
    several keys (RFC 3830 §4.1.3, §4.1.4).  Lengths over :data:`MAX_PRF_OUTPUT`
    raise :class:`CryptoError` before their output is computed.
    """
    hash_alg, hash_len = _hash_for(prf_func)
    if not inkey:
        raise CryptoError("PRF inkey must not be empty")
    if len(inkey) <= _INKEY_PIECE:
        base = _hmac.HMAC(inkey, hash_alg)
        out: list[bytes] = []
        for label, out_len in requests:
            if 0 < out_len <= hash_len:  # the usual case: m = 1, two HMACs
                h = base.copy()
                h.update(label)
                a = h.finalize()
                h = base.copy()
                h.update(a + label)
                out.append(h.finalize()[:out_len])
            elif out_len == 0:
                out.append(b"")
            else:
                _check_out_len(out_len)
                out.append(_p_function(base, label, -(-out_len // hash_len))[:out_len])
        return out
    bases = [_hmac.HMAC(inkey[i : i + _INKEY_PIECE], hash_alg) for i in range(0, len(inkey), _INKEY_PIECE)]
    out = []
    for label, out_len in requests:
        if out_len == 0:
            out.append(b"")
            continue
        _check_out_len(out_len)
        m = -(-out_len // hash_len)
        acc = 0
        if m == 1:  # one output block per piece: HMAC(s, HMAC(s, label) || label)
            for base in bases:
                h = base.copy()
                h.update(label)
                a = h.finalize()
                h = base.copy()
                h.update(a + label)
                acc ^= int.from_bytes(h.finalize(), "big")
        else:
            for base in bases:
                acc ^= int.from_bytes(_p_function(base, label, m), "big")
        out.append(acc.to_bytes(m * hash_len, "big")[:out_len])
    return out


def derive_tek_and_salt(
    tgk: bytes,
    cs_ids: Sequence[int],
    csb_id: int,
    rand: bytes,
    lengths: Sequence[tuple[int, int]],
    prf_func: int = PRF_MIKEY_1,
) -> list[tuple[bytes, bytes]]:
    """``(TEK, salt)`` for each crypto session from one TGK (RFC 3830 §4.1.3).

    ``lengths[i]`` is ``(tek_len, salt_len)`` for ``cs_ids[i]``; a salt length of 0 skips it.
    """
    tail = _u32(csb_id, "csb_id") + rand
    reqs: list[tuple[bytes, int]] = []
    for cs_id, (tek_len, salt_len) in zip(cs_ids, lengths, strict=True):
        mid = _u8(cs_id, "cs_id") + tail
        reqs.append((_TEK_PREFIX + mid, tek_len))
        reqs.append((_SALT_PREFIX + mid, salt_len))
    keys = prf_many(tgk, reqs, prf_func)
    return [(keys[i], keys[i + 1]) for i in range(0, len(keys), 2)]


_TEK_PREFIX: Final = CONST_TEK.to_bytes(4, "big")
_SALT_PREFIX: Final = CONST_SALT.to_bytes(4, "big")


def _u8(value: int, name: str) -> bytes:
    if not 0 <= value <= 0xFF:
        raise CryptoError(f"{name} must fit in 8 bits")
    return value.to_bytes(1, "big")


def _u32(value: int, name: str) -> bytes:
    if not 0 <= value <= 0xFFFFFFFF:
        raise CryptoError(f"{name} must fit in 32 bits")
    return value.to_bytes(4, "big")


def derive_from_tgk(
    tgk: bytes,
    const: int,
    cs_id: int,
    csb_id: int,
    rand: bytes,
    length: int,
    prf_func: int = PRF_MIKEY_1,
) -> bytes:
    """Key from the TGK: label = const || cs_id || csb_id || RAND (RFC 3830 §4.1.3)."""
    label = _u32(const, "constant") + _u8(cs_id, "cs_id") + _u32(csb_id, "csb_id") + rand
    return prf(tgk, label, length, prf_func)


def derive_tek(
    tgk: bytes, cs_id: int, csb_id: int, rand: bytes, length: int, prf_func: int = PRF_MIKEY_1
) -> bytes:
    """TEK (SRTP master key) from the TGK, constant 0x2AD01C64 (RFC 3830 §4.1.3)."""
    return derive_from_tgk(tgk, CONST_TEK, cs_id, csb_id, rand, length, prf_func)


def derive_srtp_salt(
    tgk: bytes, cs_id: int, csb_id: int, rand: bytes, length: int, prf_func: int = PRF_MIKEY_1
) -> bytes:
    """Salting key (SRTP master salt) from the TGK, constant 0x39A2C14B (RFC 3830 §4.1.3)."""
    return derive_from_tgk(tgk, CONST_SALT, cs_id, csb_id, rand, length, prf_func)


def derive_srtp_auth_key(
    tgk: bytes, cs_id: int, csb_id: int, rand: bytes, length: int, prf_func: int = PRF_MIKEY_1
) -> bytes:
    """Authentication key from the TGK, constant 0x1B5C7973 (RFC 3830 §4.1.3)."""
    return derive_from_tgk(tgk, CONST_AUTH, cs_id, csb_id, rand, length, prf_func)


def derive_srtp_encr_key(
    tgk: bytes, cs_id: int, csb_id: int, rand: bytes, length: int, prf_func: int = PRF_MIKEY_1
) -> bytes:
    """Encryption key from the TGK, constant 0x15798CEF (RFC 3830 §4.1.3)."""
    return derive_from_tgk(tgk, CONST_ENCR, cs_id, csb_id, rand, length, prf_func)


class TransportKeys(NamedTuple):
    """Keys protecting a MIKEY message (RFC 3830 §4.1.4).  Values never appear in repr."""

    encr_key: bytes
    auth_key: bytes
    salt: bytes

    def __repr__(self) -> str:
        return (
            f"TransportKeys(encr_key=<{len(self.encr_key)} octets>, "
            f"auth_key=<{len(self.auth_key)} octets>, salt=<{len(self.salt)} octets>)"
        )



def derive_transport_key(
    key: bytes, const: int, csb_id: int, rand: bytes, length: int, prf_func: int = PRF_MIKEY_1
) -> bytes:
    """One key from a PSK/envelope key: label = const || 0xFF || csb_id || RAND (RFC 3830 §4.1.4)."""
    label = _u32(const, "constant") + b"\xff" + _u32(csb_id, "csb_id") + rand
    return prf(key, label, length, prf_func)


def derive_transport_keys(
    key: bytes,
    csb_id: int,
    rand: bytes,
    *,
    encr_len: int,
    auth_len: int,
    salt_len: int,
    prf_func: int = PRF_MIKEY_1,
) -> TransportKeys:
    """Encryption, authentication and salt keys for the KEMAC (RFC 3830 §4.1.4).

    A zero length gives an empty key (e.g. NULL encryption or NULL MAC).
    """
    tail = b"\xff" + _u32(csb_id, "csb_id") + rand
    encr, auth, salt = prf_many(
        key,
        [
            (CONST_TRANSPORT_ENCR.to_bytes(4, "big") + tail, encr_len),
            (CONST_TRANSPORT_AUTH.to_bytes(4, "big") + tail, auth_len),
            (CONST_TRANSPORT_SALT.to_bytes(4, "big") + tail, salt_len),
        ],
        prf_func,
    )
    return TransportKeys(encr_key=encr, auth_key=auth, salt=salt)


# --- 3GPP helpers ---------------------------------------------------------------------


def kdf_ts33220(key: bytes, fc: int, *params: bytes) -> bytes:
    """3GPP TS 33.220 Annex B KDF: HMAC-SHA-256(key, FC || P0 || L0 || P1 || L1 ...)."""
    s = bytearray(_u8(fc, "FC"))
    for p in params:
        if len(p) > 0xFFFF:
            raise CryptoError("KDF parameter too long")
        s += p + len(p).to_bytes(2, "big")
    return _stdlib_hmac.digest(key, bytes(s), "sha256")


def guk_id(gmk: bytes, gmk_id: int, user_uri: str | bytes) -> int:
    """GUK-ID for a group member (3GPP TS 33.180 via TS 33.220 KDF, FC = 0x50).

    The 28 least significant bits of KDF(GMK, 0x50, user URI) are XORed into the GMK-ID;
    the 4-bit purpose tag of the GMK-ID is kept.  The GUK-ID is the CSB ID the member
    uses to derive SRTP master keys from the GMK.
    """
    uri = user_uri.encode() if isinstance(user_uri, str) else user_uri
    _u32(gmk_id, "GMK-ID")
    out = kdf_ts33220(gmk, 0x50, uri)
    return gmk_id ^ (int.from_bytes(out[-4:], "big") & 0x0FFFFFFF)


def derive_dpck(dppk: bytes, dppk_id: bytes) -> bytes:
    """DPCK = 128 least significant bits of KDF(DPPK, 0x53, DPPK-ID) (3GPP TS 33.180)."""
    return kdf_ts33220(dppk, 0x53, dppk_id)[-16:]
