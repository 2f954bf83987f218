"""MIKEY-TICKET payloads (RFC 6043 §6.4, §6.6, §6.8, §6.10): TR, IDR, RANDR, TP, TICKET."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ...constants import PRF, TS_LENGTHS, IDRole, IDType, PayloadType, RANDRole, TicketType, TSRole, TSType
from ...errors import MikeyEncodeError
from .base import (
    IdFields,
    Payload,
    Reader,
    ReadPastEnd,
    TimestampFields,
    Writer,
    decode_sub_payloads,
    enum_table,
    expect_length,
    fast_constructor,
    len_check,
    lookup,
    pull_b_h_data,
    pull_selected_fixed,
    register,
)

__all__ = ["TrPayload", "IdrPayload", "RandrPayload", "TicketPolicyPayload", "TicketPayload", "TICKET_FLAGS"]

#: TP/TICKET flag letters, most significant first (RFC 6043 §6.10).
TICKET_FLAGS = "DEFGHIJKLMNO"

_TS_ROLE = enum_table(TSRole)
_TS_TYPE = enum_table(TSType)
_ID_ROLE = enum_table(IDRole)
_ID_TYPE = enum_table(IDType)
_RAND_ROLE = enum_table(RANDRole)
_TICKET_TYPE = enum_table(TicketType)
_PRF = enum_table(PRF)
_U16_FROM = struct.Struct(">H").unpack_from


@register
@dataclass(frozen=True, slots=True)
class TrPayload(TimestampFields, Payload):
    """TR: timestamp with a TS Role (RFC 6043 §6.4)."""

    ts_role: TSRole | int
    ts_type: TSType | int
    ts_value: bytes

    TYPE = PayloadType.TR
    NAME = "TR"

    @classmethod
    def pull(cls, data: bytes, pos: int, end: int) -> tuple[TrPayload, int]:
        if pos >= end:
            raise ReadPastEnd(pos, 1, 0)
        role = data[pos]
        t, value, q = pull_selected_fixed(data, pos + 1, end, TS_LENGTHS, "TS type")
        return _MAKE_TR(_TS_ROLE.get(role, role), _TS_TYPE.get(t, t), value), q

    def encode_body(self, w: Writer) -> None:
        expect_length(TS_LENGTHS, self.ts_type, self.ts_value, "TS value", "TS type")
        w.u8(self.ts_role)
        w.u8(self.ts_type)
        w.put(self.ts_value)


@register
@dataclass(frozen=True, slots=True)
class IdrPayload(IdFields, Payload):
    """IDR: identity with an ID Role (RFC 6043 §6.6; roles 6/7 RFC 6509 §4.4, 8/9 3GPP UIDs)."""

    id_role: IDRole | int
    id_type: IDType | int
    data: bytes

    TYPE = PayloadType.IDR
    NAME = "IDR"

    @classmethod
    def pull(cls, data: bytes, pos: int, end: int) -> tuple[IdrPayload, int]:
        if pos >= end:
            raise ReadPastEnd(pos, 1, 0)
        role = data[pos]
        t, value, q = pull_b_h_data(data, pos + 1, end)
        return _MAKE_IDR(_ID_ROLE.get(role, role), _ID_TYPE.get(t, t), value), q

    def encode_body(self, w: Writer) -> None:
        w.u8(self.id_role)
        w.u8(self.id_type)
        w.u16(len_check(self.data, 16, "IDR data"))
        w.put(self.data)


@register
@dataclass(frozen=True, slots=True)
class RandrPayload(Payload):
    """RANDR: RAND with a RAND Role (RFC 6043 §6.8)."""

    rand_role: RANDRole | int
    rand: bytes

    TYPE = PayloadType.RANDR
    NAME = "RANDR"

    @classmethod
    def pull(cls, data: bytes, pos: int, end: int) -> tuple[RandrPayload, int]:
        if pos + 2 > end:
            raise ReadPastEnd(pos, 2, end - pos)
        role = data[pos]
        n = data[pos + 1]
        q = pos + 2 + n
        if q > end:
            raise ReadPastEnd(pos + 2, n, end - pos - 2)
        return _MAKE_RANDR(_RAND_ROLE.get(role, role), data[pos + 2 : q]), q

    def encode_body(self, w: Writer) -> None:
        w.u8(self.rand_role)
        w.u8(len_check(self.rand, 8, "RANDR"))
        w.put(self.rand)


def _flags_dict(flags: int) -> dict[str, bool]:
    return {c: bool(flags & (1 << (11 - i))) for i, c in enumerate(TICKET_FLAGS)}


class _TicketPolicyMixin:
    """Fields and methods shared by TP and TICKET (RFC 6043 §6.10)."""

    __slots__ = ()
    ticket_type: TicketType | int
    subtype: int
    version: int
    prf_func: int
    flags: int
    tp_data: bytes
    reserved: int

    def flag(self, letter: str) -> bool:
        return bool(self.flags & (1 << (11 - TICKET_FLAGS.index(letter))))

    @staticmethod
    def _decode_policy(r: Reader) -> tuple[int, int, int, int, int, int, bytes]:
        ticket_type = r.u16()
        subtype = r.u8()
        version = r.u8()
        v = r.u8() << 16 | r.u16()
        prf_func = lookup(PRF, v >> 17)
        flags = (v >> 5) & 0xFFF
        reserved = v & 0x1F
        tp_data = r.take(r.u16())
        return ticket_type, subtype, version, prf_func, flags, reserved, tp_data

    def _encode_policy(self, w: Writer) -> None:
        if not 0 <= self.prf_func <= 0x7F or not 0 <= self.flags <= 0xFFF or not 0 <= self.reserved <= 0x1F:
            raise MikeyEncodeError("TP PRF func/flags/reserved out of range")
        w.u16(self.ticket_type)
        w.u8(self.subtype)
        w.u8(self.version)
        v = (self.prf_func << 17) | (self.flags << 5) | self.reserved
        w.u8(v >> 16)
        w.u16(v & 0xFFFF)
        w.u16(len_check(self.tp_data, 16, "TP Data"))
        w.put(self.tp_data)

    def tp_payloads(self) -> list[Payload]:
        """Decode TP Data: its first octet names the first payload, then a payload chain."""
        if not self.tp_data:
            return []
        return decode_sub_payloads(self.tp_data[1:], self.tp_data[0])


@register
@dataclass(frozen=True, slots=True)
class TicketPolicyPayload(_TicketPolicyMixin, Payload):
    """TP: the desired Ticket Policy (RFC 6043 §6.10).

    ``flags`` holds D..O as a 12-bit integer, D most significant.  ``tp_data``
    is the first-payload octet followed by a chain of MIKEY payloads.
    """

    ticket_type: TicketType | int
    subtype: int
    version: int
    prf_func: int
    flags: int
    tp_data: bytes = b""
    reserved: int = 0

    TYPE = PayloadType.TP
    NAME = "TP"

    @classmethod
    def decode_body(cls, r: Reader) -> TicketPolicyPayload:
        tt, st, ver, prf, flags, res, tp = cls._decode_policy(r)
        return cls(lookup(TicketType, tt), st, ver, prf, flags, tp, res)

    def encode_body(self, w: Writer) -> None:
        self._encode_policy(w)

    def to_dict(self) -> dict[str, Any]:
        d = Payload.to_dict(self)
        d["flag_bits"] = _flags_dict(self.flags)
        return d


@register
@dataclass(frozen=True, slots=True)
class TicketPayload(_TicketPolicyMixin, Payload):
    """TICKET: granted Ticket Policy plus Ticket Data and Initiator Data (RFC 6043 §6.10)."""

    ticket_type: TicketType | int
    subtype: int
    version: int
    prf_func: int
    flags: int
    tp_data: bytes = b""
    ticket_data: bytes = field(default=b"", repr=False)
    initiator_data: bytes = b""
    reserved: int = 0

    TYPE = PayloadType.TICKET
    NAME = "TICKET"

    @classmethod
    def pull(cls, data: bytes, pos: int, end: int) -> tuple[TicketPayload, int]:
        """The TICKET body: the policy header as :meth:`_decode_policy` reads it, then Ticket Data and
        Initiator Data (RFC 6043 §6.10), without a cursor object (a KMS decodes one per Resolve)."""
        if pos + 9 > end:
            raise ReadPastEnd(pos, 9, end - pos)
        (tt,) = _U16_FROM(data, pos)
        v = data[pos + 4] << 16 | data[pos + 5] << 8 | data[pos + 6]
        fields = []
        p = pos + 7
        for _ in range(3):  # TP Data, Ticket Data, Initiator Data: each length(16) | data
            if p + 2 > end:
                raise ReadPastEnd(p, 2, end - p)
            (n,) = _U16_FROM(data, p)
            q = p + 2 + n
            if q > end:
                raise ReadPastEnd(p + 2, n, end - p - 2)
            fields.append(data[p + 2 : q])
            p = q
        prf = v >> 17
        return _MAKE_TICKET(_TICKET_TYPE.get(tt, tt), data[pos + 2], data[pos + 3], _PRF.get(prf, prf),
                            (v >> 5) & 0xFFF, fields[0], fields[1], fields[2], v & 0x1F), p

    def encode_body(self, w: Writer) -> None:
        self._encode_policy(w)
        w.u16(len_check(self.ticket_data, 16, "Ticket Data"))
        w.put(self.ticket_data)
        w.u16(len_check(self.initiator_data, 16, "Initiator Data"))
        w.put(self.initiator_data)

    def to_dict(self) -> dict[str, Any]:
        d = Payload.to_dict(self)
        d["ticket_data"] = self.ticket_data.hex()
        d["flag_bits"] = _flags_dict(self.flags)
        return d


_MAKE_TR: Callable[..., TrPayload] = fast_constructor(TrPayload)
_MAKE_IDR: Callable[..., IdrPayload] = fast_constructor(IdrPayload)
_MAKE_RANDR: Callable[..., RandrPayload] = fast_constructor(RandrPayload)
_MAKE_TICKET: Callable[..., TicketPayload] = fast_constructor(TicketPayload)
