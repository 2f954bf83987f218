"""X.509 support for the CERT and CHASH payloads (RFC 3830 §4.3, §6.7, §6.8; RFC 6043 §6.7).

* :func:`chash` / :func:`check_chash` -- the CHASH payload's certificate hash.
* :func:`load_certificate` -- a CERT payload's DER (or a PEM file's) certificate.
* :class:`CertificateValidator` -- the "trusted root" authorization model of
  RFC 3830 §4.3.2: path building to a configured anchor, validity at the
  message's time, CA, key-usage and extended-key-usage constraints, and binding
  of the peer's MIKEY ID (ID payload, NAI or URI) to the leaf's subjectAltName.

Revocation (CRL/OCSP, RFC 3830 §4.3.1, RFC 4738 §3.8) is local policy and is
left to the ``id_binding`` hook or the caller.  Fetching X.509v3 URL
certificates (Cert type 1) is I/O and belongs to the edges.

Malformed input never leaks ``cryptography``'s own exceptions: whatever a
broken certificate raises, at parse time or lazily when a field is first read,
surfaces as :class:`~mikey.errors.CertificateError`.
"""

from __future__ import annotations

import hmac
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, ObjectIdentifier

from mikey.constants import CertType, HashFunc
from mikey.errors import CertificateError, UnsupportedHashError

__all__ = [
    "CERT_TYPE_X509V3",
    "CERT_TYPE_X509V3_URL",
    "CERT_TYPE_X509V3_SIGN",
    "CERT_TYPE_X509V3_ENCR",
    "CHASH_SHA1",
    "CHASH_MD5",
    "CHASH_SHA256",
    "Purpose",
    "IdBinding",
    "chash",
    "check_chash",
    "chash_length",
    "cert_type_purpose",
    "load_certificate",
    "certificate_der",
    "id_matches_certificate",
    "CertificateValidator",
]

#: RFC 3830 Table 6.7.b Cert Type values.
CERT_TYPE_X509V3 = CertType.X509V3
CERT_TYPE_X509V3_URL = CertType.X509V3_URL
CERT_TYPE_X509V3_SIGN = CertType.X509V3_SIGN
CERT_TYPE_X509V3_ENCR = CertType.X509V3_ENCR

#: RFC 3830 Table 6.8 and RFC 6043 §6.7 CHASH Hash func values.
CHASH_SHA1 = HashFunc.SHA_1
CHASH_MD5 = HashFunc.MD5
CHASH_SHA256 = HashFunc.SHA_256

Purpose = Literal["sign", "encrypt"]
#: Policy hook ``(leaf, peer_id) -> bool`` replacing the default subjectAltName matching.
IdBinding = Callable[[x509.Certificate, str], bool]

_CHASH_ALGORITHMS: dict[int, type[hashes.SHA1] | type[hashes.MD5] | type[hashes.SHA256]] = {
    CHASH_SHA1: hashes.SHA1,
    CHASH_MD5: hashes.MD5,
    CHASH_SHA256: hashes.SHA256,
}

# Extensions this validator understands; any other critical one rejects the certificate (RFC 5280 §4.2).
_UNDERSTOOD_EXTENSIONS = frozenset(
    {
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.EXTENDED_KEY_USAGE,
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
        ExtensionOID.SUBJECT_KEY_IDENTIFIER,
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
    }
)

_MAX_PATH_LENGTH = 8

# RFC 5280 §4.2.1.12 purposes, for error messages.
_EKU_NAMES = {
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
    ExtendedKeyUsageOID.CODE_SIGNING: "codeSigning",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
    ExtendedKeyUsageOID.TIME_STAMPING: "timeStamping",
    ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning",
}

#: Default number of validated paths a :class:`CertificateValidator` remembers.
DEFAULT_VALIDATION_CACHE_SIZE = 256


# --------------------------------------------------------------------------- CHASH


def _chash_algorithm(hash_func: int) -> hashes.HashAlgorithm:
    try:
        return _CHASH_ALGORITHMS[hash_func]()
    except KeyError:
        raise UnsupportedHashError(f"CHASH hash func {hash_func} not supported") from None


def chash_length(hash_func: int) -> int:
    """Octets of the Hash field for a CHASH Hash func (implicit length, RFC 3830 §6.8)."""
    return _chash_algorithm(hash_func).digest_size


