"""The Diffie-Hellman exchange both DH modes share: DH (RFC 3830 §3.3) and DH-HMAC (RFC 4650).

A shared mode module (like :mod:`~mikey.modes.keytransport` and :mod:`~mikey.modes.signing`):
the Initiator and Responder skeletons -- DH group choice (OAKLEY 5 by default, §4.2.7, §6.4),
TGK = g^(xi*xr) mod p (§3.3), the R_MESSAGE echo checks (CSB ID, T, DHi, group, IDi) and the
key derivation (§4.1.3) -- with hooks for the authentication each mode adds (SIGN or KEMAC MAC).

Deployed variants: ``"fresh-response-timestamp"`` and ``"response-without-ids"`` (see
:mod:`mikey.modes.keytransport` and :mod:`mikey.modes.dh`).
"""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from ..constants import PRF, CSIdMapType, DataType, ErrorNo
from ..crypto import dh as dh_crypto
from ..errors import (
    AuthenticationError,
    CryptoError,
    InvalidTimestampError,
    MikeyDecodeError,
    MikeyProtocolError,
    StateError,
    UnknownDHGroupDecodeError,
    UnspecifiedError,
    UnsupportedDHGroupError,
    UnsupportedIDError,
    UnsupportedPRFError,
)
from ..replay import DEFAULT_CLOCK_SKEW
from ..wire import (
    CommonHeader,
    DhPayload,
    IdPayload,
    Message,
    Payload,
    RandPayload,
    SecurityPolicyPayload,
    TimestampPayload,
)
from ..wire.payloads.base import KeyValidity
from .base import (
    CryptoSessionSpec,
    IdResponderKeywords,
    Initiator,
    Responder,
    Rng,
    State,
    build_error_message,
    build_header,
    derive_crypto_sessions,
    fill_ssrcs,
    id_data,
    merge_responder_ssrcs,
    random_csb_id,
    shared_default_srtp_policy,
)
from .keytransport import (
    COMPAT_BY_MODE,
    COMPAT_RESPONSE_WITHOUT_IDS,
    check_response_timestamp,
    compat_hint,
)
from .results import ExchangeResult, ResponderOutcome
from .signing import check_compat

if TYPE_CHECKING:
    from typing import Unpack

__all__ = ["DhInitiatorBase", "DhResponderBase", "DH_COMPAT_OPTIONS", "error_number"]

#: Compatibility options the DH Initiators understand (see the module docstring).
DH_COMPAT_OPTIONS = COMPAT_BY_MODE["dh"]


# --- pieces shared by DH and DH-HMAC ---------------------------------------------------------------


def error_number(exc: MikeyProtocolError) -> int:
    """The Error no an Error message for *exc* carries (Unspecified when the error names none)."""
    return exc.err_no if exc.err_no is not None else ErrorNo.UNSPECIFIED


def _check_prf(prf: int) -> None:
    if prf not in (PRF.MIKEY_1, PRF.PRF_HMAC_SHA_256):
        raise UnsupportedPRFError(f"PRF func {prf} is not supported")


def _dh_private(group: dh_crypto.DHGroup, x: int | None, rng: Rng) -> int:
    if x is None:
        return dh_crypto.generate_private(group, rng)
    if not 1 < x < group.p - 1:
        raise ValueError("DH private exponent out of range")
    return x


def _id_equal(a: IdPayload, b: IdPayload) -> bool:
    return a.data == b.data


