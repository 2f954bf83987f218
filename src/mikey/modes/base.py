"""What every key-exchange mode shares: state machine, results, timestamps, key derivation, Error messages.

Modes are sans-I/O: they take bytes and the current time (Unix seconds) and
return bytes and results.  They never open sockets, read files or read the
clock.  The replay cache and allowable clock skew are injected (RFC 3830 §5.4).

Thread safety: one side object handles one exchange, and is not shared.  A
Responder takes exactly one I_MESSAGE; a second ``receive`` raises
:class:`~mikey.errors.StateError` -- at once, even while the first is still
being processed in another thread -- so a server makes a Responder per
I_MESSAGE (:class:`ResponderFactory`).  What those Responders share is the
replay cache (:class:`~mikey.replay.ReplayCache` is thread-safe and its
check-and-insert is atomic: concurrent copies of one I_MESSAGE yield keys at
most once) and their credentials, validators and caches (read-only or locked).
"""

from __future__ import annotations

import copy
import math
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar, Generic, NamedTuple, TypedDict, TypeVar, cast

from ..constants import (
    MAC_LENGTHS,
    PRF,
    CSIdMapType,
    DataType,
    ErrorNo,
    MacAlg,
    ProtType,
    SRTPEncrAlg,
    SRTPParam,
    TSType,
)
from ..crypto import kemac as kemac_crypto
from ..crypto import prf as prf_crypto
from ..errors import (
    InvalidTimestampError,
    MikeyDecodeError,
    MikeyError,
    PeerError,
    StateError,
    UnspecifiedError,
    UnsupportedDataTypeError,
    UnsupportedPRFError,
    UnsupportedSPTypeError,
)
from ..replay import DEFAULT_CLOCK_SKEW, ReplayCache, ReplayStore
from ..wire import (
    CommonHeader,
    ErrorPayload,
    GenericIdEntry,
    IdPayload,
    IdrPayload,
    Message,
    Payload,
    SecurityPolicyPayload,
    SrtpIdEntry,
    TimestampPayload,
    VerificationPayload,
)
from ..wire.policy import check_security_policies, policy_key_lengths
from .results import CryptoSessionKeys, CryptoSessionSpec, ExchangeResult, ResponderOutcome

if TYPE_CHECKING:
    from typing import Self, Unpack

__all__ = [
    "State",
    "Rng",
    "CryptoSessionSpec",
    "CryptoSessionKeys",
    "ExchangeResult",
    "ResponderOutcome",
    "Side",
    "Initiator",
    "Responder",
    "ResponderFactory",
    "SideKeywords",
    "ResponderKeywords",
    "IdResponderKeywords",
    "OfferKeywords",
    "InitiatorKeywords",
    "check_keywords",
    "default_srtp_policy",
    "derive_crypto_sessions",
    "check_timestamp",
    "build_header",
    "fill_ssrcs",
    "build_error_message",
    "peer_error",
    "random_csb_id",
]

Rng = Callable[[int], bytes]


# --- the constructor keywords the modes share (declared once; each mode takes exactly those it uses) ---


def check_keywords(options: Mapping[str, object], accepted: Any) -> None:
    """Raise TypeError for a keyword the mode's TypedDict *accepted* does not declare, as a plain
    signature would: a shared keyword a mode does not use is refused, never silently ignored."""
    if options.keys() <= accepted.__optional_keys__:  # the common case, without building a set
        return
    extra = options.keys() - accepted.__optional_keys__
    raise TypeError(f"unexpected keyword argument(s): {', '.join(sorted(extra))}")


class SideKeywords(TypedDict, total=False):
    """Every side: ``rng``, the random source (default ``os.urandom``)."""

    rng: Rng


class ResponderKeywords(SideKeywords, total=False):
    """Every Responder: ``replay_cache`` (RFC 3830 §5.4; default a fresh in-memory cache),
    ``clock_skew`` (seconds, §5.4) and ``own_ssrcs`` (fill the Initiator's SSRC-0 placeholders, §6.1.1)."""

    replay_cache: ReplayStore | None
    clock_skew: float
    own_ssrcs: Sequence[int]


class IdResponderKeywords(ResponderKeywords, total=False):
    """A Responder with an IDr of its own (PSK, PK, RSA-R, DH, DH-HMAC): ``id_r``."""

    id_r: IdPayload | None


