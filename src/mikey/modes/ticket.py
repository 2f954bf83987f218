"""MIKEY-TICKET (RFC 6043): Ticket Request, Ticket Transfer and Ticket Resolve, sans-I/O.

Roles (all take bytes and ``now`` and return bytes; none reads a clock or does I/O):

* :class:`TicketRequester` -- the Initiator's Ticket Request (REQUEST_INIT_PSK or, with a
  :class:`TicketPkSigner`, REQUEST_INIT_PK -> REQUEST_RESP, §4.2.1);
  gives a :class:`TicketGrant` (the TICKET, MPKi, [MPKr] and the session keys).
* :func:`create_ticket` -- modes 3 and 4 (§4.1.1): the Initiator makes the base ticket itself with a
  TPK it shares with the KMS or the Responder (D = 0).
* :class:`TicketInitiator` -- TRANSFER_INIT -> TRANSFER_RESP (§4.2.2), forked responses included
  (:meth:`TicketInitiator.receive_fork`, §5.1.1).
* :class:`TicketResponder` -- takes TRANSFER_INIT, resolves the ticket itself (modes 2/4, E = 0 and a
  TPK) or builds RESOLVE_INIT_PSK/_PK (§4.2.3) and takes RESOLVE_RESP, then answers TRANSFER_RESP.
* :class:`TicketUpdater` / :class:`TicketUpdateResponder` -- CSB updates by either party (§5.2), from
  the :class:`TicketBundle` a finished Transfer leaves (``TicketInitiator.bundles``, ``TicketResponder.bundle``).
* :class:`TicketKms` -- the KMS role over a :class:`TicketStore` (:class:`InMemoryTicketStore` here):
  ``handle(bytes, now) -> bytes`` answers REQUEST_INIT_PSK/_PK and RESOLVE_INIT_PSK/_PK, with reuse
  detection (§5.3), key forking (§5.1.1) and Resolve routing to peer KMSs (§10).

Only ticket type 1, the MIKEY base ticket (Appendix A), is handled; others are refused with
Error no 14 (Invalid TICKET).  Key derivations are in :mod:`mikey.crypto.ticket`.

How this implementation reads RFC 6043 where it is silent or ambiguous (also in
``notes/ticket_profile.md``):

1. THDR (A.3) has no Next Payload number: it is recognised by position, as the first payload of the
   Ticket Data, whose first octet is THDR's own Next Payload field.
2. TP Data, Initiator Data (§6.10): a first-payload octet, then a payload chain.  TP Data payloads
   must come in the §6.10 order (IDRkms, IDRi, TRs, TRe, TRr, KEMAC, {IDRapp}, (IDRr)); payloads of
   other types are ignored ("SHOULD be ignored"); a repeated singleton or wrong order is Error 15.
   At least one IDRr is required, in desired and granted policies alike.  The 5 Res bits are
   ignored.  TRs/TRe must be NTP timestamps (a COUNTER is no time), TRr NTP-UTC-32.
3. Identity_x in the MAC coverage (§5.5) is the ID Data of the IDRx payload in the message, or
   nothing when the payload is left out.
4. Ticket Resolve keys (§5.1.2) use length RANDRi = 0 and the RANDRr of RESOLVE_INIT.  The Responder
   draws that RANDRr fresh for the Resolve; the RANDRr of TRANSFER_RESP (G flag) is another one.
5. TRANSFER_INIT MAC (§5.5): the message with the TICKET's Initiator Data length and Initiator Data
   fields cut out, then Identity_i || Identity_r.  Vr (§6.10) covers the Initiator Data up to Vr's
   MAC field; its key is PRF(MPKr, 0x2D22AC75 || 0xFF || 0xFFFFFFFF || 0x04) with the Ticket
   Policy's PRF (§6.10 names no PRF); its MAC algorithm is Vi's.
6. The base ticket's V MAC (A.1) covers the TICKET payload from Ticket Type through Ticket Data, less
   the MAC field; its KEMAC IV uses CSB ID 0xFFFFFFFF and the Ticket Data's T.
7. Algorithms: the KMS answers with the KEMAC cipher matching the initial message's V (HMAC-SHA-1 ->
   AES-CM-128, HMAC-SHA-256 -> AES-CM-256, §12.1: 256-bit algorithms are not mixed with 128-bit
   ones).  NULL MACs are refused; the KEMACs of responses MUST use NULL MAC (§4.2.1.5) and do.
8. A transported TEK (key type TEK) is the SRTP master key itself; without a salt in the Key data,
   the master salt is derived from the TEK with the §5.1.3 label and constant 0x39A2C14B.
9. Crypto sessions pick their key by SPI (the GENERIC-ID SPI against the Key data KV SPI, §6.2.1);
   a crypto session without an SPI takes the first session key, and TRANSFER_RESP names it.
10. Reuse (§5.3): a ticket is identified by SHA-256 of its Ticket Data.  With J = 0 the KMS refuses a
    second resolve by the same device (PSK), and, when key forking is used, any resolve carrying
    another Vi (another TRANSFER_INIT) than the first.  Several devices resolving one forked
    TRANSFER_INIT is forking, not reuse.
11. Errors §5.4 does not number: an authenticated party the policy/KMS does not allow, and reuse,
    get Unspecified error (12, :class:`~mikey.errors.TicketRefusedError`); a ticket outside its
    validity period gets Invalid timestamp (1); a ticket whose TPK the KMS does not hold, or that
    is not type 1 subtype 1 version 1, or has N/O = 0, gets Invalid TICKET (14); a policy that
    breaks §6.10 gets Invalid TPpar (15).  KMS Error messages sent after the peer authenticated
    carry V keyed like the failed message (§5.4); earlier ones carry none.
12. Ticket Policy grant (§4.2.1.5, K flag): changing a flag other than D/K, the validity period,
    the responders or the requested keys sets K; adding IDRi/IDRkms (which §4.2.1.1 asks for) and
    dropping the request KEMAC (§6.10) do not.  The Initiator (§4.2.1.6) refuses, with
    :class:`~mikey.errors.InvalidTPparError`, a granted policy that breaks §6.10, that differs
    from the desired one while K = 0, or (K = 1) that its ``accept_policy`` refuses -- by default
    one that widens the desired policy (longer validity, other responders, reuse or no forking
    where none/forking was asked); the keys granted are then in the grant for the caller to judge.
13. Routing (§10): a KMS without the TPK of a ticket whose TP names a configured peer KMS forwards
    its own RESOLVE_INIT_PSK (the Responder's IDRr and the TICKET reused); the peer, trusting it as a
    ``peer_kms`` credential, authorises the IDRr named; the answer is re-keyed for the Responder.
14. CSB updates (§5.2, :class:`TicketUpdater` / :class:`TicketUpdateResponder`): both messages reuse the
    encr/auth/salt keys of the initial exchange's last message (TRANSFER_RESP when F = 1, else
    TRANSFER_INIT); each party keeps its IDR role of the initial exchange, and the MAC of the update
    TRANSFER_INIT covers it || sender's identity || receiver's; TEKs keep the initial RANDs (H/G);
    a repeated RAND or TICKET must equal the initial one; L and M say who may send keys.
15. The HDR V flag: §6.1 says it MUST be 0 except in CSB-update TRANSFER_INITs, while §4.2.1.1 and
    §4.2.3.1 set it to 1 in REQUEST_INIT/RESOLVE_INIT and §4.2.2.1 makes it agree with F in
    TRANSFER_INIT.  The specific sections are followed when sending; receivers ignore V as they say.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, NamedTuple, Protocol

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from ..constants import (
    MAC_LENGTHS,
    PRF,
    CacheType,
    CSIdMapType,
    DataType,
    EncrAlg,
    ErrorNo,
    IDRole,
    IDType,
    KeyDataType,
    MacAlg,
    PayloadType,
    ProtType,
    RANDRole,
    SignatureType,
    TicketType,
    TSRole,
    TSType,
)
from ..crypto import kemac as kemac_crypto
from ..crypto import rsa as rsa_crypto
from ..crypto import ticket as ticket_crypto
from ..crypto import x509 as x509_crypto
from ..crypto.prf import TransportKeys
from ..errors import (
    AuthenticationError,
    CertificateError,
    CryptoError,
    InvalidTicketError,
    InvalidTimestampError,
    InvalidTPparError,
    MikeyDecodeError,
    MikeyEncodeError,
    MikeyError,
    PeerError,
    StateError,
    TicketRefusedError,
    TicketReuseError,
    UnspecifiedError,
    UnsupportedDataTypeError,
    UnsupportedEncryptionError,
    UnsupportedIDError,
    UnsupportedMACError,
    UnsupportedPRFError,
)
from ..identities import ntp_seconds
from ..keystore import Credentials
from ..replay import DEFAULT_CLOCK_SKEW, ReplayCache, ReplayStore
from ..wire import (
    CertPayload,
    ChashPayload,
    CommonHeader,
    ErrorPayload,
    GenericIdEntry,
    IdrPayload,
    KemacPayload,
    KeyDataPayload,
    Message,
    Payload,
    PkePayload,
    RandPayload,
    RandrPayload,
    SecurityPolicyPayload,
    SignPayload,
    SpiValidity,
    TicketPayload,
    TicketPolicyPayload,
    TimestampPayload,
    TrPayload,
    VerificationPayload,
    decode_sub_payloads,
    encode_sub_payloads,
)
from ..wire.payloads.base import fast_constructor
from .base import (
    Rng,
    Side,
    State,
    build_error_message,
    build_header,
    check_timestamp,
    default_srtp_policy,
    random_csb_id,
    srtp_key_lengths,
)
from .results import CryptoSessionKeys, CryptoSessionSpec, ExchangeResult, ResponderOutcome
from .signing import PeerVerifier, identity_of, message_time, pinned_validator, sign_message

__all__ = [
    "TicketSuite",
    "TicketPkSigner",
    "SUITE_128",
    "SUITE_256",
    "ticket_flags",
    "TicketPolicy",
    "policy_violations",
    "check_policy",
    "narrower_policy",
    "TicketContents",
    "seal_base_ticket",
    "open_base_ticket",
    "TicketGrant",
    "create_ticket",
    "TicketRequester",
    "TicketInitiator",
    "TicketResponder",
    "TicketResponderStep",
    "ResolvedTicket",
    "ResolvedTicketCache",
    "TicketCredential",
    "TicketProtectionKey",
    "ResolutionRecord",
    "reuse_conflict",
    "TicketStore",
    "InMemoryTicketStore",
    "TicketPolicyRules",
    "TicketKms",
    "KmsOutcome",
    "KmsForward",
    "TicketBundle",
    "TicketUpdater",
    "TicketUpdateResponder",
    "TicketPeer",
    "requested_keys",
    "ticket_id_of",
    "ticket_tpk_id",
    "describe_ticket",
]

MODE = "ticket"
_BASE_TICKET_IDS = (TicketType.MIKEY_BASE_TICKET, 1, 1)  # type, subtype, version (§6.10)
_MIN_RAND = 16


# --- algorithm suites (RFC 6043 §6.1, §6.2, §12.1) ---------------------------------------------


class TicketSuite(NamedTuple):
    """PRF, KEMAC cipher, MAC and key length used together (§12.1: 256-bit algorithms are not mixed)."""

    prf: int
    encr_alg: int
    mac_alg: int
    key_len: int


SUITE_128 = TicketSuite(PRF.MIKEY_1, EncrAlg.AES_CM_128, MacAlg.HMAC_SHA_1_160, 16)
SUITE_256 = TicketSuite(PRF.PRF_HMAC_SHA_256, EncrAlg.AES_CM_256, MacAlg.HMAC_SHA_256_256, 32)


def _suite_for_mac(mac_alg: int) -> TicketSuite:
    if mac_alg == MacAlg.HMAC_SHA_1_160:
        return SUITE_128
    if mac_alg == MacAlg.HMAC_SHA_256_256:
        return SUITE_256
    if mac_alg == MacAlg.NULL:
        raise UnsupportedMACError("a NULL MAC leaves a MIKEY-TICKET message unauthenticated")
    raise UnsupportedMACError(f"MAC alg {mac_alg} is not supported")


def _check_prf(prf: int) -> int:
    if prf not in (PRF.MIKEY_1, PRF.PRF_HMAC_SHA_256):
        raise UnsupportedPRFError(f"PRF func {prf} is not supported")
    return int(prf)


def _message_keys(
    key: bytes, csb_id: int, direction: int, rand_i: bytes | None, rand_r: bytes | None, mac_alg: int, encr_alg: int,
    prf: int, *, auth_only: bool = False,
) -> TransportKeys:
    """The §5.1.2 keys; *auth_only*: just auth_key (encr_key and salt empty), for a message only MAC-checked."""
    try:
        return ticket_crypto.derive_message_keys(
            key, csb_id, direction, rand_i, rand_r,
            encr_len=0 if auth_only else kemac_crypto.encr_key_len(encr_alg),
            auth_len=kemac_crypto.mac_key_len(mac_alg),
            salt_len=0 if auth_only else kemac_crypto.salt_len(encr_alg), prf_func=prf,
        )
    except CryptoError as e:
        raise UnspecifiedError(f"cannot derive the message keys: {e}") from None


# --- Ticket Policy (RFC 6043 §6.10) -------------------------------------------------------------

_FLAG_LETTERS = "DEFGHIJKLMNO"


_FLAG_BITS: dict[str, int] = {c: 1 << (11 - i) for i, c in enumerate(_FLAG_LETTERS)}


def ticket_flags(letters: str) -> int:
    """The 12-bit D..O flag field with the named letters set, e.g. ``ticket_flags("DEFHNO")``."""
    value = 0
    for c in letters.upper():
        if c not in _FLAG_LETTERS:
            raise ValueError(f"{c!r} is not a Ticket Policy flag (D..O)")
        value |= 1 << (11 - _FLAG_LETTERS.index(c))
    return value


def _flag_string(flags: int) -> str:
    return "".join(c for i, c in enumerate(_FLAG_LETTERS) if flags & (1 << (11 - i)))


_ROLE_RANK: dict[int, int] = {IDRole.KMS: 0, IDRole.INITIATOR: 1, IDRole.APPLICATION: 6, IDRole.RESPONDER: 7}
_TS_RANK: dict[int, int] = {TSRole.START_OF_VALIDITY: 2, TSRole.END_OF_VALIDITY: 3, TSRole.REKEYING_INTERVAL: 4}
_SESSION_KEY_TYPES = frozenset({
    KeyDataType.TGK, KeyDataType.TGK_SALT, KeyDataType.TEK, KeyDataType.TEK_SALT, KeyDataType.GTGK,
    KeyDataType.GTGK_SALT,
})
_TGK_TYPES = frozenset({KeyDataType.TGK, KeyDataType.TGK_SALT})
_TEK_TYPES = frozenset({KeyDataType.TEK, KeyDataType.TEK_SALT})


@dataclass(frozen=True)
class TicketPolicy:
    """A Ticket Policy: the fixed fields and the decoded TP Data of a TP or TICKET payload (§6.10).

    ``requested_keys`` is the desired-policy KEMAC (NULL/NULL, zeroed Key data naming types and
    lengths); ``responders`` the IDRr payloads of parties (or groups) allowed to resolve.
    """

    flags: int
    responders: tuple[IdrPayload, ...] = ()
    kms: IdrPayload | None = None
    initiator: IdrPayload | None = None
    start: TrPayload | None = None
    end: TrPayload | None = None
    rekey: TrPayload | None = None
    requested_keys: KemacPayload | None = None
    applications: tuple[IdrPayload, ...] = ()
    ticket_type: int = TicketType.MIKEY_BASE_TICKET
    subtype: int = 1
    version: int = 1
    prf_func: int = PRF.MIKEY_1
    reserved: int = 0

    def flag(self, letter: str) -> bool:
        return bool(self.flags & _FLAG_BITS[letter])

    @property
    def flag_string(self) -> str:
        return _flag_string(self.flags)

    def payloads(self) -> list[Payload]:
        out: list[Payload] = []
        for p in (self.kms, self.initiator, self.start, self.end, self.rekey, self.requested_keys):
            if p is not None:
                out.append(p)
        return out + list(self.applications) + list(self.responders)

    def tp_data(self) -> bytes:
        ps = self.payloads()
        if not ps:
            return b""
        return bytes((ps[0].TYPE,)) + encode_sub_payloads(ps)

    def to_tp(self) -> TicketPolicyPayload:
        return TicketPolicyPayload(
            self.ticket_type, self.subtype, self.version, self.prf_func, self.flags, self.tp_data(), self.reserved
        )

    def replace(self, **changes: Any) -> TicketPolicy:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_payload(cls, p: TicketPolicyPayload | TicketPayload) -> TicketPolicy:
        """Decode TP Data; a malformed or misordered TP Data raises :class:`InvalidTPparError` (15)."""
        try:
            items = p.tp_payloads()
        except MikeyDecodeError as e:
            raise InvalidTPparError(f"TP Data does not decode: {e}") from None
        single: dict[str, Any] = {}
        apps: list[IdrPayload] = []
        responders: list[IdrPayload] = []
        problems: list[str] = []
        last_rank = -1
        for item in items:
            rank: int | None = None
            name = ""
            if isinstance(item, IdrPayload):
                rank = _ROLE_RANK.get(int(item.id_role))
                if item.id_role == IDRole.RESPONDER:
                    responders.append(item)
                elif item.id_role == IDRole.APPLICATION:
                    apps.append(item)
                elif item.id_role == IDRole.KMS:
                    name = "kms"
                elif item.id_role == IDRole.INITIATOR:
                    name = "initiator"
            elif isinstance(item, TrPayload):
                rank = _TS_RANK.get(int(item.ts_role))
                name = {2: "start", 3: "end", 4: "rekey"}.get(int(item.ts_role), "")
            elif isinstance(item, KemacPayload):
                rank, name = 5, "requested_keys"
            if rank is None:
                continue  # unexpected payloads SHOULD be ignored (§6.10)
            if rank < last_rank:
                problems.append(f"TP Data: {item.NAME} out of the §6.10 order")
            last_rank = rank
            if name:
                if name in single:
                    problems.append(f"TP Data: two {name} payloads")
                single[name] = item
        if problems:
            raise InvalidTPparError("; ".join(problems))
        return cls(
            int(p.flags), tuple(responders), single.get("kms"), single.get("initiator"), single.get("start"),
            single.get("end"), single.get("rekey"), single.get("requested_keys"), tuple(apps), int(p.ticket_type),
            p.subtype, p.version, int(p.prf_func), p.reserved,
        )

    def validity(self, now: float | None = None) -> tuple[float | None, float | None]:
        """(start, end) of the validity period as Unix seconds (None: no bound); NTP era nearest *now*."""
        start = self.start.unix_time(now) if self.start is not None else None
        end = self.end.unix_time(now) if self.end is not None else None
        return start, end

    def check_valid_at(self, now: float, skew: float) -> tuple[float | None, float | None]:
        """Refuse use outside TRs..TRe, allowing *skew* seconds (Error no 1, see the module doc);
        returns :meth:`validity` at *now*."""
        start, end = self.validity(now)
        if start is not None and now + skew < start:
            raise InvalidTimestampError("the ticket is not valid yet (TRs)")
        if end is not None and now - skew > end:
            raise InvalidTimestampError("the ticket has expired (TRe)")
        return start, end


def policy_violations(policy: TicketPolicy, *, granted: bool) -> list[str]:
    """Every §6.10 rule *policy* breaks (flag dependencies, TP Data contents)."""
    out: list[str] = []
    f = policy.flag
    if policy.prf_func not in (PRF.MIKEY_1, PRF.PRF_HMAC_SHA_256):
        out.append(f"PRF Func {policy.prf_func} is not supported")
    if not f("D") and not f("L"):
        out.append("NOT D implies L")
    if f("G") and not f("F"):
        out.append("G implies F")
    if not f("G") and not f("H"):
        out.append("NOT G implies H (and NOT H implies G)")
    if f("I") and not f("E"):
        out.append("I implies E")
    if granted and f("K") and not f("D"):
        out.append("K implies D")
    if f("M") and not f("F"):
        out.append("M implies F")
    if not policy.responders:
        out.append("TP Data needs at least one IDRr")
    for ts, what in ((policy.start, "TRs"), (policy.end, "TRe")):
        if ts is not None and ts.ts_type not in (TSType.NTP_UTC, TSType.NTP, TSType.NTP_UTC_32):
            out.append(f"{what} must be an NTP timestamp")
    if policy.rekey is not None and policy.rekey.ts_type != TSType.NTP_UTC_32:
        out.append("TRr must be NTP-UTC-32")
    if policy.start is not None and policy.end is not None:
        v_start, v_end = policy.validity()
        if v_start is not None and v_end is not None and v_start > v_end:
            out.append("TRs is after TRe")
    kem = policy.requested_keys
    if kem is not None:
        if granted:
            out.append("the granted Ticket Policy must not hold a KEMAC")
        if kem.encr_alg != EncrAlg.NULL or kem.mac_alg != MacAlg.NULL:
            out.append("the TP KEMAC must use NULL encryption and NULL MAC")
        else:
            try:
                subs = kem.key_data()
            except MikeyDecodeError as e:
                out.append(f"the TP KEMAC Key data does not decode: {e}")
                subs = []
            if not subs:
                out.append("the TP KEMAC names no key")
            for s in subs:
                if not isinstance(s, KeyDataPayload) or s.key_type not in _SESSION_KEY_TYPES:
                    out.append("the TP KEMAC may request only TEK, TGK and GTGK keys")
                elif not 16 <= len(s.key) <= 64:
                    out.append(f"a requested key of {len(s.key)} octets (16..64 are issued)")
    return out


def check_policy(policy: TicketPolicy, *, granted: bool) -> None:
    """Raise :class:`InvalidTPparError` (15) listing every §6.10 rule *policy* breaks."""
    problems = policy_violations(policy, granted=granted)
    if problems:
        raise InvalidTPparError("Ticket Policy: " + "; ".join(problems))


def _check_ticket_type(policy: TicketPolicy, *, role: str) -> None:
    """Only the MIKEY base ticket (type 1, subtype 1, version 1) is handled (Error no 14)."""
    if (policy.ticket_type, policy.subtype, policy.version) != _BASE_TICKET_IDS:
        raise InvalidTicketError(
            f"ticket type {policy.ticket_type} subtype {policy.subtype} version {policy.version} is not supported "
            "(only the MIKEY base ticket 1/1/1, RFC 6043 Appendix A)"
        )
    letter = "N" if role == "initiator" else "O"
    if role in ("initiator", "responder") and not policy.flag(letter):
        raise InvalidTicketError(f"the {letter} flag asks for processing this {role} does not know (§6.10)")


def _key_shapes(keys: Iterable[KeyDataPayload]) -> list[tuple[int, int]]:
    return [(int(k.key_type), len(k.key)) for k in keys]


def narrower_policy(desired: TicketPolicy, granted: TicketPolicy) -> bool:
    """The default ``accept_policy``: the granted policy (K = 1) does not widen the desired one."""
    for letter in "FGH":  # message flow: must be what was asked
        if desired.flag(letter) != granted.flag(letter):
            return False
    if granted.flag("J") and not desired.flag("J"):
        return False
    if desired.flag("I") and not granted.flag("I"):
        return False
    if {r.data for r in granted.responders} - {r.data for r in desired.responders}:
        return False
    d_start, d_end = desired.validity()
    g_start, g_end = granted.validity()
    if d_end is not None and (g_end is None or g_end > d_end):
        return False
    return not (d_start is not None and (g_start is None or g_start < d_start))


def _same_request(desired: TicketPolicy, granted: TicketPolicy) -> bool:
    """With K = 0 the KMS granted what was asked: flags but D/K, responders, validity (§6.10)."""
    mask = ~ticket_flags("DK") & 0xFFF
    return (
        (desired.flags & mask) == (granted.flags & mask)
        and [r.data for r in desired.responders] == [r.data for r in granted.responders]
        and desired.start == granted.start
        and desired.end == granted.end
        and desired.rekey == granted.rekey
        and (desired.prf_func == granted.prf_func)
        and [a.data for a in desired.applications] == [a.data for a in granted.applications]
    )


def _requested_shapes(policy: TicketPolicy, suite: TicketSuite) -> list[tuple[int, int]]:
    if policy.requested_keys is None:
        return [(KeyDataType.TGK, suite.key_len)]  # §4.2.1.5: RECOMMENDED default, a single TGK
    return [(int(s.key_type), len(s.key)) for s in policy.requested_keys.key_data() if isinstance(s, KeyDataPayload)]


def requested_keys(shapes: Sequence[tuple[int, int]]) -> KemacPayload:
    """The desired-policy KEMAC naming keys by type and length, Key data zeroed (§6.10)."""
    subs = [KeyDataPayload(t, bytes(n), bytes(14) if t in (1, 3, 5) else None) for t, n in shapes]
    return KemacPayload(EncrAlg.NULL, encode_sub_payloads(subs), MacAlg.NULL)


# --- the MIKEY base ticket (RFC 6043 Appendix A) ------------------------------------------------

_TICKET_CSB_ID = 0xFFFFFFFF


@dataclass(frozen=True)
class TicketContents:
    """What a base ticket's Ticket Data carries (A.1): the MPK, the session keys, RAND, T, the TPK id."""

    mpk: bytes = field(repr=False)
    session_keys: tuple[KeyDataPayload, ...] = field(repr=False)
    rand: bytes
    issued: TimestampPayload
    tpk_id: bytes | None = None
    thdr_data: bytes = b""

    def mpk_pair(self, prf: int) -> tuple[bytes, bytes]:
        """(MPKi, MPKr) (A.2.2)."""
        return ticket_crypto.derive_mpki_mpkr(self.mpk, self.rand, prf)


