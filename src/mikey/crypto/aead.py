"""AES-GCM authenticated encryption (NIST SP 800-38D) over ``cryptography``'s AEAD.

Used by the 3GPP MIKEY-SAKKE profile for the protected key-parameters extension
(TS 33.180 §8.5.4, §E.6: AES-128-GCM, 16-octet IV, 16-octet tag appended).
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import AuthenticationError, CryptoError

__all__ = ["GCM_TAG_LENGTH", "aes_gcm_seal", "aes_gcm_open"]

#: Octets of the GCM authentication tag appended to the ciphertext.
GCM_TAG_LENGTH = 16


def _aead(key: bytes, iv: bytes) -> AESGCM:
    if len(key) not in (16, 24, 32):
        raise CryptoError(f"AES-GCM key must be 16, 24 or 32 octets, not {len(key)}")
    if not 8 <= len(iv) <= 128:
        raise CryptoError(f"AES-GCM IV must be 8 to 128 octets, not {len(iv)}")
    return AESGCM(key)


def aes_gcm_seal(key: bytes, iv: bytes, plaintext: bytes, associated_data: bytes = b"") -> bytes:
    """``ciphertext || tag`` (16-octet tag) of *plaintext* under *key* and *iv*, authenticating *associated_data*."""
    return _aead(key, iv).encrypt(iv, plaintext, associated_data)


def aes_gcm_open(key: bytes, iv: bytes, sealed: bytes, associated_data: bytes = b"") -> bytes:
    """The plaintext of ``ciphertext || tag``; raises :class:`AuthenticationError` if it does not authenticate."""
    if len(sealed) < GCM_TAG_LENGTH:
        raise AuthenticationError("AES-GCM input is shorter than its 16-octet tag")
    try:
        return _aead(key, iv).decrypt(iv, sealed, associated_data)
    except InvalidTag:
        raise AuthenticationError("AES-GCM tag does not verify") from None