class OfferKeywords(SideKeywords, total=False):
    """What an Initiator offers: ``crypto_sessions`` (default one SRTP stream, SSRC filled in by the
    Responder), ``policies`` (default the RFC 3830 SRTP policy), ``csb_id`` and ``rand`` (random when
    None) and the key-derivation ``prf`` (RFC 3830 §3, §6.1)."""

    crypto_sessions: Sequence[CryptoSessionSpec] | None
    policies: Sequence[SecurityPolicyPayload] | None
    csb_id: int | None
    rand: bytes | None
    prf: int


class InitiatorKeywords(OfferKeywords, total=False):
    """An Initiator that names the parties and takes a response: ``id_i``/``id_r``, ``cs_id_map_type``,
    ``clock_skew`` (for a fresh response T) and ``compat`` (the mode's deployed variants)."""

    id_i: IdPayload | None
    id_r: IdPayload | None
    cs_id_map_type: int
    clock_skew: float
    compat: Iterable[str]


class State(Enum):
    """Where one side of an exchange is (DESIGN: one state per side)."""

    START = "start"
    WAIT_RESPONSE = "wait-response"
    DONE = "done"
    FAILED = "failed"


def random_csb_id(rng: Rng) -> int:
    return int.from_bytes(rng(4), "big")


def default_srtp_policy(policy_no: int = 0, *, tag_len: int = 10) -> SecurityPolicyPayload:
    """The RFC 3830 §6.10.1 defaults written out: AES-CM-128, HMAC-SHA-1, 80-bit tag (or 32 with tag_len=4)."""
    return SecurityPolicyPayload.srtp(
        policy_no,
        {
            SRTPParam.ENCR_ALG: SRTPEncrAlg.AES_CM,
            SRTPParam.SESSION_ENCR_KEY_LEN: 16,
            SRTPParam.AUTH_ALG: 1,
            SRTPParam.SESSION_AUTH_KEY_LEN: 20,
            SRTPParam.SESSION_SALT_KEY_LEN: 14,
            SRTPParam.SRTP_PRF: 0,
            SRTPParam.KEY_DERIVATION_RATE: 0,
            SRTPParam.SRTP_ENCRYPTION: 1,
            SRTPParam.SRTCP_ENCRYPTION: 1,
            SRTPParam.SRTP_AUTHENTICATION: 1,
            SRTPParam.AUTH_TAG_LEN: tag_len,
        },
    )


# --- key derivation ------------------------------------------------------------------------


def srtp_key_lengths(policy: SecurityPolicyPayload | None) -> tuple[int, int]:
    """SRTP master key and salt lengths from an SP payload (RFC 3830 §6.10.1, RFC 6188, RFC 7714 §15).

    The policy is checked against its registry first (:mod:`mikey.wire.policy`): a length
    the registry does not allow raises :class:`~mikey.errors.UnsupportedSPParamsError`
    (Error no 10), an unknown Prot type :class:`~mikey.errors.UnsupportedSPTypeError` (9).
    """
    return policy_key_lengths(policy)


