"""KEMAC encryption and MAC algorithms (RFC 3830 §4.2.3, §4.2.4, §6.2; RFC 6043 §6.2).

Encr alg: 0 NULL, 1 AES-CM-128, 2 AES-KW-128, 3 AES-CM-256.
MAC alg: 0 NULL, 1 HMAC-SHA-1-160, 2 HMAC-SHA-256-256.

AES-CM uses the SRTP counter mode with
``IV = (S XOR (0x0000 || CSB ID || T)) || 0x0000`` where S is the 112-bit salt and T
the 64-bit timestamp (RFC 3830 §4.2.3).  32-bit timestamps are widened to 64 bits:
COUNTER with leading zeros (RFC 3830 §6.6), NTP-UTC-32 with a zero fraction
(RFC 6043 §6.3).

AES-KW-128 is RFC 3394 with the 64-bit MIKEY salt S as the initial value
(RFC 3830 §4.2.3).  ``cryptography`` only offers the default IV, so the wrap is
written here over its AES-ECB block cipher (RFC 3394 §2.2.1/§2.2.2).  RFC 3830 defines
no padding: the plaintext must be a multiple of 8 octets and at least 16 octets.
"""

from __future__ import annotations

import hmac as _stdlib_hmac
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as _hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ..constants import EncrAlg, MacAlg, TSType
from ..errors import (
    AuthenticationError,
    CryptoError,
    UnsupportedEncryptionError,
    UnsupportedMACError,
)

__all__ = [
    "ENCR_NULL",
    "ENCR_AES_CM_128",
    "ENCR_AES_KW_128",
    "ENCR_AES_CM_256",
    "MAC_NULL",
    "MAC_HMAC_SHA1_160",
    "MAC_HMAC_SHA256_256",
    "TS_NTP_UTC",
    "TS_NTP",
    "TS_COUNTER",
    "TS_NTP_UTC_32",
    "encr_key_len",
    "salt_len",
    "mac_key_len",
    "mac_len",
    "timestamp_64",
    "aes_cm_iv",
    "encrypt",
    "decrypt",
    "aes_kw_wrap",
    "aes_kw_unwrap",
    "compute_mac",
    "verify_mac",
]

# Short aliases of the registry enums in mikey.constants.
ENCR_NULL: Final = EncrAlg.NULL
ENCR_AES_CM_128: Final = EncrAlg.AES_CM_128
ENCR_AES_KW_128: Final = EncrAlg.AES_KW_128
ENCR_AES_CM_256: Final = EncrAlg.AES_CM_256

MAC_NULL: Final = MacAlg.NULL
MAC_HMAC_SHA1_160: Final = MacAlg.HMAC_SHA_1_160
MAC_HMAC_SHA256_256: Final = MacAlg.HMAC_SHA_256_256

# RFC 3830 §6.6 / RFC 6043 §6.3 TS types.
TS_NTP_UTC: Final = TSType.NTP_UTC
TS_NTP: Final = TSType.NTP
TS_COUNTER: Final = TSType.COUNTER
TS_NTP_UTC_32: Final = TSType.NTP_UTC_32

# alg -> (key length, salt length), octets
_ENCR: Final[dict[int, tuple[int, int]]] = {
    ENCR_NULL: (0, 0),
    ENCR_AES_CM_128: (16, 14),
    ENCR_AES_KW_128: (16, 8),
    ENCR_AES_CM_256: (32, 14),
}

# alg -> (hash name, key length, MAC length), octets
_MAC: Final[dict[int, tuple[str, int, int]]] = {
    MAC_NULL: ("", 0, 0),
    MAC_HMAC_SHA1_160: ("sha1", 20, 20),
    MAC_HMAC_SHA256_256: ("sha256", 32, 32),
}

_KW_DEFAULT_IV: Final = bytes.fromhex("a6a6a6a6a6a6a6a6")


def _encr(alg: int) -> tuple[int, int]:
    try:
        return _ENCR[alg]
    except KeyError:
        raise UnsupportedEncryptionError(f"unsupported KEMAC encryption algorithm {alg}") from None


