"""Diffie-Hellman mode with signatures (RFC 3830 §3.3), and the DH machinery DH-HMAC (RFC 4650) shares.

I_MESSAGE = HDR, T, RAND, [IDi|CERTi], [IDr], {SP}, DHi, SIGNi
R_MESSAGE = HDR, T, [IDr|CERTr], IDi, DHr, DHi, SIGNr

* The DH group is the Initiator's choice: OAKLEY 5 (0, mandatory), 1 (1) or 2 (2) (§4.2.7, §6.4).
  Both sides allow only OAKLEY 5 by default; the 768- and 1024-bit groups must be named in
  ``allowed_groups`` (see :mod:`mikey.crypto.dh`), else Error no 6.
* TGK = g^(xi*xr) mod p as a full-length big-endian string (§3.3); SRTP keys follow §4.1.3.
* SIGN: RSA PKCS#1 v1.5 (S type 0) or RSA-PSS (S type 1), hash SHA-256 (default) or SHA-1 (§4.2.6,
  §6.5).  The signature covers the whole message up to the Signature field, the SIGN payload's
  S type/length octets included (§5.2), and is checked over the bytes received.
* Certificates travel in CERT payloads (leaf first, §6.7) or are configured; they are validated
  against trust anchors at the message's time, for key usage and for the binding of the peer's ID
  (:class:`~mikey.crypto.x509.CertificateValidator`, §4.3).  An optional CHASH in the I_MESSAGE names
  the Responder certificate the Initiator expects (§6.8).  Signing and verifying are the shared
  :class:`~mikey.modes.signing.Signer` and :class:`~mikey.modes.signing.PeerVerifier`.
* The Responder echoes the Initiator's T and DHi; the Initiator checks that the R_MESSAGE answers
  its own I_MESSAGE (CSB ID, T, DHi, group, IDi).

Deployed variants (all off by default, each accepted only when named in ``compat``):

* ``"fresh-response-timestamp"`` -- the R_MESSAGE carries a fresh T instead of the Initiator's
  (MiniSIP libmikey).  It must then lie within the allowable clock skew.
* ``"response-without-ids"`` -- the R_MESSAGE carries neither IDr nor IDi (MiniSIP libmikey).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from cryptography import x509

from ..constants import CSIdMapType, DataType, SignatureType
from ..crypto import x509 as x509_crypto
from ..errors import (
    CertificateError,
    MikeyProtocolError,
    StateError,
    UnsupportedIDError,
)
from ..keystore import Credentials
from ..wire import (
    ChashPayload,
    CommonHeader,
    DhPayload,
    ErrorPayload,
    IdPayload,
    Message,
    Payload,
    RandPayload,
    TimestampPayload,
)
from .base import (
    State,
)
from .dhbase import DH_COMPAT_OPTIONS, DhInitiatorBase, DhResponderBase, DhResponderKeywords, error_number
from .keytransport import COMPAT_FRESH_RESPONSE_TIMESTAMP, COMPAT_RESPONSE_WITHOUT_IDS
from .signing import (
    SIGNATURE_HASHES,
    PeerVerifier,
    Signer,
    identity_of,
    message_time,
    signed_message,
)

if TYPE_CHECKING:
    from typing import Unpack

__all__ = [
    "DhInitiator",
    "DhResponder",
    "DhInitiatorBase",
    "DhResponderBase",
    "COMPAT_FRESH_RESPONSE_TIMESTAMP",
    "COMPAT_RESPONSE_WITHOUT_IDS",
    "DH_COMPAT_OPTIONS",
]



def _certificate_id(cert: x509.Certificate) -> IdPayload | None:
    """An ID payload (URI) from the certificate's first subjectAltName URI, if it has one."""
    try:
        return identity_of(cert, uri_only=True)
    except CertificateError:
        return None


# --- signed DH (RFC 3830 §3.3) -------------------------------------------------------------------