def derive_crypto_sessions(
    tgk: bytes,
    header: CommonHeader,
    rand: bytes,
    policies: Sequence[SecurityPolicyPayload],
    *,
    salt: bytes | None = None,
    cs_ids: Sequence[int] | None = None,
    csb_id: int | None = None,
) -> tuple[CryptoSessionKeys, ...]:
    """SRTP master key and salt for each crypto session, from the TGK (RFC 3830 §4.1.3).

    A salt carried in the Key data sub-payload is used as the master salt when
    present; otherwise the salt is derived with constant 0x39A2C14B.
    ``cs_ids`` names the crypto sessions when the CS ID map lists none (Empty map).
    ``csb_id`` overrides the header's CSB ID in the label (3GPP GUK-ID).
    """
    if header.prf not in (PRF.MIKEY_1, PRF.PRF_HMAC_SHA_256):
        raise UnsupportedPRFError(f"PRF func {header.prf} is not supported")
    prf_func = int(header.prf)
    label_csb = header.csb_id if csb_id is None else csb_id
    entries: list[tuple[int, int | None, int, int | None, bytes]] = []  # cs_id, ssrc, roc, policy_no, spi
    if header.cs_id_map_type == CSIdMapType.SRTP_ID:
        for i, e in enumerate(header.cs_id_map, 1):
            if not isinstance(e, SrtpIdEntry):
                raise UnspecifiedError("an SRTP-ID map holds a Generic-ID entry")
            entries.append((i, e.ssrc, e.roc, e.policy_no, b""))
    elif header.cs_id_map_type == CSIdMapType.GENERIC_ID:
        for g in header.cs_id_map:
            if not isinstance(g, GenericIdEntry):
                raise UnspecifiedError("a Generic-ID map holds an SRTP-ID entry")
            if g.prot_type not in (ProtType.SRTP, ProtType.TESLA):
                raise UnsupportedSPTypeError(f"crypto session {g.cs_id} has Prot type {g.prot_type}: not supported")
            entries.append((g.cs_id, g.ssrc, g.roc or 0, g.policies[0] if g.policies else None, g.spi))
    if cs_ids:
        known = {e[0] for e in entries}
        for c in cs_ids:
            if c not in known:
                entries.append((c, None, 0, None, b""))
    if not entries and header.n_cs:
        entries = [(i, None, 0, None, b"") for i in range(1, header.n_cs + 1)]
    by_no = {p.policy_no: p for p in reversed(policies)}  # the first SP with a Policy no wins
    first = policies[0] if policies else None
    chosen = [by_no.get(e[3], first) if e[3] is not None else first for e in entries]
    lengths = [srtp_key_lengths(p) for p in chosen]
    if salt is not None:
        derived = prf_crypto.derive_tek_and_salt(
            tgk, [e[0] for e in entries], label_csb, rand, [(k, 0) for k, _ in lengths], prf_func
        )
        derived = [(k, salt[:sl] if len(salt) >= sl else salt) for (k, _), (_, sl) in zip(derived, lengths, strict=True)]
    else:
        derived = prf_crypto.derive_tek_and_salt(tgk, [e[0] for e in entries], label_csb, rand, lengths, prf_func)
    out = [
        CryptoSessionKeys(cs_id, ssrc, roc, policy, key, master_salt, spi)
        for (cs_id, ssrc, roc, _, spi), policy, (key, master_salt) in zip(entries, chosen, derived, strict=True)
    ]
    return tuple(out)


# --- headers -------------------------------------------------------------------------------


def build_header(
    data_type: int,
    csb_id: int,
    specs: Sequence[CryptoSessionSpec],
    *,
    map_type: int = CSIdMapType.SRTP_ID,
    v: bool = False,
    prf: int = PRF.MIKEY_1,
) -> CommonHeader:
    """HDR for an Initiator message from the crypto sessions it offers."""
    if map_type == CSIdMapType.SRTP_ID:
        entries: tuple[SrtpIdEntry | GenericIdEntry, ...] = tuple(
            SrtpIdEntry(s.policy_no, s.ssrc, s.roc) for s in specs
        )
        return CommonHeader(data_type, csb_id, entries, map_type, v, prf)
    if map_type == CSIdMapType.GENERIC_ID:
        entries = tuple(
            GenericIdEntry.srtp(s.cs_id if s.cs_id is not None else i, s.ssrc, roc=s.roc, policies=(s.policy_no,))
            for i, s in enumerate(specs, 1)
        )
        return CommonHeader(data_type, csb_id, entries, map_type, v, prf)
    return CommonHeader(data_type, csb_id, (), map_type, v, prf, cs_count=len(specs))


def fill_ssrcs(header: CommonHeader, own_ssrcs: Sequence[int]) -> CommonHeader:
    """Fill SSRC-0 placeholders with the Responder's SSRCs, in order (RFC 3830 §6.1.1)."""
    pending = list(own_ssrcs)
    if not pending:
        return header
    new: list[SrtpIdEntry | GenericIdEntry] = []
    for e in header.cs_id_map:
        if pending and isinstance(e, SrtpIdEntry) and e.ssrc == 0:
            new.append(SrtpIdEntry(e.policy_no, pending.pop(0), e.roc))
        elif pending and isinstance(e, GenericIdEntry) and (e.ssrc or 0) == 0 and e.prot_type == ProtType.SRTP:
            data = pending.pop(0).to_bytes(4, "big") + e.session_data[4:]
            new.append(GenericIdEntry(e.cs_id, e.prot_type, e.policies, data, e.spi, e.s_flag))
        else:
            new.append(e)
    return CommonHeader(
        header.data_type, header.csb_id, tuple(new), header.cs_id_map_type, header.v, header.prf,
        header.version, header.cs_count,
    )


