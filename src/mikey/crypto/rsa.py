"""RSA adapters for the SIGN and PKE payloads (RFC 3830 §4.2.5, §4.2.6, §6.3, §6.5; RFC 4738 §3.6).

Signatures (SIGN payload, RFC 3830 Table 6.5):

* S type 0 -- RSASSA-PKCS1-v1_5 (mandatory),
* S type 1 -- RSASSA-PSS, MGF1 with the same hash; the signer uses a salt as
  long as the hash, the verifier accepts any salt length.

Envelope-key encryption (PKE payload): RSAES-PKCS1-v1_5 (mandatory) or
RSAES-OAEP (recommended), both from PKCS#1 [PSS].

All the RSA itself is done by ``cryptography``; this module only maps MIKEY
numbers to paddings and turns failures into :mod:`mikey.errors`.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from mikey.constants import SignatureType
from mikey.errors import AuthenticationError, CertificateError, CryptoError, UnsupportedHashError

__all__ = [
    "S_TYPE_RSA_PKCS1_V15",
    "S_TYPE_RSA_PSS",
    "SIGNATURE_HASHES",
    "sign",
    "verify",
    "encrypt_envelope",
    "decrypt_envelope",
    "max_envelope_key_length",
]

#: RFC 3830 Table 6.5 S type values handled here.
S_TYPE_RSA_PKCS1_V15 = SignatureType.RSA_PKCS1_V1_5
S_TYPE_RSA_PSS = SignatureType.RSA_PSS

#: Hash names accepted for signatures and OAEP.
SIGNATURE_HASHES: tuple[str, ...] = ("sha1", "sha256")

_HASHES: dict[str, type[hashes.SHA1] | type[hashes.SHA256]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
}


def _hash(hash_name: str) -> hashes.HashAlgorithm:
    key = hash_name.lower().replace("-", "").replace("_", "")
    try:
        return _HASHES[key]()
    except KeyError:
        raise UnsupportedHashError(f"hash {hash_name!r} not supported for RSA") from None


def _signature_padding(
    s_type: int, algorithm: hashes.HashAlgorithm, *, signing: bool
) -> padding.AsymmetricPadding:
    if s_type == S_TYPE_RSA_PKCS1_V15:
        return padding.PKCS1v15()
    if s_type == S_TYPE_RSA_PSS:
        salt = algorithm.digest_size if signing else padding.PSS.AUTO
        return padding.PSS(mgf=padding.MGF1(algorithm), salt_length=salt)
    raise ValueError(s_type)


def sign(private_key: RSAPrivateKey, data: bytes, s_type: int, hash_name: str = "sha256") -> bytes:
    """The SIGN payload's Signature field over ``data`` (RFC 3830 §5.2, §6.5)."""
    if not isinstance(private_key, RSAPrivateKey):
        raise CryptoError("signing key is not an RSA private key")
    algorithm = _hash(hash_name)
    try:
        pad = _signature_padding(s_type, algorithm, signing=True)
    except ValueError:
        raise CryptoError(f"S type {s_type} is not an RSA signature type") from None
    try:
        return private_key.sign(data, pad, algorithm)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CryptoError("RSA signing failed (key too small for this padding?)") from exc


def verify(
    public_key: RSAPublicKey, data: bytes, signature: bytes, s_type: int, hash_name: str = "sha256"
) -> None:
    """Verify a SIGN payload's signature; raise :class:`AuthenticationError` if it does not hold."""
    if not isinstance(public_key, RSAPublicKey):
        raise CertificateError("peer public key is not an RSA key")
    algorithm = _hash(hash_name)
    try:
        pad = _signature_padding(s_type, algorithm, signing=False)
    except ValueError:
        raise AuthenticationError(f"S type {s_type} is not a supported RSA signature type") from None
    try:
        public_key.verify(signature, data, pad, algorithm)
    except (InvalidSignature, ValueError) as exc:
        raise AuthenticationError("signature verification failed") from exc


def _oaep(hash_name: str) -> padding.OAEP:
    algorithm = _hash(hash_name)
    return padding.OAEP(mgf=padding.MGF1(algorithm), algorithm=algorithm, label=None)


def max_envelope_key_length(public_key: RSAPublicKey, *, oaep: bool = False, oaep_hash: str = "sha1") -> int:
    """Largest envelope key the key can carry (k-11 for PKCS#1 v1.5, k-2h-2 for OAEP)."""
    k = (public_key.key_size + 7) // 8
    if oaep:
        return k - 2 * _hash(oaep_hash).digest_size - 2
    return k - 11


def encrypt_envelope(
    public_key: RSAPublicKey, env_key: bytes, oaep: bool = False, *, oaep_hash: str = "sha1"
) -> bytes:
    """PKE Data = E(PK, env_key) (RFC 3830 §3.2, §6.3; RFC 4738 §3.6 with the Initiator's key).

    PKCS#1 v1.5 by default (mandatory, §4.2.5); ``oaep=True`` selects RSAES-OAEP
    with MGF1 and ``oaep_hash`` (SHA-1 is the PKCS#1 default).
    """
    if not isinstance(public_key, RSAPublicKey):
        raise CertificateError("peer public key is not an RSA key")
    if len(env_key) > max_envelope_key_length(public_key, oaep=oaep, oaep_hash=oaep_hash):
        raise CryptoError("envelope key too long for the RSA key")
    pad: padding.AsymmetricPadding = _oaep(oaep_hash) if oaep else padding.PKCS1v15()
    return public_key.encrypt(env_key, pad)


def decrypt_envelope(
    private_key: RSAPrivateKey, data: bytes, oaep: bool | None = None, *, oaep_hash: str = "sha1"
) -> bytes:
    """Recover env_key from PKE Data (RFC 3830 §3.2, §6.3).

    ``oaep=None`` means "what the certificate implies", which for an
    rsaEncryption key is the mandatory PKCS#1 v1.5.  The backend uses implicit
    rejection for PKCS#1 v1.5: a tampered ciphertext of the right length yields
    an unpredictable key rather than an error, so tampering surfaces as a KEMAC
    MAC failure and no padding oracle exists.  Other failures raise
    :class:`AuthenticationError` with no detail.
    """
    if not isinstance(private_key, RSAPrivateKey):
        raise CryptoError("decryption key is not an RSA private key")
    pad: padding.AsymmetricPadding = _oaep(oaep_hash) if oaep else padding.PKCS1v15()
    try:
        return private_key.decrypt(data, pad)
    except ValueError:
        raise AuthenticationError("envelope key decryption failed") from None