class DhInitiatorBase(Initiator):
    """The Initiator of a DH exchange; subclasses add the authentication (SIGN or KEMAC MAC).

    ``group`` must be one of ``allowed_groups`` (default OAKLEY 5 only, :data:`~mikey.crypto.dh.DEFAULT_GROUPS`).
    """

    NO_RESULT: ClassVar[str] = "the R_MESSAGE has not been received yet; the TGK needs the Responder's DHr"
    INIT_TYPE: ClassVar[int] = DataType.DH_INIT
    RESP_TYPE: ClassVar[int] = DataType.DH_RESP
    COMPAT: ClassVar[frozenset[str]] = DH_COMPAT_OPTIONS

    def __init__(
        self,
        *,
        crypto_sessions: Sequence[CryptoSessionSpec] | None = None,
        policies: Sequence[SecurityPolicyPayload] | None = None,
        csb_id: int | None = None,
        rand: bytes | None = None,
        group: int = dh_crypto.DH_GROUP_OAKLEY5,
        allowed_groups: Collection[int] = dh_crypto.DEFAULT_GROUPS,
        dh_private: int | None = None,
        key_validity: KeyValidity = None,
        prf: int = PRF.MIKEY_1,
        id_i: IdPayload | None = None,
        id_r: IdPayload | None = None,
        cs_id_map_type: int = CSIdMapType.SRTP_ID,
        compat: Collection[str] = (),
        clock_skew: float = DEFAULT_CLOCK_SKEW,
        rng: Rng = os.urandom,
    ) -> None:
        super().__init__(clock_skew=clock_skew, rng=rng)
        _check_prf(prf)
        self.allowed_groups = dh_crypto.allowed_groups(allowed_groups)
        self.group = dh_crypto.check_allowed(group, self.allowed_groups)
        self._x = _dh_private(self.group, dh_private, rng)
        self.specs = list(crypto_sessions) if crypto_sessions else [CryptoSessionSpec()]
        self.policies = list(policies) if policies is not None else [shared_default_srtp_policy(0)]
        self.csb_id = csb_id if csb_id is not None else random_csb_id(rng)
        self.rand = rand if rand is not None else rng(16)
        self.key_validity = key_validity
        self.prf = prf
        self.id_i = id_i
        self.id_r = id_r
        self.cs_id_map_type = cs_id_map_type
        self.compat = check_compat(compat, self.COMPAT)
        self.header: CommonHeader | None = None
        self.timestamp: TimestampPayload | None = None
        self.dh_public: bytes | None = None
        self.i_message: bytes | None = None
        self._result: ExchangeResult | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(csb_id={self.csb_id:08x}, group={self.group.group_id}, state={self.state.value})"

    # -- hooks -----------------------------------------------------------------------------------

    def _init_payloads(self) -> list[Payload]:
        """T, RAND, IDs (and credentials) and SPs, before DHi."""
        raise NotImplementedError

    def _authenticate(self, header: CommonHeader, payloads: list[Payload]) -> bytes:
        raise NotImplementedError

    def _verify_response(self, msg: Message, now: float) -> dict[str, Any]:
        """Authenticate the R_MESSAGE; returns extras for the result."""
        raise NotImplementedError

    # -- building --------------------------------------------------------------------------------

    def _build(self, now: float) -> bytes:
        """The I_MESSAGE: HDR, T, RAND, IDs/credentials, {SP}, DHi, then SIGN or KEMAC (RFC 3830 §3.3, RFC 4650 §3)."""
        self.header = build_header(self.INIT_TYPE, self.csb_id, self.specs, map_type=self.cs_id_map_type, prf=self.prf)
        self.timestamp = TimestampPayload.ntp_utc(now)
        self.dh_public = dh_crypto.public_value(self.group, self._x)
        payloads = self._init_payloads()
        payloads.append(DhPayload(self.group.group_id, self.dh_public, self.key_validity))
        self.i_message = self._authenticate(self.header, payloads)
        self.state = State.WAIT_RESPONSE
        return self.i_message

    def _restore(self, i_message: bytes) -> None:
        """Restore the state after sending *i_message* (for a stateless ``complete``)."""
        msg = Message.decode(i_message)
        if msg.data_type != self.INIT_TYPE:
            raise ValueError(f"not a {type(self).__name__} I_MESSAGE (data type {msg.data_type})")
        t = msg.find(TimestampPayload)
        rand_p = msg.find(RandPayload)
        dh_p = msg.find(DhPayload)
        if t is None or rand_p is None or dh_p is None:
            raise ValueError("the I_MESSAGE lacks T, RAND or DH")
        if dh_p.group != self.group.group_id:
            self.group = dh_crypto.check_allowed(int(dh_p.group), self.allowed_groups)
        if dh_crypto.public_value(self.group, self._x) != dh_p.value:
            raise ValueError("the DH private exponent does not match the I_MESSAGE's DHi")
        self.header = msg.header
        self.csb_id = msg.csb_id
        self.prf = int(msg.header.prf)
        self.timestamp = t
        self.rand = rand_p.rand
        self.dh_public = dh_p.value
        self.key_validity = dh_p.kv
        self.policies = msg.find_all(SecurityPolicyPayload)
        self._adopt_ids(msg)
        self.i_message = i_message
        self.state = State.WAIT_RESPONSE

    def _adopt_ids(self, msg: Message) -> None:
        ids = msg.find_all(IdPayload)
        self.id_i = ids[0] if ids else None
        self.id_r = ids[1] if len(ids) > 1 else None

    def export_dh_private(self) -> int:
        """The own DH exponent, for a stateless ``complete`` (the CLI's --dh-private); keep it secret."""
        return self._x


    # -- the response ----------------------------------------------------------------------------

    def _on_response(self, msg: Message, now: float) -> ExchangeResult:
        """R_MESSAGE = HDR, T, [IDr|CERTr], IDi, DHr, DHi, SIGNr or KEMAC (RFC 3830 §3.3, RFC 4650 §3)."""
        if self.header is None or self.timestamp is None or self.dh_public is None:
            raise StateError("no I_MESSAGE has been built")
        if msg.csb_id != self.csb_id:
            raise AuthenticationError("R_MESSAGE CSB ID does not match the I_MESSAGE")
        extras = self._verify_response(msg, now)
        check_response_timestamp(msg.find(TimestampPayload), self.timestamp, self.compat, now, self.clock_skew,
                                 rfc="RFC 3830 §3.3, §5.2", error=InvalidTimestampError)
        dhs = msg.find_all(DhPayload)
        if len(dhs) != 2:
            raise UnspecifiedError(f"R_MESSAGE must carry DHr and DHi, found {len(dhs)} DH payloads")
        dh_r, dh_i = dhs
        if dh_i.group != self.group.group_id or dh_i.value != self.dh_public:
            raise AuthenticationError("R_MESSAGE does not echo this Initiator's DHi (RFC 3830 §3.3)")
        if dh_r.group != self.group.group_id:
            raise UnsupportedDHGroupError(f"DHr uses group {dh_r.group}, the I_MESSAGE offered {self.group.group_id}")
        id_r, id_i = self._response_ids(msg)
        if self.id_i is not None:
            if id_i is None:
                if COMPAT_RESPONSE_WITHOUT_IDS not in self.compat:
                    raise UnsupportedIDError(
                        "R_MESSAGE does not carry IDi (RFC 3830 §3.3); one without IDs is "
                        + compat_hint(COMPAT_RESPONSE_WITHOUT_IDS)
                    )
            elif not _id_equal(id_i, self.id_i):
                raise AuthenticationError("R_MESSAGE IDi is not this Initiator's identity")
        if self.id_r is not None and id_r is not None and not _id_equal(id_r, self.id_r):
            raise AuthenticationError("R_MESSAGE IDr is not the Responder the I_MESSAGE was sent to")
        try:
            tgk = dh_crypto.shared_secret(self.group, self._x, dh_r.value)
        except CryptoError as e:
            raise UnspecifiedError(f"invalid DHr: {e}") from None
        merged = merge_responder_ssrcs(self.header, msg.header)
        sessions = derive_crypto_sessions(tgk, merged, self.rand, self.policies)
        responder_id = id_r if id_r is not None else self.id_r
        self._result = ExchangeResult(
            mode=self.MODE,
            csb_id=self.csb_id,
            tgk=tgk,
            rand=self.rand,
            prf=self.prf,
            crypto_sessions=sessions,
            authenticated=bool(extras.pop("authenticated", True)),
            header=merged,
            policies=tuple(self.policies),
            initiator_id=self.id_i.data if self.id_i else None,
            responder_id=responder_id.data if responder_id else None,
            key_validity=dh_i.kv,
            extras={"dh_group": self.group.group_id, **extras},
        )
        self.state = State.DONE
        return self._result

    @staticmethod
    def _response_ids(msg: Message) -> tuple[IdPayload | None, IdPayload | None]:
        """(IDr, IDi) of an R_MESSAGE: HDR, T, [IDr], IDi, ... -- a lone ID is IDi."""
        ids = msg.find_all(IdPayload)
        if len(ids) >= 2:
            return ids[0], ids[1]
        if ids:
            return None, ids[0]
        return None, None