class DhInitiator(DhInitiatorBase):
    """The DH Initiator: signed I_MESSAGE out, signed R_MESSAGE in (RFC 3830 §3.3).

    ``credentials`` may be None only for an Initiator restored with :meth:`resume` (it verifies and
    never signs).  ``validator`` and ``peer_certificates`` decide whether the Responder's certificate
    is trusted (see :class:`PeerVerifier`); without a validator the first ``peer_certificates``
    entry is pinned, and still checked for validity at the message's time, key usage and ID
    binding (:func:`~mikey.modes.signing.pinned_validator`, RFC 3830 §4.3.2).  ``id_i`` defaults to
    the own certificate's first subjectAltName URI.  ``chash_func`` adds a CHASH of the first
    ``peer_certificates`` entry.
    """

    MODE: ClassVar[str] = "dh"
    HANDLERS = {(State.WAIT_RESPONSE, DataType.DH_RESP): DhInitiatorBase._on_response}

    def __init__(
        self,
        credentials: Credentials | None,
        validator: x509_crypto.CertificateValidator | None = None,
        *,
        peer_certificates: Sequence[x509.Certificate] = (),
        s_type: int = SignatureType.RSA_PKCS1_V1_5,
        sign_hash: str = "sha256",
        verify_hashes: Sequence[str] = SIGNATURE_HASHES,
        send_certificates: bool = True,
        chash_func: int | None = None,
        id_i: IdPayload | None = None,
        **kwargs: Any,
    ) -> None:
        if id_i is None and credentials is not None:
            id_i = _certificate_id(credentials.certificate)
        super().__init__(id_i=id_i, **kwargs)
        self.signer = Signer(credentials, s_type, sign_hash) if credentials is not None else None
        self.verifier = PeerVerifier(validator, peer_certificates, verify_hashes)
        self.send_certificates = send_certificates
        self.chash_func = chash_func
        if chash_func is not None:
            if not peer_certificates:
                raise ValueError("a CHASH needs the Responder's certificate (peer_certificates)")
            x509_crypto.chash_length(chash_func)

    @classmethod
    def resume(
        cls,
        i_message: bytes,
        dh_private: int,
        validator: x509_crypto.CertificateValidator | None = None,
        *,
        credentials: Credentials | None = None,
        **kwargs: Any,
    ) -> DhInitiator:
        """An Initiator waiting for the answer to *i_message*, which it sent with exponent *dh_private*."""
        msg = Message.decode(i_message)
        dh_p = msg.find(DhPayload)
        group = int(dh_p.group) if dh_p is not None else 0
        self = cls(credentials, validator, dh_private=dh_private, group=group, **kwargs)
        self._restore(i_message)
        return self

    def _init_payloads(self) -> list[Payload]:
        if self.signer is None:
            raise StateError("an Initiator without credentials cannot build an I_MESSAGE")
        if self.timestamp is None:
            raise StateError("the I_MESSAGE has no timestamp yet")
        payloads: list[Payload] = [self.timestamp, RandPayload(self.rand)]
        if self.id_i is not None:
            payloads.append(self.id_i)
        if self.send_certificates:
            payloads += self.signer.cert_payloads()
        if self.id_r is not None and self.id_i is not None:
            payloads.append(self.id_r)  # a lone ID would read as IDi
        payloads += self.policies
        if self.chash_func is not None:
            der = x509_crypto.certificate_der(self.verifier.peer_certificates[0])
            payloads.append(ChashPayload(self.chash_func, x509_crypto.chash(self.chash_func, der)))
        return payloads

    def _authenticate(self, header: CommonHeader, payloads: list[Payload]) -> bytes:
        if self.signer is None:
            raise StateError("an Initiator without credentials cannot sign")
        return signed_message(header, payloads, self.signer)

    def _verify_response(self, msg: Message, now: float) -> dict[str, Any]:
        id_r, _ = self._response_ids(msg)
        claimed = id_r if id_r is not None else self.id_r
        leaf = self.verifier.verify(msg, claimed.text if claimed else None, message_time(self.timestamp, now))
        return {"peer_certificate": leaf}