def merge_responder_ssrcs(mine: CommonHeader, theirs: CommonHeader) -> CommonHeader:
    """The Initiator's map with SSRC placeholders replaced by what the Responder filled in."""
    if len(mine.cs_id_map) != len(theirs.cs_id_map):
        return mine
    new: list[SrtpIdEntry | GenericIdEntry] = []
    for a, b in zip(mine.cs_id_map, theirs.cs_id_map, strict=True):
        if isinstance(a, SrtpIdEntry) and isinstance(b, SrtpIdEntry) and a.ssrc == 0:
            new.append(SrtpIdEntry(a.policy_no, b.ssrc, a.roc))
        elif isinstance(a, GenericIdEntry) and isinstance(b, GenericIdEntry) and (a.ssrc or 0) == 0:
            new.append(b)
        else:
            new.append(a)
    return CommonHeader(
        mine.data_type, mine.csb_id, tuple(new), mine.cs_id_map_type, mine.v, mine.prf, mine.version, mine.cs_count
    )


# --- timestamps ----------------------------------------------------------------------------


def check_timestamp(
    t: TimestampPayload | None,
    now: float,
    skew: float,
    replay: ReplayCache | None = None,
    peer: bytes = b"",
) -> float:
    """Check T against the allowable clock skew (RFC 3830 §5.4); COUNTER must increase per peer.

    Returns until when the message belongs in the replay cache (its time plus the skew).
    A ``now`` or ``skew`` that is not a finite number is the caller's mistake, not the
    peer's: it raises :class:`StateError` (no Error message is sent), since NaN would make
    every skew comparison false and let any timestamp through.
    """
    if not math.isfinite(now):
        raise StateError(f"the local clock reads {now!r}; now must be a finite number of Unix seconds")
    if not math.isfinite(skew) or skew < 0:
        raise StateError(f"the allowed clock skew is {skew!r}; it must be a finite, non-negative number of seconds")
    if t is None:
        raise UnspecifiedError("message has no T payload")
    if t.ts_type == TSType.COUNTER:
        if replay is not None:
            replay.check_counter(peer, t.ts_int)
        return now + skew
    when = t.unix_time(now)
    if when is None:
        raise InvalidTimestampError(f"TS type {t.ts_type} is not supported")
    if not math.isfinite(when):
        raise InvalidTimestampError(f"the message time {when!r} is not a finite number")
    if abs(when - now) > skew:
        raise InvalidTimestampError(
            f"timestamp is {when - now:+.0f} s from the local clock; the allowed skew is {skew:.0f} s"
        )
    return when + skew


# --- Error messages (RFC 3830 §5.1.2) ------------------------------------------------------


def build_error_message(
    csb_id: int,
    err_nos: Sequence[int],
    t: TimestampPayload,
    *,
    prf: int = PRF.MIKEY_1,
    mac: tuple[int, bytes, bytes] | None = None,
) -> bytes:
    """Error message HDR, T, {ERR}, [V] (RFC 3830 §5.1.2).

    With ``mac = (mac_alg, auth_key, trailer)`` the message carries a V payload
    whose MAC covers the message (without the MAC field) followed by *trailer*.
    Errors caused by failed authentication are sent unauthenticated, as §5.1.2
    recommends.
    """
    hdr = CommonHeader(DataType.ERROR, csb_id, (), CSIdMapType.SRTP_ID, False, prf)
    payloads: list[Payload] = [t] + [ErrorPayload(e) for e in err_nos]
    if mac is None or mac[0] == MacAlg.NULL:
        return Message(hdr, tuple(payloads)).encode()
    mac_alg, key, trailer = mac
    n = MAC_LENGTHS[mac_alg]
    draft = Message(hdr, (*payloads, VerificationPayload(mac_alg, bytes(n)))).encode()
    tag = kemac_crypto.compute_mac(mac_alg, key, draft[:-n] + trailer)
    return draft[:-n] + tag


