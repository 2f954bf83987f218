"""A tiny test PKI built with cryptography's X.509 builder.

Used by the crypto, keystore and PK/DH/RSA-R mode tests::

    from pki import make_ca, make_intermediate, make_leaf

    ca = make_ca("Test Root")
    alice = make_leaf(ca, "alice", san_uris=["sip:alice@example.com"])
    alice.cert, alice.key, alice.cert_pem, alice.key_pem, alice.cert_der

RSA keys are cached per (index, size) so each distinct key is generated once
per process.  By default every distinct *name* gets its own key; pass
``key_index`` explicitly to force a fresh key (e.g. a rogue CA reusing a
legitimate CA's name) or to share one.
"""

from __future__ import annotations

import datetime as _dt
import functools
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from mikey.crypto.x509 import CertificateValidator
from mikey.keystore import Credentials

UTC = _dt.UTC
#: A fixed "now" for tests: certificates default to valid around it.
NOW = _dt.datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)
DEFAULT_NOT_BEFORE = NOW - _dt.timedelta(days=365)
DEFAULT_NOT_AFTER = NOW + _dt.timedelta(days=365)

#: keyUsage names (cryptography's x509.KeyUsage keyword arguments).
KEY_USAGE_NAMES = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
)
_SignHash = hashes.SHA224 | hashes.SHA256 | hashes.SHA384 | hashes.SHA512
LEAF_KEY_USAGE = ("digital_signature", "key_encipherment")
CA_KEY_USAGE = ("key_cert_sign", "crl_sign")


@functools.cache
def rsa_key(index: int, key_size: int = 2048) -> rsa.RSAPrivateKey:
    """The index-th cached RSA key of the given size."""
    return rsa.generate_private_key(public_exponent=65537, key_size=key_size)


_name_index: dict[str, int] = {}
_counter = itertools.count(1000)


def _key_for(name: str, key_index: int | None, key_size: int) -> rsa.RSAPrivateKey:
    if key_index is None:
        key_index = _name_index.setdefault(name, len(_name_index))
    return rsa_key(key_index, key_size)


def fresh_key_index() -> int:
    """An index no name-based default will collide with."""
    return next(_counter)


@dataclass(frozen=True)
class Issued:
    """A certificate with its private key."""

    cert: x509.Certificate
    key: rsa.RSAPrivateKey = field(repr=False)
    name: str = ""

    @property
    def cert_der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self, password: bytes | None = None) -> bytes:
        enc: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
        )
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)

    def key_der(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key_usage(names: Iterable[str]) -> x509.KeyUsage:
    chosen = set(names)
    unknown = chosen - set(KEY_USAGE_NAMES)
    if unknown:
        raise ValueError(f"unknown key usage {unknown}")
    flags = {n: n in chosen for n in KEY_USAGE_NAMES}
    return x509.KeyUsage(**flags, encipher_only=False, decipher_only=False)


def _build(
    *,
    subject: str,
    public_key: rsa.RSAPublicKey,
    issuer: Issued | None,
    signing_key: rsa.RSAPrivateKey,
    ca: bool,
    path_length: int | None,
    key_usage: Iterable[str] | None,
    san: Sequence[x509.GeneralName],
    not_before: _dt.datetime,
    not_after: _dt.datetime,
    hash_algorithm: _SignHash,
    extra_extensions: Sequence[tuple[x509.ExtensionType, bool]],
    basic_constraints: bool,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer.cert.subject if issuer else _name(subject))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    if basic_constraints:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
    if key_usage is not None:
        builder = builder.add_extension(_key_usage(key_usage), critical=True)
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(san)), critical=False)
    builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    for ext, critical in extra_extensions:
        builder = builder.add_extension(ext, critical=critical)
    return builder.sign(signing_key, hash_algorithm)


def make_ca(
    name: str = "MIKEY Test Root",
    *,
    key_index: int | None = None,
    key_size: int = 2048,
    not_before: _dt.datetime = DEFAULT_NOT_BEFORE,
    not_after: _dt.datetime = DEFAULT_NOT_AFTER + _dt.timedelta(days=3650),
    path_length: int | None = None,
    key_usage: Iterable[str] | None = CA_KEY_USAGE,
    basic_constraints: bool = True,
) -> Issued:
    """A self-signed root CA."""
    key = _key_for(name, key_index, key_size)
    cert = _build(
        subject=name,
        public_key=key.public_key(),
        issuer=None,
        signing_key=key,
        ca=True,
        path_length=path_length,
        key_usage=key_usage,
        san=(),
        not_before=not_before,
        not_after=not_after,
        hash_algorithm=hashes.SHA256(),
        extra_extensions=(),
        basic_constraints=basic_constraints,
    )
    return Issued(cert, key, name)


