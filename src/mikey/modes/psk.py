"""Pre-shared key mode (RFC 3830 §3.1, §5).

I_MESSAGE = HDR, T, RAND, [IDi], [IDr], {SP}, KEMAC  (KEMAC = E(encr_key, {TGK}) || MAC)
R_MESSAGE = HDR, T, [IDr], V                          (only when the Initiator sets V)

The encryption, authentication and salt keys come from the PSK, the CSB ID and
RAND (§4.1.4); the MAC covers the whole message but the MAC field (§5.2); the
verification MAC covers the R_MESSAGE followed by IDi || IDr || T (§5.2).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import ClassVar, NamedTuple

from ..constants import (
    MAC_LENGTHS,
    PRF,
    CSIdMapType,
    DataType,
    EncrAlg,
    KeyDataType,
    MacAlg,
    PayloadType,
)
from ..crypto import kemac as kemac_crypto
from ..crypto import prf as prf_crypto
from ..errors import (
    AuthenticationError,
    CryptoError,
    MikeyDecodeError,
    MikeyProtocolError,
    UnspecifiedError,
    UnsupportedDataTypeError,
    UnsupportedEncryptionError,
    UnsupportedMACError,
    UnsupportedPRFError,
)
from ..replay import DEFAULT_CLOCK_SKEW, ReplayStore
from ..wire import (
    CommonHeader,
    GenericIdEntry,
    IdPayload,
    KemacPayload,
    KeyDataPayload,
    Message,
    Payload,
    RandPayload,
    SecurityPolicyPayload,
    SrtpIdEntry,
    TimestampPayload,
    VerificationPayload,
    decode_sub_payloads,
    encode_sub_payloads,
)
from ..wire.payloads.base import KeyValidity
from .base import (
    CryptoSessionKeys,
    CryptoSessionSpec,
    ExchangeResult,
    Initiator,
    Responder,
    ResponderOutcome,
    Rng,
    State,
    build_error_message,
    build_header,
    default_srtp_policy,
    derive_crypto_sessions,
    fill_ssrcs,
    id_data,
    merge_responder_ssrcs,
    random_csb_id,
    verification_mac_input,
)

__all__ = [
    "PskInitiator",
    "PskResponder",
    "KeyTransport",
    "PskLookup",
    "OpenedKemac",
    "open_kemac",
    "refuse_null_security",
    "specs_from_header",
    "VERIFICATION_COVERAGE",
]

#: How the verification MAC is computed: "rfc" (message || IDi || IDr || T, RFC 3830 §5.2) or
#: "timestamp-only" (message || T), a deployed variant accepted only when asked for.
VERIFICATION_COVERAGE = ("rfc", "timestamp-only")

PskLookup = Callable[[IdPayload | None, IdPayload | None], bytes | None]


class KeyTransport(NamedTuple):
    """What the KEMAC protects: algorithms and transport keys from the PSK/envelope key (RFC 3830 §4.1.4)."""

    encr_alg: int
    mac_alg: int
    prf: int

    def keys(self, secret: bytes, csb_id: int, rand: bytes) -> prf_crypto.TransportKeys:
        try:
            return prf_crypto.derive_transport_keys(
                secret,
                csb_id,
                rand,
                encr_len=kemac_crypto.encr_key_len(self.encr_alg),
                auth_len=kemac_crypto.mac_key_len(self.mac_alg),
                salt_len=kemac_crypto.salt_len(self.encr_alg),
                prf_func=self.prf,
            )
        except CryptoError as e:
            raise UnspecifiedError(str(e)) from None


def check_algorithms(encr_alg: int, mac_alg: int, prf: int) -> None:
    """Raise the RFC error for algorithms this implementation does not support."""
    if prf not in (PRF.MIKEY_1, PRF.PRF_HMAC_SHA_256):
        raise UnsupportedPRFError(f"PRF func {prf} is not supported")
    if encr_alg not in (EncrAlg.NULL, EncrAlg.AES_CM_128, EncrAlg.AES_KW_128, EncrAlg.AES_CM_256):
        raise UnsupportedEncryptionError(f"KEMAC encryption algorithm {encr_alg} is not supported")
    if mac_alg not in (MacAlg.NULL, MacAlg.HMAC_SHA_1_160, MacAlg.HMAC_SHA_256_256):
        raise UnsupportedMACError(f"KEMAC MAC algorithm {mac_alg} is not supported")


def refuse_null_security(encr_alg: int, mac_alg: int) -> None:
    """Refuse NULL KEMAC algorithms: RFC 3830 §4.2.3/§4.2.4 say NULL "MUST NOT be used unless the
    underlying protocols can guarantee security"; only the caller knows that (``allow_null_security``)."""
    if encr_alg == EncrAlg.NULL:
        raise UnsupportedEncryptionError(
            "NULL KEMAC encryption carries the TGK in the clear; RFC 3830 §4.2.3 allows it only over a "
            "carrier that guarantees security (allow_null_security=True, --allow-null-security)"
        )
    if mac_alg == MacAlg.NULL:
        raise UnsupportedMACError(
            "a NULL KEMAC MAC leaves the key transport unauthenticated; RFC 3830 §4.2.4 allows it only over a "
            "carrier that guarantees security (allow_null_security=True, --allow-null-security)"
        )