def _ticket_mac_input(ticket: TicketPayload, mac_len: int) -> bytes:
    """The base ticket's MAC coverage (A.1): the TICKET payload but Next Payload, Initiator Data
    length and Initiator Data, less the MAC field (the last octets of the Ticket Data)."""
    t = ticket
    if not 0 <= t.prf_func <= 0x7F or not 0 <= t.flags <= 0xFFF or not 0 <= t.reserved <= 0x1F:
        raise MikeyEncodeError("TP PRF func/flags/reserved out of range")
    if (len(t.tp_data) > 0xFFFF or len(t.ticket_data) > 0xFFFF or not 0 <= t.ticket_type <= 0xFFFF
            or not 0 <= t.subtype <= 0xFF or not 0 <= t.version <= 0xFF):
        raise MikeyEncodeError("TICKET fields out of range")
    # Ticket type (16) | Subtype (8) | Version (8) | PRF Func (7) | Flags (12) | Res (5) | TP Data | Ticket Data
    fixed = (t.ticket_type << 40 | t.subtype << 32 | t.version << 24 | t.prf_func << 17 | t.flags << 5 | t.reserved)
    data = t.ticket_data
    return b"".join((fixed.to_bytes(7, "big"), len(t.tp_data).to_bytes(2, "big"), t.tp_data,
                     len(data).to_bytes(2, "big"), data[: len(data) - mac_len]))


def seal_base_ticket(
    policy: TicketPolicy,
    tpk: bytes,
    contents: TicketContents,
    *,
    suite: TicketSuite = SUITE_128,
) -> TicketPayload:
    """The TICKET payload of a MIKEY base ticket: Ticket Data = THDR, T, RAND, KEMAC, [IDRpsk], V (A.1)."""
    prf = policy.prf_func
    keys = ticket_crypto.derive_tpk_keys(
        tpk, contents.rand, encr_len=kemac_crypto.encr_key_len(suite.encr_alg),
        auth_len=kemac_crypto.mac_key_len(suite.mac_alg), salt_len=kemac_crypto.salt_len(suite.encr_alg),
        prf_func=prf,
    )
    plain = encode_sub_payloads([KeyDataPayload(KeyDataType.MPK, contents.mpk), *contents.session_keys])
    encr = kemac_crypto.encrypt(
        suite.encr_alg, keys.encr_key, keys.salt, _TICKET_CSB_ID, contents.issued.ts_value, plain,
        ts_type=int(contents.issued.ts_type),
    )
    n = MAC_LENGTHS[suite.mac_alg]
    chain: list[Payload] = [contents.issued, RandPayload(contents.rand)]
    chain.append(KemacPayload(suite.encr_alg, encr, MacAlg.NULL))
    if contents.tpk_id is not None:
        chain.append(IdrPayload(IDRole.PSK, IDType.BYTE_STRING, contents.tpk_id))
    chain.append(VerificationPayload(suite.mac_alg, bytes(n)))
    thdr = bytes((chain[0].TYPE,)) + len(contents.thdr_data).to_bytes(2, "big") + contents.thdr_data
    draft_data = thdr + encode_sub_payloads(chain)
    tp = policy.to_tp()
    draft = TicketPayload(tp.ticket_type, tp.subtype, tp.version, tp.prf_func, tp.flags, tp.tp_data, draft_data,
                          b"", tp.reserved)
    mac = kemac_crypto.compute_mac(suite.mac_alg, keys.auth_key, _ticket_mac_input(draft, n))
    return dataclasses.replace(draft, ticket_data=draft_data[: len(draft_data) - n] + mac)


def _split_ticket_data(data: bytes) -> tuple[bytes, list[Payload]]:
    """THDR (A.3, recognised by position) and the payload chain after it."""
    if len(data) < 3:
        raise InvalidTicketError("Ticket Data too short for a THDR payload")
    n = int.from_bytes(data[1:3], "big")
    if 3 + n > len(data):
        raise InvalidTicketError("THDR Data length runs past the Ticket Data")
    try:
        chain = decode_sub_payloads(data[3 + n :], data[0])
    except MikeyDecodeError as e:
        raise InvalidTicketError(f"Ticket Data does not decode: {e}") from None
    return data[3 : 3 + n], chain


def ticket_id_of(ticket: TicketPayload) -> bytes:
    """The id under which a KMS remembers a ticket (SHA-256 of its Ticket Data, module doc item 10)."""
    return hashlib.sha256(ticket.ticket_data).digest()


def ticket_tpk_id(ticket: TicketPayload) -> bytes | None:
    """The IDRpsk of a base ticket's Ticket Data (the TPK identifier), or None."""
    _, chain = _split_ticket_data(ticket.ticket_data)
    for p in chain:
        if isinstance(p, IdrPayload) and p.id_role == IDRole.PSK:
            return p.data
    return None


def open_base_ticket(ticket: TicketPayload, tpk_for: Callable[[bytes | None], bytes | None],
                     policy: TicketPolicy | None = None) -> TicketContents:
    """Verify and decrypt a MIKEY base ticket with the TPK *tpk_for* returns for its IDRpsk (A.1, A.2.1).

    *policy* is the ticket's, when the caller has decoded it already.  No TPK:
    :class:`InvalidTicketError` (14); bad MAC or cipher text: :class:`AuthenticationError` (0).
    """
    if policy is None:
        policy = TicketPolicy.from_payload(ticket)
    _check_ticket_type(policy, role="kms")
    prf = _check_prf(policy.prf_func)
    thdr_data, chain = _split_ticket_data(ticket.ticket_data)
    t: TimestampPayload | None = None
    rand: bytes | None = None
    kemac: KemacPayload | None = None
    idr_psk: IdrPayload | None = None
    for p in chain:  # the first of each kind, in one pass
        if isinstance(p, TimestampPayload):
            t = p if t is None else t
        elif isinstance(p, RandPayload):
            rand = p.rand if rand is None else rand
        elif isinstance(p, KemacPayload):
            kemac = p if kemac is None else kemac
        elif isinstance(p, IdrPayload) and p.id_role == IDRole.PSK and idr_psk is None:
            idr_psk = p
    v = chain[-1] if chain else None
    if t is None or rand is None or kemac is None or not isinstance(v, VerificationPayload):
        raise InvalidTicketError("Ticket Data must hold THDR, T, RAND, KEMAC, [IDRpsk], V (RFC 6043 A.1)")
    if len(rand) < _MIN_RAND:
        raise InvalidTicketError("the base ticket RAND is shorter than 128 bits (§12.1)")
    tpk_id = idr_psk.data if idr_psk is not None else None
    tpk = tpk_for(tpk_id)
    if tpk is None:
        raise InvalidTicketError("no Ticket Protection Key for this ticket")
    suite = _suite_for_mac(int(v.auth_alg))
    if kemac.mac_alg != MacAlg.NULL:
        raise UnsupportedMACError("the base ticket KEMAC must use the NULL MAC (A.1)")
    if kemac.encr_alg not in (EncrAlg.AES_CM_128, EncrAlg.AES_CM_256, EncrAlg.AES_KW_128):
        raise UnsupportedEncryptionError(f"ticket KEMAC Encr alg {kemac.encr_alg} is not supported")
    encr_alg = int(kemac.encr_alg)
    try:
        keys = ticket_crypto.derive_tpk_keys(
            tpk, rand, encr_len=kemac_crypto.encr_key_len(encr_alg), auth_len=kemac_crypto.mac_key_len(suite.mac_alg),
            salt_len=kemac_crypto.salt_len(encr_alg), prf_func=prf,
        )
        kemac_crypto.verify_mac(suite.mac_alg, keys.auth_key, _ticket_mac_input(ticket, len(v.ver_data)), v.ver_data)
        plain = kemac_crypto.decrypt(encr_alg, keys.encr_key, keys.salt, _TICKET_CSB_ID, t.ts_value, kemac.encr_data,
                                     ts_type=int(t.ts_type))
    except CryptoError as e:
        raise AuthenticationError(f"the ticket does not open: {e}") from None
    mpks, session = _split_keys(plain, 1, what="ticket KEMAC")
    return TicketContents(mpks[0], tuple(session), rand, t, tpk_id, thdr_data)


def describe_ticket(ticket: TicketPayload, tpk: bytes | None = None, *, show_keys: bool = False) -> dict[str, Any]:
    """A TICKET payload dissected for display (``mikey decode``): the Ticket Policy, the base ticket's
    Ticket Data (THDR and its payload chain, A.1, A.3) and Initiator Data (Vi, Vr, §6.10); with its
    *tpk*, the ticket opened (MAC checked, KEMAC decrypted, A.2.1): the session keys' types, lengths
    and SPIs, and with *show_keys* MPKi, MPKr and the keys themselves.  Never raises on a malformed
    ticket: what does not decode is reported under ``"problems"``.
    """
    out: dict[str, Any] = {"ticket_type": int(ticket.ticket_type), "subtype": ticket.subtype,
                           "version": ticket.version, "problems": []}
    problems: list[str] = out["problems"]
    policy: TicketPolicy | None = None
    try:
        policy = TicketPolicy.from_payload(ticket)
        start, end = policy.validity()
        out["policy"] = {"flags": policy.flag_string, "prf_func": policy.prf_func,
                         "responders": [r.text for r in policy.responders],
                         "initiator": policy.initiator.text if policy.initiator else None,
                         "kms": policy.kms.text if policy.kms else None, "valid_from": start, "valid_until": end,
                         "violations": policy_violations(policy, granted=True)}
    except MikeyError as exc:
        problems.append(f"Ticket Policy: {exc}")
    if tuple(int(x) for x in (ticket.ticket_type, ticket.subtype, ticket.version)) != _BASE_TICKET_IDS:
        problems.append("not a MIKEY base ticket (type 1, subtype 1, version 1): Ticket Data not dissected")
        return out
    try:
        thdr, chain = _split_ticket_data(ticket.ticket_data)
        out["ticket_data"] = {"thdr_data": thdr.hex(), "payloads": [p.to_dict() for p in chain]}
    except MikeyError as exc:
        problems.append(f"Ticket Data: {exc}")
    if ticket.initiator_data:
        try:
            out["initiator_data"] = [p.to_dict() for p in _initiator_data_pair(ticket.initiator_data)]
        except MikeyError as exc:
            problems.append(f"Initiator Data: {exc}")
    if tpk is None or policy is None:
        return out
    try:
        contents = open_base_ticket(ticket, lambda _id: tpk, policy)
    except MikeyError as exc:
        problems.append(f"the ticket does not open with this TPK: {exc}")
        return out
    keys = [{"key_type": int(k.key_type), "key_type_name": getattr(k.key_type, "name", str(k.key_type)),
             "length": len(k.key), "spi": k.kv.spi.hex() if isinstance(k.kv, SpiValidity) else None,
             **({"key": k.key.hex(), "salt": k.salt.hex() if k.salt else None} if show_keys else {})}
            for k in contents.session_keys]
    opened: dict[str, Any] = {"mac_verified": True, "session_keys": keys, "tpk_id": (
        contents.tpk_id.decode("utf-8", "replace") if contents.tpk_id is not None else None)}
    if show_keys:
        mpk_i, mpk_r = contents.mpk_pair(policy.prf_func)
        opened.update(mpk=contents.mpk.hex(), mpk_i=mpk_i.hex(), mpk_r=mpk_r.hex())
    out["opened"] = opened
    return out