def chash(hash_func: int, cert_der: bytes) -> bytes:
    """The CHASH Hash field: the hash of the DER certificate (RFC 3830 §6.8)."""
    h = hashes.Hash(_chash_algorithm(hash_func))
    h.update(cert_der)
    return h.finalize()


def check_chash(hash_func: int, digest: bytes, cert_der: bytes) -> None:
    """Raise :class:`CertificateError` unless ``digest`` is the CHASH of ``cert_der``."""
    expected = chash(hash_func, cert_der)
    if not hmac.compare_digest(expected, digest):
        raise CertificateError("CHASH does not match the certificate")


def cert_type_purpose(cert_type: int) -> Purpose | None:
    """The purpose a CERT payload's Cert Type restricts the certificate to, if any (Table 6.7.b)."""
    if cert_type == CERT_TYPE_X509V3_SIGN:
        return "sign"
    if cert_type == CERT_TYPE_X509V3_ENCR:
        return "encrypt"
    return None


# --------------------------------------------------------------------------- parsing


def load_certificate(der_or_pem: bytes) -> x509.Certificate:
    """Parse one certificate, DER (as carried in CERT, RFC 3830 §6.7) or PEM.

    Any failure -- ``ValueError``, ``x509.InvalidVersion``, ``UnsupportedAlgorithm``,
    a non-bytes argument ... -- raises :class:`CertificateError`.
    """
    try:
        if der_or_pem.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(der_or_pem)
        return x509.load_der_x509_certificate(der_or_pem)
    except Exception as exc:  # cryptography raises several unrelated types for malformed input
        raise CertificateError(f"cannot parse X.509 certificate ({type(exc).__name__})") from exc


# DER encodings of certificates already serialised: re-encoding costs a few microseconds per call
# and the same few certificates (own chain, anchors, configured peers) are encoded again and again.
_DER_MEMO: OrderedDict[x509.Certificate, bytes] = OrderedDict()
_DER_MEMO_SIZE = 128
_DER_MEMO_LOCK = threading.Lock()


def certificate_der(cert: x509.Certificate) -> bytes:
    """The DER encoding, as placed in a CERT payload and hashed by CHASH."""
    with _DER_MEMO_LOCK:
        der = _DER_MEMO.get(cert)
    if der is None:
        der = cert.public_bytes(Encoding.DER)
        with _DER_MEMO_LOCK:
            _DER_MEMO[cert] = der
            if len(_DER_MEMO) > _DER_MEMO_SIZE:
                _DER_MEMO.popitem(last=False)
    return der


# --------------------------------------------------------------------------- ID binding


def _split_uri(uri: str) -> tuple[str, str] | None:
    """Normalise a URI for comparison: lower-case scheme and host, everything else exact."""
    scheme, sep, rest = uri.partition(":")
    if not sep or not scheme or not scheme[0].isalpha():
        return None
    scheme = scheme.lower()
    if rest.startswith("//"):  # hierarchical: //userinfo@host:port/path
        authority_end = len(rest)
        for stop in "/?#":
            pos = rest.find(stop, 2)
            if pos != -1:
                authority_end = min(authority_end, pos)
        authority = rest[2:authority_end]
        userinfo, at, hostport = authority.rpartition("@")
        return scheme, "//" + userinfo + at + hostport.lower() + rest[authority_end:]
    # opaque (sip:, sips:, mailto:, tel:): user@host;params?headers
    end = len(rest)
    for stop in ";?":
        pos = rest.find(stop)
        if pos != -1:
            end = min(end, pos)
    user, at, host = rest[:end].rpartition("@")
    return scheme, user + at + host.lower() + rest[end:]


def _nai_key(nai: str) -> str:
    user, at, realm = nai.rpartition("@")
    return user + at + realm.lower()


def _is_uri(peer_id: str) -> bool:
    scheme, sep, _ = peer_id.partition(":")
    return bool(sep) and scheme.isalpha() and "@" not in scheme


