"""The MikeyError tree.

Every error that crosses the library boundary is a :class:`MikeyError`.  Errors
that correspond to an RFC 3830 §6.12 (and RFC 4738 / RFC 6043) Error number carry
it in ``err_no``; a responder turns those into an Error message (data type 6).
Messages never contain key material.
"""

from __future__ import annotations

from typing import ClassVar

from .constants import ErrorNo

__all__ = [
    "MikeyError",
    "MikeyDecodeError",
    "UnknownDHGroupDecodeError",
    "MikeyEncodeError",
    "MikeyValidationError",
    "MikeyProtocolError",
    "AuthenticationError",
    "InvalidTimestampError",
    "ReplayError",
    "UnsupportedPRFError",
    "UnsupportedMACError",
    "UnsupportedEncryptionError",
    "UnsupportedHashError",
    "UnsupportedDHGroupError",
    "UnsupportedIDError",
    "CertificateError",
    "UnsupportedSPTypeError",
    "UnsupportedSPParamsError",
    "UnsupportedDataTypeError",
    "UnspecifiedError",
    "UnsupportedMessageTypeError",
    "InvalidTicketError",
    "InvalidTPparError",
    "CryptoError",
    "KeyMaterialError",
    "StateError",
    "PeerError",
    "ReplayStoreError",
    "ReplayStoreConfigError",
    "KmsStoreError",
    "KmsAuthError",
    "KmsUnauthorizedError",
    "KmsForbiddenError",
]


def _error_no(value: int) -> ErrorNo | int:
    """*value* as its :class:`~mikey.constants.ErrorNo` member, or the plain int if it is not registered."""
    try:
        return ErrorNo(value)
    except ValueError:
        return value