def make_intermediate(
    issuer: Issued,
    name: str,
    *,
    key_index: int | None = None,
    key_size: int = 2048,
    not_before: _dt.datetime = DEFAULT_NOT_BEFORE,
    not_after: _dt.datetime = DEFAULT_NOT_AFTER + _dt.timedelta(days=365),
    path_length: int | None = None,
    ca: bool = True,
    key_usage: Iterable[str] | None = CA_KEY_USAGE,
    basic_constraints: bool = True,
) -> Issued:
    """A CA certificate issued by ``issuer``; ``ca=False`` makes a bogus non-CA "intermediate"."""
    key = _key_for(name, key_index, key_size)
    cert = _build(
        subject=name,
        public_key=key.public_key(),
        issuer=issuer,
        signing_key=issuer.key,
        ca=ca,
        path_length=path_length,
        key_usage=key_usage,
        san=(),
        not_before=not_before,
        not_after=not_after,
        hash_algorithm=hashes.SHA256(),
        extra_extensions=(),
        basic_constraints=basic_constraints,
    )
    return Issued(cert, key, name)


def make_leaf(
    issuer: Issued,
    name: str,
    *,
    san_uris: Sequence[str] = (),
    san_emails: Sequence[str] = (),
    san_dns: Sequence[str] = (),
    key_usage: Iterable[str] | None = LEAF_KEY_USAGE,
    not_before: _dt.datetime = DEFAULT_NOT_BEFORE,
    not_after: _dt.datetime = DEFAULT_NOT_AFTER,
    key_index: int | None = None,
    key_size: int = 2048,
    hash_algorithm: _SignHash | None = None,
    extra_extensions: Sequence[tuple[x509.ExtensionType, bool]] = (),
    basic_constraints: bool = True,
) -> Issued:
    """An end-entity certificate for ``name`` issued by ``issuer``.

    ``key_usage=None`` omits the keyUsage extension entirely.
    """
    key = _key_for(name, key_index, key_size)
    san: list[x509.GeneralName] = [x509.UniformResourceIdentifier(u) for u in san_uris]
    san += [x509.RFC822Name(e) for e in san_emails]
    san += [x509.DNSName(d) for d in san_dns]
    cert = _build(
        subject=name,
        public_key=key.public_key(),
        issuer=issuer,
        signing_key=issuer.key,
        ca=False,
        path_length=None,
        key_usage=key_usage,
        san=san,
        not_before=not_before,
        not_after=not_after,
        hash_algorithm=hash_algorithm or hashes.SHA256(),
        extra_extensions=extra_extensions,
        basic_constraints=basic_constraints,
    )
    return Issued(cert, key, name)


def make_self_signed_leaf(name: str, *, san_uris: Sequence[str] = (), key_index: int | None = None) -> Issued:
    """A self-signed end-entity certificate (the "specific peer" trust model, RFC 3830 §4.3.2)."""
    key = _key_for(name, key_index, 2048)
    san = [x509.UniformResourceIdentifier(u) for u in san_uris]
    cert = _build(
        subject=name,
        public_key=key.public_key(),
        issuer=None,
        signing_key=key,
        ca=False,
        path_length=None,
        key_usage=LEAF_KEY_USAGE,
        san=san,
        not_before=DEFAULT_NOT_BEFORE,
        not_after=DEFAULT_NOT_AFTER,
        hash_algorithm=hashes.SHA256(),
        extra_extensions=(),
        basic_constraints=True,
    )
    return Issued(cert, key, name)


ALICE_URI = "sip:alice@example.com"
BOB_URI = "sip:bob@example.com"


@dataclass
class TwoPartyPki:
    """A CA with Alice and Bob leaves (SAN URIs above), their credentials and a validator trusting the CA."""

    ca: Issued
    alice: Issued
    bob: Issued
    a: Credentials
    b: Credentials
    validator: CertificateValidator


def two_party_pki(ca_name: str) -> TwoPartyPki:
    ca = make_ca(ca_name)
    alice = make_leaf(ca, "alice", san_uris=[ALICE_URI])
    bob = make_leaf(ca, "bob", san_uris=[BOB_URI])
    return TwoPartyPki(ca, alice, bob, Credentials(alice.key, alice.cert), Credentials(bob.key, bob.cert),
                       CertificateValidator([ca.cert]))