def id_matches_certificate(cert: x509.Certificate, peer_id: str) -> bool:
    """Default MIKEY ID binding against the subjectAltName (RFC 3830 §3.2, §6.7).

    * URI IDs (``sip:alice@example.com``) match a URI entry, case-insensitive in
      scheme and host; a URI with no user part also matches a dNSName equal to its host.
    * NAI IDs (``alice@example.com``) match an rfc822Name, or a ``sip:``/``sips:``
      URI entry with the same user@host (realm case-insensitive, URI parameters
      ignored); a bare realm matches a dNSName.
    """
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    uris = [u for u in (_split_uri(v) for v in san.get_values_for_type(x509.UniformResourceIdentifier)) if u]
    emails = [_nai_key(v) for v in san.get_values_for_type(x509.RFC822Name)]
    dns_names = [v.lower().rstrip(".") for v in san.get_values_for_type(x509.DNSName)]

    if _is_uri(peer_id):
        wanted = _split_uri(peer_id)
        if wanted is None:
            return False
        if wanted in uris:
            return True
        scheme, rest = wanted
        if scheme in ("sip", "sips") and "@" not in rest:
            host = rest.split(";", 1)[0].split("?", 1)[0].split(":", 1)[0]
            return host.rstrip(".") in dns_names
        return False

    if "@" in peer_id:
        key = _nai_key(peer_id)
        if key in emails:
            return True
        # A SIP URI's parameters and headers (";transport=tls") do not change whose address it is.
        sip_addresses = {
            rest.split(";", 1)[0].split("?", 1)[0] for scheme, rest in uris if scheme in ("sip", "sips")
        }
        return key in sip_addresses
    return peer_id.lower().rstrip(".") in dns_names


# --------------------------------------------------------------------------- validation


def _describe(cert: x509.Certificate) -> str:
    try:
        return cert.subject.rfc4514_string() or f"serial {cert.serial_number}"
    except Exception:  # pragma: no cover - unusual or malformed attribute encodings
        try:
            return f"serial {cert.serial_number}"
        except Exception:
            return "(unreadable)"


def _issuer_name(cert: x509.Certificate) -> str:
    try:
        return cert.issuer.rfc4514_string()
    except Exception:  # pragma: no cover - malformed issuer name
        return "(unreadable)"


def _extension(
    cert: x509.Certificate, cls: type[x509.ExtensionType]
) -> x509.Extension[x509.ExtensionType] | None:
    try:
        return cert.extensions.get_extension_for_class(cls)
    except x509.ExtensionNotFound:
        return None
    except ValueError as exc:  # duplicate or malformed extensions
        raise CertificateError(f"certificate {_describe(cert)} has malformed extensions") from exc


@dataclass(frozen=True)
class _ValidatedPath:
    """A path the validator accepted, and the times at which every certificate on it is valid."""

    leaf: x509.Certificate
    not_before: datetime
    not_after: datetime