def _mac(alg: int) -> tuple[str, int, int]:
    try:
        return _MAC[alg]
    except KeyError:
        raise UnsupportedMACError(f"unsupported KEMAC MAC algorithm {alg}") from None


def encr_key_len(alg: int) -> int:
    """Encryption key length in octets for a KEMAC Encr alg (RFC 3830 §4.2.3, RFC 6043 §6.2)."""
    return _encr(alg)[0]


def salt_len(alg: int) -> int:
    """Salt length in octets: 14 for AES-CM, 8 for AES-KW, 0 for NULL (RFC 3830 §4.2.3)."""
    return _encr(alg)[1]


def mac_key_len(alg: int) -> int:
    """Authentication key length in octets (RFC 3830 §4.2.4, RFC 6043 §6.2)."""
    return _mac(alg)[1]


def mac_len(alg: int) -> int:
    """MAC length in octets (RFC 3830 §6.2, RFC 6043 §6.2)."""
    return _mac(alg)[2]


def timestamp_64(timestamp: bytes, ts_type: int | None = None) -> bytes:
    """The 64-bit T used in the AES-CM IV.

    8-octet values are used as they are.  4-octet values need ``ts_type``: COUNTER is
    padded with leading zeros (RFC 3830 §6.6), NTP-UTC-32 with a zero fraction
    (RFC 6043 §6.3).
    """
    if len(timestamp) == 8:
        return timestamp
    if len(timestamp) == 4:
        if ts_type == TS_COUNTER:
            return bytes(4) + timestamp
        if ts_type == TS_NTP_UTC_32:
            return timestamp + bytes(4)
        raise CryptoError("a 4-octet timestamp needs ts_type COUNTER (2) or NTP-UTC-32 (3)")
    raise CryptoError(f"timestamp must be 4 or 8 octets, got {len(timestamp)}")


def aes_cm_iv(salt: bytes, csb_id: int, timestamp: bytes, ts_type: int | None = None) -> bytes:
    """IV = (S XOR (0x0000 || CSB ID || T)) || 0x0000 (RFC 3830 §4.2.3)."""
    if len(salt) != 14:
        raise CryptoError(f"AES-CM salt must be 14 octets, got {len(salt)}")
    if not 0 <= csb_id <= 0xFFFFFFFF:
        raise CryptoError("csb_id must fit in 32 bits")
    block = bytes(2) + csb_id.to_bytes(4, "big") + timestamp_64(timestamp, ts_type)
    return (int.from_bytes(salt, "big") ^ int.from_bytes(block, "big")).to_bytes(14, "big") + bytes(2)


def _aes_cm(key: bytes, iv: bytes, data: bytes) -> bytes:
    ctx = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    return ctx.update(data) + ctx.finalize()


def _check_key(alg: int, key: bytes, salt: bytes) -> None:
    key_len, s_len = _encr(alg)
    if len(key) != key_len:
        raise CryptoError(f"encryption algorithm {alg} needs a {key_len}-octet key, got {len(key)}")
    if len(salt) != s_len:
        raise CryptoError(f"encryption algorithm {alg} needs a {s_len}-octet salt, got {len(salt)}")


def aes_kw_wrap(kek: bytes, plaintext: bytes, iv: bytes = _KW_DEFAULT_IV) -> bytes:
    """RFC 3394 §2.2.1 key wrap with an explicit 64-bit initial value."""
    if len(iv) != 8:
        raise CryptoError("AES-KW initial value must be 8 octets")
    if len(plaintext) < 16 or len(plaintext) % 8:
        raise CryptoError("AES-KW plaintext must be a multiple of 8 octets and at least 16")
    if len(kek) not in (16, 24, 32):
        raise CryptoError("AES-KW key must be 16, 24 or 32 octets")
    enc = Cipher(algorithms.AES(kek), modes.ECB()).encryptor()
    n = len(plaintext) // 8
    a = int.from_bytes(iv, "big")
    r = [plaintext[i * 8 : i * 8 + 8] for i in range(n)]
    for j in range(6):
        for i in range(n):
            b = enc.update(a.to_bytes(8, "big") + r[i])
            a = int.from_bytes(b[:8], "big") ^ (n * j + i + 1)
            r[i] = b[8:]
    return a.to_bytes(8, "big") + b"".join(r)