def peer_error(msg: Message) -> PeerError:
    """Turn a received Error message into a :class:`PeerError`."""
    return PeerError([int(p.error_no) for p in msg.find_all(ErrorPayload)])


def id_data(p: IdPayload | IdrPayload | None) -> bytes:
    return p.data if p is not None else b""


# --- the side base class -------------------------------------------------------------------


class Admission(NamedTuple):
    """A message that passed the timestamp and replay pre-checks, waiting to be remembered.

    ``when`` is its time (Unix seconds; the arrival time for a COUNTER timestamp,
    whose value is ``counter``); ``skew`` is the Responder's configured skew.
    """

    key: bytes
    when: float
    skew: float
    now: float
    peer: bytes
    counter: int | None


#: A message handler: ``(side, message, now) -> result``, called with the side in the state it is keyed by.
Handler = Callable[[Any, Message, float], Any]


class Side:
    """One side of an exchange: a state, the message handlers by (state, data type), and failure handling.

    Subclasses fill ``HANDLERS`` with ``{(State, data type): handler function}``, written at the
    end of the class body so the functions are the class's own (e.g. ``{(State.START,
    DataType.PSK_INIT): _on_init}``).  A :class:`~mikey.errors.MikeyError` raised while a
    message is handled moves the side to ``FAILED``; so does any error while an Initiator
    builds its message (:meth:`Initiator.create_message`).
    """

    MODE: ClassVar[str] = ""
    HANDLERS: ClassVar[Mapping[tuple[State, int], Handler]] = {}

    def __init__(
        self,
        *,
        replay_cache: ReplayStore | None = None,
        clock_skew: float = DEFAULT_CLOCK_SKEW,
        rng: Rng = os.urandom,
    ) -> None:
        self.state = State.START
        self.replay_cache: ReplayStore = replay_cache if replay_cache is not None else ReplayCache()
        self.clock_skew = clock_skew
        self.rng = rng
        self._taken = threading.Lock()  # acquired by the one message this side takes, never released

    def _dispatch(self, data: bytes, now: float) -> Any:
        if self.state in (State.DONE, State.FAILED):
            raise StateError(f"{type(self).__name__} is {self.state.value}; it takes no more messages")
        if not self._taken.acquire(blocking=False):
            raise StateError(
                f"{type(self).__name__} has already taken a message: one object handles one exchange "
                "(make one Responder per I_MESSAGE, e.g. with ResponderFactory)"
            )
        try:
            msg = Message.decode(data)
            if msg.data_type == DataType.ERROR:
                raise self._on_error_message(msg)
            handler = self.HANDLERS.get((self.state, int(msg.data_type)))
            if handler is None:
                dt = getattr(msg.data_type, "name", msg.data_type)
                raise UnsupportedDataTypeError(
                    f"{type(self).__name__} in state {self.state.value} does not take data type {dt}"
                )
            return handler(self, msg, now)
        except MikeyError as exc:
            self.state = State.FAILED
            if isinstance(exc, MikeyDecodeError) and exc.error_message is None:
                self._attach_decode_error(exc, data, now)
            raise

    def _on_error_message(self, msg: Message) -> MikeyError:
        return peer_error(msg)

    def _attach_decode_error(self, exc: MikeyError, data: bytes, now: float) -> None:
        """Responders answer undecodable messages with an unauthenticated 'Unspecified error'."""

    def admit(self, msg: Message, t: TimestampPayload | None, now: float, peer: bytes = b"") -> Admission:
        """Timestamp and replay checks before authentication (RFC 3830 §5.3, §5.4).

        The timestamp must be within the replay cache's effective skew (which
        shrinks as the cache fills); a COUNTER must exceed *peer*'s last one.
        Raises :class:`InvalidTimestampError` or :class:`ReplayError`; pass the
        result to :meth:`remember` once the message has authenticated.  These
        checks change nothing: :meth:`remember` decides.
        """
        check_security_policies(msg.find_all(SecurityPolicyPayload))
        cache = self.replay_cache
        skew = cache.effective_skew(self.clock_skew, now)
        expires = check_timestamp(t, now, skew)
        if t is None:  # check_timestamp refuses a missing T; this narrows the type
            raise UnspecifiedError("message has no T payload")
        key = cache.key_for(msg.raw_bytes())
        counter = t.ts_int if t.ts_type == TSType.COUNTER else None
        when = expires - skew if counter is None else now
        cache.check(key, when, now)
        if counter is not None:
            cache.check_counter(peer, counter)
        return Admission(key, when, self.clock_skew, now, peer, counter)

    def remember(self, admission: Admission) -> None:
        """Remember an authenticated message (only those, RFC 3830 §5.3): atomic, the decision on replays.

        Raises :class:`ReplayError` if a copy of the message got there first
        (or :class:`InvalidTimestampError` if the peer's counter has passed this one).
        """
        a = admission
        self.replay_cache.add(a.key, a.when, a.now, skew=a.skew)
        if a.counter is not None:
            self.replay_cache.add_counter(a.peer, a.counter)

    def require_state(self, *states: State) -> None:
        if self.state not in states:
            raise StateError(f"{type(self).__name__} is {self.state.value}")