def default_tgk_length(encr_alg: int, key_type: int) -> int:
    """TGK length: 16 octets, or 20 with AES-KW so the Key data sub-payload is a multiple of 8 (RFC 3394)."""
    if encr_alg == EncrAlg.AES_KW_128 and key_type in (KeyDataType.TGK, KeyDataType.TEK):
        return 20
    return 16


def decode_key_data(plaintext: bytes, encr_alg: int, first: int = PayloadType.KEY_DATA) -> list[Payload]:
    """Decode decrypted KEMAC data; AES-KW plaintext may carry zero padding after the chain."""
    try:
        return decode_sub_payloads(plaintext, first)
    except MikeyDecodeError:
        if encr_alg != EncrAlg.AES_KW_128:
            raise
    stripped = plaintext.rstrip(b"\x00")
    for extra in range(0, 8):
        candidate = plaintext[: len(stripped) + extra]
        try:
            return decode_sub_payloads(candidate, first)
        except MikeyDecodeError:
            continue
    return decode_sub_payloads(plaintext, first)


def key_material(subs: Sequence[Payload]) -> tuple[bytes, bytes | None, int, KeyValidity]:
    """The TGK (or TEK), optional salt, key type and key validity from Key data sub-payloads."""
    for s in subs:
        if isinstance(s, KeyDataPayload):
            return s.key, s.salt, int(s.key_type), s.kv
    raise UnspecifiedError("KEMAC carries no Key data sub-payload")


class OpenedKemac(NamedTuple):
    """What a verified and decrypted PSK I_MESSAGE yields (RFC 3830 §5.3).  The repr shows no keys."""

    transport: KeyTransport
    keys: prf_crypto.TransportKeys
    key: bytes
    salt: bytes | None
    key_type: int
    key_validity: KeyValidity
    authenticated: bool

    def __repr__(self) -> str:
        return (
            f"OpenedKemac(transport={self.transport!r}, key=<{len(self.key)} octets>, key_type={self.key_type}, "
            f"authenticated={self.authenticated})"
        )


def psk_payloads(msg: Message) -> tuple[TimestampPayload, RandPayload | None, KemacPayload]:
    """T, RAND and the last-payload KEMAC of a PSK I_MESSAGE (RFC 3830 §3.1).

    RAND is None in an update message, which must not carry one (§4.5).
    """
    t = msg.find(TimestampPayload)
    rand_p = msg.find(RandPayload)
    kemac = msg.find(KemacPayload)
    if t is None or kemac is None:
        raise UnspecifiedError("PSK I_MESSAGE needs T and KEMAC (RFC 3830 §3.1)")
    if msg.payloads[-1] is not kemac:
        raise UnspecifiedError("KEMAC must be the last payload of a PSK I_MESSAGE")
    return t, rand_p, kemac