def _split_keys(plain: bytes, n_mpk: int, *, what: str) -> tuple[list[bytes], list[KeyDataPayload]]:
    """*n_mpk* MPK Key data then session keys (TEK/TGK/GTGK) from decrypted KEMAC data."""
    try:
        subs = decode_sub_payloads(plain)
    except MikeyDecodeError as e:
        raise UnspecifiedError(f"{what}: Key data does not decode: {e}") from None
    keys = [s for s in subs if isinstance(s, KeyDataPayload)]
    mpks = [k.key for k in keys[:n_mpk] if k.key_type == KeyDataType.MPK]
    if len(mpks) != n_mpk or any(len(m) < 16 for m in mpks):
        raise UnspecifiedError(f"{what} must start with {n_mpk} MPK Key data of 128 bits or more")
    session = keys[n_mpk:]
    for k in session:
        if k.key_type not in _SESSION_KEY_TYPES or len(k.key) < 16:
            raise UnspecifiedError(f"{what}: Key data type {k.key_type} / {len(k.key)} octets is not a session key")
    return mpks, session


def _new_session_keys(shapes: Sequence[tuple[int, int]], rng: Rng) -> tuple[KeyDataPayload, ...]:
    """Fresh keys of the requested types and lengths, each with a 4-octet SPI (§6.2.1)."""
    out = []
    for t, n in shapes:
        salt = rng(14) if t in (KeyDataType.TGK_SALT, KeyDataType.TEK_SALT, KeyDataType.GTGK_SALT) else None
        out.append(KeyDataPayload(t, rng(n), salt, SpiValidity(rng(4))))
    return tuple(out)


# --- grants -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TicketGrant:
    """A ticket and the keys its holder needs for Ticket Transfer (§4.2.1.5; or made by :func:`create_ticket`).

    ``mpk_r`` is set when key forking is used (I flag): the Initiator forks it per answering device.
    """

    ticket: TicketPayload
    policy: TicketPolicy
    mpk_i: bytes = field(repr=False)
    mpk_r: bytes | None = field(repr=False)
    session_keys: tuple[KeyDataPayload, ...] = field(repr=False)
    kms_id: bytes | None = None

    @property
    def changed(self) -> bool:
        """The K flag: the KMS changed the desired policy or keys."""
        return self.policy.flag("K")

    def key_blob(self) -> bytes:
        """The grant's secrets as Key data sub-payloads: MPKi, [MPKr], the session keys (the REQUEST_RESP
        KEMAC's layout, §4.2.1.5), for a stateless Initiator that keeps them between messages.  Secret."""
        subs: list[Payload] = [KeyDataPayload(KeyDataType.MPK, self.mpk_i)]
        if self.mpk_r is not None:
            subs.append(KeyDataPayload(KeyDataType.MPK, self.mpk_r))
        return encode_sub_payloads([*subs, *self.session_keys])

    @classmethod
    def from_key_blob(cls, ticket: TicketPayload, blob: bytes, kms_id: bytes | None = None) -> TicketGrant:
        """The grant of *ticket* (its Initiator Data dropped) whose secrets :meth:`key_blob` gave."""
        ticket = dataclasses.replace(ticket, initiator_data=b"")
        policy = TicketPolicy.from_payload(ticket)
        check_policy(policy, granted=True)
        forked = policy.flag("I")
        mpks, session = _split_keys(blob, 2 if forked else 1, what="the grant keys")
        _check_forking_flags(policy, session)
        return cls(ticket, policy, mpks[0], mpks[1] if forked else None, tuple(session), kms_id)


def create_ticket(
    policy: TicketPolicy,
    tpk: bytes,
    now: float,
    *,
    tpk_id: bytes | None = None,
    suite: TicketSuite = SUITE_128,
    rng: Rng = os.urandom,
    key_shapes: Sequence[tuple[int, int]] | None = None,
) -> TicketGrant:
    """The Initiator makes a base ticket itself (modes 3 and 4 of §4.1.1; D = 0, so L = 1).

    *tpk* is shared with the KMS (mode 3, the Responder resolves) or with the Responder (mode 4,
    E = 0).  Keys are drawn from *rng*.
    """
    if policy.flag("D"):
        raise ValueError("an Initiator-made ticket has D = 0 (§6.10)")
    policy = policy.replace(prf_func=suite.prf, requested_keys=None)
    check_policy(policy, granted=True)
    _check_ticket_type(policy, role="kms")
    shapes = list(key_shapes) if key_shapes is not None else [(KeyDataType.TGK, suite.key_len)]
    contents = TicketContents(rng(suite.key_len), _new_session_keys(shapes, rng), rng(max(suite.key_len, len(tpk))),
                              TimestampPayload.ntp_utc(now), tpk_id)
    _check_forking_flags(policy, contents.session_keys)
    ticket = seal_base_ticket(policy, tpk, contents, suite=suite)
    mpk_i, mpk_r = contents.mpk_pair(policy.prf_func)
    return TicketGrant(ticket, policy, mpk_i, mpk_r if policy.flag("I") else None, contents.session_keys)


def _check_forking_flags(policy: TicketPolicy, keys: Sequence[KeyDataPayload]) -> None:
    """F = 1 when I = 1 and a TGK is encoded in the ticket (§6.10)."""
    if policy.flag("I") and not policy.flag("F") and any(k.key_type in _TGK_TYPES for k in keys):
        raise InvalidTPparError("key forking with a TGK in the ticket needs F = 1 (§6.10)")


# --- message building and checking ----------------------------------------------------------------


def _idr(role: int, data: bytes | None, id_type: int = IDType.URI) -> IdrPayload | None:
    return IdrPayload(role, id_type, data) if data is not None else None


def _id(p: IdrPayload | None) -> bytes:
    return p.data if p is not None else b""


_MAKE_HDR: Callable[..., CommonHeader] = fast_constructor(CommonHeader)


def _empty_header(data_type: int, csb_id: int, prf: int, *, v: bool) -> CommonHeader:
    """HDR of the Request/Resolve messages: #CS = 0, Empty map (RFC 4563) (§4.2.1.1, §4.2.3.1)."""
    # All fields given (cs_id_map already a tuple): the frozen dataclass's __init__ is not needed.
    return _MAKE_HDR(data_type, csb_id, (), CSIdMapType.EMPTY, v, prf, 1, 0)


def _mac_message(header: CommonHeader, payloads: Sequence[Payload], mac_alg: int, auth_key: bytes,
                 trailer: bytes) -> bytes:
    """The message with a last V whose MAC covers it (less the MAC field) followed by *trailer* (§5.5)."""
    n = MAC_LENGTHS[mac_alg]
    draft = Message(header, (*payloads, VerificationPayload(mac_alg, bytes(n)))).encode()
    mac = kemac_crypto.compute_mac(mac_alg, auth_key, draft[: len(draft) - n] + trailer)
    return draft[: len(draft) - n] + mac


def _last_v(msg: Message) -> VerificationPayload:
    v = msg.payloads[-1] if msg.payloads else None
    if not isinstance(v, VerificationPayload):
        raise AuthenticationError("the last payload must be V (RFC 6043 §4.2)")
    _suite_for_mac(int(v.auth_alg))
    return v


def _verify_v(msg: Message, key: bytes, trailer: bytes, *, covered: bytes | None = None) -> None:
    v = _last_v(msg)
    raw = msg.raw_bytes()
    data = raw[: len(raw) - len(v.ver_data)] if covered is None else covered
    kemac_crypto.verify_mac(v.auth_alg, key, data + trailer, v.ver_data)


def _encrypt_kemac(keys: TransportKeys, encr_alg: int, csb_id: int, t: TimestampPayload,
                   subs: Sequence[KeyDataPayload]) -> KemacPayload:
    """KEMAC = E(encr_key, {Key data}) with the NULL MAC: V authenticates the message (§4.2.1.5)."""
    plain = encode_sub_payloads(list(subs))
    encr = kemac_crypto.encrypt(encr_alg, keys.encr_key, keys.salt, csb_id, t.ts_value, plain, ts_type=int(t.ts_type))
    return KemacPayload(encr_alg, encr, MacAlg.NULL)


def _decrypt_kemac(kemac: KemacPayload, keys_for: Callable[[int], TransportKeys], csb_id: int,
                   t: TimestampPayload) -> bytes:
    if kemac.mac_alg != MacAlg.NULL:
        raise UnsupportedMACError("this KEMAC must use the NULL MAC: V authenticates the message (RFC 6043 §4.2)")
    if kemac.encr_alg not in (EncrAlg.AES_CM_128, EncrAlg.AES_CM_256, EncrAlg.AES_KW_128):
        raise UnsupportedEncryptionError(f"KEMAC Encr alg {kemac.encr_alg} is not supported")
    keys = keys_for(int(kemac.encr_alg))
    try:
        return kemac_crypto.decrypt(int(kemac.encr_alg), keys.encr_key, keys.salt, csb_id, t.ts_value, kemac.encr_data,
                                    ts_type=int(t.ts_type))
    except CryptoError as e:
        raise AuthenticationError(f"cannot decrypt the KEMAC: {e}") from None


class _Parts:
    """The payloads of a MIKEY-TICKET message by kind and role (unexpected payloads are ignored, §4.2)."""

    __slots__ = ("t", "rands", "ids", "tp", "ticket", "kemac", "sps")

    def __init__(self, msg: Message) -> None:
        self.t: TimestampPayload | None = None
        self.rands: dict[int, bytes] = {}
        self.ids: dict[int, IdrPayload] = {}
        self.tp: TicketPolicyPayload | None = None
        self.ticket: TicketPayload | None = None
        self.kemac: KemacPayload | None = None
        self.sps: list[SecurityPolicyPayload] = []
        for p in msg.payloads:
            if isinstance(p, TimestampPayload) and self.t is None:
                self.t = p
            elif isinstance(p, RandrPayload):
                if int(p.rand_role) in self.rands:
                    raise UnspecifiedError(f"two RANDR payloads with role {p.rand_role}")
                self.rands[int(p.rand_role)] = p.rand
            elif isinstance(p, IdrPayload):
                if int(p.id_role) in self.ids:
                    raise UnspecifiedError(f"two IDR payloads with role {p.id_role}")
                self.ids[int(p.id_role)] = p
            elif isinstance(p, TicketPolicyPayload) and self.tp is None:
                self.tp = p
            elif isinstance(p, TicketPayload) and self.ticket is None:
                self.ticket = p
            elif isinstance(p, KemacPayload) and self.kemac is None:
                self.kemac = p
            elif isinstance(p, SecurityPolicyPayload):
                self.sps.append(p)

    def need_t(self) -> TimestampPayload:
        if self.t is None:
            raise UnspecifiedError("the message has no T payload")
        return self.t

    def need_rand(self, role: int, what: str) -> bytes:
        r = self.rands.get(role)
        if r is None:
            raise UnspecifiedError(f"the message has no {what} payload")
        if len(r) < _MIN_RAND:
            raise UnspecifiedError(f"{what} is shorter than 128 bits (RFC 6043 §12.1)")
        return r

    def need_ticket(self) -> TicketPayload:
        if self.ticket is None:
            raise UnspecifiedError("the message has no TICKET payload")
        return self.ticket


def _decode(data: bytes) -> Message:
    return Message.decode(data)


def _check_response_header(msg: Message, initial: CommonHeader) -> None:
    """Version, PRF func and CSB ID of a response equal the initial message's (§4.2.1.5, §4.2.3.5)."""
    if msg.csb_id != initial.csb_id or msg.header.prf != initial.prf or msg.header.version != initial.version:
        raise AuthenticationError("the response's CSB ID / PRF func / version differ from the initial message")


def _fresh_t(parts: _Parts, now: float, skew: float) -> TimestampPayload:
    """Responses carry a fresh NTP timestamp (§4.2.1.5): within the skew."""
    t = parts.need_t()
    check_timestamp(t, now, skew)
    return t


def _error_for(exc: MikeyError, msg: Message | None, data: bytes, now: float,
               mac: tuple[int, bytes] | None = None) -> bytes | None:
    """Error message = HDR, T, (ERR), [V] (§5.4): V over the Error message alone, when keys are known."""
    err_no = exc.err_no
    if err_no is None:
        return None
    csb_id = msg.csb_id if msg is not None else (int.from_bytes(data[4:8], "big") if len(data) >= 8 else 0)
    prf = int(msg.header.prf) if msg is not None and msg.header.prf in (0, 1) else 0
    mac_arg = (mac[0], mac[1], b"") if mac is not None else None
    return build_error_message(csb_id, [int(err_no)], TimestampPayload.ntp_utc(now), prf=prf, mac=mac_arg)


def _peer_error(msg: Message) -> MikeyError:
    return PeerError([int(p.error_no) for p in msg.find_all(ErrorPayload)])


# --- session keys from the Ticket Transfer (RFC 6043 §5.1.1, §5.1.3) ----------------------------------


class _Modifier(NamedTuple):
    """The forking modifier: IDRr ID Data and RANDRkms (§5.1.1)."""

    id_data: bytes
    rand_kms: bytes


def _fork_keys(keys: Sequence[KeyDataPayload], mod: _Modifier | None, prf: int) -> tuple[KeyDataPayload, ...]:
    """TGKs become TGK'; TEKs and GTGKs are not forked (§5.1.1)."""
    if mod is None:
        return tuple(keys)
    return tuple(
        dataclasses.replace(k, key=ticket_crypto.fork_key(k.key, ticket_crypto.CONST_FORK_TGK, mod.id_data, mod.rand_kms,
                                                           prf))
        if k.key_type in _TGK_TYPES else k
        for k in keys
    )


def _key_for(entry: GenericIdEntry, keys: Sequence[KeyDataPayload]) -> KeyDataPayload:
    if not keys:
        raise UnspecifiedError("no session key for the crypto sessions (TEK/TGK/GTGK)")
    if entry.spi:
        for k in keys:
            if isinstance(k.kv, SpiValidity) and k.kv.spi == entry.spi:
                return k
        raise UnspecifiedError(f"crypto session {entry.cs_id} names SPI {entry.spi.hex()}, which no key has")
    return keys[0]


def _policy_for(entry: GenericIdEntry, policies: Sequence[SecurityPolicyPayload]) -> SecurityPolicyPayload:
    by_no = {p.policy_no: p for p in reversed(policies)}
    for no in entry.policies:
        if no in by_no:
            return by_no[no]
    if entry.policies:
        raise UnspecifiedError(f"crypto session {entry.cs_id} refers to policy {entry.policies[0]}, not sent")
    return policies[0] if policies else default_srtp_policy(0)


def _sessions(
    header: CommonHeader,
    policies: Sequence[SecurityPolicyPayload],
    keys: Sequence[KeyDataPayload],
    rand_i: bytes | None,
    rand_r: bytes | None,
) -> tuple[CryptoSessionKeys, ...]:
    """SRTP master key and salt per crypto session (§5.1.3; TEKs as in item 8 of the module doc)."""
    prf = _check_prf(int(header.prf))
    out = []
    for e in header.cs_id_map:
        if not isinstance(e, GenericIdEntry):
            raise UnspecifiedError("MIKEY-TICKET Transfer uses the GENERIC-ID map (SRTP-ID SHALL NOT be used, §6.1)")
        if e.prot_type != ProtType.SRTP:
            raise UnspecifiedError(f"crypto session {e.cs_id}: only SRTP crypto sessions are keyed")
        policy = _policy_for(e, policies)
        key_len, salt_len = srtp_key_lengths(policy)
        k = _key_for(e, keys)
        try:
            if k.key_type in _TEK_TYPES:
                if len(k.key) != key_len:
                    raise UnspecifiedError(f"the TEK is {len(k.key)} octets; the policy needs {key_len}")
                master = k.key
                salt = k.salt[:salt_len] if k.salt is not None else ticket_crypto.derive_tek_and_salt(
                    k.key, e.cs_id, rand_i, rand_r, 0, salt_len, prf)[1]
            else:
                master, salt = ticket_crypto.derive_tek_and_salt(k.key, e.cs_id, rand_i, rand_r, key_len, salt_len, prf)
                if k.salt is not None:  # §5.1.3: a transported salt is used, none derived
                    salt = k.salt[:salt_len]
        except CryptoError as exc:
            raise UnspecifiedError(f"cannot derive the keys of crypto session {e.cs_id}: {exc}") from None
        out.append(CryptoSessionKeys(e.cs_id, e.ssrc, e.roc or 0, policy, master, salt, e.spi))
    return tuple(out)


# --- the PK variants (RFC 6043 §4.2.1.3, §4.2.3.3: RFC 3830 PK mode's CERT/CHASH/PKE/SIGN) ----------


