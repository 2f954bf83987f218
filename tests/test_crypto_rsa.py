"""RSA SIGN (RFC 3830 §4.2.6, §6.5) and PKE envelope encryption (RFC 3830 §4.2.5, §6.3)."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pki import rsa_key

from mikey.crypto import rsa as mrsa
from mikey.errors import AuthenticationError, CertificateError, CryptoError, UnsupportedHashError

DATA = b"HDR || T || RAND || ... || SIGN header"

# DER DigestInfo prefixes, RFC 8017 §9.2 note 1.
DIGEST_INFO = {
    "sha1": bytes.fromhex("3021300906052b0e03021a05000414"),
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
}


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa_key(0)


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return rsa_key(1)


def _open(public_key: rsa.RSAPublicKey, signature: bytes) -> bytes:
    """Textbook RSA: s^e mod n as k octets."""
    numbers = public_key.public_numbers()
    k = (public_key.key_size + 7) // 8
    return pow(int.from_bytes(signature, "big"), numbers.e, numbers.n).to_bytes(k, "big")


def _mgf1(seed: bytes, length: int, hash_name: str) -> bytes:
    out = b""
    counter = 0
    while len(out) < length:
        out += hashlib.new(hash_name, seed + counter.to_bytes(4, "big")).digest()
        counter += 1
    return out[:length]


def _pss_salt(public_key: rsa.RSAPublicKey, message: bytes, signature: bytes, hash_name: str) -> bytes:
    """EMSA-PSS-VERIFY (RFC 8017 §9.1.2) written out, returning the recovered salt."""
    em_bits = public_key.key_size - 1
    em_len = (em_bits + 7) // 8
    em = _open(public_key, signature)[-em_len:]
    h_len = hashlib.new(hash_name).digest_size
    assert em[-1] == 0xBC
    masked_db, h = em[: em_len - h_len - 1], em[em_len - h_len - 1 : -1]
    db = bytes(a ^ b for a, b in zip(masked_db, _mgf1(h, len(masked_db), hash_name), strict=True))
    db = bytes([db[0] & (0xFF >> (8 * em_len - em_bits))]) + db[1:]
    ps_end = db.index(b"\x01")
    assert db[:ps_end] == bytes(ps_end)
    salt = db[ps_end + 1 :]
    m_hash = hashlib.new(hash_name, message).digest()
    assert hashlib.new(hash_name, bytes(8) + m_hash + salt).digest() == h
    return salt


@pytest.mark.parametrize("hash_name", ["sha1", "sha256"])
def test_pkcs1_v15_signature_encoding(key: rsa.RSAPrivateKey, hash_name: str) -> None:
    sig = mrsa.sign(key, DATA, mrsa.S_TYPE_RSA_PKCS1_V15, hash_name)
    k = key.key_size // 8
    assert len(sig) == k
    t = DIGEST_INFO[hash_name] + hashlib.new(hash_name, DATA).digest()
    assert _open(key.public_key(), sig) == b"\x00\x01" + b"\xff" * (k - len(t) - 3) + b"\x00" + t
    # Deterministic: signing again gives the same octets.
    assert mrsa.sign(key, DATA, 0, hash_name) == sig
    mrsa.verify(key.public_key(), DATA, sig, 0, hash_name)


@pytest.mark.parametrize("hash_name", ["sha1", "sha256"])
def test_pss_signature_salt_is_hash_length(key: rsa.RSAPrivateKey, hash_name: str) -> None:
    sig = mrsa.sign(key, DATA, mrsa.S_TYPE_RSA_PSS, hash_name)
    salt = _pss_salt(key.public_key(), DATA, sig, hash_name)
    assert len(salt) == hashlib.new(hash_name).digest_size
    assert mrsa.sign(key, DATA, 1, hash_name) != sig  # randomised salt
    mrsa.verify(key.public_key(), DATA, sig, 1, hash_name)


def test_pss_verify_accepts_any_salt_length(key: rsa.RSAPrivateKey) -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    for salt_length in (0, 20, padding.PSS.MAX_LENGTH):
        sig = key.sign(DATA, padding.PSS(padding.MGF1(hashes.SHA256()), salt_length), hashes.SHA256())
        mrsa.verify(key.public_key(), DATA, sig, mrsa.S_TYPE_RSA_PSS)


def test_hash_name_spellings(key: rsa.RSAPrivateKey) -> None:
    sig = mrsa.sign(key, DATA, 0, "SHA-256")
    mrsa.verify(key.public_key(), DATA, sig, 0, "sha256")


@pytest.mark.parametrize("s_type", [0, 1])
@pytest.mark.parametrize("hash_name", ["sha1", "sha256"])
def test_tampering_rejected(
    key: rsa.RSAPrivateKey, other_key: rsa.RSAPrivateKey, s_type: int, hash_name: str
) -> None:
    sig = mrsa.sign(key, DATA, s_type, hash_name)
    pub = key.public_key()
    bad_sig = bytearray(sig)
    bad_sig[-1] ^= 1
    cases = [
        (DATA + b"x", sig, pub, s_type, hash_name),  # message changed
        (DATA, bytes(bad_sig), pub, s_type, hash_name),  # signature changed
        (DATA, sig[:-1], pub, s_type, hash_name),  # truncated
        (DATA, sig, other_key.public_key(), s_type, hash_name),  # wrong key
        (DATA, sig, pub, 1 - s_type, hash_name),  # wrong S type
        (DATA, sig, pub, s_type, "sha1" if hash_name == "sha256" else "sha256"),  # wrong hash
        (DATA, sig, pub, 2, hash_name),  # ECCSI is not RSA
    ]
    for data, signature, public_key, st, hn in cases:
        with pytest.raises(AuthenticationError) as info:
            mrsa.verify(public_key, data, signature, st, hn)
        assert info.value.err_no == 0


def test_unsupported_hash(key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(UnsupportedHashError):
        mrsa.sign(key, DATA, 0, "md5")
    with pytest.raises(UnsupportedHashError):
        mrsa.verify(key.public_key(), DATA, b"\0" * 256, 0, "sha512")


def test_wrong_key_types(key: rsa.RSAPrivateKey) -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(CryptoError):
        mrsa.sign(ec_key, DATA, 0)  # type: ignore[arg-type]
    with pytest.raises(CertificateError):
        mrsa.verify(ec_key.public_key(), DATA, b"\0" * 64, 0)  # type: ignore[arg-type]
    with pytest.raises(CryptoError):
        mrsa.sign(key, DATA, 2)


@pytest.mark.parametrize("oaep", [False, True])
def test_envelope_round_trip(key: rsa.RSAPrivateKey, oaep: bool) -> None:
    env_key = bytes(range(20))
    ct = mrsa.encrypt_envelope(key.public_key(), env_key, oaep=oaep)
    assert len(ct) == key.key_size // 8
    assert mrsa.encrypt_envelope(key.public_key(), env_key, oaep=oaep) != ct  # randomised padding
    assert mrsa.decrypt_envelope(key, ct, oaep=oaep) == env_key
    if not oaep:
        assert mrsa.decrypt_envelope(key, ct) == env_key  # None = PKCS#1 v1.5


def test_envelope_pkcs1_v15_block_format(key: rsa.RSAPrivateKey) -> None:
    env_key = b"\xaa" * 32
    ct = mrsa.encrypt_envelope(key.public_key(), env_key)
    n = key.private_numbers().public_numbers.n
    d = key.private_numbers().d
    block = pow(int.from_bytes(ct, "big"), d, n).to_bytes(256, "big")
    # RFC 8017 §7.2.1: EM = 0x00 || 0x02 || PS (non-zero) || 0x00 || M
    assert block[:2] == b"\x00\x02"
    assert 0 not in block[2 : 256 - 33]
    assert block[-33:] == b"\x00" + env_key


def test_envelope_oaep_sha256(key: rsa.RSAPrivateKey) -> None:
    ct = mrsa.encrypt_envelope(key.public_key(), b"k" * 16, oaep=True, oaep_hash="sha256")
    assert mrsa.decrypt_envelope(key, ct, oaep=True, oaep_hash="sha256") == b"k" * 16
    with pytest.raises(AuthenticationError):
        mrsa.decrypt_envelope(key, ct, oaep=True, oaep_hash="sha1")


def test_envelope_tampering(key: rsa.RSAPrivateKey, other_key: rsa.RSAPrivateKey) -> None:
    env_key = b"\x55" * 32
    ct = mrsa.encrypt_envelope(key.public_key(), env_key, oaep=True)
    bad = bytearray(ct)
    bad[10] ^= 0x40
    for data, private_key in [(bytes(bad), key), (ct, other_key), (ct[1:], key), (b"", key)]:
        with pytest.raises(AuthenticationError) as info:
            mrsa.decrypt_envelope(private_key, data, oaep=True)
        assert "padding" not in str(info.value).lower()
    # PKCS#1 v1.5 uses implicit rejection: a tampered block never yields the key
    # (and never tells why); the KEMAC MAC check then fails.
    ct15 = mrsa.encrypt_envelope(key.public_key(), env_key)
    bad15 = bytearray(ct15)
    bad15[10] ^= 0x40
    try:
        assert mrsa.decrypt_envelope(key, bytes(bad15)) != env_key
    except AuthenticationError:
        pass
    with pytest.raises(AuthenticationError):
        mrsa.decrypt_envelope(key, ct15[:-1])


def test_envelope_key_length_limits(key: rsa.RSAPrivateKey) -> None:
    pub = key.public_key()
    assert mrsa.max_envelope_key_length(pub) == 256 - 11
    assert mrsa.max_envelope_key_length(pub, oaep=True) == 256 - 42
    assert mrsa.decrypt_envelope(key, mrsa.encrypt_envelope(pub, b"\1" * 245)) == b"\1" * 245
    with pytest.raises(CryptoError):
        mrsa.encrypt_envelope(pub, b"\1" * 246)
    with pytest.raises(CryptoError):
        mrsa.encrypt_envelope(pub, b"\1" * 215, oaep=True)


def test_errors_do_not_leak_key_material(key: rsa.RSAPrivateKey) -> None:
    env_key = bytes.fromhex("00112233445566778899aabbccddeeff")
    ct = mrsa.encrypt_envelope(key.public_key(), env_key, oaep=True)
    with pytest.raises(AuthenticationError) as info:
        mrsa.decrypt_envelope(key, ct[:-1] + bytes([ct[-1] ^ 1]), oaep=True)
    text = str(info.value) + repr(info.value)
    assert env_key.hex() not in text
    assert str(key.private_numbers().d)[:20] not in text