def open_kemac(
    msg: Message,
    psk: bytes,
    rand: bytes,
    *,
    verified: Callable[[prf_crypto.TransportKeys], None] | None = None,
    found: tuple[TimestampPayload, KemacPayload] | None = None,
) -> OpenedKemac:
    """Verify the KEMAC MAC over the received bytes (§5.2), then decrypt the Key data (§4.2.3).

    *rand* is the message's RAND, or the initial exchange's for an update
    message (§4.5).  An update may carry no Key data; then ``key`` is empty.
    *verified* is called with the transport keys after the MAC checks and
    before decryption (the Responder adds the message to its replay cache there,
    RFC 3830 §5.3).  *found* passes T and KEMAC when the caller already has them.
    """
    if found is None:
        t, _, kemac = psk_payloads(msg)
    else:
        t, kemac = found
    hdr = msg.header
    check_algorithms(int(kemac.encr_alg), int(kemac.mac_alg), int(hdr.prf))
    transport = KeyTransport(int(kemac.encr_alg), int(kemac.mac_alg), int(hdr.prf))
    keys = transport.keys(psk, hdr.csb_id, rand)
    raw = msg.raw_bytes()
    n = len(kemac.mac)
    kemac_crypto.verify_mac(transport.mac_alg, keys.auth_key, raw[: len(raw) - n], kemac.mac)
    authenticated = transport.mac_alg != MacAlg.NULL
    if verified is not None:
        verified(keys)
    if not kemac.encr_data:
        return OpenedKemac(transport, keys, b"", None, KeyDataType.TGK, None, authenticated)
    try:
        plaintext = kemac_crypto.decrypt(
            transport.encr_alg, keys.encr_key, keys.salt, hdr.csb_id, t.ts_value, kemac.encr_data,
            ts_type=int(t.ts_type),
        )
    except CryptoError as e:
        raise AuthenticationError(f"cannot decrypt the key data: {e}") from None
    try:
        key, salt, key_type, kv = key_material(decode_key_data(plaintext, transport.encr_alg))
    except MikeyDecodeError as exc:
        raise UnspecifiedError(f"malformed key data: {exc}") from None
    return OpenedKemac(transport, keys, key, salt, key_type, kv, authenticated)


def specs_from_header(header: CommonHeader) -> list[CryptoSessionSpec]:
    """The crypto sessions an HDR's CS ID map offers."""
    specs = []
    for e in header.cs_id_map:
        if isinstance(e, SrtpIdEntry):
            specs.append(CryptoSessionSpec(ssrc=e.ssrc, roc=e.roc, policy_no=e.policy_no))
        elif isinstance(e, GenericIdEntry):
            specs.append(
                CryptoSessionSpec(
                    ssrc=e.ssrc or 0, roc=e.roc or 0, policy_no=e.policies[0] if e.policies else 0, cs_id=e.cs_id
                )
            )
    return specs