@dataclass(frozen=True)
class TicketPkSigner:
    """What REQUEST_INIT_PK and RESOLVE_INIT_PK need: our RSA key and chain (SIGN, CERT) and the KMS's
    certificate (PKE = E(PKkms, env_key); CHASH names it when ``chash`` gives a Hash func)."""

    credentials: Credentials
    kms_certificate: x509.Certificate
    s_type: int = SignatureType.RSA_PKCS1_V1_5
    sign_hash: str = "sha256"
    include_certificate: bool = True
    chash: int | None = None

    def message(self, header: CommonHeader, before_pke: Sequence[Payload], env_key: bytes, trailer: bytes,
                now: float) -> bytes:
        """``before_pke, [CHASH], PKE, SIGN`` with SIGN over the message || *trailer* (§5.5)."""
        at = datetime.fromtimestamp(now, UTC)
        pinned_validator(self.kms_certificate).validate([self.kms_certificate], at=at, purpose="encrypt")
        public_key = self.kms_certificate.public_key()
        if not isinstance(public_key, RSAPublicKey):
            raise CertificateError("the KMS certificate does not hold an RSA key")
        payloads = list(before_pke)
        if self.chash is not None:
            der = x509_crypto.certificate_der(self.kms_certificate)
            payloads.append(ChashPayload(self.chash, x509_crypto.chash(self.chash, der)))
        try:
            payloads.append(PkePayload(CacheType.NO_CACHE, rsa_crypto.encrypt_envelope(public_key, env_key)))
        except CryptoError as e:
            raise UnspecifiedError(f"cannot encrypt the envelope key: {e}") from None
        return sign_message(header, payloads, self.credentials.rsa_private_key, s_type=self.s_type,
                            hash_name=self.sign_hash, trailer=trailer)

    def cert_payloads(self) -> list[CertPayload]:
        if not self.include_certificate:
            return []
        return [CertPayload(0, x509_crypto.certificate_der(c)) for c in self.credentials.certificates]


def _suite_for_prf(prf: int) -> TicketSuite:
    return SUITE_256 if prf == PRF.PRF_HMAC_SHA_256 else SUITE_128


# --- Ticket Request: the Initiator (RFC 6043 §4.2.1) --------------------------------------------------


class _TicketSide(Side):
    """The shared message loop: decode, Error message -> PeerError, FAILED on any MikeyError."""

    MODE: ClassVar[str] = MODE

    def _run(self, data: bytes, now: float, expected: int, state: State,
             handler: Callable[[Message, float], Any]) -> Any:
        if self.state != state:
            raise StateError(f"{type(self).__name__} is {self.state.value}; it does not expect this message now")
        try:
            msg = _decode(data)
            if msg.data_type == DataType.ERROR:
                raise _peer_error(msg)
            if msg.data_type != expected:
                dt = getattr(msg.data_type, "name", msg.data_type)
                raise UnsupportedDataTypeError(f"{type(self).__name__} expects data type {expected}, got {dt}")
            return handler(msg, now)
        except MikeyError:
            self.state = State.FAILED
            raise


class TicketRequester(_TicketSide):
    """REQUEST_INIT_PSK or REQUEST_INIT_PK -> REQUEST_RESP (RFC 6043 §4.2.1.2, §4.2.1.3, §4.2.1.6).

    *psk* is shared with the KMS; with ``pk`` (and *psk* None) the request is signed and the
    response is protected by a fresh envelope key sent in PKE.  *desired* is the Ticket Policy asked for (K is cleared; the TP
    PRF is the suite's).  ``accept_policy(desired, granted) -> bool`` judges a policy the KMS
    changed (K = 1); default :func:`narrower_policy`.
    """

    def __init__(
        self,
        psk: bytes | None,
        desired: TicketPolicy,
        *,
        pk: TicketPkSigner | None = None,
        id_i: bytes | None = None,
        kms_id: bytes | None = None,
        psk_id: bytes | None = None,
        suite: TicketSuite = SUITE_128,
        csb_id: int | None = None,
        rand: bytes | None = None,
        accept_policy: Callable[[TicketPolicy, TicketPolicy], bool] = narrower_policy,
        clock_skew: float = DEFAULT_CLOCK_SKEW,
        rng: Rng = os.urandom,
    ) -> None:
        super().__init__(clock_skew=clock_skew, rng=rng)
        if (psk is None) == (pk is None):
            raise ValueError("give either a PSK or PK credentials")
        self.pk = pk
        self._psk = psk if psk is not None else rng(suite.key_len)  # the envelope key in the PK variant
        self.suite = suite
        self.desired = desired.replace(flags=desired.flags & ~ticket_flags("K"), prf_func=suite.prf)
        check_policy(self.desired, granted=False)
        self.id_i = _idr(IDRole.INITIATOR, id_i)
        self.kms_id = _idr(IDRole.KMS, kms_id)
        self.psk_id = _idr(IDRole.PSK, psk_id, IDType.BYTE_STRING)
        self.csb_id = csb_id if csb_id is not None else random_csb_id(rng)
        # §12.1: the RANDs are at least as long as the longest key they protect
        self.rand = rand if rand is not None else rng(max(16, suite.key_len, len(self._psk)))
        self.accept_policy = accept_policy
        self.request: bytes | None = None
        self.grant: TicketGrant | None = None

    def __repr__(self) -> str:
        return f"TicketRequester(csb_id={self.csb_id:08x}, state={self.state.value})"

    def create_message(self, now: float) -> bytes:
        """REQUEST_INIT_PSK = HDR, T, RANDRi, [IDRi], [IDRkms], TP, [IDRpsk], V (§4.2.1)."""
        self.require_state(State.START)
        try:
            dt = DataType.REQUEST_INIT_PSK if self.pk is None else DataType.REQUEST_INIT_PK
            hdr = _empty_header(dt, self.csb_id, self.suite.prf, v=True)
            payloads: list[Payload] = [TimestampPayload.ntp_utc(now), RandrPayload(RANDRole.INITIATOR, self.rand)]
            if self.id_i is not None:
                payloads.append(self.id_i)
            if self.pk is not None:
                payloads += self.pk.cert_payloads()
            if self.kms_id is not None:
                payloads.append(self.kms_id)
            payloads.append(self.desired.to_tp())
            trailer = _id(self.id_i) + _id(self.kms_id)
            if self.pk is not None:
                self.request = self.pk.message(hdr, payloads, self._psk, trailer, now)
            else:
                if self.psk_id is not None:
                    payloads.append(self.psk_id)
                keys = self._keys(ticket_crypto.LABEL_INITIAL, self.suite.encr_alg)
                self.request = _mac_message(hdr, payloads, self.suite.mac_alg, keys.auth_key, trailer)
        except Exception:
            self.state = State.FAILED
            raise
        self.state = State.WAIT_RESPONSE
        return self.request

    def _keys(self, direction: int, encr_alg: int) -> TransportKeys:
        return _message_keys(self._psk, self.csb_id, direction, self.rand, None, self.suite.mac_alg, encr_alg,
                             self.suite.prf)

    def receive(self, data: bytes, now: float) -> TicketGrant:
        """Check REQUEST_RESP (V over REQUEST_RESP || REQUEST_INIT), open the KEMAC, judge the policy."""
        grant: TicketGrant = self._run(data, now, DataType.REQUEST_RESP, State.WAIT_RESPONSE, self._on_resp)
        return grant

    def _on_resp(self, msg: Message, now: float) -> TicketGrant:
        request = self.request
        if request is None:
            raise StateError("no REQUEST_INIT has been built")
        _check_response_header(msg, Message.decode(request).header)
        parts = _Parts(msg)
        t = _fresh_t(parts, now, self.clock_skew)
        v = _last_v(msg)
        if v.auth_alg != self.suite.mac_alg:
            raise AuthenticationError("REQUEST_RESP V uses another MAC algorithm than REQUEST_INIT")
        _verify_v(msg, self._keys(ticket_crypto.LABEL_RESPONSE, self.suite.encr_alg).auth_key, request)
        ticket = parts.need_ticket()
        if parts.kemac is None:
            raise UnspecifiedError("REQUEST_RESP has no KEMAC")
        granted = TicketPolicy.from_payload(ticket)
        check_policy(granted, granted=True)
        _check_ticket_type(granted, role="initiator")
        n_mpk = 2 if granted.flag("I") else 1
        plain = _decrypt_kemac(parts.kemac, lambda alg: self._keys(ticket_crypto.LABEL_RESPONSE, alg), msg.csb_id, t)
        mpks, session = _split_keys(plain, n_mpk, what="REQUEST_RESP KEMAC")
        _check_forking_flags(granted, session)
        if not granted.flag("D"):
            raise InvalidTPparError("a ticket from the KMS must have D = 1 (§6.10)")
        if granted.flag("K"):
            if not self.accept_policy(self.desired, granted):
                raise InvalidTPparError("the KMS granted a Ticket Policy this Initiator does not accept (§4.2.1.6)")
        else:
            wanted = _requested_shapes(self.desired, self.suite)
            if not _same_request(self.desired, granted) or _key_shapes(session) != wanted:
                raise InvalidTPparError("the granted Ticket Policy or keys differ from the desired ones, yet K = 0")
        kms = parts.ids.get(IDRole.KMS)
        self.grant = TicketGrant(ticket, granted, mpks[0], mpks[1] if n_mpk == 2 else None, tuple(session),
                                 kms.data if kms is not None else None)
        self.state = State.DONE
        return self.grant


# --- what a Ticket Transfer leaves behind, for CSB updates (RFC 6043 §5.2) ---------------------------


@dataclass(frozen=True)
class TicketBundle:
    """One party's state of a finished Ticket Transfer, for CSB updates (§5.2).  Holds keys: never shown.

    ``keys`` protected the last message of the initial exchange and protect every update message;
    ``rand_i``/``rand_r`` are the RANDs the TEK derivation uses (None where H / G exclude them);
    ``session_keys`` the current TEK/TGK/GTGK keys; ``initiator`` whether this party began the
    initial exchange; ``may_send_keys``/``peer_may_send_keys`` the L and M flags seen from this party.
    """

    csb_id: int
    prf: int
    mac_alg: int
    encr_alg: int
    keys: TransportKeys = field(repr=False)
    rand_i: bytes | None
    rand_r: bytes | None
    session_keys: tuple[KeyDataPayload, ...] = field(repr=False)
    header: CommonHeader
    policies: tuple[SecurityPolicyPayload, ...]
    initiator: bool
    may_send_keys: bool
    peer_may_send_keys: bool
    own_id: bytes | None = None
    peer_id: bytes | None = None
    ticket_data: bytes = field(default=b"", repr=False)

    def updated(self, header: CommonHeader, policies: tuple[SecurityPolicyPayload, ...],
                session_keys: Sequence[KeyDataPayload]) -> TicketBundle:
        return dataclasses.replace(self, header=header, policies=policies, session_keys=tuple(session_keys))


# --- Ticket Transfer: the Initiator (RFC 6043 §4.2.2) ------------------------------------------------