# --- shared immutable defaults (added for the certificate modes: PK, RSA-R, DH) -----------------

_SHARED_DEFAULT_POLICIES: dict[tuple[int, int], SecurityPolicyPayload] = {}


def shared_default_srtp_policy(policy_no: int = 0, *, tag_len: int = 10) -> SecurityPolicyPayload:
    """:func:`default_srtp_policy`, built once per (policy_no, tag_len): SP payloads are immutable."""
    key = (policy_no, tag_len)
    policy = _SHARED_DEFAULT_POLICIES.get(key)
    if policy is None:
        policy = default_srtp_policy(policy_no, tag_len=tag_len)
        if len(_SHARED_DEFAULT_POLICIES) < 64:
            _SHARED_DEFAULT_POLICIES[key] = policy
    return policy


class Initiator(Side):
    """An Initiator: builds the I_MESSAGE (``create_message``), then takes the response, if any.

    ``result`` is the Initiator's view of the keys; ``NO_RESULT`` says why it is
    not there yet.  A mode implements ``_build(now)``.
    """

    NO_RESULT: ClassVar[str] = "create_message() has not been called"
    _result: ExchangeResult | None = None

    @property
    def result(self) -> ExchangeResult:
        if self._result is None:
            raise StateError(self.NO_RESULT)
        return self._result

    def create_message(self, now: float) -> bytes:
        """The I_MESSAGE, timestamped *now* (Unix seconds), built by the mode's ``_build``.

        Only from state START.  Any error while building (a
        :class:`~mikey.errors.MikeyError`, or e.g. a ``ValueError`` from a bad
        credential) moves the side to ``FAILED`` and is re-raised.
        """
        self.require_state(State.START)
        try:
            return self._build(now)
        except Exception:
            self.state = State.FAILED
            raise

    def _build(self, now: float) -> bytes:
        """Build the I_MESSAGE and move to the next state (the mode's part of :meth:`create_message`)."""
        raise StateError(f"{type(self).__name__} does not build messages")

    def receive(self, data: bytes, now: float) -> ExchangeResult:
        """Process the response (an Error message raises :class:`~mikey.errors.PeerError`)."""
        result: ExchangeResult = self._dispatch(data, now)
        return result

    def fork(self) -> Self:
        """Another leg of this exchange: a copy that takes one more answer to the same I_MESSAGE.

        A forking SIP proxy (RFC 3261 §16.7) hands the one I_MESSAGE to every device of the called
        user, and each may answer (RFC 4567 §4.1 leaves it to the offerer).  A side takes one
        response, so each further answer goes to a fork: ``initiator.fork().receive(r_message, now)``.
        The fork shares what the I_MESSAGE was built from (credentials, RAND, T, the DH exponent) and
        has its own state and result; this side is unchanged.  Where the answer carries the
        Responder's key material (DH and DH-HMAC: DHr, RFC 3830 §3.3, RFC 4650; RSA-R: the TGK,
        RFC 4738 §3.6) each fork gets its own keys; where the I_MESSAGE carries the key (PSK, PK
        with V) every fork verifies the same one.  The leg's ``result`` is there once it took
        its answer.  Refused (:class:`~mikey.errors.StateError`) before the I_MESSAGE is built and
        when the I_MESSAGE takes no response (SAKKE, PSK and PK without V: every device that
        takes it has this side's keys).
        """
        answered = self._taken.locked()
        if self.state is State.START or (self.state is State.FAILED and not answered):
            raise StateError(f"{type(self).__name__} has no I_MESSAGE to fork; call create_message() first")
        if self.state is State.DONE and not answered:
            raise StateError(
                f"{type(self).__name__}'s I_MESSAGE takes no response: every device that takes it "
                "has the same keys (this side's result)"
            )
        leg = copy.copy(self)
        leg.state = State.WAIT_RESPONSE
        leg._taken = threading.Lock()
        leg._result = None
        return leg


