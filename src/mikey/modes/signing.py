"""Certificate-based signing shared by the PK, RSA-R and DH modes.

The one copy of the plumbing RFC 3830 §3.2 (PK), §3.3 (DH) and RFC 4738
(RSA-R) have in common:

* :class:`Signer` -- our RSA key, certificate chain, S type and hash (§4.2.6, §6.5),
  and the CERT payloads for the chain (§6.7).
* :func:`sign_message` / :func:`signed_message` -- a message with SIGN last, signed
  over every octet before the Signature field, the SIGN payload's 2-octet S type /
  Signature len header included (§5.2), optionally followed by a trailer that is
  signed but not sent (RFC 4738 §3.6: IDi || IDr || T).
* :class:`PeerVerifier` -- the peer's chain from CERT payloads (X.509v3 and X.509v3
  Sign; X.509v3 URL through a resolver; X.509v3 Encr never verifies a signature) or
  from configured certificates, validated by a
  :class:`~mikey.crypto.x509.CertificateValidator` (which caches validated paths),
  and the SIGN payload checked over the received bytes (§5.3, §6.5).
* :func:`pinned_validator` -- the validator for a directly trusted peer certificate
  (the "specific peer" model of §4.3.2), used by PK, RSA-R and DH alike: a pinned
  certificate is still checked for validity, key usage and ID binding.
* :func:`message_time`, :func:`identity_of`, :func:`check_compat`, and the ID layout
  ``[IDi|CERTi], [IDr]`` of certificate-carrying messages (:func:`split_ids`, :func:`same_id`).

Compatibility option understood here (off unless named): ``"sign-excludes-header"``
-- the signature does not cover the SIGN header (minisip libmikey signs "message -
SIGN payload"; also a literal reading of RFC 4738 §3.6).  Signing then leaves the
header out; verifying accepts both coverages.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from ..constants import CertType, SignatureType
from ..crypto import rsa as rsa_crypto
from ..crypto import x509 as x509_crypto
from ..errors import AuthenticationError, CertificateError, CryptoError, UnspecifiedError
from ..keystore import Credentials
from ..wire import CertPayload, CommonHeader, IdPayload, Message, Payload, SignPayload, TimestampPayload

__all__ = [
    "SIGNATURE_HASHES",
    "RSA_S_TYPES",
    "COMPAT_SIGN_EXCLUDES_HEADER",
    "CertResolver",
    "ChainEntry",
    "Signer",
    "PeerVerifier",
    "pinned_validator",
    "sign_message",
    "signed_message",
    "cert_payloads",
    "message_time",
    "identity_of",
    "check_compat",
    "der_of",
    "split_ids",
    "same_id",
    "check_key_encipherment",
]

#: Hashes tried, in order, when verifying a SIGN (the SIGN payload does not name its hash).
SIGNATURE_HASHES: tuple[str, ...] = ("sha256", "sha1")
#: The RSA S types of RFC 3830 Table 6.5: PKCS#1 v1.5 (0) and PSS (1).
RSA_S_TYPES = (SignatureType.RSA_PKCS1_V1_5, SignatureType.RSA_PSS)
COMPAT_SIGN_EXCLUDES_HEADER = "sign-excludes-header"

#: ``url -> certificates`` for X.509v3 URL CERT payloads (Cert type 1); the application fetches them.
CertResolver = Callable[[str], Sequence[x509.Certificate]]

#: A chain entry: a parsed certificate, or a CERT payload's DER (parsed only when needed).
ChainEntry = x509.Certificate | bytes


def check_compat(given: Iterable[str], allowed: Collection[str]) -> frozenset[str]:
    """The compatibility options as a set; unknown names raise ValueError."""
    chosen = frozenset(given)
    unknown = chosen - frozenset(allowed)
    if unknown:
        raise ValueError(f"unknown compatibility option(s) {sorted(unknown)}; known: {sorted(allowed)}")
    return chosen


@functools.lru_cache(maxsize=256)
def subject_text(cert: x509.Certificate) -> str:
    """The certificate's subject as an RFC 4514 string (cached: results carry it for every message)."""
    return cert.subject.rfc4514_string()


def message_time(t: TimestampPayload | None, now: float) -> datetime:
    """The time certificates are checked at: the message's T, or *now* for COUNTER (RFC 3830 §4.3)."""
    when = t.unix_time(now) if t is not None else None
    return datetime.fromtimestamp(now if when is None else when, UTC)


# IDs of the few own certificates, asked for by every new Initiator/Responder (IdPayload is immutable).
_IDENTITIES: dict[tuple[x509.Certificate, bool], IdPayload] = {}
_IDENTITIES_SIZE = 64