class TicketInitiator(_TicketSide):
    """TRANSFER_INIT -> TRANSFER_RESP (§4.2.2) with a :class:`TicketGrant`.

    ``result`` holds the keys.  With F = 0 (no TRANSFER_RESP) they are known once the message is
    built; otherwise after :meth:`receive`.  With key forking each answering device gets its own
    keys: :meth:`receive_fork` takes the TRANSFER_RESP of every further device (§5.1.1, §9.1).
    ``session_keys`` (L flag) are Initiator-supplied keys sent in a KEMAC under MPKi (§4.2.2.1, §8).
    """

    def __init__(
        self,
        grant: TicketGrant,
        *,
        id_i: bytes | None = None,
        id_r: bytes | None = None,
        crypto_sessions: Sequence[CryptoSessionSpec] | None = None,
        policies: Sequence[SecurityPolicyPayload] | None = None,
        csb_id: int | None = None,
        rand: bytes | None = None,
        session_keys: Sequence[KeyDataPayload] = (),
        mac_alg: int | None = None,
        clock_skew: float = DEFAULT_CLOCK_SKEW,
        rng: Rng = os.urandom,
    ) -> None:
        super().__init__(clock_skew=clock_skew, rng=rng)
        self.grant = grant
        self.policy = grant.policy
        _check_ticket_type(self.policy, role="initiator")
        if session_keys and not self.policy.flag("L"):
            raise ValueError("the Ticket Policy (L = 0) forbids Initiator-supplied keys")
        self.prf = _check_prf(self.policy.prf_func)
        self.mac_alg = mac_alg if mac_alg is not None else (
            MacAlg.HMAC_SHA_256_256 if len(grant.mpk_i) >= 32 else MacAlg.HMAC_SHA_1_160)
        self.suite = _suite_for_mac(self.mac_alg)
        self.id_i = _idr(IDRole.INITIATOR, id_i)
        self.id_r = _idr(IDRole.RESPONDER, id_r)
        self.specs = list(crypto_sessions) if crypto_sessions else [CryptoSessionSpec()]
        self.policies = list(policies) if policies is not None else [default_srtp_policy(0)]
        self.csb_id = csb_id if csb_id is not None else random_csb_id(rng)
        self.rand = rand if rand is not None else rng(max(16, len(grant.mpk_i), *(len(k.key) for k in grant.session_keys)))
        self.own_keys = tuple(session_keys)
        self.transfer_init: bytes | None = None
        self.header: CommonHeader | None = None
        self._result: ExchangeResult | None = None
        self.forks: list[ExchangeResult] = []
        #: The CSB update state (§5.2) for each answer in ``forks`` (or the F = 0 exchange), same order.
        self.bundles: list[TicketBundle] = []

    def __repr__(self) -> str:
        return f"TicketInitiator(csb_id={self.csb_id:08x}, state={self.state.value})"

    @classmethod
    def resume(cls, key_blob: bytes, transfer_init: bytes, *, clock_skew: float = DEFAULT_CLOCK_SKEW
               ) -> TicketInitiator:
        """The Initiator that sent *transfer_init*, waiting for its TRANSFER_RESP (a stateless CLI).

        *key_blob* is :meth:`TicketGrant.key_blob` of the grant it used.  The TRANSFER_INIT's V is
        checked under MPKi (§5.5), so keys of another grant are refused (Authentication failure).
        """
        msg = _decode(transfer_init)
        if msg.data_type != DataType.TRANSFER_INIT:
            raise UnsupportedDataTypeError("the Initiator's own message must be a TRANSFER_INIT")
        parts = _Parts(msg)
        grant = TicketGrant.from_key_blob(parts.need_ticket(), key_blob)
        v = _last_v(msg)
        id_i, id_r = parts.ids.get(IDRole.INITIATOR), parts.ids.get(IDRole.RESPONDER)
        own = parts.kemac
        ini = cls(grant, id_i=id_i.data if id_i else None, id_r=id_r.data if id_r else None, policies=parts.sps,
                  csb_id=msg.csb_id, rand=parts.need_rand(RANDRole.INITIATOR, "RANDRi"), mac_alg=int(v.auth_alg),
                  clock_skew=clock_skew)
        keys = ini._keys(grant.mpk_i, ticket_crypto.LABEL_INITIAL, None)
        # §5.5: the message less the TICKET's Initiator Data length and Initiator Data (module doc item 5)
        ticket_at = next(i for i, p in enumerate(msg.payloads) if isinstance(p, TicketPayload))
        end = msg.offsets[ticket_at + 1]
        cut = len(parts.need_ticket().initiator_data)
        raw = msg.raw_bytes()
        covered = raw[: end - cut - 2] + raw[end: len(raw) - len(v.ver_data)]
        expected = kemac_crypto.compute_mac(int(v.auth_alg), keys.auth_key, covered + _id(ini.id_i) + _id(ini.id_r))
        if not hmac.compare_digest(expected, v.ver_data):
            raise AuthenticationError("the grant keys are not those of this TRANSFER_INIT")
        idata = parts.need_ticket().initiator_data
        if grant.policy.flag("I") and not hmac.compare_digest(ini._initiator_data(v.ver_data), idata):
            raise AuthenticationError("the Initiator Data (Vi, Vr) is not the one these grant keys make (§6.10)")
        if not grant.policy.flag("I") and idata:
            raise UnspecifiedError("Initiator Data is present only when key forking is used (§6.10)")
        if own is not None:
            plain = _decrypt_kemac(own, lambda alg: ini._keys(grant.mpk_i, ticket_crypto.LABEL_INITIAL, None),
                                   msg.csb_id, parts.need_t())
            _, ini_keys = _split_keys(plain, 0, what="TRANSFER_INIT KEMAC")
            ini.own_keys = tuple(ini_keys)
        ini.transfer_init = bytes(transfer_init)
        ini.header = msg.header
        ini.state = State.WAIT_RESPONSE if grant.policy.flag("F") else State.DONE
        if not grant.policy.flag("F"):
            session = ini._session_keys(None, ())
            ini._result = ini._make_result(msg.header, tuple(parts.sps), None, None, session, authenticated=False)
        return ini

    @property
    def result(self) -> ExchangeResult:
        if self._result is None:
            raise StateError("no keys yet: the TRANSFER_RESP has not been received")
        return self._result

    def _keys(self, key: bytes, direction: int, rand_r: bytes | None) -> TransportKeys:
        return _message_keys(key, self.csb_id, direction, self.rand, rand_r, self.mac_alg, self.suite.encr_alg,
                             self.prf)

    def create_message(self, now: float) -> bytes:
        """TRANSFER_INIT = HDR, T, RANDRi, [IDRi], [IDRr], {SP}, TICKET, [KEMAC], V (§4.2.2.1)."""
        self.require_state(State.START)
        try:
            self.transfer_init = self._build(now)
        except Exception:
            self.state = State.FAILED
            raise
        return self.transfer_init

    def _build(self, now: float) -> bytes:
        policy = self.policy
        hdr = build_header(DataType.TRANSFER_INIT, self.csb_id, self.specs, map_type=CSIdMapType.GENERIC_ID,
                           v=policy.flag("F"), prf=self.prf)
        self.header = hdr
        t = TimestampPayload.ntp_utc(now)
        keys = self._keys(self.grant.mpk_i, ticket_crypto.LABEL_INITIAL, None)
        ticket = dataclasses.replace(self.grant.ticket, initiator_data=b"")
        payloads: list[Payload] = [t, RandrPayload(RANDRole.INITIATOR, self.rand)]
        payloads += [p for p in (self.id_i, self.id_r) if p is not None]
        payloads += self.policies
        payloads.append(ticket)
        if self.own_keys:
            payloads.append(_encrypt_kemac(keys, self.suite.encr_alg, self.csb_id, t, self.own_keys))
        n = MAC_LENGTHS[self.mac_alg]
        draft, offsets = Message(hdr, (*payloads, VerificationPayload(self.mac_alg, bytes(n)))).encode_with_offsets()
        ticket_end = offsets[payloads.index(ticket) + 1]
        covered = draft[: ticket_end - 2] + draft[ticket_end : len(draft) - n]
        vi = kemac_crypto.compute_mac(self.mac_alg, keys.auth_key, covered + _id(self.id_i) + _id(self.id_r))
        if policy.flag("I"):
            if self.grant.mpk_r is None:
                raise StateError("key forking needs MPKr")
            payloads[payloads.index(ticket)] = dataclasses.replace(ticket, initiator_data=self._initiator_data(vi))
        message = Message(hdr, (*payloads, VerificationPayload(self.mac_alg, vi))).encode()
        if policy.flag("F"):
            self.state = State.WAIT_RESPONSE
        else:  # no TRANSFER_RESP (F = 0): G = 0, so keys come from RANDRi alone (§6.10)
            session = self._session_keys(None, ())
            self._result = self._make_result(hdr, tuple(self.policies), None, None, session, authenticated=False)
            self.bundles.append(self._bundle(keys, hdr, tuple(self.policies), None, session,
                                             _id(self.id_r) or None))
            self.state = State.DONE
        return message

    def _initiator_data(self, vi: bytes) -> bytes:
        """Initiator Data = First Payload, Vi, Vr with Vr keyed from MPKr (§6.10)."""
        mpk_r = self.grant.mpk_r
        if mpk_r is None:
            raise StateError("key forking needs MPKr")
        n = MAC_LENGTHS[self.mac_alg]
        draft = bytes((PayloadType.V,)) + encode_sub_payloads(
            [VerificationPayload(self.mac_alg, vi), VerificationPayload(self.mac_alg, bytes(n))])
        key = ticket_crypto.derive_initiator_data_keys(mpk_r, auth_len=kemac_crypto.mac_key_len(self.mac_alg),
                                                       prf_func=self.prf)
        return draft[: len(draft) - n] + kemac_crypto.compute_mac(self.mac_alg, key, draft[: len(draft) - n])

    def _session_keys(self, mod: _Modifier | None, responder_keys: Sequence[KeyDataPayload]) -> tuple[KeyDataPayload, ...]:
        if responder_keys:  # pre-encrypted content (§8): the Responder's TEKs
            return tuple(responder_keys)
        if self.own_keys:
            return self.own_keys
        return _fork_keys(self.grant.session_keys, mod, self.policy.prf_func)

    def _bundle(self, keys: TransportKeys, header: CommonHeader, policies: tuple[SecurityPolicyPayload, ...],
                rand_r: bytes | None, session: Sequence[KeyDataPayload], peer: bytes | None) -> TicketBundle:
        p = self.policy
        return TicketBundle(self.csb_id, self.prf, self.mac_alg, self.suite.encr_alg, keys,
                            self.rand if p.flag("H") else None, rand_r if p.flag("G") else None, tuple(session),
                            header, policies, True, p.flag("L"), p.flag("M"), _id(self.id_i) or None, peer,
                            self.grant.ticket.ticket_data)

    def _make_result(self, header: CommonHeader, policies: tuple[SecurityPolicyPayload, ...], rand_r: bytes | None,
                     mod: _Modifier | None, keys: Sequence[KeyDataPayload], *, authenticated: bool,
                     responder: bytes | None = None) -> ExchangeResult:
        p = self.policy
        sessions = _sessions(header, policies, keys, self.rand if p.flag("H") else None, rand_r if p.flag("G") else None)
        return ExchangeResult(
            mode=MODE, csb_id=self.csb_id, tgk=keys[0].key if keys else b"", rand=self.rand, prf=self.prf,
            crypto_sessions=sessions, authenticated=authenticated, header=header, policies=policies,
            initiator_id=_id(self.id_i) or None, responder_id=responder or (_id(self.id_r) or None),
            extras={"rand_r": rand_r or b"", "rand_kms": mod.rand_kms if mod else b"", "forked": mod is not None,
                    "ticket_flags": p.flag_string, "key_type": int(keys[0].key_type) if keys else None},
        )

    def receive(self, data: bytes, now: float) -> ExchangeResult:
        """The TRANSFER_RESP (V over TRANSFER_RESP || TRANSFER_INIT, keyed from MPKi or MPKr', §5.5)."""
        answer: tuple[ExchangeResult, TicketBundle] = self._run(data, now, DataType.TRANSFER_RESP, State.WAIT_RESPONSE,
                                                                self._on_resp)
        result, bundle = answer
        self._result = result
        self.forks.append(result)
        self.bundles.append(bundle)
        self.state = State.DONE
        return result

    def receive_fork(self, data: bytes, now: float) -> ExchangeResult:
        """A further device's TRANSFER_RESP to the same forked TRANSFER_INIT (I flag, §5.1.1)."""
        if not self.policy.flag("I") or self.state != State.DONE or not self.forks:
            raise StateError("receive_fork takes further TRANSFER_RESPs of a forked exchange, after receive()")
        msg = _decode(data)
        if msg.data_type == DataType.ERROR:
            raise _peer_error(msg)
        if msg.data_type != DataType.TRANSFER_RESP:
            raise UnsupportedDataTypeError("receive_fork expects a TRANSFER_RESP")
        result, bundle = self._on_resp(msg, now)
        if any(hmac.compare_digest(r.extras["rand_kms"], result.extras["rand_kms"]) for r in self.forks):
            raise AuthenticationError("this fork (RANDRkms) has already answered")
        self.forks.append(result)
        self.bundles.append(bundle)
        return result

    def _on_resp(self, msg: Message, now: float) -> tuple[ExchangeResult, TicketBundle]:
        init, hdr = self.transfer_init, self.header
        if init is None or hdr is None:
            raise StateError("no TRANSFER_INIT has been built")
        _check_response_header(msg, hdr)
        parts = _Parts(msg)
        t = _fresh_t(parts, now, self.clock_skew)
        p = self.policy
        rand_r = parts.need_rand(RANDRole.RESPONDER, "RANDRr") if p.flag("G") else None
        if not p.flag("G") and RANDRole.RESPONDER in parts.rands:
            raise UnspecifiedError("the Ticket Policy (G = 0) forbids RANDRr")
        mod: _Modifier | None = None
        key = self.grant.mpk_i
        idr = parts.ids.get(IDRole.RESPONDER)
        if p.flag("I"):
            rand_kms = parts.need_rand(RANDRole.KMS, "RANDRkms")
            if idr is None or self.grant.mpk_r is None:
                raise AuthenticationError("a forked TRANSFER_RESP needs IDRr and RANDRkms (§4.2.2.3)")
            mod = _Modifier(idr.data, rand_kms)
            key = ticket_crypto.fork_key(self.grant.mpk_r, ticket_crypto.CONST_FORK_MPKR, idr.data, rand_kms, self.prf)
        if _last_v(msg).auth_alg != self.mac_alg:
            raise AuthenticationError("TRANSFER_RESP V uses another MAC algorithm than TRANSFER_INIT")
        resp_keys = self._keys(key, ticket_crypto.LABEL_RESPONSE, rand_r)
        _verify_v(msg, resp_keys.auth_key, init)
        responder_keys: list[KeyDataPayload] = []
        if parts.kemac is not None:
            if not p.flag("M"):
                raise UnspecifiedError("the Ticket Policy (M = 0) forbids Responder-supplied keys")
            plain = _decrypt_kemac(parts.kemac, lambda alg: _message_keys(
                key, self.csb_id, ticket_crypto.LABEL_RESPONSE, self.rand, rand_r, self.mac_alg, alg, self.prf),
                self.csb_id, t)
            _, responder_keys = _split_keys(plain, 0, what="TRANSFER_RESP KEMAC")
        _check_answered_map(hdr, msg.header)
        policies = tuple(self.policies) + tuple(parts.sps)
        session = self._session_keys(mod, responder_keys)
        result = self._make_result(msg.header, policies, rand_r, mod, session, authenticated=True,
                                   responder=idr.data if idr else None)
        return result, self._bundle(resp_keys, msg.header, policies, rand_r, session, result.responder_id)


def _check_answered_map(offer: CommonHeader, answer: CommonHeader) -> None:
    """TRANSFER_RESP: one policy, Session Data and SPI per crypto session offered (§4.2.2.3)."""
    if answer.cs_id_map_type != CSIdMapType.GENERIC_ID:
        raise UnspecifiedError("TRANSFER_RESP must use the GENERIC-ID map")
    offered = {e.cs_id for e in offer.cs_id_map if isinstance(e, GenericIdEntry)}
    for e in answer.cs_id_map:
        if not isinstance(e, GenericIdEntry) or len(e.policies) != 1 or not e.session_data:
            raise UnspecifiedError("each crypto session of TRANSFER_RESP names exactly one policy and its Session Data")
        offered.discard(e.cs_id)
    if offered:
        raise UnspecifiedError(f"TRANSFER_RESP leaves out crypto sessions {sorted(offered)}")


# --- Ticket Transfer and Resolve: the Responder (RFC 6043 §4.2.2, §4.2.3) -------------------------


@dataclass(frozen=True)
class ResolvedTicket:
    """What a Responder keeps of a reusable ticket it resolved (§5.3): MPKi, MPKr', the modifier, the keys."""

    mpk_i: bytes = field(repr=False)
    mpk_r: bytes | None = field(repr=False)
    modifier: tuple[bytes, bytes] | None
    session_keys: tuple[KeyDataPayload, ...] = field(repr=False)
    expires: float | None = None


class ResolvedTicketCache:
    """Tickets a Responder has resolved, reused without the KMS while valid (§5.3: "the same modifier
    (IDRr, RANDRkms) SHALL be used").  Only tickets whose policy allows reuse (J) are kept.  Thread-safe."""

    def __init__(self, max_entries: int = 1024) -> None:
        self.max_entries = max_entries
        self._entries: dict[bytes, ResolvedTicket] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ResolvedTicketCache(entries={len(self._entries)})"

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, ticket_id: bytes, now: float) -> ResolvedTicket | None:
        with self._lock:
            entry = self._entries.get(ticket_id)
            if entry is not None and entry.expires is not None and entry.expires < now:
                del self._entries[ticket_id]
                return None
            return entry

    def put(self, ticket_id: bytes, entry: ResolvedTicket, now: float) -> None:
        with self._lock:
            if len(self._entries) >= self.max_entries:
                for k in [k for k, e in self._entries.items() if e.expires is not None and e.expires < now]:
                    del self._entries[k]
                if len(self._entries) >= self.max_entries:
                    self._entries.pop(next(iter(self._entries)))
            self._entries[ticket_id] = entry


class TicketResponderStep(NamedTuple):
    """What :meth:`TicketResponder.receive` gives: a RESOLVE_INIT to send to the KMS, or the outcome."""

    policy: TicketPolicy
    resolve_init: bytes | None
    outcome: ResponderOutcome | None


class _Pending(NamedTuple):
    msg: Message
    parts: _Parts
    t: TimestampPayload
    rand_i: bytes
    ticket: TicketPayload
    policy: TicketPolicy
    admission: Any