class DhResponderKeywords(IdResponderKeywords, total=False):
    """The DH and DH-HMAC Responders' keywords: the shared ones, ``allowed_groups`` (RFC 3830 §4.2.7)
    and ``dh_private`` (a fixed exponent, for tests and known answers)."""

    allowed_groups: Collection[int]
    dh_private: int | None


class DhResponderBase(Responder):
    """The Responder of a DH exchange; it always answers (RFC 3830 §3.3, RFC 4650 §3).

    An I_MESSAGE whose group is not in ``allowed_groups`` (default OAKLEY 5 only,
    :data:`~mikey.crypto.dh.DEFAULT_GROUPS`) is answered with Error no 6.
    """

    INIT_TYPE: ClassVar[int] = DataType.DH_INIT
    RESP_TYPE: ClassVar[int] = DataType.DH_RESP

    def __init__(
        self,
        **options: Unpack[DhResponderKeywords],
    ) -> None:
        """The shared keywords are :class:`DhResponderKeywords`."""
        self._init_responder(options, DhResponderKeywords)
        self.allowed_groups = dh_crypto.allowed_groups(options.get("allowed_groups", dh_crypto.DEFAULT_GROUPS))
        self._fixed_x = options.get("dh_private")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(state={self.state.value})"

    # -- hooks -----------------------------------------------------------------------------------

    def _split_ids(self, msg: Message) -> tuple[IdPayload | None, IdPayload | None]:
        """(IDi, IDr) of an I_MESSAGE."""
        raise NotImplementedError

    def _authenticate_init(self, msg: Message, id_i: IdPayload | None, id_r: IdPayload | None,
                           now: float) -> dict[str, Any]:
        raise NotImplementedError

    def _response_payloads(self, id_i: IdPayload | None) -> list[Payload]:
        """[IDr], credentials, IDi, between T and DHr."""
        raise NotImplementedError

    def _authenticate(self, header: CommonHeader, payloads: list[Payload]) -> bytes:
        raise NotImplementedError

    def _error_message(self, exc: MikeyProtocolError, msg: Message, t: TimestampPayload,
                       authenticated: bool) -> bytes:
        prf = int(msg.header.prf) if msg.header.prf in (0, 1) else 0
        return build_error_message(msg.csb_id, [error_number(exc)], t, prf=prf)

    # -- processing ------------------------------------------------------------------------------

    def receive(self, data: bytes, now: float) -> ResponderOutcome:
        """Process an I_MESSAGE; returns the keys and the R_MESSAGE.

        On failure raises a :class:`~mikey.errors.MikeyError` whose ``error_message`` holds the
        Error message to send back when RFC 3830 §5.1.2 calls for one.
        """
        try:
            outcome: ResponderOutcome = self._dispatch(data, now)
        except MikeyDecodeError as exc:
            if isinstance(exc, UnknownDHGroupDecodeError):
                err = UnsupportedDHGroupError(exc.message)
                csb_id = int.from_bytes(data[4:8], "big") if len(data) >= 8 else 0
                err.error_message = build_error_message(csb_id, [ErrorNo.INVALID_DH], TimestampPayload.ntp_utc(now))
                raise err from None
            raise
        return outcome

    def _private_for(self, group: dh_crypto.DHGroup) -> int:
        return _dh_private(group, self._fixed_x, self.rng)

    def _on_init(self, msg: Message, now: float) -> ResponderOutcome:
        t = msg.find(TimestampPayload)
        rand_p = msg.find(RandPayload)
        dh_p = msg.find(DhPayload)
        id_i, id_r = self._split_ids(msg)
        hdr = msg.header
        authenticated = False
        try:
            if t is None or rand_p is None or dh_p is None:
                raise UnspecifiedError("DH I_MESSAGE needs T, RAND and DH (RFC 3830 §3.3, RFC 4650 §3)")
            if len(msg.find_all(DhPayload)) != 1:
                raise UnspecifiedError("DH I_MESSAGE must carry exactly one DH payload")
            admission = self.admit(msg, t, now, id_data(id_i))
            extras = self._authenticate_init(msg, id_i, id_r, now)
            authenticated = bool(extras.get("authenticated", True))
            self.remember(admission)
            _check_prf(int(hdr.prf))
            group = dh_crypto.check_allowed(int(dh_p.group), self.allowed_groups)
            x_r = self._private_for(group)
            try:
                tgk = dh_crypto.shared_secret(group, x_r, dh_p.value)
            except CryptoError as e:
                raise UnspecifiedError(f"invalid DHi: {e}") from None
            dh_r = dh_crypto.public_value(group, x_r)
            header = fill_ssrcs(hdr, self.own_ssrcs)
            policies = tuple(msg.find_all(SecurityPolicyPayload))
            sessions = derive_crypto_sessions(tgk, header, rand_p.rand, policies)
            resp_hdr = CommonHeader(
                self.RESP_TYPE, header.csb_id, header.cs_id_map, header.cs_id_map_type, False, header.prf,
                header.version, header.cs_count,
            )
            payloads: list[Payload] = [t, *self._response_payloads(id_i)]
            payloads.append(DhPayload(group.group_id, dh_r, dh_p.kv))
            payloads.append(dh_p)
            response = self._authenticate(resp_hdr, payloads)
        except MikeyProtocolError as exc:
            if exc.err_no is not None and exc.error_message is None:
                exc.error_message = self._error_message(exc, msg, t or TimestampPayload.ntp_utc(now), authenticated)
            raise
        except CryptoError as exc:
            err = UnspecifiedError(f"cannot complete the exchange: {exc.message}")
            err.error_message = self._error_message(err, msg, t or TimestampPayload.ntp_utc(now), authenticated)
            raise err from None
        own_id = self.id_r
        result = ExchangeResult(
            mode=self.MODE,
            csb_id=hdr.csb_id,
            tgk=tgk,
            rand=rand_p.rand,
            prf=int(hdr.prf),
            crypto_sessions=sessions,
            authenticated=authenticated,
            header=header,
            policies=policies,
            initiator_id=id_i.data if id_i else None,
            responder_id=id_r.data if id_r else (own_id.data if own_id else None),
            key_validity=dh_p.kv,
            extras={"dh_group": group.group_id, **{k: v for k, v in extras.items() if k != "authenticated"}},
        )
        self.result = result
        self.state = State.DONE
        return ResponderOutcome(result, response)