def identity_of(cert: x509.Certificate, *, uri_only: bool = False) -> IdPayload:
    """A MIKEY ID for a certificate: its first SAN URI (ID type URI), else e-mail (NAI) (§6.7).

    ``uri_only`` ignores e-mail entries.  Raises :class:`CertificateError` when there is none.
    """
    key = (cert, uri_only)
    found = _IDENTITIES.get(key)
    if found is None:
        found = _identity_of(cert, uri_only)
        if len(_IDENTITIES) >= _IDENTITIES_SIZE:
            _IDENTITIES.pop(next(iter(_IDENTITIES)), None)
        _IDENTITIES[key] = found
    return found


def _identity_of(cert: x509.Certificate, uri_only: bool) -> IdPayload:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    except Exception:  # duplicate or malformed extensions
        raise CertificateError("certificate has malformed extensions") from None
    if san is not None:
        uris = san.get_values_for_type(x509.UniformResourceIdentifier)
        if uris:
            return IdPayload.uri(uris[0])
        mails = san.get_values_for_type(x509.RFC822Name)
        if mails and not uri_only:
            return IdPayload.nai(mails[0])
    raise CertificateError("cannot derive a MIKEY ID from the certificate (no SAN URI or e-mail); pass one")


def cert_payloads(
    credentials: Credentials,
    *,
    include: bool = True,
    url: str | None = None,
    cert_type: int = CertType.X509V3,
) -> list[CertPayload]:
    """CERT payloads for our chain: one per certificate, leaf first (§6.7), or one X.509v3 URL."""
    if url is not None:
        return [CertPayload(CertType.X509V3_URL, url.encode("ascii"))]
    if not include:
        return []
    return [CertPayload(cert_type, x509_crypto.certificate_der(c)) for c in credentials.certificates]


# --- signing (RFC 3830 §5.2, §6.5) -------------------------------------------------------------


def sign_message(
    header: CommonHeader,
    payloads: Sequence[Payload],
    key: RSAPrivateKey,
    *,
    s_type: int = SignatureType.RSA_PKCS1_V1_5,
    hash_name: str = "sha256",
    trailer: bytes = b"",
    exclude_header: bool = False,
) -> bytes:
    """Encode ``header, payloads, SIGN`` and sign it (RFC 3830 §5.2).

    The signature covers the message up to the Signature field -- including the
    2-octet S type/len header unless ``exclude_header`` -- followed by ``trailer``
    (RFC 4738 §3.6: IDi || IDr || T for SIGNr).
    """
    n = (key.key_size + 7) // 8
    draft = Message(header, (*payloads, SignPayload(s_type, bytes(n)))).encode()
    unsigned = draft[: len(draft) - n]
    covered = unsigned[:-2] if exclude_header else unsigned
    try:
        signature = rsa_crypto.sign(key, covered + trailer, s_type, hash_name)
    except CryptoError as e:
        raise UnspecifiedError(f"cannot sign the message: {e}") from None
    if len(signature) != n:  # pragma: no cover - RSA signatures are modulus-sized
        raise UnspecifiedError("unexpected signature length")
    return unsigned + signature


@dataclass(frozen=True)
class Signer:
    """Own signing credentials (RFC 3830 §4.2.6, §6.5): RSA key and certificates, S type and hash.

    ``exclude_header`` signs without the SIGN header (compatibility, see the module docstring).
    """

    credentials: Credentials
    s_type: int = SignatureType.RSA_PKCS1_V1_5
    hash_name: str = "sha256"
    exclude_header: bool = False
    _key: RSAPrivateKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.s_type not in RSA_S_TYPES:
            raise ValueError(f"S type {self.s_type} is not an RSA signature type (0 or 1)")
        if self.hash_name not in rsa_crypto.SIGNATURE_HASHES:
            raise ValueError(f"signature hash must be one of {rsa_crypto.SIGNATURE_HASHES}")
        object.__setattr__(self, "_key", self.credentials.rsa_private_key)  # raises unless the key is RSA

    @property
    def certificate(self) -> x509.Certificate:
        return self.credentials.certificate

    def cert_payloads(
        self, *, include: bool = True, url: str | None = None, cert_type: int = CertType.X509V3
    ) -> list[CertPayload]:
        """CERT payloads for the own chain, leaf first (RFC 3830 §6.7), or one X.509v3 URL."""
        return cert_payloads(self.credentials, include=include, url=url, cert_type=cert_type)

    def sign(self, data: bytes) -> bytes:
        return rsa_crypto.sign(self._key, data, self.s_type, self.hash_name)

    def signed_message(self, header: CommonHeader, payloads: Sequence[Payload], *, trailer: bytes = b"") -> bytes:
        """See :func:`sign_message`."""
        return sign_message(header, payloads, self._key, s_type=self.s_type, hash_name=self.hash_name,
                            trailer=trailer, exclude_header=self.exclude_header)