class TicketResponder(_TicketSide):
    """The Responder: early checks on TRANSFER_INIT (§4.2.2.2), the Ticket Resolve, TRANSFER_RESP.

    *kms_psk* is shared with the KMS (RESOLVE_INIT_PSK); ``tpk_for(IDRpsk data) -> TPK | None``
    lets it resolve base tickets itself (modes 2 and 4, only when E = 0).  ``accept_policy(policy)``
    may refuse a Ticket Policy early (raise a MikeyError).  ``responder_keys`` are TEKs this
    Responder supplies in TRANSFER_RESP (pre-encrypted content, §8; M flag).
    """

    def __init__(
        self,
        kms_psk: bytes | None = None,
        *,
        pk: TicketPkSigner | None = None,
        id_r: bytes | None = None,
        kms_id: bytes | None = None,
        psk_id: bytes | None = None,
        tpk_for: Callable[[bytes | None], bytes | None] | None = None,
        accept_policy: Callable[[TicketPolicy], None] | None = None,
        responder_keys: Sequence[KeyDataPayload] = (),
        resolved: ResolvedTicketCache | None = None,
        suite: TicketSuite = SUITE_128,
        own_ssrcs: Sequence[int] = (),
        replay_cache: ReplayStore | None = None,
        clock_skew: float = DEFAULT_CLOCK_SKEW,
        rng: Rng = os.urandom,
    ) -> None:
        super().__init__(replay_cache=replay_cache, clock_skew=clock_skew, rng=rng)
        if kms_psk is not None and pk is not None:
            raise ValueError("give a KMS PSK or PK credentials, not both")
        self.pk = pk
        self._kms_psk = kms_psk if pk is None else rng(suite.key_len)  # PK: the envelope key
        self.id_r = _idr(IDRole.RESPONDER, id_r)
        self.kms_id = _idr(IDRole.KMS, kms_id)
        self.psk_id = _idr(IDRole.PSK, psk_id, IDType.BYTE_STRING)
        self._tpk_for = tpk_for
        self.accept_policy = accept_policy
        self.responder_keys = tuple(responder_keys)
        self.resolved = resolved
        self.suite = suite
        self.own_ssrcs = list(own_ssrcs)
        self.result: ExchangeResult | None = None
        self._pending: _Pending | None = None
        self._resolve: tuple[bytes, int, bytes] | None = None  # RESOLVE_INIT, its CSB ID, its RANDRr
        self._lock = threading.Lock()
        self._received_at: float | None = None
        #: The CSB update state (§5.2), once the exchange is done.
        self.bundle: TicketBundle | None = None

    def __repr__(self) -> str:
        return f"TicketResponder(state={self.state.value})"

    def receive(self, data: bytes, now: float, *, received_at: float | None = None) -> TicketResponderStep:
        """TRANSFER_INIT: refuse early on the policies (§4.2.2.2), then resolve the ticket.

        ``received_at``: delayed delivery (RFC 3830 §2.1) -- the TRANSFER_INIT was kept by a mailbox
        since then; its T and the replay check are judged at that time, the ticket's validity and the
        Ticket Resolve at *now* (the KMS checks them at its own clock).
        """
        if not self._lock.acquire(blocking=False):
            raise StateError("a TicketResponder takes one TRANSFER_INIT; make one per exchange")
        self._received_at = received_at
        try:
            step: TicketResponderStep = self._run(data, now, DataType.TRANSFER_INIT, State.START, self._on_transfer)
        except MikeyError as exc:
            if exc.error_message is None:
                exc.error_message = _error_for(exc, None, data, now)
            raise
        return step

    def receive_resolve(self, data: bytes, now: float) -> ResponderOutcome:
        """RESOLVE_RESP from the KMS; then the TRANSFER_INIT is authenticated and answered.

        On failure the error's ``error_message`` is the Error message for the Initiator (about its
        TRANSFER_INIT, §5.4); a KMS refusal is passed on with the KMS's Error no.
        """
        try:
            outcome: ResponderOutcome = self._run(data, now, DataType.RESOLVE_RESP, State.WAIT_RESPONSE,
                                                  self._on_resolve_resp)
        except MikeyError as exc:
            pend = self._pending
            if pend is not None and exc.error_message is None:
                err_nos = exc.err_nos if isinstance(exc, PeerError) else ([int(exc.err_no)] if exc.err_no is not None
                                                                           else [])
                if err_nos:
                    exc.error_message = build_error_message(pend.msg.csb_id, err_nos, TimestampPayload.ntp_utc(now),
                                                            prf=int(pend.msg.header.prf))
            raise
        return outcome

    def _on_transfer(self, msg: Message, now: float) -> TicketResponderStep:
        if msg.header.cs_id_map_type != CSIdMapType.GENERIC_ID:
            raise UnspecifiedError("TRANSFER_INIT must use the GENERIC-ID map (§6.1)")
        parts = _Parts(msg)
        t = parts.need_t()
        rand_i = parts.need_rand(RANDRole.INITIATOR, "RANDRi")
        ticket = parts.need_ticket()
        _last_v(msg)
        policy = TicketPolicy.from_payload(ticket)
        _check_ticket_type(policy, role="responder")
        check_policy(policy, granted=True)
        _check_prf(int(msg.header.prf))
        if parts.kemac is not None and not policy.flag("L"):
            raise UnspecifiedError("the Ticket Policy (L = 0) forbids a KEMAC in TRANSFER_INIT")
        if policy.flag("I") != bool(ticket.initiator_data):
            raise UnspecifiedError("Initiator Data is present if and only if key forking is used (§6.10)")
        policy.check_valid_at(now, self.clock_skew)
        if self.accept_policy is not None:
            self.accept_policy(policy)
        received = now if self._received_at is None else self._received_at
        admission = self.admit(msg, t, received, _id(parts.ids.get(IDRole.INITIATOR)))
        self._pending = _Pending(msg, parts, t, rand_i, ticket, policy, admission)
        if self.resolved is not None and policy.flag("J"):
            known = self.resolved.get(ticket_id_of(ticket), now)
            if known is not None:  # resolved before: no Ticket Resolve, the same modifier (§5.3)
                mod = _Modifier(*known.modifier) if known.modifier is not None else None
                outcome = self._finish(now, known.mpk_i, known.mpk_r, mod, list(known.session_keys))
                return TicketResponderStep(policy, None, outcome)
        if not policy.flag("E") and self._tpk_for is not None:
            try:
                tpk_id = ticket_tpk_id(ticket)
            except MikeyError:
                tpk_id = None
            if self._tpk_for(tpk_id) is not None:
                contents = open_base_ticket(ticket, self._tpk_for, policy)
                mpk_i, _ = contents.mpk_pair(policy.prf_func)
                outcome = self._finish(now, mpk_i, None, None, list(contents.session_keys))
                return TicketResponderStep(policy, None, outcome)
        if self._kms_psk is None:
            raise InvalidTicketError("this Responder cannot resolve the ticket: no TPK and no KMS credential")
        resolve = self._resolve_init(ticket, now)
        self.state = State.WAIT_RESPONSE
        return TicketResponderStep(policy, resolve, None)

    def _resolve_keys(self, csb_id: int, rand_r: bytes, direction: int, encr_alg: int) -> TransportKeys:
        assert_psk = self._kms_psk
        if assert_psk is None:
            raise StateError("no KMS credential")
        return _message_keys(assert_psk, csb_id, direction, None, rand_r, self.suite.mac_alg, encr_alg,
                             self.suite.prf)

    def _resolve_init(self, ticket: TicketPayload, now: float) -> bytes:
        """RESOLVE_INIT_PSK = HDR, T, RANDRr, [IDRr], [IDRkms], TICKET, [IDRpsk], V, or
        RESOLVE_INIT_PK = HDR, T, RANDRr, [IDRr], {CERTr}, [IDRkms], TICKET, [CHASH], PKE, SIGNr (§4.2.3)."""
        csb_id = random_csb_id(self.rng)
        rand_r = self.rng(max(16, self.suite.key_len))
        dt = DataType.RESOLVE_INIT_PSK if self.pk is None else DataType.RESOLVE_INIT_PK
        hdr = _empty_header(dt, csb_id, self.suite.prf, v=True)
        payloads: list[Payload] = [TimestampPayload.ntp_utc(now), RandrPayload(RANDRole.RESPONDER, rand_r)]
        if self.id_r is not None:
            payloads.append(self.id_r)
        if self.pk is not None:
            payloads += self.pk.cert_payloads()
        if self.kms_id is not None:
            payloads.append(self.kms_id)
        payloads.append(ticket)
        trailer = _id(self.id_r) + _id(self.kms_id)
        if self.pk is not None:
            message = self.pk.message(hdr, payloads, self._kms_psk or b"", trailer, now)
            self._resolve = (message, csb_id, rand_r)
            return message
        if self.psk_id is not None:
            payloads.append(self.psk_id)
        keys = self._resolve_keys(csb_id, rand_r, ticket_crypto.LABEL_INITIAL, self.suite.encr_alg)
        message = _mac_message(hdr, payloads, self.suite.mac_alg, keys.auth_key, trailer)
        self._resolve = (message, csb_id, rand_r)
        return message

    def _on_resolve_resp(self, msg: Message, now: float) -> ResponderOutcome:
        if self._resolve is None or self._pending is None:
            raise StateError("no RESOLVE_INIT has been sent")
        resolve, csb_id, rand_r = self._resolve
        _check_response_header(msg, Message.decode(resolve).header)
        parts = _Parts(msg)
        t = _fresh_t(parts, now, self.clock_skew)
        if _last_v(msg).auth_alg != self.suite.mac_alg:
            raise AuthenticationError("RESOLVE_RESP V uses another MAC algorithm than RESOLVE_INIT")
        _verify_v(msg, self._resolve_keys(csb_id, rand_r, ticket_crypto.LABEL_RESPONSE, self.suite.encr_alg).auth_key,
                  resolve)
        if parts.kemac is None:
            raise UnspecifiedError("RESOLVE_RESP has no KEMAC")
        policy = self._pending.policy
        forked = policy.flag("I")
        plain = _decrypt_kemac(parts.kemac, lambda alg: self._resolve_keys(csb_id, rand_r, ticket_crypto.LABEL_RESPONSE,
                                                                            alg), csb_id, t)
        mpks, session = _split_keys(plain, 2 if forked else 1, what="RESOLVE_RESP KEMAC")
        mod: _Modifier | None = None
        if forked:
            idr = parts.ids.get(IDRole.RESPONDER)
            rand_kms = parts.rands.get(RANDRole.KMS)
            if idr is None or rand_kms is None:
                raise UnspecifiedError("a forked RESOLVE_RESP carries IDRr and RANDRkms (§4.2.3.5)")
            mod = _Modifier(idr.data, rand_kms)
        outcome = self._finish(now, mpks[0], mpks[1] if forked else None, mod, session)
        if self.resolved is not None and policy.flag("J"):
            _, end = policy.validity(now)
            self.resolved.put(ticket_id_of(self._pending.ticket), ResolvedTicket(
                mpks[0], mpks[1] if forked else None, (mod.id_data, mod.rand_kms) if mod else None, tuple(session),
                end), now)
        return outcome

    def _finish(self, now: float, mpk_i: bytes, mpk_r_forked: bytes | None, mod: _Modifier | None,
                session: list[KeyDataPayload]) -> ResponderOutcome:
        """Authenticate TRANSFER_INIT with MPKi (§4.2.3.6), derive the keys, answer (§4.2.2.3)."""
        pend = self._pending
        if pend is None:
            raise StateError("no TRANSFER_INIT is pending")
        msg, parts, policy = pend.msg, pend.parts, pend.policy
        v = _last_v(msg)
        prf = int(msg.header.prf)
        suite = _suite_for_mac(int(v.auth_alg))
        init_keys = _message_keys(mpk_i, msg.csb_id, ticket_crypto.LABEL_INITIAL, pend.rand_i, None, suite.mac_alg,
                                  suite.encr_alg, prf)
        raw = msg.raw_bytes()
        _, end = msg.payload_span(msg.payloads.index(pend.ticket))
        covered = raw[: end - 2 - len(pend.ticket.initiator_data)] + raw[end : len(raw) - len(v.ver_data)]
        _verify_v(msg, init_keys.auth_key, _id(parts.ids.get(IDRole.INITIATOR)) + _id(parts.ids.get(IDRole.RESPONDER)),
                  covered=covered)
        if policy.flag("I"):
            vi = _initiator_data_vi(pend.ticket.initiator_data)
            if not hmac.compare_digest(vi.ver_data, v.ver_data):
                raise AuthenticationError("the V of TRANSFER_INIT differs from Vi in the Initiator Data (§4.2.3.6)")
        # The resolved Ticket Policy names who requested or made the ticket (§4.2.3): IDRi must agree.
        claimed = parts.ids.get(IDRole.INITIATOR)
        if policy.initiator is not None and claimed is not None and claimed.data != policy.initiator.data:
            raise AuthenticationError("IDRi differs from the identity the Ticket Policy names (§4.2.3)")
        initiator = policy.initiator or claimed
        self.remember(pend.admission)
        keys: list[KeyDataPayload] = list(session)  # TGK' already, when the KMS forked (§4.2.3.5)
        if parts.kemac is not None:  # Initiator-supplied keys (L flag), under MPKi (§4.2.2.1)
            plain = _decrypt_kemac(parts.kemac, lambda alg: _message_keys(
                mpk_i, msg.csb_id, ticket_crypto.LABEL_INITIAL, pend.rand_i, None, suite.mac_alg, alg, prf),
                msg.csb_id, pend.t)
            _, keys = _split_keys(plain, 0, what="TRANSFER_INIT KEMAC")
        if self.responder_keys:
            if not policy.flag("M"):
                raise UnspecifiedError("the Ticket Policy (M = 0) forbids Responder-supplied keys")
            keys = list(self.responder_keys)
        rand_r = self.rng(max(16, len(mpk_i))) if policy.flag("G") else None
        header, added_sps = _answer_map(msg.header, parts.sps, keys, self.own_ssrcs)
        policies = tuple(parts.sps) + tuple(added_sps)
        sessions = _sessions(header, policies, keys, pend.rand_i if policy.flag("H") else None, rand_r)
        idr = _responder_idr(mod.id_data if mod else None) or self.id_r
        result = ExchangeResult(
            mode=MODE, csb_id=msg.csb_id, tgk=keys[0].key if keys else b"", rand=pend.rand_i, prf=prf,
            crypto_sessions=sessions, authenticated=True, header=header, policies=policies,
            initiator_id=_id(initiator) or None, responder_id=_id(idr) or None,
            extras={"rand_r": rand_r or b"", "rand_kms": mod.rand_kms if mod else b"", "forked": mod is not None,
                    "ticket_flags": policy.flag_string, "key_type": int(keys[0].key_type) if keys else None},
        )
        response = None
        protect = init_keys
        if policy.flag("F"):
            resp_key = mpk_r_forked if mpk_r_forked is not None else mpk_i
            resp_keys = _message_keys(resp_key, msg.csb_id, ticket_crypto.LABEL_RESPONSE, pend.rand_i, rand_r,
                                      suite.mac_alg, suite.encr_alg, prf)
            t = TimestampPayload.ntp_utc(now)
            rhdr = CommonHeader(DataType.TRANSFER_RESP, msg.csb_id, header.cs_id_map, CSIdMapType.GENERIC_ID, False,
                                prf, msg.header.version)
            payloads: list[Payload] = [t]
            if rand_r is not None:
                payloads.append(RandrPayload(RANDRole.RESPONDER, rand_r))
            if idr is not None:
                payloads.append(idr)
            if mod is not None:
                payloads.append(RandrPayload(RANDRole.KMS, mod.rand_kms))
            payloads += added_sps
            if self.responder_keys:
                payloads.append(_encrypt_kemac(resp_keys, suite.encr_alg, msg.csb_id, t, self.responder_keys))
            response = _mac_message(rhdr, payloads, suite.mac_alg, resp_keys.auth_key, raw)
            protect = resp_keys
        self.bundle = TicketBundle(
            msg.csb_id, prf, suite.mac_alg, suite.encr_alg, protect, pend.rand_i if policy.flag("H") else None,
            rand_r, tuple(keys), header, policies, False, policy.flag("M"), policy.flag("L"), _id(idr) or None,
            _id(claimed) or None, pend.ticket.ticket_data)
        self.result = result
        self.state = State.DONE
        return ResponderOutcome(result, response)



def _answer_map(offer: CommonHeader, sps: Sequence[SecurityPolicyPayload], keys: Sequence[KeyDataPayload],
                own_ssrcs: Sequence[int], known: Sequence[SecurityPolicyPayload] = ()
                ) -> tuple[CommonHeader, list[SecurityPolicyPayload]]:
    """One policy, SSRC and SPI per crypto session (§4.2.2.3); a default SP when none was offered.

    *known* are policies of earlier messages of the bundle (a CSB update may refer to them, §5.2).
    """
    added: list[SecurityPolicyPayload] = []
    if not sps and not known:
        added.append(default_srtp_policy(0))
    available = {p.policy_no for p in (*sps, *known, *added)}
    pending = list(own_ssrcs)
    entries: list[GenericIdEntry] = []
    for e in offer.cs_id_map:
        if not isinstance(e, GenericIdEntry):
            raise UnspecifiedError("TRANSFER_INIT must use the GENERIC-ID map")
        chosen = next((no for no in e.policies if no in available), None)
        if chosen is None:
            if e.policies:
                raise UnspecifiedError(f"crypto session {e.cs_id} offers no policy that was sent")
            chosen = min(available)
        data = e.session_data
        if (e.ssrc or 0) == 0 and pending:
            data = pending.pop(0).to_bytes(4, "big") + data[4:]
        if len(data) < 4:
            data = data.ljust(4, b"\x00")
        key = _key_for(e, keys)
        spi = e.spi or (key.kv.spi if isinstance(key.kv, SpiValidity) else b"")
        entries.append(GenericIdEntry(e.cs_id, e.prot_type, (chosen,), data, spi, e.s_flag and len(data) >= 10))
    hdr = CommonHeader(offer.data_type, offer.csb_id, tuple(entries), CSIdMapType.GENERIC_ID, offer.v, offer.prf,
                       offer.version)
    return hdr, added


# --- CSB updating (RFC 6043 §5.2) -------------------------------------------------------------------


def _update_roles(bundle: TicketBundle) -> tuple[int, int]:
    """(own IDR role, peer IDR role): each party keeps its role of the initial exchange."""
    if bundle.initiator:
        return IDRole.INITIATOR, IDRole.RESPONDER
    return IDRole.RESPONDER, IDRole.INITIATOR


def _check_update_keys(keys: Sequence[KeyDataPayload], allowed: bool, who: str) -> None:
    if keys and not allowed:
        raise UnspecifiedError(f"the Ticket Policy (L/M flags) forbids {who} to supply keys")
    for k in keys:
        if k.key_type not in _SESSION_KEY_TYPES or len(k.key) < 16:
            raise UnspecifiedError("an update KEMAC carries TEK, TGK or GTGK keys of 128 bits or more (§5.2)")


def _check_static(parts: _Parts, bundle: TicketBundle) -> None:
    """§5.2: RANDs and TICKET of the initial exchange may be repeated, new ones MUST NOT be sent."""
    known = {r for r in (bundle.rand_i, bundle.rand_r) if r is not None}
    for role, rand in parts.rands.items():
        if role == RANDRole.KMS:
            continue
        if rand not in known:
            raise UnspecifiedError("a CSB update must not carry new RANDs (§5.2)")
    if parts.ticket is not None and parts.ticket.ticket_data != bundle.ticket_data:
        raise UnspecifiedError("a CSB update must not carry a new TICKET (§5.2)")


class TicketUpdater(_TicketSide):
    """A CSB update started by either party (§5.2): TRANSFER_INIT = HDR, T, [IDRx], [IDRy], {SP},
    [KEMAC], V (same CSB ID, new T, no new RANDs or TICKET), protected by the keys of the last message
    of the initial exchange (:class:`TicketBundle`).  ``new_keys`` (TEK/TGK/GTGK, not forked) go in a
    KEMAC when the Ticket Policy lets this party supply keys.  ``response`` sets the HDR V flag."""

    def __init__(
        self,
        bundle: TicketBundle,
        *,
        crypto_sessions: Sequence[GenericIdEntry] | None = None,
        policies: Sequence[SecurityPolicyPayload] = (),
        new_keys: Sequence[KeyDataPayload] = (),
        response: bool = True,
        clock_skew: float = DEFAULT_CLOCK_SKEW,
        rng: Rng = os.urandom,
    ) -> None:
        super().__init__(clock_skew=clock_skew, rng=rng)
        _check_update_keys(new_keys, bundle.may_send_keys, "this party")
        self.bundle = bundle
        self.new_keys = tuple(new_keys)
        self.policies = tuple(policies)
        entries = list(crypto_sessions) if crypto_sessions is not None else [
            e for e in bundle.header.cs_id_map if isinstance(e, GenericIdEntry)]
        if self.new_keys:  # the SPIs name keys: those of the old keys are gone
            spis = {k.kv.spi for k in self.new_keys if isinstance(k.kv, SpiValidity)}
            entries = [e if e.spi in spis else dataclasses.replace(e, spi=b"") for e in entries]
        self.entries = tuple(entries)
        self.response = response
        self.message: bytes | None = None
        self.header: CommonHeader | None = None
        self._result: ExchangeResult | None = None

    def __repr__(self) -> str:
        return f"TicketUpdater(csb_id={self.bundle.csb_id:08x}, state={self.state.value})"

    @property
    def result(self) -> ExchangeResult:
        if self._result is None:
            raise StateError("no keys yet")
        return self._result

    def create_message(self, now: float) -> bytes:
        self.require_state(State.START)
        b = self.bundle
        try:
            hdr = CommonHeader(DataType.TRANSFER_INIT, b.csb_id, self.entries, CSIdMapType.GENERIC_ID, self.response,
                               b.prf, 1)
            t = TimestampPayload.ntp_utc(now)
            own_role, peer_role = _update_roles(b)
            payloads: list[Payload] = [t]
            payloads += [p for p in (_idr(own_role, b.own_id), _idr(peer_role, b.peer_id)) if p is not None]
            payloads += self.policies
            if self.new_keys:
                payloads.append(_encrypt_kemac(b.keys, b.encr_alg, b.csb_id, t, self.new_keys))
            self.message = _mac_message(hdr, payloads, b.mac_alg, b.keys.auth_key, (b.own_id or b"") + (b.peer_id or b""))
            self.header = hdr
            if not self.response:
                self._finish(hdr, b.policies + self.policies, self.new_keys)
        except Exception:
            self.state = State.FAILED
            raise
        self.state = State.WAIT_RESPONSE if self.response else State.DONE
        return self.message

    def _finish(self, header: CommonHeader, policies: tuple[SecurityPolicyPayload, ...],
                keys: Sequence[KeyDataPayload]) -> ExchangeResult:
        b = self.bundle
        use = tuple(keys) or b.session_keys
        sessions = _sessions(header, policies, use, b.rand_i, b.rand_r)
        self._result = ExchangeResult(
            mode=MODE, csb_id=b.csb_id, tgk=use[0].key if use else b"", rand=b.rand_i or b"", prf=b.prf,
            crypto_sessions=sessions, authenticated=self.response, header=header, policies=policies,
            initiator_id=b.own_id if b.initiator else b.peer_id, responder_id=b.peer_id if b.initiator else b.own_id,
            extras={"update": True, "key_type": int(use[0].key_type) if use else None},
        )
        self.bundle = b.updated(header, policies, use)
        return self._result

    def receive(self, data: bytes, now: float) -> ExchangeResult:
        """The update's TRANSFER_RESP (V over TRANSFER_RESP || TRANSFER_INIT with the bundle's keys)."""
        result: ExchangeResult = self._run(data, now, DataType.TRANSFER_RESP, State.WAIT_RESPONSE, self._on_resp)
        self.state = State.DONE
        return result

    def _on_resp(self, msg: Message, now: float) -> ExchangeResult:
        b, hdr, init = self.bundle, self.header, self.message
        if hdr is None or init is None:
            raise StateError("no update message has been built")
        _check_response_header(msg, hdr)
        parts = _Parts(msg)
        t = _fresh_t(parts, now, self.clock_skew)
        if _last_v(msg).auth_alg != b.mac_alg:
            raise AuthenticationError("the update TRANSFER_RESP uses another MAC algorithm")
        _verify_v(msg, b.keys.auth_key, init)
        _check_static(parts, b)
        keys = list(self.new_keys)
        if parts.kemac is not None:
            if not b.peer_may_send_keys:
                raise UnspecifiedError("the Ticket Policy (L/M flags) forbids the peer to supply keys")
            plain = _decrypt_kemac(parts.kemac, lambda alg: b.keys, b.csb_id, t)
            _, keys = _split_keys(plain, 0, what="update TRANSFER_RESP KEMAC")
        _check_answered_map(hdr, msg.header)
        return self._finish(msg.header, b.policies + self.policies + tuple(parts.sps), keys)