class CertificateValidator:
    """Validate a peer's certificate chain against trust anchors (RFC 3830 §4.3).

    ``trust_anchors`` are the configured roots (or directly trusted peer
    certificates).  ``id_binding``, when given, replaces
    :func:`id_matches_certificate` as the policy deciding whether the leaf
    belongs to the claimed MIKEY ID.

    Key usage policy for the leaf (RFC 5280 §4.2.1.3, §4.2.1.12):

    * keyUsage present: it must assert digitalSignature to verify a SIGN
      payload (purpose ``"sign"``) and keyEncipherment to encrypt a PK envelope
      key (purpose ``"encrypt"``).  keyUsage absent: RFC 5280 places no
      restriction on the key, so it is accepted for either purpose unless
      ``allow_missing_key_usage=False`` (strict: the extension is required).
    * extendedKeyUsage: when present -- critical or not, since RFC 5280 says
      the certificate "MUST only be used for one of the purposes indicated" --
      it must list anyExtendedKeyUsage or one of ``extended_key_usages``
      (OIDs, objects or dotted strings; none by default, as no standard purpose
      names MIKEY).  So a leaf limited to TLS (serverAuth and/or clientAuth) is
      refused unless the deployment accepts that purpose, e.g.
      ``extended_key_usages=[ExtendedKeyUsageOID.CLIENT_AUTH]``.  A leaf
      without the extension is not restricted and is accepted.
    * Issuers must be CAs (basicConstraints) and, when they carry keyUsage,
      assert keyCertSign; EKU in CA certificates is not interpreted.

    Validated paths are cached (at most ``cache_size`` of them; 0 disables the
    cache), keyed by the DER of the certificates given, the peer ID and the
    purpose.  Path building, the issuers' signatures, CA and key-usage
    constraints and the default ID binding do not depend on the time, so a
    cached path is accepted again -- without those checks -- but only at times
    inside the intersection of the validity windows of every certificate on the
    path, trust anchor included; at any other time the chain is validated afresh
    (and so rejected).  A custom ``id_binding`` hook is consulted on every call,
    cached or not, since it may be a changing local policy (revocation).
    """

    def __init__(
        self,
        trust_anchors: Sequence[x509.Certificate],
        *,
        id_binding: IdBinding | None = None,
        allow_missing_key_usage: bool = True,
        extended_key_usages: Collection[ObjectIdentifier | str] = (),
        cache_size: int = DEFAULT_VALIDATION_CACHE_SIZE,
    ) -> None:
        self._anchors: tuple[x509.Certificate, ...] = tuple(trust_anchors)
        self._anchor_ders = frozenset(certificate_der(a) for a in self._anchors)
        self._id_binding = id_binding
        self._allow_missing_key_usage = allow_missing_key_usage
        self._extended_key_usages = frozenset(
            {ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE}
            | {oid if isinstance(oid, ObjectIdentifier) else ObjectIdentifier(oid) for oid in extended_key_usages}
        )
        self._cache_size = max(0, cache_size)
        self._cache: OrderedDict[tuple[tuple[bytes, ...], str | None, str], _ValidatedPath] = OrderedDict()
        self._cache_lock = threading.Lock()

    @property
    def trust_anchors(self) -> tuple[x509.Certificate, ...]:
        return self._anchors

    def __repr__(self) -> str:
        return f"CertificateValidator(anchors={len(self._anchors)})"

    def clear_cache(self) -> None:
        """Forget every validated path (for example after the trust policy changed)."""
        with self._cache_lock:
            self._cache.clear()

    def validate(
        self,
        chain: Sequence[x509.Certificate | bytes],
        *,
        at: datetime,
        peer_id: str | None = None,
        purpose: Purpose = "sign",
    ) -> x509.Certificate:
        """Check ``chain`` (leaf first, then intermediates in any order) and return the leaf.

        Certificates may be given parsed or as DER (a CERT payload's data, parsed
        only when the path is not cached).  ``at`` is the time to check validity
        at -- the message's timestamp, not the local clock.  Every failure,
        including a malformed certificate, raises :class:`CertificateError`.
        """
        if not chain:
            raise CertificateError("no certificate supplied")
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        try:
            ders = tuple(c if isinstance(c, bytes) else certificate_der(c) for c in chain)
            key = (ders, peer_id, purpose)
            if self._cache_size:
                with self._cache_lock:
                    hit = self._cache.get(key)
                    if hit is not None:
                        self._cache.move_to_end(key)
                if hit is not None and hit.not_before <= at <= hit.not_after:
                    if peer_id is not None and self._id_binding is not None:
                        self._check_id(hit.leaf, peer_id)
                    return hit.leaf
            certs = [load_certificate(c) if isinstance(c, bytes) else c for c in chain]
            path = self._validate_path(certs, at, peer_id, purpose)
            if self._cache_size:
                entry = _ValidatedPath(
                    path[0],
                    max(c.not_valid_before_utc for c in path),
                    min(c.not_valid_after_utc for c in path),
                )
                with self._cache_lock:
                    self._cache[key] = entry
                    self._cache.move_to_end(key)
                    while len(self._cache) > self._cache_size:
                        self._cache.popitem(last=False)
            return path[0]
        except CertificateError:
            raise
        except Exception as exc:  # a malformed certificate fails lazily (KeyError, ValueError, InvalidVersion ...)
            raise CertificateError(f"malformed certificate ({type(exc).__name__})") from exc

    def _validate_path(
        self, chain: Sequence[x509.Certificate], at: datetime, peer_id: str | None, purpose: Purpose
    ) -> list[x509.Certificate]:
        leaf = chain[0]
        path = self._build_path(leaf, list(chain[1:]))
        for cert in path:
            self._check_validity(cert, at)
            self._check_critical_extensions(cert)
        # path = [leaf, intermediate..., anchor]; every cert after the leaf is an issuer.
        for depth, issuer in enumerate(path[1:]):
            self._check_issuer(issuer, intermediates_below=depth)
        self._check_key_usage(leaf, purpose)
        self._check_extended_key_usage(leaf)
        if peer_id is not None:
            self._check_id(leaf, peer_id)
        return path

    # -- steps

    def _build_path(self, leaf: x509.Certificate, pool: list[x509.Certificate]) -> list[x509.Certificate]:
        path = [leaf]
        current = leaf
        while True:
            if certificate_der(current) in self._anchor_ders:
                return path
            issuer = self._find_issuer(current, self._anchors)
            if issuer is not None:
                path.append(issuer)
                return path
            issuer = self._find_issuer(current, pool)
            if issuer is None:
                raise CertificateError(
                    f"certificate {_describe(current)} does not chain to a trust anchor "
                    f"(issuer {_issuer_name(current)})"
                )
            if len(path) >= _MAX_PATH_LENGTH:
                raise CertificateError("certificate chain too long")
            pool.remove(issuer)
            path.append(issuer)
            current = issuer

    @staticmethod
    def _find_issuer(
        cert: x509.Certificate, candidates: Sequence[x509.Certificate]
    ) -> x509.Certificate | None:
        for candidate in candidates:
            if candidate.subject != cert.issuer:
                continue
            try:
                cert.verify_directly_issued_by(candidate)
            except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
                continue
            return candidate
        return None

    @staticmethod
    def _check_validity(cert: x509.Certificate, at: datetime) -> None:
        if at < cert.not_valid_before_utc:
            raise CertificateError(f"certificate {_describe(cert)} is not yet valid at {at.isoformat()}")
        if at > cert.not_valid_after_utc:
            raise CertificateError(f"certificate {_describe(cert)} expired before {at.isoformat()}")

    @staticmethod
    def _check_critical_extensions(cert: x509.Certificate) -> None:
        try:
            extensions = list(cert.extensions)
        except ValueError as exc:
            raise CertificateError(f"certificate {_describe(cert)} has malformed extensions") from exc
        for ext in extensions:
            if ext.critical and ext.oid not in _UNDERSTOOD_EXTENSIONS:
                raise CertificateError(
                    f"certificate {_describe(cert)} has an unsupported critical extension {ext.oid.dotted_string}"
                )

    @staticmethod
    def _check_issuer(issuer: x509.Certificate, *, intermediates_below: int) -> None:
        bc = _extension(issuer, x509.BasicConstraints)
        if bc is None or not isinstance(bc.value, x509.BasicConstraints) or not bc.value.ca:
            raise CertificateError(
                f"issuer {_describe(issuer)} is not a CA (basicConstraints CA=false or absent)"
            )
        if bc.value.path_length is not None and intermediates_below > bc.value.path_length:
            raise CertificateError(f"issuer {_describe(issuer)} path length constraint exceeded")
        ku = _extension(issuer, x509.KeyUsage)
        if ku is not None and isinstance(ku.value, x509.KeyUsage) and not ku.value.key_cert_sign:
            raise CertificateError(f"issuer {_describe(issuer)} key usage does not allow keyCertSign")

    def _check_key_usage(self, leaf: x509.Certificate, purpose: Purpose) -> None:
        ku = _extension(leaf, x509.KeyUsage)
        if ku is None or not isinstance(ku.value, x509.KeyUsage):
            if not self._allow_missing_key_usage:
                raise CertificateError(f"certificate {_describe(leaf)} has no keyUsage extension")
            return
        if purpose == "sign":
            if not ku.value.digital_signature:
                raise CertificateError(
                    f"certificate {_describe(leaf)} key usage does not allow digitalSignature"
                )
        elif purpose == "encrypt":
            if not ku.value.key_encipherment:
                raise CertificateError(
                    f"certificate {_describe(leaf)} key usage does not allow keyEncipherment"
                )
        else:
            raise CertificateError(f"unknown certificate purpose {purpose!r}")

    def _check_extended_key_usage(self, leaf: x509.Certificate) -> None:
        eku = _extension(leaf, x509.ExtendedKeyUsage)
        if eku is None or not isinstance(eku.value, x509.ExtendedKeyUsage):
            return
        listed = list(eku.value)
        if self._extended_key_usages.isdisjoint(listed):
            names = ", ".join(_EKU_NAMES.get(oid, oid.dotted_string) for oid in listed) or "none"
            raise CertificateError(
                f"certificate {_describe(leaf)} extended key usage ({names}) does not allow MIKEY; "
                "accept a purpose with extended_key_usages=[OID]"
            )

    def _check_id(self, leaf: x509.Certificate, peer_id: str) -> None:
        if self._id_binding is not None:
            bound = self._id_binding(leaf, peer_id)
        else:
            bound = id_matches_certificate(leaf, peer_id)
        if not bound:
            raise CertificateError(f"certificate {_describe(leaf)} is not bound to ID {peer_id!r}")
