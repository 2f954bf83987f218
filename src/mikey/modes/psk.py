"""Pre-shared key mode (RFC 3830 §3.1, §5).

I_MESSAGE = HDR, T, RAND, [IDi], [IDr], {SP}, KEMAC  (KEMAC = E(encr_key, {TGK}) || MAC)
R_MESSAGE = HDR, T, [IDr], V                          (only when the Initiator sets V)

The encryption, authentication and salt keys come from the PSK, the CSB ID and
RAND (§4.1.4); the MAC covers the whole message but the MAC field (§5.2); the
verification MAC covers the R_MESSAGE followed by IDi || IDr || T (§5.2).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, ClassVar

from ..constants import DataType, EncrAlg, KeyDataType, MacAlg
from ..errors import StateError, UnsupportedDataTypeError
from ..replay import DEFAULT_CLOCK_SKEW
from ..wire import (
    CommonHeader,
    IdPayload,
    KeyDataPayload,
    Message,
    Payload,
    RandPayload,
    SecurityPolicyPayload,
    TimestampPayload,
    encode_sub_payloads,
)
from .base import (
    IdResponderKeywords,
    Initiator,
    Responder,
    State,
    build_header,
    default_srtp_policy,
    merge_responder_ssrcs,
    random_csb_id,
)
from .keytransport import (
    COMPAT_BY_MODE,
    VERIFICATION_COVERAGE,
    BundleLookup,
    EnvelopeKeyCache,
    KeyTransport,
    PskLookup,
    TransportKeywords,
    TransportOptions,
    check_algorithms,
    check_coverage,
    check_verification,
    default_tgk_length,
    encrypt_key_data,
    kemac_message,
    open_kemac,
    psk_payloads,
    rand_for,
    receive_psk_message,
    refuse_null_security,
    session_keys,
    specs_from_header,
    updated_sessions,
    verification_trailer,
)
from .results import CryptoSessionSpec, ExchangeResult, ResponderOutcome
from .signing import check_compat

if TYPE_CHECKING:
    from typing import Unpack


__all__ = ["PskInitiator", "PskResponder", "PskLookup", "COMPAT_OPTIONS", "VERIFICATION_COVERAGE"]

#: The deployed variants PSK accepts (see :mod:`mikey.modes.keytransport`).
COMPAT_OPTIONS = COMPAT_BY_MODE["psk"]


class PskInitiator(Initiator):
    """The PSK Initiator: builds the I_MESSAGE and, when V is set, checks the R_MESSAGE.

    The offer and key keywords are :class:`~mikey.modes.keytransport.TransportOptions`.
    ``compat`` may name ``"fresh-response-timestamp"``: an R_MESSAGE with the
    Responder's own clock in T (V still over the Initiator's T) is then accepted.
    """

    MODE: ClassVar[str] = "psk"

    def __init__(
        self,
        psk: bytes,
        *,
        extra_payloads: Sequence[Payload] = (),
        update: ExchangeResult | None = None,
        new_key: bool = True,
        allow_null_security: bool = False,
        **options: Unpack[TransportKeywords],
    ) -> None:
        """``update`` makes this an update message for that exchange's bundle (RFC 3830 §4.5):
        same CSB ID, no RAND (the initial RAND keeps being used), and a fresh TGK
        unless ``new_key`` is False (then the bundle keeps its keys and the
        message only updates crypto sessions and policies).

        NULL ``encr_alg`` or ``mac_alg`` is refused (:func:`refuse_null_security`)
        unless ``allow_null_security`` says the carrier itself is secure."""
        o = TransportOptions(**options)
        rng = o.rng or os.urandom
        super().__init__(rng=rng,
                         clock_skew=DEFAULT_CLOCK_SKEW if o.clock_skew is None else o.clock_skew)
        self.transport = o.transport()
        if not allow_null_security:
            refuse_null_security(o.encr_alg, o.mac_alg)
        self.compat = check_compat(o.compat, COMPAT_OPTIONS) if o.compat else frozenset()
        self.update = update
        self.new_key = new_key or update is None
        csb_id, rand, tgk = o.csb_id, o.rand, o.tgk
        crypto_sessions, policies = o.crypto_sessions, o.policies
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
        self.verification_coverage = check_coverage(o.verification_coverage)
        self._psk = psk
        self.specs = list(crypto_sessions) if crypto_sessions else [CryptoSessionSpec()]
        self.policies = list(policies) if policies is not None else [default_srtp_policy(0)]
        self.csb_id = csb_id if csb_id is not None else random_csb_id(rng)
        self.key_type = o.key_type
        self._tgk = tgk if tgk is not None else rng(default_tgk_length(o.encr_alg, o.key_type))
        self._tgk_salt = o.tgk_salt
        self.rand = rand if rand is not None else rng(16)
        self.key_validity = o.key_validity
        self.v = o.v
        self.id_i = o.id_i
        self.id_r = o.id_r
        self.cs_id_map_type = o.cs_id_map_type
        self.extra_payloads = list(extra_payloads)
        self.header: CommonHeader | None = None
        self.timestamp: TimestampPayload | None = None
        self.i_message: bytes | None = None
        self._result: ExchangeResult | None = None

    def __repr__(self) -> str:
        return f"PskInitiator(csb_id={self.csb_id:08x}, state={self.state.value})"

    @classmethod
    def from_envelope_key(
        cls, cache: EnvelopeKeyCache, peer: bytes, csb_id: int, now: float, /, **options: Unpack[TransportKeywords]
    ) -> PskInitiator:
        """A PSK-mode Initiator for an update of *csb_id*, keyed with the envelope key *cache*
        holds for *peer* (RFC 3830 §3.2, §4.5).

        Same CSB ID; the initial exchange's RAND is reused for key derivation (§4.5: no
        new RAND) and sent again.  Raises :class:`~mikey.errors.StateError` without an entry.
        """
        entry = cache.require(peer, csb_id, now)
        options.setdefault("rand", entry.rand)
        options["csb_id"] = csb_id
        return cls(entry.key, **options)

    @classmethod
    def from_i_message(
        cls,
        psk: bytes,
        i_message: bytes,
        *,
        verification_coverage: str = "rfc",
        update: ExchangeResult | None = None,
        allow_null_security: bool = False,
        compat: Iterable[str] = (),
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
        transport = KeyTransport(int(kemac.encr_alg), int(kemac.mac_alg), int(msg.header.prf))
        check_algorithms(*transport)
        if not allow_null_security:
            refuse_null_security(transport.encr_alg, transport.mac_alg)
        rand = rand_for(msg, rand_p, update)
        opened = open_kemac(msg, transport, transport.keys(psk, msg.csb_id, rand), t, kemac=kemac)
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
            encr_alg=transport.encr_alg,
            mac_alg=transport.mac_alg,
            prf=transport.prf,
            v=hdr.v,
            id_i=ids[0] if ids else None,
            id_r=ids[1] if len(ids) > 1 else None,
            cs_id_map_type=int(hdr.cs_id_map_type),
            verification_coverage=verification_coverage,
            compat=compat,
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

    def _build(self, now: float) -> bytes:
        """The I_MESSAGE (RFC 3830 §3.1): HDR, T, RAND, [IDi], [IDr], {SP}, KEMAC."""
        t = self.transport
        self.header = build_header(
            DataType.PSK_INIT, self.csb_id, self.specs, map_type=self.cs_id_map_type, v=self.v, prf=t.prf
        )
        self.timestamp = TimestampPayload.ntp_utc(now)
        keys = t.keys(self._psk, self.csb_id, self.rand)
        encr = encrypt_key_data(t, keys, self.csb_id, self.timestamp, self._key_data())
        payloads: list[Payload] = [self.timestamp]
        if self.update is None:  # an update message must not carry a RAND (§4.5)
            payloads.append(RandPayload(self.rand))
        if self.id_i is not None:
            payloads.append(self.id_i)
        if self.id_r is not None:
            payloads.append(self.id_r)
        payloads += self.extra_payloads
        payloads += self.policies
        self.i_message = kemac_message(self.header, payloads, t, keys, encr)
        self.state = State.WAIT_RESPONSE if self.v else State.DONE
        self._result = self._make_result(self.header, authenticated=False)
        return self.i_message

    def _make_result(self, header: CommonHeader, *, authenticated: bool) -> ExchangeResult:
        if self.new_key:
            salt = self._tgk_salt if self.key_type in (KeyDataType.TGK_SALT, KeyDataType.TEK_SALT) else None
            sessions = session_keys(self._tgk, self.key_type, header, self.rand, self.policies, salt)
            key_type, transported_salt = self.key_type, self._tgk_salt is not None
        else:
            if self.update is None:
                raise StateError("a message without a new key must update a bundle")
            sessions = updated_sessions(self.update, header, self.policies)
            key_type = int(self.update.extras.get("key_type", 0))
            transported_salt = bool(self.update.extras.get("transported_salt"))
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
                "key_type": key_type,
                "transported_salt": transported_salt,
                "update": self.update is not None,
                "null_security": self.transport.encr_alg == EncrAlg.NULL or self.transport.mac_alg == MacAlg.NULL,
            },
        )

    # -- the response -----------------------------------------------------------------------

    def _on_response(self, msg: Message, now: float) -> ExchangeResult:
        """R_MESSAGE = HDR, T, [IDr], V (RFC 3830 §3.1, §5.2)."""
        header, timestamp = self.header, self.timestamp
        if header is None or timestamp is None:
            raise StateError("no I_MESSAGE has been built")
        keys = self.transport.keys(self._psk, self.csb_id, self.rand)
        trailer = verification_trailer(self.verification_coverage, self.id_i, self.id_r, timestamp.ts_value)
        check_verification(msg, timestamp, self.transport, keys, trailer, self.compat, now, self.clock_skew,
                           self.csb_id)
        merged = merge_responder_ssrcs(header, msg.header)
        self.state = State.DONE
        id_r = msg.find(IdPayload)
        result = self._make_result(merged, authenticated=self.transport.mac_alg != MacAlg.NULL)
        if id_r is not None and result.responder_id is None:
            result = replace(result, responder_id=id_r.data)
        self._result = result
        return result

    HANDLERS = {(State.WAIT_RESPONSE, DataType.PSK_RESP): _on_response}


class PskResponder(Responder):
    """The PSK Responder: checks T and the replay cache, verifies the MAC, decrypts, derives keys, answers.

    ``psk`` is the key, or a lookup ``(IDi, IDr) -> key | None`` for many peers.
    The shared keywords (``own_ssrcs``, ``id_r``, ``replay_cache``, ``clock_skew``, ``rng``)
    are :class:`~mikey.modes.base.IdResponderKeywords`.
    """

    MODE: ClassVar[str] = "psk"

    def __init__(
        self,
        psk: bytes | PskLookup,
        *,
        allow_null_security: bool = False,
        verification_coverage: str = "rfc",
        bundles: BundleLookup | None = None,
        **options: Unpack[IdResponderKeywords],
    ) -> None:
        """``bundles`` finds the established bundle by CSB ID for update messages (RFC 3830 §4.5),
        e.g. a dict of earlier results; without it only initial exchanges are accepted.

        An I_MESSAGE with NULL KEMAC encryption or MAC is refused with Error no 4 or 3
        (:func:`~mikey.modes.keytransport.refuse_null_security`) unless ``allow_null_security``
        says the carrier is secure; then the result has ``extras["null_security"]`` set, and
        a NULL-MAC message (``authenticated=False``) never enters the replay cache or moves a
        per-peer counter: anyone could have sent it (RFC 3830 §5.3)."""
        self._init_responder(options)
        self.verification_coverage = check_coverage(verification_coverage)
        self._bundles = bundles
        self._psk = psk
        self.allow_null_security = allow_null_security

    def _on_init(self, msg: Message, now: float) -> ResponderOutcome:
        outcome = receive_psk_message(
            self, msg, now, self._psk, own_ssrcs=self.own_ssrcs, id_r=self.id_r,
            allow_null_security=self.allow_null_security, verification_coverage=self.verification_coverage,
            bundles=self._bundles,
        )
        self.result = outcome.result
        self.state = State.DONE
        return outcome

    HANDLERS = {(State.START, DataType.PSK_INIT): _on_init}