class MikeyError(Exception):
    """Base of every error raised by :mod:`mikey`.

    ``err_no`` is the RFC 3830 §6.12 Error number (an :class:`~mikey.constants.ErrorNo`) the failure maps to, or
    ``None`` where the RFC asks for no Error message (the message is just
    discarded, or the failure is local).
    """

    err_no: ClassVar[ErrorNo | int | None] = None
    kind: ClassVar[str] = "error"

    #: The Error message (data type 6) a responder answers with, when the RFC calls for one.
    error_message: bytes | None = None

    def __init__(self, message: str, *, err_no: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if err_no is not None:
            self.err_no = _error_no(err_no)  # type: ignore[misc]


class MikeyDecodeError(MikeyError):
    """Bytes that are not a well-formed MIKEY message.

    ``payload`` names the payload being decoded and ``offset`` is the byte
    offset in the message where the problem was found.
    """

    kind = "decode"
    err_no = ErrorNo.UNSPECIFIED

    def __init__(self, message: str, *, payload: str | None = None, offset: int | None = None) -> None:
        where = []
        if payload is not None:
            where.append(payload)
        if offset is not None:
            where.append(f"offset {offset}")
        full = f"{message} ({', '.join(where)})" if where else message
        super().__init__(full)
        self.payload = payload
        self.offset = offset


class UnknownDHGroupDecodeError(MikeyDecodeError):
    """A DH payload whose DH-Group is not in RFC 3830 Table 6.4, so its DH value's length is unknown.

    ``group`` is the DH-Group value.  The rest of the message cannot be decoded; a DH
    Responder answers it with Error no 6, Invalid DH group (RFC 3830 §6.12).
    """

    def __init__(self, message: str, *, group: int, payload: str | None = None, offset: int | None = None) -> None:
        super().__init__(message, payload=payload, offset=offset)
        self.group = group


class MikeyEncodeError(MikeyError):
    """A payload object that cannot be encoded (a value out of its field's range)."""

    kind = "encode"


class MikeyValidationError(MikeyError):
    """A message that decodes but breaks the RFC rules for its data type.

    ``violations`` lists every rule broken, in message order.
    """

    kind = "validation"
    err_no = ErrorNo.UNSPECIFIED

    def __init__(self, violations: list[str], *, err_no: int | None = None) -> None:
        self.violations = list(violations)
        super().__init__("; ".join(self.violations) or "invalid message", err_no=err_no)


class MikeyProtocolError(MikeyError):
    """A failure of the key exchange that maps to an RFC Error number."""

    kind = "protocol"


class AuthenticationError(MikeyProtocolError):
    """MAC or signature verification failed (Error no 0)."""

    err_no = ErrorNo.AUTH_FAILURE
    kind = "authentication"


class InvalidTimestampError(MikeyProtocolError):
    """Timestamp outside the allowable clock skew (Error no 1, RFC 3830 §5.4)."""

    err_no = ErrorNo.INVALID_TS
    kind = "timestamp"


class ReplayError(MikeyProtocolError):
    """A message already seen within the replay window (RFC 3830 §5.4).

    RFC 3830 §5.4 says replayed messages are discarded; no Error message is sent.
    """

    err_no = None
    kind = "replay"


class UnsupportedPRFError(MikeyProtocolError):
    err_no = ErrorNo.INVALID_PRF
    kind = "unsupported-prf"


class UnsupportedMACError(MikeyProtocolError):
    err_no = ErrorNo.INVALID_MAC
    kind = "unsupported-mac"


class UnsupportedEncryptionError(MikeyProtocolError):
    err_no = ErrorNo.INVALID_EA
    kind = "unsupported-encryption"


class UnsupportedHashError(MikeyProtocolError):
    err_no = ErrorNo.INVALID_HA
    kind = "unsupported-hash"


class UnsupportedDHGroupError(MikeyProtocolError):
    err_no = ErrorNo.INVALID_DH
    kind = "unsupported-dh-group"


class UnsupportedIDError(MikeyProtocolError):
    err_no = ErrorNo.INVALID_ID
    kind = "unsupported-id"


class CertificateError(MikeyProtocolError):
    """Certificate missing, unparseable, untrusted, expired or not bound to the ID (Error no 8)."""

    err_no = ErrorNo.INVALID_CERT
    kind = "certificate"


class UnsupportedSPTypeError(MikeyProtocolError):
    err_no = ErrorNo.INVALID_SP
    kind = "unsupported-sp-type"


class UnsupportedSPParamsError(MikeyProtocolError):
    err_no = ErrorNo.INVALID_SPPAR
    kind = "unsupported-sp-params"


class UnsupportedDataTypeError(MikeyProtocolError):
    err_no = ErrorNo.INVALID_DT
    kind = "unsupported-data-type"


class UnspecifiedError(MikeyProtocolError):
    err_no = ErrorNo.UNSPECIFIED
    kind = "unspecified"


class UnsupportedMessageTypeError(MikeyProtocolError):
    """RFC 4738 §3.9: unsupported message type (Error no 13)."""

    err_no = ErrorNo.UNSUPPORTED_MESSAGE_TYPE
    kind = "unsupported-message-type"


class InvalidTicketError(MikeyProtocolError):
    err_no = ErrorNo.INVALID_TICKET
    kind = "invalid-ticket"


class InvalidTPparError(MikeyProtocolError):
    err_no = ErrorNo.INVALID_TPPAR
    kind = "invalid-tppar"


class CryptoError(MikeyError):
    """A cryptographic operation failed (bad key length, invalid point, bad padding)."""

    kind = "crypto"
    err_no = ErrorNo.UNSPECIFIED


class KeyMaterialError(CryptoError):
    """Key material that fails validation (e.g. an SSK or RSK that does not check out)."""

    kind = "key-material"


class StateError(MikeyError):
    """A local API misuse: calling a step in the wrong state of an exchange."""

    kind = "state"


class ReplayStoreError(MikeyError):
    """The shared replay store (:mod:`mikey.replay_redis`) failed: unreachable, timed out, full, or an unexpected reply.

    A local failure: the message is refused and no Error message is sent (RFC 3830 §5.4
    lets a Responder discard what it cannot check).
    """

    kind = "replay-store"


class ReplayStoreConfigError(ReplayStoreError):
    """The Redis server or the namespace is set up so that replays could get through, or differently."""

    kind = "replay-store-config"


class KmsStoreError(MikeyError):
    """The KMS database (:mod:`mikey.kms.store`) failed: unreachable, refused a write, or holds a value
    that does not decrypt under the at-rest key.  A local failure; the message names no secret."""

    kind = "kms-store"


class PeerError(MikeyError):
    """The peer answered with an Error message (data type 6).

    ``err_nos`` lists the Error numbers it carried.
    """

    kind = "peer-error"

    def __init__(self, err_nos: list[int]) -> None:
        self.err_nos = list(err_nos)
        super().__init__(f"peer sent an Error message: {', '.join(str(e) for e in err_nos)}")


class KmsAuthError(MikeyError):
    """A KMS request refused for its bearer token (RFC 6750 §3.1; 3GPP TS 33.180 §5.3, Annex B).

    ``status`` is the HTTP status to answer with (401 or 403) and ``reason`` a short
    code naming the cause (``"expired"``, ``"wrong-audience"``, ``"other-user"``, ...).
    The message never contains the token.
    """

    kind = "kms-auth"
    status: ClassVar[int] = 401

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class KmsUnauthorizedError(KmsAuthError):
    """No usable token: missing, malformed, expired, not yet valid, wrongly signed, or not for this KMS (401)."""

    status = 401


class KmsForbiddenError(KmsAuthError):
    """A valid token that does not allow the request: scope missing, or another user's keys (403)."""

    status = 403


class TicketRefusedError(MikeyProtocolError):
    """A KMS refuses to resolve or issue a ticket for an authenticated party (RFC 6043 §4.2.1.4,
    §4.2.3.4, §12.5): not authorised by the Ticket Policy or the KMS database.  RFC 6043 §5.4
    names no Error no for it: Unspecified error (12)."""

    err_no = ErrorNo.UNSPECIFIED
    kind = "ticket-refused"


class TicketReuseError(TicketRefusedError):
    """A ticket whose policy forbids reuse (J flag = 0) presented again (RFC 6043 §5.3)."""

    kind = "ticket-reuse"


__all__ += ["TicketRefusedError", "TicketReuseError"]


class IbeFormatError(CryptoError):
    """IBE bytes (RFC 5091 BF public parameters, private key, ciphertext) that do not decode to valid values:
    wrong length or format, a point off the curve or outside the order-q subgroup, bad p or q."""

    kind = "ibe-format"


__all__ += ["IbeFormatError"]