class PskInitiator(Initiator):
    """The PSK Initiator: builds the I_MESSAGE and, when V is set, checks the R_MESSAGE."""

    MODE: ClassVar[str] = "psk"
    HANDLERS: ClassVar[dict[tuple[State, int], str]] = {(State.WAIT_RESPONSE, DataType.PSK_RESP): "_on_response"}

    def __init__(
        self,
        psk: bytes,
        *,
        crypto_sessions: Sequence[CryptoSessionSpec] | None = None,
        policies: Sequence[SecurityPolicyPayload] | None = None,
        csb_id: int | None = None,
        tgk: bytes | None = None,
        tgk_salt: bytes | None = None,
        rand: bytes | None = None,
        key_type: int = KeyDataType.TGK,
        key_validity: KeyValidity = None,
        encr_alg: int = EncrAlg.AES_CM_128,
        mac_alg: int = MacAlg.HMAC_SHA_1_160,
        prf: int = PRF.MIKEY_1,
        v: bool = False,
        id_i: IdPayload | None = None,
        id_r: IdPayload | None = None,
        cs_id_map_type: int = CSIdMapType.SRTP_ID,
        verification_coverage: str = "rfc",
        extra_payloads: Sequence[Payload] = (),
        update: ExchangeResult | None = None,
        new_key: bool = True,
        allow_null_security: bool = False,
        rng: Rng = os.urandom,
    ) -> None:
        """``update`` makes this an update message for that exchange's bundle (RFC 3830 §4.5):
        same CSB ID, no RAND (the initial RAND keeps being used), and a fresh TGK
        unless ``new_key`` is False (then the bundle keeps its keys and the
        message only updates crypto sessions and policies).

        NULL ``encr_alg`` or ``mac_alg`` is refused (:func:`refuse_null_security`)
        unless ``allow_null_security`` says the carrier itself is secure."""
        super().__init__(rng=rng)
        check_algorithms(encr_alg, mac_alg, prf)
        if not allow_null_security:
            refuse_null_security(encr_alg, mac_alg)
        self.update = update
        self.new_key = new_key or update is None
        if update is not None:
            if csb_id is not None and csb_id != update.csb_id:
                raise ValueError("an update message must use the bundle's CSB ID (RFC 3830 §4.5)")
            if rand is not None and rand != update.rand:
                raise ValueError("an update message keeps the initial RAND (RFC 3830 §4.5)")
            csb_id, rand = update.csb_id, update.rand
            if crypto_sessions is None:
                crypto_sessions = specs_from_header(update.header)
            if policies is None:
                policies = list(update.policies)
            if not self.new_key:
                tgk = update.tgk
        if verification_coverage not in VERIFICATION_COVERAGE:
            raise ValueError(f"verification_coverage must be one of {VERIFICATION_COVERAGE}")
        self._psk = psk
        self.specs = list(crypto_sessions) if crypto_sessions else [CryptoSessionSpec()]
        self.policies = list(policies) if policies is not None else [default_srtp_policy(0)]
        self.csb_id = csb_id if csb_id is not None else random_csb_id(rng)
        self.key_type = key_type
        self._tgk = tgk if tgk is not None else rng(default_tgk_length(encr_alg, key_type))
        self._tgk_salt = tgk_salt
        self.rand = rand if rand is not None else rng(16)
        self.key_validity = key_validity
        self.transport = KeyTransport(encr_alg, mac_alg, prf)
        self.v = v
        self.id_i = id_i
        self.id_r = id_r
        self.cs_id_map_type = cs_id_map_type
        self.verification_coverage = verification_coverage
        self.extra_payloads = list(extra_payloads)
        self.header: CommonHeader | None = None
        self.timestamp: TimestampPayload | None = None
        self.i_message: bytes | None = None
        self._result: ExchangeResult | None = None

    def __repr__(self) -> str:
        return f"PskInitiator(csb_id={self.csb_id:08x}, state={self.state.value})"

    @classmethod
    def from_i_message(
        cls,
        psk: bytes,
        i_message: bytes,
        *,
        verification_coverage: str = "rfc",
        update: ExchangeResult | None = None,
        allow_null_security: bool = False,
    ) -> PskInitiator:
        """The Initiator that sent *i_message*, rebuilt from those bytes and the PSK.

        For a stateless Initiator (e.g. the CLI's ``complete``): the KEMAC MAC is
        checked with *psk*, the TGK recovered, and the side left waiting for the
        R_MESSAGE (or done, if V was not set).  A message with NULL algorithms needs
        ``allow_null_security``, as building it did.
        """
        msg = Message.decode(i_message)
        if msg.data_type != DataType.PSK_INIT:
            dt = getattr(msg.data_type, "name", msg.data_type)
            raise UnsupportedDataTypeError(f"a {dt} message is not a PSK I_MESSAGE")
        t, rand_p, kemac = psk_payloads(msg)
        check_algorithms(int(kemac.encr_alg), int(kemac.mac_alg), int(msg.header.prf))
        if not allow_null_security:
            refuse_null_security(int(kemac.encr_alg), int(kemac.mac_alg))
        rand = _rand_for(msg, rand_p, update)
        opened = open_kemac(msg, psk, rand)
        ids = msg.find_all(IdPayload)
        hdr = msg.header
        side = cls(
            psk,
            crypto_sessions=specs_from_header(hdr),
            policies=msg.find_all(SecurityPolicyPayload),
            csb_id=hdr.csb_id,
            tgk=opened.key or None,
            tgk_salt=opened.salt,
            rand=None if update is not None else rand,
            key_type=opened.key_type,
            key_validity=opened.key_validity,
            encr_alg=opened.transport.encr_alg,
            mac_alg=opened.transport.mac_alg,
            prf=opened.transport.prf,
            v=hdr.v,
            id_i=ids[0] if ids else None,
            id_r=ids[1] if len(ids) > 1 else None,
            cs_id_map_type=int(hdr.cs_id_map_type),
            verification_coverage=verification_coverage,
            update=update,
            new_key=bool(opened.key),
            allow_null_security=allow_null_security,
        )
        side.header = hdr
        side.timestamp = t
        side.i_message = msg.raw_bytes()
        side.state = State.WAIT_RESPONSE if hdr.v else State.DONE
        side._result = side._make_result(hdr, authenticated=False)
        return side

    # -- building --------------------------------------------------------------------------

    def _key_data(self) -> bytes:
        if not self.new_key:
            return b""
        if self.key_type in (KeyDataType.TGK_SALT, KeyDataType.TEK_SALT) and self._tgk_salt is None:
            self._tgk_salt = self.rng(14)
        salt = self._tgk_salt if self.key_type in (KeyDataType.TGK_SALT, KeyDataType.TEK_SALT) else None
        return encode_sub_payloads([KeyDataPayload(self.key_type, self._tgk, salt, self.key_validity)])

    def create_message(self, now: float) -> bytes:
        """The I_MESSAGE (RFC 3830 §3.1), timestamped *now* (Unix seconds)."""
        self.require_state(State.START)
        t = self.transport
        self.header = build_header(
            DataType.PSK_INIT, self.csb_id, self.specs, map_type=self.cs_id_map_type, v=self.v, prf=t.prf
        )
        self.timestamp = TimestampPayload.ntp_utc(now)
        keys = t.keys(self._psk, self.csb_id, self.rand)
        plaintext = self._key_data()
        try:
            encr = kemac_crypto.encrypt(
                t.encr_alg, keys.encr_key, keys.salt, self.csb_id, self.timestamp.ts_value, plaintext,
                ts_type=int(self.timestamp.ts_type),
            )
        except CryptoError as e:
            raise UnspecifiedError(f"cannot encrypt the key data: {e}") from None
        payloads: list[Payload] = [self.timestamp]
        if self.update is None:  # an update message must not carry a RAND (§4.5)
            payloads.append(RandPayload(self.rand))
        if self.id_i is not None:
            payloads.append(self.id_i)
        if self.id_r is not None:
            payloads.append(self.id_r)
        payloads += self.extra_payloads
        payloads += self.policies
        n = MAC_LENGTHS[t.mac_alg]
        payloads.append(KemacPayload(t.encr_alg, encr, t.mac_alg, bytes(n)))
        draft = Message(self.header, tuple(payloads)).encode()
        mac = kemac_crypto.compute_mac(t.mac_alg, keys.auth_key, draft[: len(draft) - n])
        self.i_message = draft[: len(draft) - n] + mac
        self.state = State.WAIT_RESPONSE if self.v else State.DONE
        self._result = self._make_result(self.header, authenticated=False)
        return self.i_message

    def _make_result(self, header: CommonHeader, *, authenticated: bool) -> ExchangeResult:
        if self.new_key:
            salt = self._tgk_salt if self.key_type in (KeyDataType.TGK_SALT, KeyDataType.TEK_SALT) else None
            sessions = session_keys(self._tgk, self.key_type, header, self.rand, self.policies, salt)
        else:
            assert self.update is not None
            sessions = _updated_sessions(self.update, header, self.policies)
        return ExchangeResult(
            mode=self.MODE,
            csb_id=self.csb_id,
            tgk=self._tgk,
            rand=self.rand,
            prf=self.transport.prf,
            crypto_sessions=sessions,
            authenticated=authenticated,
            header=header,
            policies=tuple(self.policies),
            initiator_id=self.id_i.data if self.id_i else None,
            responder_id=self.id_r.data if self.id_r else None,
            key_validity=self.key_validity,
            extras={
                "key_type": self.key_type if self.new_key else (self.update.extras.get("key_type", 0)
                                                                if self.update else 0),
                "transported_salt": (self._tgk_salt is not None) if self.new_key else bool(
                    self.update.extras.get("transported_salt") if self.update else False),
                "update": self.update is not None,
                "null_security": self.transport.encr_alg == EncrAlg.NULL or self.transport.mac_alg == MacAlg.NULL,
            },
        )


    # -- the response -----------------------------------------------------------------------

    def _on_response(self, msg: Message, now: float) -> ExchangeResult:
        assert self.header is not None and self.timestamp is not None
        if msg.csb_id != self.csb_id:
            raise AuthenticationError("R_MESSAGE CSB ID does not match the I_MESSAGE")
        t = msg.find(TimestampPayload)
        if t is None or t.ts_value != self.timestamp.ts_value:
            raise AuthenticationError("R_MESSAGE must carry the Initiator's timestamp (RFC 3830 §5.2)")
        v = msg.find(VerificationPayload)
        if v is None:
            raise AuthenticationError("R_MESSAGE has no V payload")
        if v.auth_alg != self.transport.mac_alg:
            raise UnsupportedMACError(f"V uses MAC alg {v.auth_alg}, the I_MESSAGE used {self.transport.mac_alg}")
        keys = self.transport.keys(self._psk, self.csb_id, self.rand)
        raw = msg.raw_bytes()
        n = len(v.ver_data)
        trailer = self._trailer(msg)
        kemac_crypto.verify_mac(self.transport.mac_alg, keys.auth_key, raw[: len(raw) - n] + trailer, v.ver_data)
        merged = merge_responder_ssrcs(self.header, msg.header)
        self.state = State.DONE
        id_r = msg.find(IdPayload)
        self._result = self._make_result(merged, authenticated=self.transport.mac_alg != MacAlg.NULL)
        if id_r is not None and self._result.responder_id is None:
            self._result = _with_ids(self._result, responder_id=id_r.data)
        return self._result

    def _trailer(self, msg: Message) -> bytes:
        assert self.timestamp is not None
        if self.verification_coverage == "timestamp-only":
            return self.timestamp.ts_value
        return verification_mac_input(b"", id_data(self.id_i), id_data(self.id_r), self.timestamp.ts_value)