class DhResponder(DhResponderBase):
    """The DH Responder: verifies the signed I_MESSAGE, answers with a signed R_MESSAGE (RFC 3830 §3.3).

    ``validator`` and ``peer_certificates`` decide whether the Initiator's certificate is trusted, as
    for :class:`DhInitiator`.  ``id_r`` defaults to the own certificate's first subjectAltName URI.
    With ``dh_private`` fixed, the same exponent is used for every exchange (for reproducing
    captures only).
    """

    MODE: ClassVar[str] = "dh"
    HANDLERS = {(State.START, DataType.DH_INIT): DhResponderBase._on_init}

    def __init__(
        self,
        credentials: Credentials,
        validator: x509_crypto.CertificateValidator | None = None,
        *,
        peer_certificates: Sequence[x509.Certificate] = (),
        s_type: int = SignatureType.RSA_PKCS1_V1_5,
        sign_hash: str = "sha256",
        verify_hashes: Sequence[str] = SIGNATURE_HASHES,
        send_certificates: bool = True,
        **options: Unpack[DhResponderKeywords],
    ) -> None:
        if options.get("id_r") is None:
            options["id_r"] = _certificate_id(credentials.certificate)
        super().__init__(**options)
        self.signer = Signer(credentials, s_type, sign_hash)
        self.verifier = PeerVerifier(validator, peer_certificates, verify_hashes)
        self.send_certificates = send_certificates
        self._own_der = x509_crypto.certificate_der(credentials.certificate)
        self._peer_leaf: x509.Certificate | None = None

    def _split_ids(self, msg: Message) -> tuple[IdPayload | None, IdPayload | None]:
        ids = msg.find_all(IdPayload)  # [IDi|CERTi], [IDr]: a lone ID is IDi
        return (ids[0] if ids else None), (ids[1] if len(ids) > 1 else None)

    def _authenticate_init(self, msg: Message, id_i: IdPayload | None, id_r: IdPayload | None,
                           now: float) -> dict[str, Any]:
        at = message_time(msg.find(TimestampPayload), now)
        leaf = self.verifier.verify(msg, id_i.text if id_i else None, at)
        self._peer_leaf = leaf
        ch = msg.find(ChashPayload)
        if ch is not None:
            x509_crypto.check_chash(int(ch.hash_func), ch.digest, self._own_der)
        if id_r is not None and self.id_r is not None and id_r.data != self.id_r.data:
            raise UnsupportedIDError("the I_MESSAGE is addressed to another Responder (IDr)")
        return {"peer_certificate": leaf}

    def _response_payloads(self, id_i: IdPayload | None) -> list[Payload]:
        out: list[Payload] = []
        if self.id_r is not None:
            out.append(self.id_r)
        if self.send_certificates:
            out += self.signer.cert_payloads()
        if id_i is None and self._peer_leaf is not None:
            id_i = _certificate_id(self._peer_leaf)
        if id_i is not None:
            out.append(id_i)
        return out

    def _authenticate(self, header: CommonHeader, payloads: list[Payload]) -> bytes:
        return signed_message(header, payloads, self.signer)

    def _error_message(self, exc: MikeyProtocolError, msg: Message, t: TimestampPayload,
                       authenticated: bool) -> bytes:
        """HDR, T, {ERR}, [SIGN]: signed once the I_MESSAGE authenticated (RFC 3830 §5.1.2)."""
        if not authenticated:
            return super()._error_message(exc, msg, t, authenticated)
        prf = int(msg.header.prf) if msg.header.prf in (0, 1) else 0
        hdr = CommonHeader(DataType.ERROR, msg.csb_id, (), CSIdMapType.SRTP_ID, False, prf)
        return signed_message(hdr, [t, ErrorPayload(error_number(exc))], self.signer)