class Responder(Side):
    """A Responder: takes the I_MESSAGE and returns the keys and the response to send (or None).

    An I_MESSAGE that does not even decode is answered with an unauthenticated
    Error message carrying ``unparseable_error_no`` (Unspecified error, 12, by
    default; RFC 4738 §3.9 suggests 13 for RSA-R).
    """

    unparseable_error_no: int = ErrorNo.UNSPECIFIED

    def __init__(self, **options: Unpack[IdResponderKeywords]) -> None:
        """The shared Responder keywords (:class:`ResponderKeywords`, :class:`IdResponderKeywords`)."""
        self._init_responder(options)

    def _init_responder(self, options: ResponderKeywords, accepted: Any = IdResponderKeywords) -> None:
        """:meth:`__init__` for a mode whose keywords are *accepted* (a TypedDict extending the shared ones);
        a keyword it does not declare is refused (:func:`check_keywords`)."""
        check_keywords(options, accepted)
        Side.__init__(self, replay_cache=options.get("replay_cache"),
                      clock_skew=options.get("clock_skew", DEFAULT_CLOCK_SKEW), rng=options.get("rng", os.urandom))
        self.own_ssrcs = list(options.get("own_ssrcs", ()))
        self.id_r: IdPayload | None = cast("IdResponderKeywords", options).get("id_r")  # absent for SAKKE
        self.result: ExchangeResult | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(state={self.state.value})"

    def _attach_decode_error(self, exc: MikeyError, data: bytes, now: float) -> None:
        csb_id = int.from_bytes(data[4:8], "big") if len(data) >= 8 else 0
        exc.error_message = build_error_message(csb_id, [self.unparseable_error_no], TimestampPayload.ntp_utc(now))

    def receive(self, data: bytes, now: float) -> ResponderOutcome:
        """Process an I_MESSAGE.

        On failure raises a :class:`~mikey.errors.MikeyError` whose ``error_message``
        holds the Error message to send back when RFC 3830 §5.1.2 calls for one.
        """
        outcome: ResponderOutcome = self._dispatch(data, now)
        return outcome


_ResponderT = TypeVar("_ResponderT", bound=Responder)


class ResponderFactory(Generic[_ResponderT]):
    """One Responder per exchange, for servers: the same credentials and options, one shared replay cache.

    ``ResponderFactory(PskResponder, psk, own_ssrcs=[...])`` makes a fresh
    ``PskResponder(psk, own_ssrcs=[...], replay_cache=factory.replay_cache)``
    per call; :meth:`receive` makes one and hands it the I_MESSAGE.  Safe to
    call from many threads.  Without ``replay_cache`` the factory makes one
    :class:`~mikey.replay.ReplayCache` for all its Responders.
    """

    def __init__(
        self, responder: Callable[..., _ResponderT], /, *args: Any, replay_cache: ReplayStore | None = None, **options: Any
    ) -> None:
        self.responder = responder
        self.replay_cache: ReplayStore = replay_cache if replay_cache is not None else ReplayCache()
        self._args = args
        self._options = options

    def __call__(self) -> _ResponderT:
        return self.responder(*self._args, replay_cache=self.replay_cache, **self._options)

    def receive(self, data: bytes, now: float) -> ResponderOutcome:
        """Process one I_MESSAGE with a new Responder (see :meth:`Responder.receive`)."""
        return self().receive(data, now)

    def __repr__(self) -> str:  # the arguments hold keys: never shown
        return f"{type(self).__name__}({getattr(self.responder, '__name__', 'responder')})"