def _rand_for(msg: Message, rand_p: RandPayload | None, previous: ExchangeResult | None) -> bytes:
    """The RAND keys derive from: the message's, or for an update message the bundle's (§4.5)."""
    if rand_p is not None:
        if previous is not None and rand_p.rand != previous.rand:
            raise UnspecifiedError("an update message must not carry a new RAND (RFC 3830 §4.5)")
        return rand_p.rand
    if previous is None:
        raise UnspecifiedError(
            f"message has no RAND and CSB {msg.csb_id:08x} is not a known bundle to update (RFC 3830 §4.5)"
        )
    if previous.csb_id != msg.csb_id:
        raise UnspecifiedError("update message CSB ID does not match the bundle")
    return previous.rand


def _updated_sessions(
    previous: ExchangeResult, header: CommonHeader, policies: Sequence[SecurityPolicyPayload]
) -> tuple[CryptoSessionKeys, ...]:
    """Keys of an update that carried no new TGK: the bundle's TGK, with the updated map and policies."""
    salt = None
    if previous.crypto_sessions and previous.extras.get("transported_salt"):
        salt = previous.crypto_sessions[0].master_salt
    return session_keys(previous.tgk, int(previous.extras.get("key_type", KeyDataType.TGK)), header,
                        previous.rand, policies, salt)


