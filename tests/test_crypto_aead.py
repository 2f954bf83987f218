"""AES-GCM over cryptography's AEAD (mikey.crypto.aead), as the TS 33.180 key-parameters extension uses it."""

from __future__ import annotations

import pytest

from mikey.crypto.aead import aes_gcm_open, aes_gcm_seal
from mikey.errors import AuthenticationError, CryptoError

h = bytes.fromhex

# The GCM specification (McGrew & Viega), Test Case 4: AES-128, 96-bit IV, 20 octets of AAD.
K4 = h("feffe9928665731c6d6a8f9467308308")
IV4 = h("cafebabefacedbaddecaf888")
P4 = h(
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
    "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39"
)
A4 = h("feedfacedeadbeeffeedfacedeadbeefabaddad2")
C4 = h(
    "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
    "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091"
)
T4 = h("5bc94fbc3221a5db94fae95ae7121a47")


def test_known_answer_test_case_4() -> None:
    assert aes_gcm_seal(K4, IV4, P4, A4) == C4 + T4
    assert aes_gcm_open(K4, IV4, C4 + T4, A4) == P4


def test_sixteen_octet_iv_round_trip() -> None:
    """TS 33.180 §E.6 uses a 16-octet IV (GHASH-derived J0, SP 800-38D §7.1)."""
    key, iv, aad = bytes(range(16)), bytes(range(16, 32)), b"header"
    sealed = aes_gcm_seal(key, iv, b"key parameters", aad)
    assert len(sealed) == len(b"key parameters") + 16
    assert aes_gcm_open(key, iv, sealed, aad) == b"key parameters"


@pytest.mark.parametrize("where", ["ciphertext", "tag", "aad", "iv", "short"])
def test_tampering_is_an_authentication_error(where: str) -> None:
    sealed, aad, iv = C4 + T4, A4, IV4
    if where == "ciphertext":
        sealed = bytes([sealed[0] ^ 1]) + sealed[1:]
    elif where == "tag":
        sealed = sealed[:-1] + bytes([sealed[-1] ^ 1])
    elif where == "aad":
        aad = aad + b"\x00"
    elif where == "iv":
        iv = bytes([iv[0] ^ 1]) + iv[1:]
    else:
        sealed = T4[:15]
    with pytest.raises(AuthenticationError):
        aes_gcm_open(K4, iv, sealed, aad)


def test_bad_key_or_iv_length() -> None:
    with pytest.raises(CryptoError, match="key"):
        aes_gcm_seal(bytes(15), IV4, b"")
    with pytest.raises(CryptoError, match="IV"):
        aes_gcm_seal(K4, bytes(7), b"")
