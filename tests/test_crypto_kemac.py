"""KEMAC ciphers and MACs (RFC 3830 §4.2.3, §4.2.4, §6.2; RFC 6043 §6.2; RFC 3394)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import pathlib
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap, aes_key_wrap

from mikey.crypto import kemac
from mikey.errors import (
    AuthenticationError,
    CryptoError,
    UnsupportedEncryptionError,
    UnsupportedMACError,
)

VECTORS = pathlib.Path(__file__).parent / "vectors"
KW_CASES: list[dict[str, Any]] = json.loads((VECTORS / "aes_kw_rfc3394.json").read_text())["cases"]
SRTP_CASES: list[dict[str, Any]] = json.loads((VECTORS / "srtp_rfc3711.json").read_text())["cases"]


def test_lengths() -> None:
    assert [kemac.encr_key_len(a) for a in (0, 1, 2, 3)] == [0, 16, 16, 32]
    assert [kemac.salt_len(a) for a in (0, 1, 2, 3)] == [0, 14, 8, 14]
    assert [kemac.mac_key_len(a) for a in (0, 1, 2)] == [0, 20, 32]
    assert [kemac.mac_len(a) for a in (0, 1, 2)] == [0, 20, 32]


def test_unknown_algorithms() -> None:
    with pytest.raises(UnsupportedEncryptionError) as e1:
        kemac.encr_key_len(4)
    assert e1.value.err_no == 4
    with pytest.raises(UnsupportedMACError) as e2:
        kemac.compute_mac(3, b"", b"")
    assert e2.value.err_no == 3
    with pytest.raises(UnsupportedEncryptionError):
        kemac.encrypt(9, b"", b"", 0, bytes(8), b"x")


# --- AES-CM (RFC 3830 §4.2.3) ---------------------------------------------------------


def test_aes_cm_iv_by_hand() -> None:
    salt = bytes(range(14))
    iv = kemac.aes_cm_iv(salt, 0x11223344, bytes.fromhex("0102030405060708"))
    # 000102030405060708090a0b0c0d XOR 0000 11223344 0102030405060708, then || 0000
    assert iv.hex() == "00011321374107050b0d0f0d0b050000"


def test_aes_cm_iv_short_timestamps() -> None:
    salt = bytes(14)
    # COUNTER: leading zeros (RFC 3830 §6.6)
    iv = kemac.aes_cm_iv(salt, 0, b"\x00\x00\x00\x05", kemac.TS_COUNTER)
    assert iv.hex() == "0000" + "00000000" + "0000000000000005" + "0000"
    # NTP-UTC-32: zero fraction (RFC 6043 §6.3)
    iv = kemac.aes_cm_iv(salt, 0, b"\x00\x00\x00\x05", kemac.TS_NTP_UTC_32)
    assert iv.hex() == "0000" + "00000000" + "0000000500000000" + "0000"
    with pytest.raises(CryptoError):
        kemac.aes_cm_iv(salt, 0, b"\x00\x00\x00\x05")
    with pytest.raises(CryptoError):
        kemac.aes_cm_iv(salt, 0, b"\x00" * 6)
    with pytest.raises(CryptoError):
        kemac.aes_cm_iv(bytes(13), 0, bytes(8))


def test_aes_cm_is_srtp_counter_mode_rfc3711_b2() -> None:
    # With CSB ID 0 and T 0 the IV is salt || 0x0000: RFC 3711 B.2 keystream.
    case = next(c for c in SRTP_CASES if c["name"].startswith("B.2"))
    key = bytes.fromhex(case["session_key"])
    salt = bytes.fromhex(case["offset"])[:14]
    stream = kemac.encrypt(kemac.ENCR_AES_CM_128, key, salt, 0, bytes(8), bytes(48))
    assert stream.hex() == "".join(b["keystream"] for b in case["blocks"][:3])


def test_aes_cm_encrypt_matches_ecb_keystream() -> None:
    key, salt = bytes(range(16)), bytes(range(50, 64))
    t = bytes.fromhex("e1e2e3e4e5e6e7e8")
    plaintext = bytes(range(40))
    iv = kemac.aes_cm_iv(salt, 0xDEADBEEF, t)
    ecb = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    counter = int.from_bytes(iv, "big")
    stream = b"".join(ecb.update((counter + i).to_bytes(16, "big")) for i in range(3))
    expected = bytes(p ^ s for p, s in zip(plaintext, stream, strict=False))
    ct = kemac.encrypt(kemac.ENCR_AES_CM_128, key, salt, 0xDEADBEEF, t, plaintext)
    assert ct == expected
    assert kemac.decrypt(kemac.ENCR_AES_CM_128, key, salt, 0xDEADBEEF, t, ct) == plaintext


def test_aes_cm_256_round_trip_and_key_length() -> None:
    key, salt, t = bytes(range(32)), bytes(14), bytes(8)
    ct = kemac.encrypt(kemac.ENCR_AES_CM_256, key, salt, 1, t, b"tgk material 123")
    assert ct != b"tgk material 123"
    assert kemac.decrypt(kemac.ENCR_AES_CM_256, key, salt, 1, t, ct) == b"tgk material 123"
    # Different from AES-CM-128 with the first half of the key.
    assert ct != kemac.encrypt(kemac.ENCR_AES_CM_128, key[:16], salt, 1, t, b"tgk material 123")
    with pytest.raises(CryptoError):
        kemac.encrypt(kemac.ENCR_AES_CM_256, bytes(16), salt, 1, t, b"x")
    with pytest.raises(CryptoError):
        kemac.encrypt(kemac.ENCR_AES_CM_128, bytes(16), bytes(12), 1, t, b"x")


def test_null_encryption() -> None:
    assert kemac.encrypt(kemac.ENCR_NULL, b"", b"", 5, bytes(8), b"clear") == b"clear"
    assert kemac.decrypt(kemac.ENCR_NULL, b"", b"", 5, bytes(8), b"clear") == b"clear"


# --- AES-KW (RFC 3394, RFC 3830 §4.2.3) ---------------------------------------------


@pytest.mark.parametrize("case", KW_CASES, ids=[c["section"] for c in KW_CASES])
def test_aes_kw_rfc3394_vectors(case: dict[str, Any]) -> None:
    kek, data = bytes.fromhex(case["KEK"]), bytes.fromhex(case["key_data"])
    iv = bytes.fromhex(case["default_IV"])
    assert kemac.aes_kw_wrap(kek, data, iv).hex() == case["ciphertext"]
    assert kemac.aes_kw_unwrap(kek, bytes.fromhex(case["ciphertext"]), iv) == data


@pytest.mark.parametrize("n_blocks", [2, 3, 4, 7])
def test_aes_kw_default_iv_matches_cryptography(n_blocks: int) -> None:
    for kek_len in (16, 24, 32):
        kek, data = os.urandom(kek_len), os.urandom(8 * n_blocks)
        assert kemac.aes_kw_wrap(kek, data) == aes_key_wrap(kek, data)
        assert aes_key_unwrap(kek, kemac.aes_kw_wrap(kek, data)) == data


def _reference_wrap_shift_register(kek: bytes, plaintext: bytes, iv: bytes) -> bytes:
    """RFC 3394 §2.2.1, the first (shift-register, 6n-step) formulation."""
    ecb = Cipher(algorithms.AES(kek), modes.ECB()).encryptor()
    n = len(plaintext) // 8
    a, r = iv, [plaintext[8 * i : 8 * i + 8] for i in range(n)]
    for t in range(1, 6 * n + 1):
        b = ecb.update(a + r[0])
        a = (int.from_bytes(b[:8], "big") ^ t).to_bytes(8, "big")
        r = r[1:] + [b[8:]]
    return a + b"".join(r)


def test_aes_kw_with_mikey_salt_as_iv() -> None:
    key, salt = bytes(range(16)), bytes.fromhex("0102030405060708")
    tgk = bytes(range(100, 132))
    ct = kemac.encrypt(kemac.ENCR_AES_KW_128, key, salt, 0, bytes(8), tgk)
    assert len(ct) == len(tgk) + 8
    assert ct == _reference_wrap_shift_register(key, tgk, salt)
    assert ct != aes_key_wrap(key, tgk)
    assert kemac.decrypt(kemac.ENCR_AES_KW_128, key, salt, 0, bytes(8), ct) == tgk
    with pytest.raises(AuthenticationError):
        kemac.decrypt(kemac.ENCR_AES_KW_128, key, bytes(8), 0, bytes(8), ct)
    tampered = ct[:-1] + bytes([ct[-1] ^ 1])
    with pytest.raises(AuthenticationError):
        kemac.decrypt(kemac.ENCR_AES_KW_128, key, salt, 0, bytes(8), tampered)


def test_aes_kw_length_rules() -> None:
    key, salt = bytes(16), bytes(8)
    for bad in (b"", bytes(8), bytes(17)):
        with pytest.raises(CryptoError):
            kemac.encrypt(kemac.ENCR_AES_KW_128, key, salt, 0, bytes(8), bad)
    with pytest.raises(CryptoError):
        kemac.decrypt(kemac.ENCR_AES_KW_128, key, salt, 0, bytes(8), bytes(16))
    with pytest.raises(CryptoError):
        kemac.encrypt(kemac.ENCR_AES_KW_128, key, bytes(14), 0, bytes(8), bytes(16))


# --- MACs (RFC 3830 §4.2.4, RFC 6043 §6.2) --------------------------------------------


def test_hmac_sha1_160() -> None:
    key, data = b"\x0b" * 20, b"Hi There"
    mac = kemac.compute_mac(kemac.MAC_HMAC_SHA1_160, key, data)
    # RFC 2202 test case 1
    assert mac.hex() == "b617318655057264e28bc0b6fb378c8ef146be00"
    kemac.verify_mac(kemac.MAC_HMAC_SHA1_160, key, data, mac)


def test_hmac_sha256_256() -> None:
    key, data = b"\x0b" * 32, b"mikey message"
    mac = kemac.compute_mac(kemac.MAC_HMAC_SHA256_256, key, data)
    assert mac == hmac.new(key, data, hashlib.sha256).digest()
    assert len(mac) == 32
    kemac.verify_mac(kemac.MAC_HMAC_SHA256_256, key, data, mac)


@pytest.mark.parametrize("alg,key_len", [(1, 20), (2, 32)])
def test_verify_mac_rejects(alg: int, key_len: int) -> None:
    key = bytes(range(key_len))
    mac = kemac.compute_mac(alg, key, b"data")
    with pytest.raises(AuthenticationError) as info:
        kemac.verify_mac(alg, key, b"datA", mac)
    assert info.value.err_no == 0
    with pytest.raises(AuthenticationError):
        kemac.verify_mac(alg, key, b"data", mac[:-1])
    with pytest.raises(AuthenticationError):
        kemac.verify_mac(alg, key, b"data", bytes([mac[0] ^ 0x80]) + mac[1:])
    with pytest.raises(CryptoError):
        kemac.compute_mac(alg, key[:-1], b"data")


def test_null_mac() -> None:
    assert kemac.compute_mac(kemac.MAC_NULL, b"", b"anything") == b""
    kemac.verify_mac(kemac.MAC_NULL, b"", b"anything", b"")
    with pytest.raises(AuthenticationError):
        kemac.verify_mac(kemac.MAC_NULL, b"", b"anything", b"\x00")


def test_errors_do_not_leak_keys() -> None:
    key = bytes.fromhex("41" * 15)
    with pytest.raises(CryptoError) as info:
        kemac.encrypt(kemac.ENCR_AES_CM_128, key, bytes(14), 0, bytes(8), b"x")
    assert "41" * 4 not in str(info.value) and "AAAA" not in str(info.value)