def aes_kw_unwrap(kek: bytes, ciphertext: bytes, iv: bytes = _KW_DEFAULT_IV) -> bytes:
    """RFC 3394 §2.2.2 key unwrap; a wrong integrity check value raises AuthenticationError."""
    if len(iv) != 8:
        raise CryptoError("AES-KW initial value must be 8 octets")
    if len(ciphertext) < 24 or len(ciphertext) % 8:
        raise CryptoError("AES-KW ciphertext must be a multiple of 8 octets and at least 24")
    if len(kek) not in (16, 24, 32):
        raise CryptoError("AES-KW key must be 16, 24 or 32 octets")
    dec = Cipher(algorithms.AES(kek), modes.ECB()).decryptor()
    n = len(ciphertext) // 8 - 1
    a = int.from_bytes(ciphertext[:8], "big")
    r = [ciphertext[8 + i * 8 : 16 + i * 8] for i in range(n)]
    for j in range(5, -1, -1):
        for i in range(n - 1, -1, -1):
            b = dec.update((a ^ (n * j + i + 1)).to_bytes(8, "big") + r[i])
            a = int.from_bytes(b[:8], "big")
            r[i] = b[8:]
    if not _stdlib_hmac.compare_digest(a.to_bytes(8, "big"), iv):
        raise AuthenticationError("AES key unwrap integrity check failed")
    return b"".join(r)


def encrypt(
    alg: int,
    key: bytes,
    salt: bytes,
    csb_id: int,
    timestamp: bytes,
    plaintext: bytes,
    *,
    ts_type: int | None = None,
) -> bytes:
    """Encrypt the KEMAC Encr data (RFC 3830 §4.2.3, RFC 6043 §6.2).

    ``timestamp`` is the Initiator's T value (only used by AES-CM); see :func:`timestamp_64`.
    """
    _check_key(alg, key, salt)
    if alg == ENCR_NULL:
        return plaintext
    if alg == ENCR_AES_KW_128:
        return aes_kw_wrap(key, plaintext, salt)
    return _aes_cm(key, aes_cm_iv(salt, csb_id, timestamp, ts_type), plaintext)


def decrypt(
    alg: int,
    key: bytes,
    salt: bytes,
    csb_id: int,
    timestamp: bytes,
    ciphertext: bytes,
    *,
    ts_type: int | None = None,
) -> bytes:
    """Decrypt the KEMAC Encr data; AES-KW integrity failure raises AuthenticationError."""
    _check_key(alg, key, salt)
    if alg == ENCR_NULL:
        return ciphertext
    if alg == ENCR_AES_KW_128:
        return aes_kw_unwrap(key, ciphertext, salt)
    return _aes_cm(key, aes_cm_iv(salt, csb_id, timestamp, ts_type), ciphertext)


_SHA1 = hashes.SHA1()
_SHA256 = hashes.SHA256()


def compute_mac(alg: int, key: bytes, data: bytes) -> bytes:
    """MAC over ``data`` (RFC 3830 §4.2.4, RFC 6043 §6.2); NULL gives b""."""
    hash_name, key_len, _ = _mac(alg)
    if alg == MAC_NULL:
        return b""
    if len(key) != key_len:
        raise CryptoError(f"MAC algorithm {alg} needs a {key_len}-octet key, got {len(key)}")
    h = _hmac.HMAC(key, _SHA1 if hash_name == "sha1" else _SHA256)
    h.update(data)
    return h.finalize()


def verify_mac(alg: int, key: bytes, data: bytes, mac: bytes) -> None:
    """Check a MAC in constant time; raise AuthenticationError on mismatch."""
    expected = compute_mac(alg, key, data)
    if not _stdlib_hmac.compare_digest(expected, mac):
        raise AuthenticationError("MAC verification failed")