def signed_message(header: CommonHeader, payloads: Sequence[Payload], signer: Signer, *, trailer: bytes = b"") -> bytes:
    """Encode the message with a SIGN payload last, signed by *signer* (RFC 3830 §5.2)."""
    return signer.signed_message(header, payloads, trailer=trailer)


# --- the peer (RFC 3830 §4.3, §5.3, §6.5, §6.7; RFC 4738 §3.8) -----------------------------------


def pinned_validator(certificate: x509.Certificate) -> x509_crypto.CertificateValidator:
    """A validator whose only anchor is the configured peer *certificate* (RFC 3830 §4.3.2).

    Pinning replaces path building, not the other checks: the certificate must
    still be valid at the message's time, allow the key's use (keyUsage,
    extendedKeyUsage) and be bound to the peer's claimed ID (subjectAltName),
    exactly as a certificate from a CA would be.
    """
    return x509_crypto.CertificateValidator([certificate])


def der_of(entry: ChainEntry) -> bytes:
    """The DER of a chain entry (parsed certificate or CERT payload data)."""
    return entry if isinstance(entry, bytes) else x509_crypto.certificate_der(entry)


class PeerVerifier:
    """Checks a peer's certificate chain and SIGN payload (RFC 3830 §4.3, §5.3, §6.5, §6.7).

    ``validator`` validates chains against trust anchors (and caches validated
    paths, see :class:`~mikey.crypto.x509.CertificateValidator`).
    ``peer_certificates`` (leaf first) are used when a message carries no usable
    CERT payload; with no validator the configured leaf is trusted directly (the
    "specific peer" model of §4.3.2): the peer's certificate must be that one, and
    it is checked by :func:`pinned_validator` (validity at the message's time, key
    usage, ID binding).  ``hashes`` lists the signature hashes
    accepted, tried in order.  ``resolver`` fetches X.509v3 URL certificates.
    ``compat`` may hold ``"sign-excludes-header"``.
    """

    def __init__(
        self,
        validator: x509_crypto.CertificateValidator | None,
        peer_certificates: Sequence[x509.Certificate] = (),
        hashes: Sequence[str] = SIGNATURE_HASHES,
        *,
        resolver: CertResolver | None = None,
        compat: Collection[str] = (),
    ) -> None:
        for h in hashes:
            if h not in rsa_crypto.SIGNATURE_HASHES:
                raise ValueError(f"signature hash must be one of {rsa_crypto.SIGNATURE_HASHES}")
        self.peer_certificates = tuple(peer_certificates)
        self._pinned_der: bytes | None = None
        if validator is None and self.peer_certificates:
            validator = pinned_validator(self.peer_certificates[0])
            self._pinned_der = x509_crypto.certificate_der(self.peer_certificates[0])
        self.validator = validator
        self.hashes = tuple(hashes)
        self.resolver = resolver
        self.exclude_header_accepted = COMPAT_SIGN_EXCLUDES_HEADER in compat

    def __repr__(self) -> str:
        return f"PeerVerifier(validator={self.validator!r}, peer_certificates={len(self.peer_certificates)})"

    def chain(
        self, certs: Sequence[CertPayload], purpose: x509_crypto.Purpose = "sign"
    ) -> list[ChainEntry]:
        """The peer's chain, leaf first: the CERT payloads usable for *purpose*, else the configured ones.

        CERT payload certificates stay DER until the validator needs them parsed.
        An X.509v3 Encr certificate never verifies a signature, nor an X.509v3 Sign
        one encrypts (Table 6.7.b): such payloads are skipped, and a message whose
        CERT payloads are all of the wrong kind for a signature is refused.
        """
        out: list[ChainEntry] = []
        skip = CertType.X509V3_ENCR if purpose == "sign" else CertType.X509V3_SIGN
        for c in certs:
            if c.cert_type == skip:
                continue
            if c.cert_type in (CertType.X509V3, CertType.X509V3_SIGN, CertType.X509V3_ENCR):
                out.append(c.data)
            elif c.cert_type == CertType.X509V3_URL:
                out.extend(self._resolve(c.data))
            else:
                raise CertificateError(f"Cert type {c.cert_type} is not supported")
        if not out and certs and purpose == "sign":
            raise CertificateError("an encryption-only certificate cannot verify a signature")
        return out or list(self.peer_certificates)

    def _resolve(self, data: bytes) -> list[x509.Certificate]:
        if self.resolver is None:
            raise CertificateError("X.509v3 URL certificate given but no certificate resolver is configured")
        try:
            url = data.decode("ascii")
        except UnicodeDecodeError:
            raise CertificateError("X.509v3 URL certificate is not an ASCII URL") from None
        resolved = list(self.resolver(url))
        if not resolved:
            raise CertificateError("certificate URL resolved to nothing")
        return resolved

    def leaf(
        self,
        chain: Sequence[ChainEntry],
        *,
        at: datetime,
        peer_id: IdPayload | str | None,
        purpose: x509_crypto.Purpose = "sign",
    ) -> x509.Certificate:
        """Validate *chain* (from :meth:`chain`) for *purpose* at *at*, bound to *peer_id*; the leaf."""
        if not chain:
            raise CertificateError("no certificate for the peer (no CERT payload and none configured)")
        peer = peer_id.text if isinstance(peer_id, IdPayload) else peer_id
        if self.validator is None or (self._pinned_der is not None and der_of(chain[0]) != self._pinned_der):
            raise CertificateError("no trust anchor configured and the certificate is not the configured peer's")
        return self.validator.validate(chain, at=at, peer_id=peer, purpose=purpose)

    def verify_signature(self, msg: Message, leaf: x509.Certificate, *, trailers: Sequence[bytes] = (b"",)) -> None:
        """Verify the SIGN payload (the last one) over the received bytes with *leaf*'s key (§5.3).

        Each of ``trailers`` is tried in turn, appended to the covered bytes (RFC 4738 §3.6).
        Raises :class:`AuthenticationError` (or :class:`CertificateError` for a non-RSA key).
        """
        sign = msg.payloads[-1] if msg.payloads else None
        if not isinstance(sign, SignPayload):
            raise AuthenticationError("the message does not end with a SIGN payload (RFC 3830 §6.5)")
        if sign.s_type not in RSA_S_TYPES:
            raise AuthenticationError(f"SIGN S type {sign.s_type} is not an RSA signature")
        try:
            public_key = leaf.public_key()
        except Exception:  # an unknown or malformed key algorithm
            raise CertificateError("the signer's certificate holds an unusable public key") from None
        if not isinstance(public_key, RSAPublicKey):
            raise CertificateError("the signer's certificate does not hold an RSA key")
        raw = msg.raw_bytes()
        off = msg.payload_span(len(msg.payloads) - 1)[0]
        coverages = [raw[: off + 2]]
        if self.exclude_header_accepted:
            coverages.append(raw[:off])
        s_type = int(sign.s_type)
        for trailer in trailers:
            for covered in coverages:
                for h in self.hashes:
                    try:
                        rsa_crypto.verify(public_key, covered + trailer, sign.signature, s_type, h)
                        return
                    except AuthenticationError:
                        continue
        raise AuthenticationError("SIGN verification failed")

    def verify(
        self,
        msg: Message,
        peer_id: IdPayload | str | None,
        at: datetime,
        *,
        trailers: Sequence[bytes] = (b"",),
    ) -> x509.Certificate:
        """SIGN structure, then the peer's chain (CERT payloads or configured), then the signature.

        Returns the peer's validated leaf certificate.
        """
        sign = msg.payloads[-1] if msg.payloads else None
        if not isinstance(sign, SignPayload):
            raise AuthenticationError("the message does not end with a SIGN payload (RFC 3830 §6.5)")
        if sign.s_type not in RSA_S_TYPES:
            raise AuthenticationError(f"SIGN S type {sign.s_type} is not an RSA signature")
        chain = self.chain(msg.find_all(CertPayload))
        leaf = self.leaf(chain, at=at, peer_id=peer_id)
        self.verify_signature(msg, leaf, trailers=trailers)
        return leaf


def check_key_encipherment(cert: x509.Certificate) -> None:
    """A certificate we encrypt an envelope key to must allow keyEncipherment when it has keyUsage (§4.3)."""
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    except ValueError:
        raise CertificateError("certificate has malformed extensions") from None
    if not ku.key_encipherment:
        raise CertificateError("the peer's certificate does not allow keyEncipherment")


def same_id(a: IdPayload, b: IdPayload) -> bool:
    return int(a.id_type) == int(b.id_type) and a.data == b.data


def split_ids(msg: Message) -> tuple[IdPayload | None, IdPayload | None]:
    """The clear (IDi, IDr) of ``[IDi|CERTi], [IDr]``: an ID after a CERT is IDr (§3.2, RFC 4738 §3.4)."""
    id_i: IdPayload | None = None
    id_r: IdPayload | None = None
    seen_cert = False
    for p in msg.payloads:
        if isinstance(p, CertPayload):
            seen_cert = True
        elif isinstance(p, IdPayload):
            if id_i is None and not seen_cert:
                id_i = p
            elif id_r is None:
                id_r = p
    return id_i, id_r