class TicketUpdateResponder(_TicketSide):
    """The receiver of a CSB update (§5.2): checks T, replay and V with the bundle's keys, takes new keys
    (KEMAC) and crypto sessions, and answers TRANSFER_RESP when the HDR V flag asks for it."""

    def __init__(
        self,
        bundle: TicketBundle,
        *,
        new_keys: Sequence[KeyDataPayload] = (),
        own_ssrcs: Sequence[int] = (),
        replay_cache: ReplayStore | None = None,
        clock_skew: float = DEFAULT_CLOCK_SKEW,
        rng: Rng = os.urandom,
    ) -> None:
        super().__init__(replay_cache=replay_cache, clock_skew=clock_skew, rng=rng)
        _check_update_keys(new_keys, bundle.may_send_keys, "this party")
        self.bundle = bundle
        self.new_keys = tuple(new_keys)
        self.own_ssrcs = list(own_ssrcs)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"TicketUpdateResponder(csb_id={self.bundle.csb_id:08x}, state={self.state.value})"

    def receive(self, data: bytes, now: float) -> ResponderOutcome:
        if not self._lock.acquire(blocking=False):
            raise StateError("a TicketUpdateResponder takes one update message; make one per update")
        mac: list[tuple[int, bytes]] = []
        try:
            outcome: ResponderOutcome = self._run(data, now, DataType.TRANSFER_INIT, State.START,
                                                  lambda m, n: self._on_update(m, n, mac))
        except MikeyError as exc:
            if exc.error_message is None:
                exc.error_message = _error_for(exc, None, data, now, mac[0] if mac else None)
            raise
        return outcome

    def _on_update(self, msg: Message, now: float, mac: list[tuple[int, bytes]]) -> ResponderOutcome:
        b = self.bundle
        if msg.csb_id != b.csb_id or msg.header.prf != b.prf:
            raise UnspecifiedError("the update names another CSB ID or PRF than the bundle (§5.2)")
        if msg.header.cs_id_map_type != CSIdMapType.GENERIC_ID:
            raise UnspecifiedError("TRANSFER_INIT must use the GENERIC-ID map (§6.1)")
        parts = _Parts(msg)
        t = parts.need_t()
        own_role, peer_role = _update_roles(b)
        admission = self.admit(msg, t, now, _id(parts.ids.get(peer_role)))
        if _last_v(msg).auth_alg != b.mac_alg:
            raise AuthenticationError("the update uses another MAC algorithm than the bundle")
        _verify_v(msg, b.keys.auth_key, _id(parts.ids.get(peer_role)) + _id(parts.ids.get(own_role)))
        self.remember(admission)
        mac.append((b.mac_alg, b.keys.auth_key))
        _check_static(parts, b)
        keys: list[KeyDataPayload] = []
        if parts.kemac is not None:
            if not b.peer_may_send_keys:
                raise UnspecifiedError("the Ticket Policy (L/M flags) forbids the peer to supply keys")
            plain = _decrypt_kemac(parts.kemac, lambda alg: b.keys, b.csb_id, t)
            _, keys = _split_keys(plain, 0, what="update TRANSFER_INIT KEMAC")
        if self.new_keys:
            keys = list(self.new_keys)
        use = tuple(keys) or b.session_keys
        header, added = _answer_map(msg.header, parts.sps, use, self.own_ssrcs, known=b.policies)
        policies = b.policies + tuple(parts.sps) + tuple(added)
        sessions = _sessions(header, policies, use, b.rand_i, b.rand_r)
        result = ExchangeResult(
            mode=MODE, csb_id=b.csb_id, tgk=use[0].key if use else b"", rand=b.rand_i or b"", prf=b.prf,
            crypto_sessions=sessions, authenticated=True, header=header, policies=policies,
            initiator_id=b.own_id if b.initiator else b.peer_id, responder_id=b.peer_id if b.initiator else b.own_id,
            extras={"update": True, "key_type": int(use[0].key_type) if use else None},
        )
        response = None
        if msg.header.v:
            t2 = TimestampPayload.ntp_utc(now)
            rhdr = CommonHeader(DataType.TRANSFER_RESP, b.csb_id, header.cs_id_map, CSIdMapType.GENERIC_ID, False,
                                b.prf, msg.header.version)
            payloads: list[Payload] = [t2]
            if b.own_id is not None:
                payloads.append(IdrPayload(own_role, IDType.URI, b.own_id))
            payloads += added
            if self.new_keys:
                payloads.append(_encrypt_kemac(b.keys, b.encr_alg, b.csb_id, t2, self.new_keys))
            response = _mac_message(rhdr, payloads, b.mac_alg, b.keys.auth_key, msg.raw_bytes())
        self.bundle = b.updated(header, policies, use)
        self.state = State.DONE
        return ResponderOutcome(result, response)


def _responder_idr(data: bytes | None) -> IdrPayload | None:
    return IdrPayload(IDRole.RESPONDER, IDType.URI, data) if data is not None else None


def _initiator_data_vi(initiator_data: bytes) -> VerificationPayload:
    """Vi of Initiator Data = First Payload, Vi, Vr (§6.10)."""
    vi, _ = _initiator_data_pair(initiator_data)
    return vi


def _initiator_data_pair(initiator_data: bytes) -> tuple[VerificationPayload, VerificationPayload]:
    if not initiator_data:
        raise AuthenticationError("key forking is used but the TICKET has no Initiator Data")
    try:
        ps = decode_sub_payloads(initiator_data[1:], initiator_data[0])
    except MikeyDecodeError as e:
        raise AuthenticationError(f"Initiator Data does not decode: {e}") from None
    vs = [p for p in ps if isinstance(p, VerificationPayload)]
    if len(vs) != 2 or not isinstance(ps[-1], VerificationPayload):
        raise AuthenticationError("Initiator Data must be Vi, Vr (§6.10)")
    if vs[0].auth_alg != vs[1].auth_alg:
        raise AuthenticationError("Vr must use Vi's MAC algorithm (§6.10)")
    _suite_for_mac(int(vs[0].auth_alg))
    return vs[0], vs[1]


# --- the KMS role (RFC 6043 §4.2.1.4, §4.2.3.4, §5.3) -------------------------------------------------


@dataclass(frozen=True)
class TicketCredential:
    """A party the KMS shares a PSK with: its identity, the key, its id (one per device) and groups."""

    identity: bytes
    key: bytes = field(repr=False)
    key_id: bytes = b""
    groups: frozenset[bytes] = frozenset()
    may_request: bool = True
    may_resolve: bool = True
    #: A peer KMS (§10): it resolves on behalf of the IDRr its RESOLVE_INIT names.
    peer_kms: bool = False


@dataclass(frozen=True)
class TicketProtectionKey:
    """A TPK (Appendix A): ``owner`` is who else shares it -- None: the KMS alone (mode 1); the
    Responder (mode 2, the KMS issues with it for that Responder); the Initiator (mode 3)."""

    key_id: bytes
    key: bytes = field(repr=False)
    owner: bytes | None = None


@dataclass(frozen=True)
class ResolutionRecord:
    """One resolve of a ticket: the use (Vi of the Initiator Data, b"" without forking), who, which device."""

    use_id: bytes
    resolver: bytes
    device: bytes


def reuse_conflict(earlier: Sequence[ResolutionRecord], new: ResolutionRecord) -> str | None:
    """Why *new* is a reuse of a no-reuse ticket (J = 0) given the *earlier* resolves, or None (module doc 10)."""
    for r in earlier:
        if r.device == new.device:
            return "this device has already resolved the ticket, whose policy forbids reuse (J = 0, §5.3)"
        if new.use_id and r.use_id and not hmac.compare_digest(r.use_id, new.use_id):
            return "the ticket was used in another Ticket Transfer and its policy forbids reuse (J = 0, §5.3)"
    return None


class TicketStore(Protocol):
    """What the KMS role needs from its database (credentials, TPKs, resolved tickets)."""

    def credential(self, identity: bytes | None, key_id: bytes | None) -> TicketCredential | None:
        """The PSK credential named by IDRpsk (*key_id*), else by the IDRi/IDRr identity."""

    def user_rights(self, identity: bytes) -> TicketCredential | None:
        """A credential of *identity* for its rights (groups, may request/resolve): the PK variants."""

    def protection_key(self, key_id: bytes | None) -> TicketProtectionKey | None:
        """The TPK named by a ticket's IDRpsk (None: the default TPK)."""

    def issuing_key(self, policy: TicketPolicy) -> TicketProtectionKey:
        """The TPK to issue a ticket with (mode 1: the KMS's own; mode 2: one shared with the Responder)."""

    def record_resolution(self, ticket_id: bytes, record: ResolutionRecord, *, reusable: bool,
                          expires: float | None, now: float) -> None:
        """Remember a resolve atomically; raise :class:`TicketReuseError` if :func:`reuse_conflict` says so."""


