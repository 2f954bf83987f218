"""Strict validation: the RFC rules for a message's data type, separate from lenient decoding.

:func:`violations` lists every rule a message breaks; :func:`validate` raises
:class:`MikeyValidationError` with all of them.  Message layouts follow RFC 3830
§3.1-§3.3 and §5.1.2, RFC 4650 §3, RFC 4738 §3, RFC 6043 §4, RFC 6267 §4 and
RFC 6509 §2.2.

:func:`lint` lists the field mistakes that are legal on the wire but almost never
meant (SP parameter 3 vs 11, lengths in bits, TEK/salt lengths against the SP, SSRC 0
left in a response, NULL KEMAC security); ``validate(msg, lints=True)`` also returns
them and issues each as a :class:`LintWarning`; ``mikey decode --lint`` prints them.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from ..constants import (
    PRF,
    CSIdMapType,
    DataType,
    EncrAlg,
    ErrorNo,
    GenExtType,
    HashFunc,
    IDRole,
    IDType,
    KeyDataType,
    MacAlg,
    PayloadType,
    ProtType,
    RANDRole,
    SignatureType,
    SRTPParam,
    TicketType,
)
from ..errors import MikeyDecodeError, MikeyValidationError
from .header import GenericIdEntry, SrtpIdEntry
from .message import Message
from .payloads import (
    ChashPayload,
    DhPayload,
    ErrorPayload,
    GeneralExtensionPayload,
    IdPayload,
    IdrPayload,
    KemacPayload,
    KeyDataPayload,
    Payload,
    RandPayload,
    RandrPayload,
    SecurityPolicyPayload,
    SignPayload,
    TicketPayload,
    TicketPolicyPayload,
    TimestampPayload,
    VerificationPayload,
)
from .payloads.base import enum_table

__all__ = ["validate", "violations", "lint", "LintWarning", "LAYOUTS", "TICKET_ROLES"]

P = PayloadType


@dataclass(frozen=True)
class Item:
    """One position of a message layout: any of ``types``, between ``lo`` and ``hi`` times."""

    types: frozenset[int]
    lo: int = 1
    hi: int = 1

    def label(self) -> str:
        names = "|".join(sorted(P(t).name for t in self.types))
        if (self.lo, self.hi) == (1, 1):
            return names
        if (self.lo, self.hi) == (0, 1):
            return f"[{names}]"
        return "{" + names + "}"


def one(*t: int) -> Item:
    return Item(frozenset(t))


def opt(*t: int, hi: int = 1) -> Item:
    return Item(frozenset(t), 0, hi)


def many(*t: int) -> Item:
    return Item(frozenset(t), 0, 255)


# General Extension payloads may stand anywhere (RFC 3830 §6.15), so layouts skip them.
# Update messages (RFC 3830 §4.5, Figure 4.1) leave out RAND, and KEMAC (PK) or the DH values (DH),
# so those are optional in the Initiator's layouts.
LAYOUTS: dict[int, list[Item]] = {
    # RFC 3830 §3.1: HDR, T, RAND, [IDi|CERTi], [IDr], {SP}, KEMAC / HDR, T, [IDr], V
    DataType.PSK_INIT: [one(P.T), opt(P.RAND), opt(P.ID, P.CERT), opt(P.ID), many(P.SP), one(P.KEMAC)],
    DataType.PSK_RESP: [one(P.T), opt(P.ID), one(P.V)],
    # §3.2: HDR, T, RAND, [IDi|CERTi], [IDr], {SP}, KEMAC, [CHASH], PKE, SIGN
    DataType.PK_INIT: [
        one(P.T), opt(P.RAND), Item(frozenset({P.ID, P.CERT}), 0, 8), opt(P.ID), many(P.SP),
        opt(P.KEMAC), opt(P.CHASH), one(P.PKE), one(P.SIGN),
    ],
    DataType.PK_RESP: [one(P.T), opt(P.ID), one(P.V)],
    # §3.3: HDR, T, RAND, [IDi|CERTi], [IDr], {SP}, DHi, SIGNi / HDR, T, [IDr|CERTr], IDi, DHr, DHi, SIGNr
    # (a CHASH naming the Responder's certificate may precede DHi, as in PK)
    DataType.DH_INIT: [
        one(P.T), opt(P.RAND), Item(frozenset({P.ID, P.CERT}), 0, 8), opt(P.ID), many(P.SP), opt(P.CHASH),
        opt(P.DH), one(P.SIGN),
    ],
    DataType.DH_RESP: [
        one(P.T), Item(frozenset({P.ID, P.CERT}), 0, 8), opt(P.ID), many(P.SP), opt(P.DH), opt(P.DH), one(P.SIGN),
    ],
    # §5.1.2: HDR, T, {ERR}, {SP}, [V|SIGNr]
    DataType.ERROR: [one(P.T), Item(frozenset({P.ERR}), 1, 255), many(P.SP), opt(P.V, P.SIGN)],
    # RFC 4650 §3: HDR, T, RAND, [IDi|CERTi], [IDr], {SP}, DHi, KEMAC / HDR, T, [IDr|CERTr], IDi, DHr, DHi, KEMAC
    DataType.DHHMAC_INIT: [
        one(P.T), one(P.RAND), opt(P.ID, P.CERT), opt(P.ID), many(P.SP), one(P.DH), one(P.KEMAC),
    ],
    DataType.DHHMAC_RESP: [
        one(P.T), opt(P.ID, P.CERT), opt(P.ID), many(P.SP), one(P.DH), one(P.DH), one(P.KEMAC),
    ],
    # RFC 4738 §3: HDR, T, [RAND], [IDi|CERTi], [IDr], {SP}, SIGNi /
    #              HDR, T, [RAND], [IDr|CERTr], {SP}, KEMAC, PKE, SIGNr
    DataType.RSA_R_INIT: [
        one(P.T), opt(P.RAND), Item(frozenset({P.ID, P.CERT}), 0, 8), opt(P.ID), many(P.SP), one(P.SIGN),
    ],
    DataType.RSA_R_RESP: [
        one(P.T), opt(P.RAND), Item(frozenset({P.ID, P.CERT}), 0, 8), many(P.SP), one(P.KEMAC), one(P.PKE),
        one(P.SIGN),
    ],
    # RFC 6509 §2.2.1: HDR, T, RAND, [IDRi], [IDRr], [IDRkmsi], [IDRkmsr], [CERT], {SP}, SAKKE, SIGN
    DataType.SAKKE: [
        one(P.T), one(P.RAND), Item(frozenset({P.IDR}), 0, 8), opt(P.CERT), many(P.SP), one(P.SAKKE), one(P.SIGN),
    ],
    # RFC 6043 §4.2.1: HDR, T, RANDRi, [IDRi], [IDRkms], TP, [IDRpsk], V
    DataType.REQUEST_INIT_PSK: [one(P.T), one(P.RANDR), opt(P.IDR, hi=2), one(P.TP), opt(P.IDR), one(P.V)],
    # HDR, T, RANDRi, [IDRi], {CERTi}, [IDRkms], TP, [CHASH], PKE, SIGNi
    DataType.REQUEST_INIT_PK: [
        one(P.T), one(P.RANDR), opt(P.IDR), Item(frozenset({P.CERT}), 0, 8), opt(P.IDR), one(P.TP), opt(P.CHASH),
        one(P.PKE), one(P.SIGN),
    ],
    # HDR, T, [IDRkms], TICKET, KEMAC, V
    DataType.REQUEST_RESP: [one(P.T), opt(P.IDR), one(P.TICKET), one(P.KEMAC), one(P.V)],
    # §4.2.2: HDR, T, RANDRi, [IDRi], [IDRr], {SP}, TICKET, [KEMAC], V; a CSB update (§5.2) leaves out
    # RANDRi and TICKET (HDR, T, [IDRi], [IDRr], {SP}, [KEMAC], V), so they are optional here.
    DataType.TRANSFER_INIT: [
        one(P.T), opt(P.RANDR), opt(P.IDR, hi=2), many(P.SP), opt(P.TICKET), opt(P.KEMAC), one(P.V),
    ],
    # HDR, T, [RANDRr], [IDRr], [RANDRkms], {SP}, [KEMAC], V
    DataType.TRANSFER_RESP: [
        one(P.T), opt(P.RANDR), opt(P.IDR), opt(P.RANDR), many(P.SP), opt(P.KEMAC), one(P.V),
    ],
    # §4.2.3: HDR, T, RANDRr, [IDRr], [IDRkms], TICKET, [IDRpsk], V
    DataType.RESOLVE_INIT_PSK: [one(P.T), one(P.RANDR), opt(P.IDR, hi=2), one(P.TICKET), opt(P.IDR), one(P.V)],
    # HDR, T, RANDRr, [IDRr], {CERTr}, [IDRkms], TICKET, [CHASH], PKE, SIGNr
    DataType.RESOLVE_INIT_PK: [
        one(P.T), one(P.RANDR), opt(P.IDR), Item(frozenset({P.CERT}), 0, 8), opt(P.IDR), one(P.TICKET),
        opt(P.CHASH), one(P.PKE), one(P.SIGN),
    ],
    # HDR, T, [IDRkms], KEMAC, [IDRr], [RANDRkms], V
    DataType.RESOLVE_RESP: [one(P.T), opt(P.IDR), one(P.KEMAC), opt(P.IDR), opt(P.RANDR), one(P.V)],
    # RFC 6267 §4.2.1: HDR, T, RAND, (IDRi/r), IDRkms, [IDRpsk], [KEMAC], V  (the IDR roles: IBAKE_ROLES)
    DataType.REQUEST_KEY_PSK: [one(P.T), one(P.RAND), Item(frozenset({P.IDR}), 2, 34), opt(P.KEMAC), one(P.V)],
    # HDR, T, RAND, (IDRi/r), {CERTi/r}, IDRkms, [KEMAC], [CHASH], PKE, SIGNi/r
    DataType.REQUEST_KEY_PKE: [
        one(P.T), one(P.RAND), Item(frozenset({P.IDR}), 1, 33), Item(frozenset({P.CERT}), 0, 8), opt(P.IDR),
        opt(P.KEMAC), opt(P.CHASH), one(P.PKE), one(P.SIGN),
    ],
    # HDR, T, [IDRi/r], [IDRkms], KEMAC, V
    DataType.REQUEST_KEY_RESP: [one(P.T), Item(frozenset({P.IDR}), 0, 33), one(P.KEMAC), one(P.V)],
    # §4.2.2: HDR, T, RAND, IDRi, IDRr, {SP}, IBAKE, [ESK]; a CSB update (§5.3) is HDR, T, [IDRi], [IDRr],
    # [IBAKE] (no RAND), so RAND, the IDRs and IBAKE are optional here.  {SP}: mikey's profile (as PSK mode).
    DataType.IBAKE_I_MESSAGE_1: [one(P.T), opt(P.RAND), opt(P.IDR, hi=2), many(P.SP), opt(P.IBAKE), opt(P.ESK)],
    # HDR, T, IDRi, IDRr, IBAKE; a CSB update's answer: HDR, T, [IDRi], [IDRr], [IBAKE], V
    DataType.IBAKE_R_MESSAGE_1: [one(P.T), opt(P.IDR, hi=2), opt(P.IBAKE), opt(P.V)],
    # HDR, T, RAND, IDRi, IDRr, IBAKE, [ESK]
    DataType.IBAKE_I_MESSAGE_2: [one(P.T), one(P.RAND), Item(frozenset({P.IDR}), 2, 2), one(P.IBAKE), opt(P.ESK)],
    # HDR, T, [IDRi], [IDRr], [IBAKE], V
    DataType.IBAKE_R_MESSAGE_2: [one(P.T), opt(P.IDR, hi=2), opt(P.IBAKE), one(P.V)],
}

_I, _R, _K, _PSK = IDRole.INITIATOR, IDRole.RESPONDER, IDRole.KMS, IDRole.PSK
#: RFC 6043 §4.2: the IDR roles, in their order, and the RANDR roles, in their order, each message may carry.
#: A Responder-started CSB update (§5.2) carries IDRr before IDRi, and its TRANSFER_RESP IDRi.
TICKET_ROLES: dict[int, tuple[tuple[tuple[int, ...], ...], tuple[int, ...]]] = {
    DataType.REQUEST_INIT_PSK: (((_I, _K, _PSK),), (RANDRole.INITIATOR,)),
    DataType.REQUEST_INIT_PK: (((_I, _K),), (RANDRole.INITIATOR,)),
    DataType.REQUEST_RESP: (((_K,),), ()),
    DataType.TRANSFER_INIT: (((_I, _R), (_R, _I)), (RANDRole.INITIATOR,)),
    DataType.TRANSFER_RESP: (((_R,), (_I,)), (RANDRole.RESPONDER, RANDRole.KMS)),
    DataType.RESOLVE_INIT_PSK: (((_R, _K, _PSK),), (RANDRole.RESPONDER,)),
    DataType.RESOLVE_INIT_PK: (((_R, _K),), (RANDRole.RESPONDER,)),
    DataType.RESOLVE_RESP: (((_K, _R),), (RANDRole.KMS,)),
}
_TICKET_DATA_TYPES = frozenset(TICKET_ROLES)
_KEY_REQUESTS = frozenset({DataType.REQUEST_KEY_PSK, DataType.REQUEST_KEY_PKE, DataType.REQUEST_KEY_RESP})
_IBAKE_EXCHANGE = frozenset({DataType.IBAKE_I_MESSAGE_1, DataType.IBAKE_R_MESSAGE_1, DataType.IBAKE_I_MESSAGE_2,
                             DataType.IBAKE_R_MESSAGE_2})
_KEMAC_LAST = frozenset({DataType.PSK_INIT, DataType.DHHMAC_INIT, DataType.DHHMAC_RESP})


def _in_order(seen: Sequence[int], order: Sequence[int]) -> bool:
    """*seen* is a subsequence of *order* (each role once, in that order)."""
    it = iter(order)
    return all(any(r == o for o in it) for r in seen)


def _ticket_role_violations(msg: Message) -> list[str]:
    """IDR and RANDR roles of an RFC 6043 message (§4.2, §6.6, §6.8); TP/TICKET types registered."""
    out: list[str] = []
    dt = msg.header.data_type
    name = getattr(dt, "name", dt)
    id_orders, rand_order = TICKET_ROLES[dt]
    ids = [int(p.id_role) for p in msg.payloads if isinstance(p, IdrPayload)]
    if not any(_in_order(ids, order) for order in id_orders):
        shown = ", ".join(_role_name(IDRole, r) for r in ids)
        allowed = " or ".join("(" + ", ".join(f"[IDR{_role_name(IDRole, r)}]" for r in order) + ")"
                              for order in id_orders)
        out.append(f"{name}: IDR roles {shown} are not {allowed} (RFC 6043 §4.2)")
    rands = [int(p.rand_role) for p in msg.payloads if isinstance(p, RandrPayload)]
    if not _in_order(rands, rand_order):
        shown = ", ".join(_role_name(RANDRole, r) for r in rands)
        out.append(f"{name}: RANDR roles {shown} are not "
                   f"{', '.join(_role_name(RANDRole, r) for r in rand_order) or 'allowed'} (RFC 6043 §4.2)")
    elif dt in (DataType.REQUEST_INIT_PSK, DataType.REQUEST_INIT_PK, DataType.RESOLVE_INIT_PSK,
                DataType.RESOLVE_INIT_PK) and rands != list(rand_order):
        out.append(f"{name}: the RANDR must have role {_role_name(RANDRole, rand_order[0])}")
    for p in msg.payloads:
        if isinstance(p, TicketPolicyPayload | TicketPayload) and _unknown(p.ticket_type, TicketType):
            out.append(f"{p.NAME} Ticket type {p.ticket_type} is not registered (RFC 6043 §6.10)")
        elif isinstance(p, RandrPayload) and len(p.rand) < 16:
            out.append(f"RANDR is {len(p.rand)} octets; RFC 6043 §6.8 says at least 16")
    return out


def _ibake_role_violations(msg: Message) -> list[str]:
    """IDR roles of an RFC 6267 message (§4.2.1, §4.2.2, §5.3), V and HDR flags where the RFC fixes them."""
    out: list[str] = []
    h = msg.header
    dt = h.data_type
    name = getattr(dt, "name", dt)
    ids = [int(p.id_role) for p in msg.payloads if isinstance(p, IdrPayload)]
    shown = ", ".join(_role_name(IDRole, r) for r in ids) or "none"
    if dt in _KEY_REQUESTS:
        users = ids[: next((n for n, r in enumerate(ids) if r not in (_I, _R)), len(ids))]
        rest = ids[len(users):]
        allowed: tuple[tuple[int, ...], ...] = (((_K,), (_K, _PSK)) if dt == DataType.REQUEST_KEY_PSK
                                                else ((_K,),) if dt == DataType.REQUEST_KEY_PKE else ((), (_K,)))
        if len(set(users)) > 1:
            out.append(f"{name}: the requested identities must all be IDRi or all IDRr (RFC 6267 §4.2.1)")
        elif tuple(rest) not in allowed or (dt != DataType.REQUEST_KEY_RESP and not users):
            out.append(f"{name}: IDR roles {shown} are not (IDRi/r), IDRkms"
                       + (", [IDRpsk]" if dt == DataType.REQUEST_KEY_PSK else "") + " (RFC 6267 §4.2.1)")
        if dt == DataType.REQUEST_KEY_RESP and h.v:
            out.append("REQUEST_KEY_RESP: HDR V must be 0 (RFC 6267 §4.2.1.3)")
        if h.n_cs or h.cs_id_map_type != CSIdMapType.EMPTY:
            out.append(f"{name}: a key request carries no crypto sessions (#CS = 0 and the Empty map, RFC 6267 §6.1)")
    else:
        if not (_in_order(ids, (_I, _R)) or (dt == DataType.IBAKE_I_MESSAGE_1 and _in_order(ids, (_R, _I)))):
            out.append(f"{name}: IDR roles {shown} are not IDRi, IDRr (RFC 6267 §4.2.2)")
        if dt in (DataType.IBAKE_I_MESSAGE_1, DataType.IBAKE_I_MESSAGE_2) and not h.v:
            out.append(f"{name}: HDR V must be 1, the Responder always answers (RFC 6267 §4.2.2.1)")
    # The layouts skip General Extensions; after V (whose MAC covers the message) none may follow.
    v_at = [n for n, p in enumerate(msg.payloads) if isinstance(p, VerificationPayload)]
    if v_at and any(p.TYPE == P.GEN_EXT for p in msg.payloads[v_at[-1] + 1:]):
        out.append(f"{name}: V must be the last payload (its MAC covers the message)")
    return out


def _role_name(enum: type[IntEnum], value: int) -> str:
    try:
        return enum(value).name
    except ValueError:
        return str(value)

_KNOWN_ENUMS: list[tuple[str, type[IntEnum]]] = []


def _unknown(value: int, enum: type[IntEnum]) -> bool:
    """True if the registry *enum* has no entry for *value* (enum member or plain int alike)."""
    return value not in enum_table(enum)


def _check_layout(types: Sequence[int], layout: list[Item]) -> str | None:
    pos = 0
    for item in layout:
        count = 0
        while pos < len(types) and types[pos] in item.types and count < item.hi:
            pos += 1
            count += 1
        if count < item.lo:
            found = _pname(types[pos]) if pos < len(types) else "end of message"
            return f"expected {item.label()} at payload {pos + 1}, found {found}"
    if pos < len(types):
        return f"unexpected {_pname(types[pos])} payload at position {pos + 1}"
    return None


def _pname(t: int) -> str:
    try:
        return str(P(t).name)
    except ValueError:
        return str(t)


def violations(msg: Message) -> list[str]:
    """Every RFC rule *msg* breaks, as readable sentences (empty if it is valid)."""
    out: list[str] = []
    h = msg.header
    if h.version != 1:
        out.append(f"HDR version is {h.version}; RFC 3830 §6.1 defines version 1")
    if _unknown(h.data_type, DataType):
        out.append(f"HDR data type {h.data_type} is not registered")
    if _unknown(h.prf, PRF):
        out.append(f"HDR PRF func {h.prf} is not registered")
    if _unknown(h.cs_id_map_type, CSIdMapType):
        out.append(f"HDR CS ID map type {h.cs_id_map_type} is not registered")
    if h.data_type == DataType.SAKKE and h.v:
        out.append("HDR V must be 0 in a MIKEY-SAKKE message (RFC 6509 §4.1)")
    if h.data_type == DataType.ERROR and h.v:
        out.append("HDR V must be 0 in an Error message")

    types = [p.TYPE for p in msg.payloads]
    for i, p in enumerate(msg.payloads):
        if p.SUB_PAYLOAD:
            out.append(f"{p.NAME} is a sub-payload and cannot stand in the message itself (payload {i + 1})")
        if isinstance(p, SignPayload) and i != len(msg.payloads) - 1:
            out.append("SIGN must be the last payload (RFC 3830 §6.5)")

    layout = LAYOUTS.get(h.data_type)
    if layout is not None:
        problem = _check_layout([t for t in types if t != P.GEN_EXT], layout)
        if problem:
            dt = getattr(h.data_type, "name", h.data_type)
            out.append(f"{dt} message layout: {problem}")
    if h.data_type in _KEMAC_LAST and types and types[-1] != P.KEMAC:
        out.append("KEMAC must be the last payload of this message (its MAC covers the whole message)")
    if h.data_type in _TICKET_DATA_TYPES:
        out += _ticket_role_violations(msg)
        if h.data_type not in (DataType.TRANSFER_INIT, DataType.TRANSFER_RESP) and (
                h.n_cs or h.cs_id_map_type != CSIdMapType.EMPTY):
            out.append("Ticket Request and Resolve messages carry no crypto sessions (#CS = 0 and the Empty map, "
                       "RFC 6043 §4.2.1.1, §4.2.3.1)")

    if h.data_type in _KEY_REQUESTS or h.data_type in _IBAKE_EXCHANGE:
        out += _ibake_role_violations(msg)

    policy_nos = {p.policy_no for p in msg.payloads if isinstance(p, SecurityPolicyPayload)}
    if h.cs_id_map_type == CSIdMapType.EMPTY and policy_nos and h.data_type != DataType.SAKKE:
        # RFC 4563 §5: with the empty map the policy is delivered in band; no SP payload.
        out.append("Empty CS ID map: there must not be any SP payload (RFC 4563 §5)")
    for idx, e in enumerate(h.cs_id_map, 1):
        if isinstance(e, SrtpIdEntry) and policy_nos and e.policy_no not in policy_nos:
            out.append(f"CS {idx} refers to policy {e.policy_no}, but no SP payload has that Policy no")
        if isinstance(e, GenericIdEntry):
            for pn in e.policies:
                if policy_nos and pn not in policy_nos:
                    out.append(f"CS {e.cs_id} refers to policy {pn}, but no SP payload has that Policy no")
    if h.cs_id_map_type == CSIdMapType.GENERIC_ID:
        ids = [e.cs_id for e in h.cs_id_map if isinstance(e, GenericIdEntry)]
        if len(set(ids)) != len(ids):
            out.append("GENERIC-ID map lists a CS ID twice")

    seen_policy: set[int] = set()
    for p in msg.payloads:
        out.extend(_payload_violations(p, seen_policy))
    return out


def _payload_violations(p: Payload, seen_policy: set[int]) -> list[str]:
    out: list[str] = []
    if isinstance(p, KemacPayload):
        if _unknown(p.encr_alg, EncrAlg):
            out.append(f"KEMAC Encr alg {p.encr_alg} is not registered")
        if _unknown(p.mac_alg, MacAlg):
            out.append(f"KEMAC MAC alg {p.mac_alg} is not registered")
        if p.encr_alg == EncrAlg.NULL:
            try:
                subs = p.key_data()
            except MikeyDecodeError as e:
                subs = []
                if p.encr_data:
                    out.append(f"KEMAC Encr data (NULL encryption) is not a Key data chain: {e}")
            for s in subs:
                kt = getattr(s, "key_type", None)
                if kt is not None and _unknown(kt, KeyDataType):
                    out.append(f"Key data Type {kt} is not registered")
    elif isinstance(p, TimestampPayload):
        pass  # TS type already checked for length by the decoder
    elif isinstance(p, RandPayload):
        if len(p.rand) < 16:
            out.append(f"RAND is {len(p.rand)} octets; RFC 3830 §6.11 says it SHOULD be at least 16")
    elif isinstance(p, IdPayload | IdrPayload):
        if _unknown(p.id_type, IDType):
            out.append(f"{p.NAME} ID type {p.id_type} is not registered")
        if not p.data:
            out.append(f"{p.NAME} with empty ID data")
    elif isinstance(p, SignPayload):
        if _unknown(p.s_type, SignatureType):
            out.append(f"SIGN S type {p.s_type} is not registered")
        if p.s_type == SignatureType.ECCSI and len(p.signature) != 129:
            out.append(f"ECCSI signature is {len(p.signature)} octets; RFC 6509 §4.3 needs 129 (r||s||PVT)")
    elif isinstance(p, ChashPayload):
        if _unknown(p.hash_func, HashFunc):
            out.append(f"CHASH hash func {p.hash_func} is not registered")
    elif isinstance(p, VerificationPayload):
        if _unknown(p.auth_alg, MacAlg):
            out.append(f"V auth alg {p.auth_alg} is not registered")
    elif isinstance(p, ErrorPayload):
        if _unknown(p.error_no, ErrorNo):
            out.append(f"ERR Error no {p.error_no} is not registered")
    elif isinstance(p, GeneralExtensionPayload):
        if _unknown(p.ext_type, GenExtType):
            out.append(f"General Extension type {p.ext_type} is not registered")
        elif p.ext_type == GenExtType.KEY_ID:
            try:
                p.parse_key_ids()
            except MikeyDecodeError as e:
                out.append(str(e))
        elif p.ext_type == GenExtType.CSB_ID and len(p.data) != 4:
            out.append("General Extension CSB ID must carry 4 octets (RFC 4738 §3.9)")
    elif isinstance(p, SecurityPolicyPayload):
        if p.policy_no in seen_policy:
            out.append(f"two SP payloads with Policy no {p.policy_no}")
        seen_policy.add(p.policy_no)
        if _unknown(p.prot_type, ProtType):
            out.append(f"SP Prot type {p.prot_type} is not registered")
        elif p.prot_type == ProtType.SRTP:
            for t, v in p.params:
                if _unknown(t, SRTPParam):
                    out.append(f"SRTP policy parameter type {t} is not registered")
                    continue
                expected = 2 if t == SRTPParam.ROC_TRANSMISSION_RATE else 1
                if t != SRTPParam.KEY_DERIVATION_RATE and len(v) != expected:
                    out.append(f"SRTP policy parameter {SRTPParam(t).name} has length {len(v)}; expected {expected}")
    elif isinstance(p, DhPayload):
        pass
    return out


# --- lints: legal on the wire, but mistakes seen in the field --------------------------------------

class LintWarning(UserWarning):
    """A :func:`lint` finding issued by ``validate(msg, lints=True)`` (:mod:`warnings` category)."""


_RESPONSES = frozenset({DataType.PSK_RESP, DataType.PK_RESP, DataType.DH_RESP, DataType.DHHMAC_RESP,
                        DataType.RSA_R_RESP})
_TEK_TYPES = frozenset({KeyDataType.TEK, KeyDataType.TEK_SALT})
# SRTP policy parameters that count octets (RFC 3830 Table 6.10.1.a) and the values that are their usual
# sizes in bits instead: 128/192/256-bit keys, a 160-bit HMAC-SHA1 key, 96/112-bit salts, 32/80-bit tags.
_BIT_LENGTHS: dict[int, tuple[int, ...]] = {
    SRTPParam.SESSION_ENCR_KEY_LEN: (128, 192, 256),
    SRTPParam.SESSION_AUTH_KEY_LEN: (160,),
    SRTPParam.SESSION_SALT_KEY_LEN: (96, 112),
    SRTPParam.AUTH_TAG_LEN: (32, 80),
}
_TAG_LENGTHS = (4, 10)  # octets of the 32- and 80-bit HMAC-SHA1 tags (RFC 3711 §8.2, RFC 4568 §6.2)


def _clear_key_data(p: KemacPayload) -> list[Payload]:
    """The sub-payloads of a NULL-encrypted KEMAC (RFC 3830 §6.2), or [] when they do not decode."""
    if p.encr_alg != EncrAlg.NULL or not p.encr_data:
        return []
    for first in (P.KEY_DATA, P.ID, P.IDR):
        try:
            return p.key_data(first=first)
        except MikeyDecodeError:
            continue
    return []


def _srtp_lints(sp: SecurityPolicyPayload, where: str) -> tuple[list[str], dict[int, int]]:
    """Lints of one SRTP SP payload, and its integer parameters (first of each type)."""
    out: list[str] = []
    params: dict[int, int] = {}
    for t, v in sp.params:
        if v and len(v) <= 4:
            params.setdefault(t, int.from_bytes(v, "big"))
    auth_key = params.get(SRTPParam.SESSION_AUTH_KEY_LEN)
    if auth_key in _TAG_LENGTHS:
        if SRTPParam.AUTH_TAG_LEN not in params:
            out.append(f"SP{where} parameter 3 (authentication key length) is {auth_key}, a tag length: parameter 11 "
                       "(SRTP authentication tag length) was probably meant (HMAC-SHA1 keys are 20 octets)")
        else:
            out.append(f"SP{where} parameter 3 (authentication key length) is {auth_key}, the size of a tag; "
                       "HMAC-SHA1 keys are 20 octets (RFC 3711 §8.2) and parameter 11 already sets the tag length")
    for t, bits in _BIT_LENGTHS.items():
        value = params.get(t)
        if value is not None and value in bits:
            out.append(f"SP{where} parameter {int(t)} ({SRTPParam(t).name}) is {value}: a length in bits? "
                       f"RFC 3830 §6.10.1 counts octets ({value // 8})")
    return out, params


def lint(msg: Message, *, secure_carrier: bool = False) -> list[str]:
    """Warnings for the mistakes seen in the field: legal on the wire, almost never meant.

    * SP parameter 3 (auth key length) holding a tag length (4, 10) where 11 (tag length) was
      meant, and lengths given in bits where RFC 3830 §6.10.1 counts octets;
    * a TEK or TEK+salt Key data (§6.13) in a NULL-encrypted KEMAC whose key or salt length
      is not what an SRTP SP sets (parameters 1 and 4), or a TEK without salt where the SP
      sets a salt length (TEK+salt meant);
    * SSRC 0 left in a response's SRTP-ID map (§6.1.1: the Responder fills it in);
    * NULL KEMAC encryption of carried keys or a NULL MAC (§4.2.3, §4.2.4), unless
      *secure_carrier* says the carrier (TLS, IPsec) protects the message.
    """
    out: list[str] = []
    srtp_sps = [p for p in msg.payloads if isinstance(p, SecurityPolicyPayload) and p.prot_type == ProtType.SRTP]
    sp_params: list[tuple[str, dict[int, int]]] = []
    for sp in srtp_sps:
        where = f" policy {sp.policy_no}" if len(srtp_sps) > 1 else ""
        found, params = _srtp_lints(sp, where)
        out += found
        sp_params.append((where, params))
    if msg.header.data_type in _RESPONSES:
        for i, e in enumerate(msg.header.cs_id_map, 1):
            if isinstance(e, SrtpIdEntry) and e.ssrc == 0:
                out.append(f"CS {i}: SSRC 0 left unfilled in a response (RFC 3830 §6.1.1: the Responder fills it in)")
    for p in msg.payloads:
        if not isinstance(p, KemacPayload):
            continue
        if not secure_carrier:
            if p.encr_alg == EncrAlg.NULL and p.encr_data:  # DHHMAC's KEMAC carries no key (RFC 4650 §3)
                out.append("KEMAC encryption NULL: the keys travel in the clear; only over a secure carrier "
                           "(RFC 3830 §4.2.3)")
            if p.mac_alg == MacAlg.NULL:
                out.append("KEMAC MAC NULL: the message is unauthenticated; only over a secure carrier "
                           "(RFC 3830 §4.2.4)")
        for sub in _clear_key_data(p):
            if isinstance(sub, KeyDataPayload) and sub.key_type in _TEK_TYPES:
                out += _tek_lints(sub, sp_params)
    return out


def _tek_lints(sub: KeyDataPayload, sp_params: list[tuple[str, dict[int, int]]]) -> list[str]:
    out: list[str] = []
    for where, params in sp_params:
        key_len = params.get(SRTPParam.SESSION_ENCR_KEY_LEN)
        salt_len = params.get(SRTPParam.SESSION_SALT_KEY_LEN)
        if key_len is not None and len(sub.key) != key_len:
            out.append(f"KEY_DATA TEK is {len(sub.key)} octets but the SP{where} encryption key length is {key_len}")
        if sub.salt is not None and salt_len is not None and len(sub.salt) != salt_len:
            out.append(f"KEY_DATA salt is {len(sub.salt)} octets but the SP{where} salt key length is {salt_len}")
        if sub.key_type == KeyDataType.TEK and salt_len:
            out.append(f"KEY_DATA carries a TEK without salt while the SP{where} sets a salt length: TEK+salt "
                       "(type 3) was probably meant")
    return out


def validate(msg: Message, *, lints: bool = False, secure_carrier: bool = False) -> list[str]:
    """Raise :class:`MikeyValidationError` listing every rule *msg* breaks.

    With ``lints``, a valid message's :func:`lint` warnings (``secure_carrier`` passed on) are
    returned and each is issued as a :class:`LintWarning`; otherwise the result is empty.
    """
    problems = violations(msg)
    if problems:
        raise MikeyValidationError(problems)
    if not lints:
        return []
    found = lint(msg, secure_carrier=secure_carrier)
    for w in found:
        warnings.warn(w, LintWarning, stacklevel=2)
    return found