def kemac_authenticates(msg: Message) -> bool:
    k = msg.find(KemacPayload)
    return k is not None and k.mac_alg != MacAlg.NULL


def _with_ids(r: ExchangeResult, **kw: bytes | None) -> ExchangeResult:
    return replace(r, **kw)  # type: ignore[arg-type]


def session_keys(
    key: bytes,
    key_type: int,
    header: CommonHeader,
    rand: bytes,
    policies: Sequence[SecurityPolicyPayload],
    salt: bytes | None,
    cs_ids: Sequence[int] | None = None,
) -> tuple[CryptoSessionKeys, ...]:
    """Per-CS SRTP keys: derived from a TGK (§4.1.3), or a transported TEK used as the master key."""
    if key_type in (KeyDataType.TEK, KeyDataType.TEK_SALT):
        derived = derive_crypto_sessions(key, header, rand, policies, salt=salt, cs_ids=cs_ids)
        return tuple(
            CryptoSessionKeys(cs.cs_id, cs.ssrc, cs.roc, cs.policy, key, salt if salt is not None else cs.master_salt,
                              cs.spi)
            for cs in derived
        )
    return derive_crypto_sessions(key, header, rand, policies, salt=salt, cs_ids=cs_ids)


@dataclass
class _Pending:
    """What the Responder keeps between verifying and answering."""

    msg: Message
    keys: prf_crypto.TransportKeys | None = field(default=None, repr=False)


