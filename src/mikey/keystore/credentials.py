"""Certificate and PSK credentials: PSKs, certificates, private keys, PKCS#12, trust anchors.

It reads files (a path or the bytes).  Nothing here ever puts key bytes in a
``repr`` or an exception message.

* :class:`PresharedKey` -- the PSK of RFC 3830 §3.1 (and DH-HMAC, RFC 4650).
* :class:`Credentials` -- a private key with its certificate and chain, for the
  PK, DH and RSA-R modes (RFC 3830 §3.2, §3.3; RFC 4738).
* :class:`TrustStore` -- the trusted roots of RFC 3830 §4.3.2.
"""

from __future__ import annotations

import hmac
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import overload

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12

from mikey.crypto.x509 import CertificateValidator, IdBinding, certificate_der
from mikey.errors import CertificateError, KeyMaterialError

from .source import Source, read_source

__all__ = [
    "PresharedKey",
    "Credentials",
    "TrustStore",
    "load_private_key",
    "load_certificates",
    "load_pkcs12",
    "load_credentials",
]


def _is_pem(data: bytes) -> bool:
    return b"-----BEGIN" in data[:4096]


# --------------------------------------------------------------------------- pre-shared keys


@dataclass(frozen=True, eq=False)
class PresharedKey:
    """A pre-shared key (RFC 3830 §3.1) and optionally the identity it belongs to.

    The value never appears in ``repr``; equality is constant-time.
    """

    value: bytes = field(repr=False)
    identity: bytes | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.value, bytes):
            raise KeyMaterialError("pre-shared key must be bytes")
        if not self.value:
            raise KeyMaterialError("pre-shared key must not be empty")

    @classmethod
    def from_hex(cls, text: str, identity: bytes | None = None) -> PresharedKey:
        try:
            return cls(bytes.fromhex(text), identity)
        except ValueError:
            raise KeyMaterialError("pre-shared key is not valid hex") from None

    def __len__(self) -> int:
        return len(self.value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PresharedKey):
            return NotImplemented
        return self.identity == other.identity and hmac.compare_digest(self.value, other.value)

    def __hash__(self) -> int:
        return hash((PresharedKey, self.identity, len(self.value)))

    def __repr__(self) -> str:
        return f"PresharedKey(identity={self.identity!r}, length={len(self.value)})"


# --------------------------------------------------------------------------- private keys and certificates


def load_private_key(source: Source, password: bytes | None = None) -> PrivateKeyTypes:
    """A private key from a PEM or DER file (PKCS#8 or traditional), optionally encrypted."""
    data = read_source(source)
    try:
        if _is_pem(data):
            return serialization.load_pem_private_key(data, password)
        return serialization.load_der_private_key(data, password)
    except (ValueError, TypeError):
        # Wrong/missing password and malformed keys alike; never echo the input.
        raise KeyMaterialError(
            "cannot load private key (malformed, unsupported, or wrong password)"
        ) from None
    except Exception as exc:  # e.g. UnsupportedAlgorithm
        raise KeyMaterialError(f"cannot load private key ({type(exc).__name__})") from None


def load_certificates(source: Source) -> list[x509.Certificate]:
    """Every certificate in a PEM file (in file order, leaf first by convention) or one DER certificate."""
    data = read_source(source)
    try:
        certs = (
            x509.load_pem_x509_certificates(data) if _is_pem(data) else [x509.load_der_x509_certificate(data)]
        )
    except ValueError as exc:
        raise CertificateError("cannot parse certificate file") from exc
    if not certs:  # pragma: no cover - cryptography raises on an empty PEM
        raise CertificateError("no certificate found")
    return certs


def _public_der(key: object) -> bytes:
    public_bytes = getattr(key, "public_bytes")  # noqa: B009 - any public key type
    result: bytes = public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return result