class InMemoryTicketStore:
    """A :class:`TicketStore` in process memory (tests, one KMS instance).  Thread-safe."""

    def __init__(self) -> None:
        self._creds: dict[bytes, TicketCredential] = {}
        self._by_identity: dict[bytes, list[TicketCredential]] = {}
        self._tpks: dict[bytes, TicketProtectionKey] = {}
        self._default_tpk: bytes | None = None
        self._resolved: dict[bytes, tuple[float | None, list[ResolutionRecord]]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"InMemoryTicketStore(credentials={len(self._creds)}, tpks={len(self._tpks)})"

    def add_credential(self, cred: TicketCredential) -> None:
        self._creds[cred.key_id or cred.identity] = cred
        self._by_identity.setdefault(cred.identity, []).append(cred)

    def add_protection_key(self, tpk: TicketProtectionKey, *, default: bool = False) -> None:
        self._tpks[tpk.key_id] = tpk
        if default or self._default_tpk is None and tpk.owner is None:
            self._default_tpk = tpk.key_id

    def credential(self, identity: bytes | None, key_id: bytes | None) -> TicketCredential | None:
        if key_id is not None:
            cred = self._creds.get(key_id)
            if cred is not None and identity is not None and cred.identity != identity and not cred.peer_kms:
                return None
            return cred
        if identity is None:
            return None
        found = self._by_identity.get(identity, [])
        return found[0] if len(found) == 1 else None

    def user_rights(self, identity: bytes) -> TicketCredential | None:
        found = self._by_identity.get(identity)
        return found[0] if found else None

    def protection_key(self, key_id: bytes | None) -> TicketProtectionKey | None:
        if key_id is None:
            key_id = self._default_tpk
        return self._tpks.get(key_id) if key_id is not None else None

    def issuing_key(self, policy: TicketPolicy) -> TicketProtectionKey:
        if not policy.flag("E") and len(policy.responders) == 1:
            for tpk in self._tpks.values():
                if tpk.owner == policy.responders[0].data:
                    return tpk
        own = self.protection_key(None)
        if own is None:
            raise StateError("the KMS store has no ticket protection key")
        return own

    def record_resolution(self, ticket_id: bytes, record: ResolutionRecord, *, reusable: bool,
                          expires: float | None, now: float) -> None:
        with self._lock:
            for k in [k for k, (e, _) in self._resolved.items() if e is not None and e < now]:
                del self._resolved[k]
            _, earlier = self._resolved.setdefault(ticket_id, (expires, []))
            if not reusable:
                problem = reuse_conflict(earlier, record)
                if problem is not None:
                    raise TicketReuseError(problem)
            earlier.append(record)


@dataclass(frozen=True)
class TicketPolicyRules:
    """The KMS's own policy (§12.1): flags it forces on/off, the longest validity, the key limits."""

    force_on: int = 0
    force_off: int = 0
    max_lifetime: float = 24 * 3600.0
    max_keys: int = 8


@dataclass(frozen=True)
class TicketPeer:
    """Another KMS this KMS forwards Resolves to (§10), with the PSK the two share."""

    identity: bytes
    psk: bytes = field(repr=False)
    psk_id: bytes = b""


@dataclass(frozen=True)
class KmsForward:
    """A Resolve this KMS cannot answer itself: send ``message`` to ``peer`` and hand the answer to
    :meth:`TicketKms.complete_forward` (§10, Figure 9).  Holds keys: never shown."""

    peer: bytes
    message: bytes
    original: bytes = field(repr=False)
    _peer_keys: TransportKeys = field(repr=False)
    _own_keys: TransportKeys = field(repr=False)
    _own_mac: tuple[int, bytes] = field(repr=False)
    _suite: TicketSuite = field(repr=False)


class KmsOutcome(NamedTuple):
    """What :meth:`TicketKms.receive` gives: the response (empty when ``forward`` is set), which
    exchange, who asked, the ticket id, and a Resolve to forward to a peer KMS (§10)."""

    response: bytes
    data_type: int
    peer: bytes
    ticket_id: bytes
    forward: KmsForward | None = None


class TicketKms:
    """The KMS role: REQUEST_INIT_PSK -> REQUEST_RESP and RESOLVE_INIT_PSK -> RESOLVE_RESP.

    Long-lived and shared (thread-safe as its store and replay cache are).  :meth:`receive` raises a
    :class:`~mikey.errors.MikeyError` with ``error_message`` set when RFC 6043 §5.4 calls for an
    Error message; :meth:`handle` returns that message instead (None: discard silently).
    """

    def __init__(
        self,
        store: TicketStore,
        *,
        identity: bytes,
        rules: TicketPolicyRules = TicketPolicyRules(),  # noqa: B008 - immutable
        pk_credentials: Sequence[Credentials] = (),
        validator: x509_crypto.CertificateValidator | None = None,
        peers: Sequence[TicketPeer] | Mapping[bytes, TicketPeer] = (),
        replay_cache: ReplayStore | None = None,
        clock_skew: float = DEFAULT_CLOCK_SKEW,
        rng: Rng = os.urandom,
    ) -> None:
        self.store = store
        self.identity = identity
        self.rules = rules
        self.pk_credentials = tuple(pk_credentials)
        # A Mapping is looked up per Resolve (a KMS database may add peers while the KMS runs).
        self.peers: Mapping[bytes, TicketPeer] = peers if isinstance(peers, Mapping) else {p.identity: p for p in peers}
        self.verifier = PeerVerifier(validator) if validator is not None else None
        self.replay_cache: ReplayStore = replay_cache if replay_cache is not None else ReplayCache()
        self.clock_skew = clock_skew
        self.rng = rng

    def __repr__(self) -> str:
        return f"TicketKms(identity={self.identity!r})"

    def handle(self, data: bytes, now: float, forward: Callable[[bytes, bytes], bytes] | None = None) -> bytes | None:
        """The response to send, or the Error message, or None (a replay or a message to discard).

        ``forward(peer identity, RESOLVE_INIT) -> RESOLVE_RESP`` carries Resolves to peer KMSs (§10);
        without it a ticket only a peer can resolve is answered with Invalid TICKET (14).
        """
        try:
            outcome = self.receive(data, now)
        except MikeyError as exc:
            return exc.error_message
        fwd = outcome.forward
        if fwd is None:
            return outcome.response
        if forward is None:  # a ticket only a peer KMS can resolve, and no way to reach it
            return _error_for(InvalidTicketError("no forwarding"), Message.decode(fwd.original), fwd.original, now,
                              fwd._own_mac)
        try:
            return self.complete_forward(fwd, forward(fwd.peer, fwd.message), now)
        except MikeyError as exc:
            return exc.error_message

    def forward_failed(self, fwd: KmsForward, now: float) -> bytes | None:
        """The Error message for the Responder when the peer KMS of *fwd* cannot be reached (§10):
        Unspecified error (12), with V keyed like the Responder's RESOLVE_INIT (§5.4)."""
        return _error_for(TicketRefusedError("the peer KMS could not be reached"), Message.decode(fwd.original),
                          fwd.original, now, fwd._own_mac)

    def complete_forward(self, fwd: KmsForward, data: bytes, now: float) -> bytes:
        """The peer KMS's RESOLVE_RESP, re-keyed for our Responder (§10): KEMAC, IDRr, RANDRkms carried over."""
        original = Message.decode(fwd.original)
        try:
            msg = _decode(data)
            if msg.data_type == DataType.ERROR:
                raise _peer_error(msg)
            if msg.data_type != DataType.RESOLVE_RESP:
                raise UnsupportedDataTypeError("the peer KMS did not answer with RESOLVE_RESP")
            sent = Message.decode(fwd.message)
            _check_response_header(msg, sent.header)
            parts = _Parts(msg)
            t = _fresh_t(parts, now, self.clock_skew)
            _verify_v(msg, fwd._peer_keys.auth_key, fwd.message)
            if parts.kemac is None:
                raise UnspecifiedError("the peer's RESOLVE_RESP has no KEMAC")
            peer_keys = fwd._peer_keys
            plain = _decrypt_kemac(parts.kemac, lambda alg: peer_keys, msg.csb_id, t)
            subs = decode_sub_payloads(plain)
            keys = [k for k in subs if isinstance(k, KeyDataPayload)]
            t2 = TimestampPayload.ntp_utc(now)
            body: list[Payload] = [t2, IdrPayload(IDRole.KMS, IDType.URI, self.identity),
                                   _encrypt_kemac(fwd._own_keys, fwd._suite.encr_alg, original.csb_id, t2, keys)]
            body += [p for p in (parts.ids.get(IDRole.RESPONDER),) if p is not None]
            if RANDRole.KMS in parts.rands:
                body.append(RandrPayload(RANDRole.KMS, parts.rands[RANDRole.KMS]))
            return self._respond(original, DataType.RESOLVE_RESP, body, fwd._suite, fwd._own_keys)
        except PeerError as exc:  # the peer refused: relay its Error no
            relay = TicketRefusedError(f"the peer KMS refused: {exc}",
                                       err_no=exc.err_nos[0] if exc.err_nos else ErrorNo.UNSPECIFIED)
        except MikeyError as exc:
            relay = TicketRefusedError(f"the peer KMS's answer does not check out: {exc}",
                                       err_no=int(exc.err_no) if exc.err_no is not None else ErrorNo.UNSPECIFIED)
        relay.error_message = _error_for(relay, original, fwd.original, now, fwd._own_mac)
        raise relay

    def _forward(self, msg: Message, parts: _Parts, ticket: TicketPayload, policy: TicketPolicy,
                 cred: TicketCredential, keys: TransportKeys, suite: TicketSuite, now: float,
                 mac: list[tuple[int, bytes]]) -> KmsOutcome | None:
        """A ticket issued by a peer KMS named in its TP (IDRkms): the RESOLVE_INIT to send it (§10)."""
        issuer = policy.kms.data if policy.kms is not None else None
        peer = self.peers.get(issuer) if issuer is not None and issuer != self.identity else None
        if peer is None:
            return None
        try:
            tpk_id = ticket_tpk_id(ticket)
        except MikeyError:
            tpk_id = None
        if self.store.protection_key(tpk_id) is not None:
            return None
        csb_id = random_csb_id(self.rng)
        rand = self.rng(max(16, suite.key_len))
        hdr = _empty_header(DataType.RESOLVE_INIT_PSK, csb_id, suite.prf, v=True)
        idr = parts.ids.get(IDRole.RESPONDER) or IdrPayload(IDRole.RESPONDER, IDType.URI, cred.identity)
        payloads: list[Payload] = [TimestampPayload.ntp_utc(now), RandrPayload(RANDRole.RESPONDER, rand), idr,
                                   IdrPayload(IDRole.KMS, IDType.URI, peer.identity), ticket]
        if peer.psk_id:
            payloads.append(IdrPayload(IDRole.PSK, IDType.BYTE_STRING, peer.psk_id))
        init_keys = _message_keys(peer.psk, csb_id, ticket_crypto.LABEL_INITIAL, None, rand, suite.mac_alg,
                                  suite.encr_alg, suite.prf)
        message = _mac_message(hdr, payloads, suite.mac_alg, init_keys.auth_key, idr.data + peer.identity)
        peer_keys = _message_keys(peer.psk, csb_id, ticket_crypto.LABEL_RESPONSE, None, rand, suite.mac_alg,
                                  suite.encr_alg, suite.prf)
        fwd = KmsForward(peer.identity, message, msg.raw_bytes(), peer_keys, keys, mac[0], suite)
        return KmsOutcome(b"", DataType.RESOLVE_INIT_PSK, cred.identity, ticket_id_of(ticket), fwd)

    def receive(self, data: bytes, now: float) -> KmsOutcome:
        msg: Message | None = None
        mac: list[tuple[int, bytes]] = []
        try:
            msg = _decode(data)
            if msg.data_type in (DataType.REQUEST_INIT_PSK, DataType.REQUEST_INIT_PK):
                return self._on_request(msg, now, mac)
            if msg.data_type in (DataType.RESOLVE_INIT_PSK, DataType.RESOLVE_INIT_PK):
                return self._on_resolve(msg, now, mac)
            dt = getattr(msg.data_type, "name", msg.data_type)
            raise UnsupportedDataTypeError(f"the KMS does not take data type {dt}")
        except MikeyError as exc:
            if exc.error_message is None and not (msg is not None and msg.data_type == DataType.ERROR):
                exc.error_message = _error_for(exc, msg, data, now, mac[0] if mac else None)
            raise

    # -- shared --------------------------------------------------------------------------------

    def _authenticate(self, msg: Message, parts: _Parts, rand_role: int, peer_role: int, now: float,
                      mac: list[tuple[int, bytes]]) -> tuple[TicketCredential, bytes, TransportKeys, TicketSuite]:
        """T, replay, credential, V over message || Identity_peer || Identity_kms (§5.5)."""
        hdr = msg.header
        if hdr.cs_id_map_type != CSIdMapType.EMPTY or hdr.n_cs != 0:
            raise UnspecifiedError("Request/Resolve messages carry #CS = 0 and the Empty map (§4.2.1.1, §4.2.3.1)")
        prf = _check_prf(int(hdr.prf))
        what = "RANDRi" if rand_role == RANDRole.INITIATOR else "RANDRr"
        rand = parts.need_rand(rand_role, what)
        if msg.data_type in (DataType.REQUEST_INIT_PK, DataType.RESOLVE_INIT_PK):
            return self._authenticate_pk(msg, parts, rand, rand_role, peer_role, now, mac)
        v = _last_v(msg)
        suite = _suite_for_mac(int(v.auth_alg))
        peer = parts.ids.get(peer_role)
        kms = parts.ids.get(IDRole.KMS)
        if kms is not None and kms.data != self.identity:
            raise UnsupportedIDError("IDRkms names another KMS")
        psk_id = parts.ids.get(IDRole.PSK)
        side = Side(replay_cache=self.replay_cache, clock_skew=self.clock_skew)
        admission = side.admit(msg, parts.t, now, _id(peer))
        cred = self.store.credential(peer.data if peer else None, psk_id.data if psk_id else None)
        if cred is None:
            raise AuthenticationError("no pre-shared key for this party")
        rand_i, rand_r = (rand, None) if rand_role == RANDRole.INITIATOR else (None, rand)
        # Only the auth key of the initial message is needed (its V is checked, nothing is decrypted), and
        # the response's keys: one PRF pass with the PSK's HMAC key schedule computed once (§5.1.2).
        try:
            init_auth, resp_keys = ticket_crypto.derive_exchange_keys(
                cred.key, msg.csb_id, rand_i, rand_r, encr_len=kemac_crypto.encr_key_len(suite.encr_alg),
                auth_len=kemac_crypto.mac_key_len(suite.mac_alg), salt_len=kemac_crypto.salt_len(suite.encr_alg),
                prf_func=prf,
            )
        except CryptoError as e:
            raise UnspecifiedError(f"cannot derive the message keys: {e}") from None
        _verify_v(msg, init_auth, _id(peer) + _id(kms))
        side.remember(admission)
        mac.append((suite.mac_alg, init_auth))
        return cred, rand, resp_keys, suite

    def _authenticate_pk(self, msg: Message, parts: _Parts, rand: bytes, rand_role: int, peer_role: int,
                         now: float, mac: list[tuple[int, bytes]]
                         ) -> tuple[TicketCredential, bytes, TransportKeys, TicketSuite]:
        """The PK variants: SIGN over message || Identity_peer || Identity_kms, the envelope key from PKE."""
        if self.verifier is None or not self.pk_credentials:
            raise UnsupportedDataTypeError("this KMS takes no PK-authenticated messages")
        if not isinstance(msg.payloads[-1] if msg.payloads else None, SignPayload):
            raise AuthenticationError("SIGN must be the last payload (RFC 3830 §6.5)")
        pke = msg.find(PkePayload)
        if pke is None:
            raise UnspecifiedError("the PK variant needs a PKE payload")
        peer = parts.ids.get(peer_role)
        kms = parts.ids.get(IDRole.KMS)
        if kms is not None and kms.data != self.identity:
            raise UnsupportedIDError("IDRkms names another KMS")
        side = Side(replay_cache=self.replay_cache, clock_skew=self.clock_skew)
        admission = side.admit(msg, parts.t, now, _id(peer))
        chain = self.verifier.chain(msg.find_all(CertPayload))
        leaf = self.verifier.leaf(chain, at=message_time(parts.t, now), peer_id=peer.text if peer else None)
        self.verifier.verify_signature(msg, leaf, trailers=(_id(peer) + _id(kms),))
        identity = peer.data if peer is not None else identity_of(leaf).data
        own = self.pk_credentials[0]
        chash = msg.find(ChashPayload)
        if chash is not None:
            for c in self.pk_credentials:
                try:
                    x509_crypto.check_chash(int(chash.hash_func), chash.digest, x509_crypto.certificate_der(c.certificate))
                except CertificateError:
                    continue
                own = c
                break
            else:
                raise CertificateError("CHASH names none of the KMS certificates")
        env_key = rsa_crypto.decrypt_envelope(own.rsa_private_key, pke.data, False)
        if len(env_key) < 16:
            raise AuthenticationError("the envelope key is shorter than 128 bits (§12.1)")
        side.remember(admission)
        rights = self.store.user_rights(identity)
        if rights is None:
            raise TicketRefusedError("the KMS database does not know this party")
        device = b"cert:" + hashlib.sha256(x509_crypto.certificate_der(leaf)).digest()[:16]
        cred = TicketCredential(identity, env_key, device, rights.groups, rights.may_request, rights.may_resolve)
        suite = _suite_for_prf(int(msg.header.prf))
        rand_i, rand_r = (rand, None) if rand_role == RANDRole.INITIATOR else (None, rand)
        prf = int(msg.header.prf)
        init_keys = _message_keys(env_key, msg.csb_id, ticket_crypto.LABEL_INITIAL, rand_i, rand_r, suite.mac_alg,
                                  suite.encr_alg, prf)
        mac.append((suite.mac_alg, init_keys.auth_key))
        resp_keys = _message_keys(env_key, msg.csb_id, ticket_crypto.LABEL_RESPONSE, rand_i, rand_r, suite.mac_alg,
                                  suite.encr_alg, prf)
        return cred, rand, resp_keys, suite

    def _respond(self, msg: Message, data_type: int, body: Sequence[Payload], suite: TicketSuite,
                 keys: TransportKeys) -> bytes:
        hdr = _empty_header(data_type, msg.csb_id, int(msg.header.prf), v=False)
        return _mac_message(hdr, body, suite.mac_alg, keys.auth_key, msg.raw_bytes())

    # -- Ticket Request ------------------------------------------------------------------------

    def _on_request(self, msg: Message, now: float, mac: list[tuple[int, bytes]]) -> KmsOutcome:
        parts = _Parts(msg)
        cred, _, keys, suite = self._authenticate(msg, parts, RANDRole.INITIATOR, IDRole.INITIATOR, now, mac)
        if not cred.may_request:
            raise TicketRefusedError("this party may not request tickets")
        if parts.tp is None:
            raise UnspecifiedError("REQUEST_INIT has no TP payload")
        desired = TicketPolicy.from_payload(parts.tp)
        _check_ticket_type(desired, role="kms")
        check_policy(desired.replace(flags=desired.flags & ~ticket_flags("K")), granted=False)
        granted, shapes = self._grant(desired, cred, suite, now)
        tpk = self.store.issuing_key(granted)
        t = TimestampPayload.ntp_utc(now)
        contents = TicketContents(self.rng(suite.key_len), _new_session_keys(shapes, self.rng),
                                  self.rng(max(suite.key_len, len(tpk.key), 16)), t, tpk.key_id)
        ticket = seal_base_ticket(granted, tpk.key, contents, suite=suite)
        mpk_i, mpk_r = contents.mpk_pair(granted.prf_func)
        subs = [KeyDataPayload(KeyDataType.MPK, mpk_i)]
        if granted.flag("I"):
            subs.append(KeyDataPayload(KeyDataType.MPK, mpk_r))
        subs += contents.session_keys
        kemac = _encrypt_kemac(keys, suite.encr_alg, msg.csb_id, t, subs)
        body: list[Payload] = [t, IdrPayload(IDRole.KMS, IDType.URI, self.identity), ticket, kemac]
        response = self._respond(msg, DataType.REQUEST_RESP, body, suite, keys)
        return KmsOutcome(response, DataType.REQUEST_RESP, cred.identity, ticket_id_of(ticket))

    def _grant(self, desired: TicketPolicy, cred: TicketCredential, suite: TicketSuite,
               now: float) -> tuple[TicketPolicy, list[tuple[int, int]]]:
        """The granted policy (K when it differs, module doc item 12) and the key shapes to issue."""
        rules = self.rules
        mask = ~ticket_flags("DK") & 0xFFF
        flags = ((desired.flags | rules.force_on) & ~rules.force_off) | ticket_flags("D")
        flags &= ~ticket_flags("K")
        if flags & ticket_flags("I"):
            flags |= ticket_flags("E")
        wanted = _requested_shapes(desired, suite)
        shapes = [(t, n) for t, n in wanted if 16 <= n <= 64][: rules.max_keys] or [(KeyDataType.TGK, suite.key_len)]
        if flags & ticket_flags("I") and any(t in _TGK_TYPES for t, _ in shapes):
            flags |= ticket_flags("F")
        if flags & ticket_flags("G") or flags & ticket_flags("M"):
            flags |= ticket_flags("F")
        if not flags & ticket_flags("G"):
            flags |= ticket_flags("H")
        changed = (flags & mask) != (desired.flags & mask) or shapes != wanted or desired.prf_func != suite.prf
        end = desired.end
        limit = now + rules.max_lifetime
        d_end = desired.end.unix_time(now) if desired.end is not None else None
        if d_end is None or d_end > limit:
            end = TrPayload(TSRole.END_OF_VALIDITY, TSType.NTP_UTC_32, ntp_seconds(limit).to_bytes(4, "big"))
            changed = True
        if changed:
            flags |= ticket_flags("K")
        granted = desired.replace(
            flags=flags, end=end, requested_keys=None, prf_func=suite.prf,
            kms=IdrPayload(IDRole.KMS, IDType.URI, self.identity),
            initiator=IdrPayload(IDRole.INITIATOR, IDType.URI, cred.identity),
        )
        check_policy(granted, granted=True)
        return granted, shapes

    # -- Ticket Resolve ------------------------------------------------------------------------

    def _on_resolve(self, msg: Message, now: float, mac: list[tuple[int, bytes]]) -> KmsOutcome:
        parts = _Parts(msg)
        cred, _, keys, suite = self._authenticate(msg, parts, RANDRole.RESPONDER, IDRole.RESPONDER, now, mac)
        if not cred.may_resolve:
            raise TicketRefusedError("this party may not resolve tickets")
        ticket = parts.need_ticket()
        policy = TicketPolicy.from_payload(ticket)
        _check_ticket_type(policy, role="kms")
        check_policy(policy, granted=True)
        if not cred.peer_kms:
            forwarded = self._forward(msg, parts, ticket, policy, cred, keys, suite, now, mac)
            if forwarded is not None:
                return forwarded
        else:  # a peer KMS resolving for the Responder its IDRr names (§10)
            idr = parts.ids.get(IDRole.RESPONDER)
            if idr is None:
                raise UnspecifiedError("a peer KMS's RESOLVE_INIT names the Responder in IDRr (§10)")
            rights = self.store.user_rights(idr.data)
            cred = TicketCredential(idr.data, cred.key, cred.key_id + b"|" + idr.data,
                                    rights.groups if rights is not None else frozenset())
        owner: list[TicketProtectionKey] = []

        def tpk_for(key_id: bytes | None) -> bytes | None:
            tpk = self.store.protection_key(key_id)
            if tpk is None:
                return None
            owner.append(tpk)
            return tpk.key

        contents = open_base_ticket(ticket, tpk_for, policy)
        tpk = owner[0]
        if not policy.flag("D") and (tpk.owner is None or policy.initiator is None or policy.initiator.data != tpk.owner):
            raise AuthenticationError("an Initiator-made ticket must be protected by a TPK of its IDRi (mode 3)")
        if policy.flag("D") and tpk.owner is not None and tpk.owner not in (cred.identity,):
            raise TicketRefusedError("this ticket is protected for another Responder (mode 2)")
        _, end = policy.check_valid_at(now, self.clock_skew)
        matched = self._authorised_identity(policy, cred)
        forking = policy.flag("I")
        if forking:
            mpk_i, mpk_r = contents.mpk_pair(policy.prf_func)
        else:  # MPKr serves only forking (MPKr', the Initiator Data key): not derived (A.2.2)
            mpk_i, mpk_r = ticket_crypto.derive_mpki(contents.mpk, contents.rand, policy.prf_func), b""
        use_id = b""
        if forking:
            vi, vr = _initiator_data_pair(ticket.initiator_data)
            key = ticket_crypto.derive_initiator_data_keys(mpk_r, auth_len=kemac_crypto.mac_key_len(int(vr.auth_alg)),
                                                           prf_func=policy.prf_func)
            idata = ticket.initiator_data
            kemac_crypto.verify_mac(int(vr.auth_alg), key, idata[: len(idata) - len(vr.ver_data)], vr.ver_data)
            use_id = vi.ver_data
        elif ticket.initiator_data:
            raise UnspecifiedError("Initiator Data is present only when key forking is used (§6.10)")
        _check_forking_flags(policy, contents.session_keys)
        ticket_id = ticket_id_of(ticket)
        self.store.record_resolution(
            ticket_id, ResolutionRecord(use_id, cred.identity, cred.key_id or cred.identity),
            reusable=policy.flag("J"), expires=None if end is None else end + self.clock_skew, now=now,
        )
        t = TimestampPayload.ntp_utc(now)
        subs = [KeyDataPayload(KeyDataType.MPK, mpk_i)]
        body: list[Payload] = [t, IdrPayload(IDRole.KMS, IDType.URI, self.identity)]
        session = list(contents.session_keys)
        extra: list[Payload] = []
        if forking:
            rand_kms = self.rng(max(16, len(mpk_r), *(len(k.key) for k in session)))
            subs.append(KeyDataPayload(KeyDataType.MPK, ticket_crypto.fork_key(
                mpk_r, ticket_crypto.CONST_FORK_MPKR, matched, rand_kms, policy.prf_func)))
            session = list(_fork_keys(session, _Modifier(matched, rand_kms), policy.prf_func))
            extra = [IdrPayload(IDRole.RESPONDER, IDType.URI, matched), RandrPayload(RANDRole.KMS, rand_kms)]
        subs += session
        body.append(_encrypt_kemac(keys, suite.encr_alg, msg.csb_id, t, subs))
        body += extra
        response = self._respond(msg, DataType.RESOLVE_RESP, body, suite, keys)
        return KmsOutcome(response, DataType.RESOLVE_RESP, cred.identity, ticket_id)

    @staticmethod
    def _authorised_identity(policy: TicketPolicy, cred: TicketCredential) -> bytes:
        """The IDRr of the policy the resolver answers as: its own identity, or a group it is in (§12.5)."""
        for r in policy.responders:
            if r.data == cred.identity:
                return cred.identity
        for r in policy.responders:
            if r.data in cred.groups:
                return cred.identity
        raise TicketRefusedError("the Ticket Policy does not allow this party to resolve the ticket")