class PskResponder(Responder):
    """The PSK Responder: checks T and the replay cache, verifies the MAC, decrypts, derives keys, answers.

    ``psk`` is the key, or a lookup ``(IDi, IDr) -> key | None`` for many peers.
    ``own_ssrcs`` fill the Initiator's SSRC-0 placeholders (RFC 3830 §6.1.1).
    """

    MODE: ClassVar[str] = "psk"
    HANDLERS: ClassVar[dict[tuple[State, int], str]] = {(State.START, DataType.PSK_INIT): "_on_init"}

    def __init__(
        self,
        psk: bytes | PskLookup,
        *,
        own_ssrcs: Sequence[int] = (),
        id_r: IdPayload | None = None,
        replay_cache: ReplayStore | None = None,
        clock_skew: float = DEFAULT_CLOCK_SKEW,
        allow_null_security: bool = False,
        verification_coverage: str = "rfc",
        bundles: Mapping[int, ExchangeResult] | Callable[[int], ExchangeResult | None] | None = None,
        rng: Rng = os.urandom,
    ) -> None:
        """``bundles`` finds the established bundle by CSB ID for update messages (RFC 3830 §4.5),
        e.g. a dict of earlier results; without it only initial exchanges are accepted.

        An I_MESSAGE with NULL KEMAC encryption or MAC is refused with Error no 4 or 3
        (:func:`refuse_null_security`) unless ``allow_null_security`` says the carrier
        is secure; then the result has ``extras["null_security"]`` set, and a NULL-MAC
        message (``authenticated=False``) never enters the replay cache or moves a
        per-peer counter: anyone could have sent it (RFC 3830 §5.3)."""
        super().__init__(replay_cache=replay_cache, clock_skew=clock_skew, rng=rng)
        if verification_coverage not in VERIFICATION_COVERAGE:
            raise ValueError(f"verification_coverage must be one of {VERIFICATION_COVERAGE}")
        self._bundles = bundles
        self._psk = psk
        self.own_ssrcs = list(own_ssrcs)
        self.id_r = id_r
        self.allow_null_security = allow_null_security
        self.verification_coverage = verification_coverage
        self.result: ExchangeResult | None = None

    def _bundle(self, csb_id: int) -> ExchangeResult | None:
        if self._bundles is None:
            return None
        if callable(self._bundles):
            return self._bundles(csb_id)
        return self._bundles.get(csb_id)

    def _lookup_psk(self, id_i: IdPayload | None, id_r: IdPayload | None) -> bytes:
        if isinstance(self._psk, bytes | bytearray):
            return bytes(self._psk)
        key = self._psk(id_i, id_r)
        if key is None:
            raise AuthenticationError("no pre-shared key for this Initiator")
        return key

    def _on_init(self, msg: Message, now: float) -> ResponderOutcome:
        t: TimestampPayload | None = None
        rand_p: RandPayload | None = None
        kemac: KemacPayload | None = None
        ids: list[IdPayload] = []
        sps: list[SecurityPolicyPayload] = []
        for p in msg.payloads:  # one pass (RFC 3830 §3.1 layout: T, RAND, [IDi], [IDr], {SP}, KEMAC)
            cls = type(p)
            if cls is TimestampPayload and t is None:
                t = p  # type: ignore[assignment]
            elif cls is RandPayload and rand_p is None:
                rand_p = p  # type: ignore[assignment]
            elif cls is IdPayload:
                ids.append(p)  # type: ignore[arg-type]
            elif cls is SecurityPolicyPayload:
                sps.append(p)  # type: ignore[arg-type]
            elif cls is KemacPayload:
                kemac = p  # type: ignore[assignment]
        id_i = ids[0] if ids else None
        id_r = ids[1] if len(ids) > 1 else None
        hdr = msg.header
        verified_keys: list[prf_crypto.TransportKeys] = []
        try:
            if t is None or kemac is None:
                raise UnspecifiedError("PSK I_MESSAGE needs T and KEMAC (RFC 3830 §3.1)")
            if msg.payloads[-1] is not kemac:
                raise UnspecifiedError("KEMAC must be the last payload of a PSK I_MESSAGE")
            check_algorithms(int(kemac.encr_alg), int(kemac.mac_alg), int(hdr.prf))
            null_security = kemac.encr_alg == EncrAlg.NULL or kemac.mac_alg == MacAlg.NULL
            if null_security and not self.allow_null_security:
                refuse_null_security(int(kemac.encr_alg), int(kemac.mac_alg))
            admission = self.admit(msg, t, now, id_data(id_i))
            # A NULL-MAC message proves nothing about its sender: it never enters the replay cache
            # nor moves the per-peer counter (RFC 3830 §5.3), or a forgery could lock the peer out.
            authenticates = kemac.mac_alg != MacAlg.NULL
            previous = self._bundle(hdr.csb_id) if rand_p is None else None
            rand = _rand_for(msg, rand_p, previous)

            def remember(keys: prf_crypto.TransportKeys) -> None:
                verified_keys.append(keys)
                if authenticates:
                    self.remember(admission)

            opened = open_kemac(msg, self._lookup_psk(id_i, id_r), rand, verified=remember, found=(t, kemac))
            header = fill_ssrcs(hdr, self.own_ssrcs) if self.own_ssrcs else hdr
            policies = tuple(sps)
            if not policies and previous is not None:
                policies = previous.policies
            if opened.key:
                sessions = session_keys(opened.key, opened.key_type, header, rand, policies, opened.salt)
                key, key_type, transported_salt = opened.key, opened.key_type, opened.salt is not None
            else:
                if previous is None:
                    raise UnspecifiedError("KEMAC carries no Key data sub-payload")
                sessions = _updated_sessions(previous, header, policies)
                key = previous.tgk
                key_type = int(previous.extras.get("key_type", KeyDataType.TGK))
                transported_salt = bool(previous.extras.get("transported_salt"))
        except MikeyProtocolError as exc:
            auth_keys = verified_keys[0] if verified_keys and kemac_authenticates(msg) else None
            self._attach_error(exc, msg, t, auth_keys, id_i, id_r)
            raise
        keys = opened.keys
        kv, authenticated = opened.key_validity, opened.authenticated
        result = ExchangeResult(
            mode=self.MODE,
            csb_id=hdr.csb_id,
            tgk=key,
            rand=rand,
            prf=int(hdr.prf),
            crypto_sessions=sessions,
            authenticated=authenticated,
            header=header,
            policies=policies,
            initiator_id=id_i.data if id_i else None,
            responder_id=id_r.data if id_r else (self.id_r.data if self.id_r else None),
            key_validity=kv,
            extras={"key_type": key_type, "transported_salt": transported_salt, "update": rand_p is None,
                    "null_security": null_security},
        )
        response = None
        if hdr.v:
            response = self._verification_message(header, t, kemac, keys, id_i, id_r)
        self.result = result
        self.state = State.DONE
        return ResponderOutcome(result, response)

    def _verification_message(
        self,
        header: CommonHeader,
        t: TimestampPayload,
        kemac: KemacPayload,
        keys: prf_crypto.TransportKeys,
        id_i: IdPayload | None,
        id_r: IdPayload | None,
    ) -> bytes:
        """R_MESSAGE = HDR, T, [IDr], V with the Initiator's T (RFC 3830 §3.1, §5.2)."""
        hdr = CommonHeader(
            DataType.PSK_RESP, header.csb_id, header.cs_id_map, header.cs_id_map_type, False, header.prf,
            header.version, header.cs_count,
        )
        payloads: list[Payload] = [t]
        if self.id_r is not None:
            payloads.append(self.id_r)
        mac_alg = int(kemac.mac_alg)
        n = MAC_LENGTHS[mac_alg]
        payloads.append(VerificationPayload(mac_alg, bytes(n)))
        draft = Message(hdr, tuple(payloads)).encode()
        if self.verification_coverage == "timestamp-only":
            trailer = t.ts_value
        else:
            trailer = verification_mac_input(b"", id_data(id_i), id_data(id_r), t.ts_value)
        mac = kemac_crypto.compute_mac(mac_alg, keys.auth_key, draft[: len(draft) - n] + trailer)
        return draft[: len(draft) - n] + mac

    def _attach_error(
        self,
        exc: MikeyProtocolError,
        msg: Message,
        t: TimestampPayload | None,
        keys: prf_crypto.TransportKeys | None,
        id_i: IdPayload | None,
        id_r: IdPayload | None,
    ) -> None:
        if exc.err_no is None:
            return
        ts = t if t is not None else TimestampPayload.ntp_utc(0)
        kemac = msg.find(KemacPayload)
        mac = None
        if keys is not None and kemac is not None and kemac.mac_alg in MAC_LENGTHS:
            trailer = verification_mac_input(b"", id_data(id_i), id_data(id_r), ts.ts_value)
            mac = (int(kemac.mac_alg), keys.auth_key, trailer)
        prf = int(msg.header.prf) if msg.header.prf in (0, 1) else 0
        exc.error_message = build_error_message(msg.csb_id, [exc.err_no], ts, prf=prf, mac=mac)