@dataclass(frozen=True, eq=False, repr=False)
class Credentials:
    """A private key, its certificate, and the intermediates that chain it to a root.

    ``chain`` holds the intermediates only (not the leaf); :attr:`certificates`
    gives leaf + chain, one CERT payload each (RFC 3830 §6.7).
    """

    private_key: PrivateKeyTypes
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "chain", tuple(self.chain))
        if _public_der(self.private_key.public_key()) != _public_der(self.certificate.public_key()):
            raise KeyMaterialError("private key does not match the certificate")

    @property
    def certificates(self) -> tuple[x509.Certificate, ...]:
        return (self.certificate, *self.chain)

    @property
    def rsa_private_key(self) -> RSAPrivateKey:
        """The key as RSA, as the PK/DH/RSA-R modes need (RFC 3830 §4.2.5, §4.2.6)."""
        if not isinstance(self.private_key, RSAPrivateKey):
            raise KeyMaterialError("credential key is not an RSA key")
        return self.private_key

    @property
    def subject(self) -> str:
        return self.certificate.subject.rfc4514_string()

    def certificate_ders(self) -> list[bytes]:
        """DER of leaf then intermediates, ready for CERT payloads."""
        return [certificate_der(c) for c in self.certificates]

    def __repr__(self) -> str:
        return f"Credentials(subject={self.subject!r}, chain_len={len(self.chain)})"


def load_credentials(key: Source, certificates: Source, password: bytes | None = None) -> Credentials:
    """Credentials from a key file and a certificate file (leaf first, then intermediates)."""
    certs = load_certificates(certificates)
    return Credentials(load_private_key(key, password), certs[0], tuple(certs[1:]))


def load_pkcs12(source: Source, password: bytes | None) -> Credentials:
    """Credentials from a PKCS#12 (.p12/.pfx) bundle."""
    data = read_source(source)
    try:
        bundle = pkcs12.load_pkcs12(data, password)
    except (ValueError, TypeError):
        raise KeyMaterialError("cannot load PKCS#12 bundle (malformed or wrong password)") from None
    if bundle.key is None:
        raise KeyMaterialError("PKCS#12 bundle holds no private key")
    if bundle.cert is None:
        raise CertificateError("PKCS#12 bundle holds no certificate")
    chain = tuple(c.certificate for c in bundle.additional_certs)
    return Credentials(bundle.key, bundle.cert.certificate, chain)


# --------------------------------------------------------------------------- trust anchors


class TrustStore(Sequence[x509.Certificate]):
    """Trusted root certificates (RFC 3830 §4.3.2), usable wherever a sequence of anchors is."""

    __slots__ = ("_anchors",)

    def __init__(self, anchors: Sequence[x509.Certificate] = ()) -> None:
        seen: set[bytes] = set()
        unique: list[x509.Certificate] = []
        for cert in anchors:
            der = certificate_der(cert)
            if der not in seen:
                seen.add(der)
                unique.append(cert)
        self._anchors = tuple(unique)

    @classmethod
    def load(cls, *sources: Source) -> TrustStore:
        """Anchors from one or more PEM (or single-DER) files."""
        certs: list[x509.Certificate] = []
        for source in sources:
            certs.extend(load_certificates(source))
        return cls(certs)

    def validator(
        self,
        *,
        id_binding: IdBinding | None = None,
        allow_missing_key_usage: bool = True,
        extended_key_usages: Collection[x509.ObjectIdentifier | str] = (),
    ) -> CertificateValidator:
        """A :class:`CertificateValidator` over these anchors; keywords as there.

        *extended_key_usages*: purposes (OIDs) a leaf's extendedKeyUsage may list
        besides anyExtendedKeyUsage, e.g. ``[ExtendedKeyUsageOID.CLIENT_AUTH]``.
        """
        return CertificateValidator(
            self._anchors,
            id_binding=id_binding,
            allow_missing_key_usage=allow_missing_key_usage,
            extended_key_usages=extended_key_usages,
        )

    @overload
    def __getitem__(self, index: int) -> x509.Certificate: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[x509.Certificate]: ...
    def __getitem__(self, index: int | slice) -> x509.Certificate | Sequence[x509.Certificate]:
        return self._anchors[index]

    def __len__(self) -> int:
        return len(self._anchors)

    def __iter__(self) -> Iterator[x509.Certificate]:
        return iter(self._anchors)

    def __repr__(self) -> str:
        return f"TrustStore({[c.subject.rfc4514_string() for c in self._anchors]!r})"
