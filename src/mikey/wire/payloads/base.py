"""Payload base class, registry, payload-chain coding, and the pieces shared by several payloads.

Every payload is a frozen dataclass with ``decode_body`` (reads what follows the
next-payload octet) and ``encode_body`` (writes the same).  The next-payload
octet itself is written by the container (:func:`encode_chain`, used by
:mod:`mikey.wire.message` and for sub-payloads), never by hand (RFC 3830 §6:
each payload names the type of the one after it).

The payload families (``rfc3830``, ``rfc6043``, ``rfc6267``, ``rfc6509``,
``genext``) import only this module; what more than one of them needs lives here.

Hot payloads also define ``pull(data, pos, end)``, the same decoder working on
the raw buffer without a cursor object; the chain decoder calls ``pull`` and
each entry point defaults to the other.  Decoders build their results with
:func:`fast_constructor` instead of the frozen dataclass ``__init__``.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable, Sequence
from enum import IntEnum
from typing import Any, ClassVar, TypeVar

from ...constants import KVType, PayloadType, TSType
from ...errors import MikeyDecodeError, MikeyEncodeError
from ...identities import unix_from_ntp, unix_from_ntp_seconds
from ..buffer import FieldError, Reader, ReadPastEnd, Writer

__all__ = [
    "Payload",
    "REGISTRY",
    "register",
    "lookup",
    "SpiValidity",
    "IntervalValidity",
    "KeyValidity",
    "read_key_validity",
    "write_key_validity",
    "key_validity_type",
    "value_to_json",
    "enum_table",
    "fast_constructor",
    "pull_key_validity",
    "decode_chain",
    "encode_chain",
    "decode_sub_payloads",
    "encode_sub_payloads",
    "TimestampFields",
    "IdFields",
    "len_check",
    "expect_length",
    "unknown_length",
    "pull_b_h_data",
    "pull_selected_fixed",
    "U16_FROM",
    "B_H_FROM",
    "BBH_FROM",
    "PACK_B_H",
    "PACK_BB",
    "PACK_H",
    "PACK_BBH",
    # the cursor and its internal errors, so that payload families import only this module
    "Reader",
    "Writer",
    "ReadPastEnd",
    "FieldError",
]

E = TypeVar("E", bound=IntEnum)
P = TypeVar("P", bound="type[Payload]")

_LOOKUP_CACHE: dict[type[IntEnum], dict[int, IntEnum]] = {}


def enum_table(enum: type[E]) -> dict[int, E]:
    """``{value: member}`` for *enum*; ``table.get(v, v)`` is the fastest registry lookup."""
    table = _LOOKUP_CACHE.get(enum)
    if table is None:
        table = {m.value: m for m in enum}
        _LOOKUP_CACHE[enum] = table
    return table  # type: ignore[return-value]


def lookup(enum: type[E], value: int) -> E | int:
    """Fast registry lookup: the enum member for *value*, or the plain int if unknown."""
    table = _LOOKUP_CACHE.get(enum)
    if table is None:
        table = enum_table(enum)
    return table.get(value, value)


C = TypeVar("C")


def fast_constructor(cls: type[C]) -> Callable[..., C]:
    """A ``make(*values)`` that builds an instance of the frozen slots dataclass *cls* cheaply.

    The generated ``__init__`` of a frozen dataclass sets each field through
    ``object.__setattr__``, which dominates decoding time.  Decoders already hold
    checked values, so ``make`` fills the slots of a plain twin class with the
    same slot layout (ordinary attribute stores) and then retypes the object to
    *cls*: the result is an ordinary, immutable *cls* instance.  Where the
    retyping is refused, ``make`` sets the slots through their member
    descriptors instead.  All fields are positional and required, and
    ``__post_init__`` is not run.
    """
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    args = ", ".join(f"a{i}" for i in range(len(names)))
    ns: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    slots = tuple(cls.__dict__.get("__slots__", ()))
    twin = type(f"_{cls.__name__}Twin", (object,), {"__slots__": slots})
    ns["_twin"] = twin
    stores = "".join(f"    o.{n} = a{i}\n" for i, n in enumerate(names))
    src = f"def make({args}):\n    o = _new(_twin)\n{stores}    o.__class__ = _cls\n    return o\n"
    retyped = False
    if set(slots) == set(names):
        exec(src, ns)  # noqa: S102 - generated from the dataclass's own field names
        try:
            retyped = type(ns["make"](*([None] * len(names)))) is cls
        except TypeError:  # layouts not compatible for __class__ assignment
            retyped = False
    if not retyped:
        for i, n in enumerate(names):
            ns[f"_s{i}"] = getattr(cls, n).__set__
        body = "".join(f"    _s{i}(o, a{i})\n" for i in range(len(names)))
        exec(f"def make({args}):\n    o = _new(_cls)\n{body}    return o\n", ns)  # noqa: S102
    make: Callable[..., C] = ns["make"]
    make.__qualname__ = f"{cls.__qualname__}._make"
    return make


class Payload:
    """Base of every MIKEY payload (RFC 3830 §6)."""

    __slots__ = ()

    TYPE: ClassVar[int]
    NAME: ClassVar[str]
    #: SIGN has no next-payload field and is always last (RFC 3830 §6.5).
    HAS_NEXT: ClassVar[bool] = True
    #: Sub-payloads (Key data, SK, ECCPT) travel only inside KEMAC/PKE/ESK/IBAKE.
    SUB_PAYLOAD: ClassVar[bool] = False

    @classmethod
    def decode_body(cls, r: Reader) -> Payload:
        """Decode what follows the next-payload octet, advancing *r*."""
        p, r.pos = cls.pull(r.data, r.pos, r.end)
        return p

    @classmethod
    def pull(cls, data: bytes, pos: int, end: int) -> tuple[Payload, int]:
        """Decode the body at ``data[pos:end]``; returns the payload and the position after it.

        Raises the internal :class:`ReadPastEnd` / :class:`FieldError`; the
        message decoder turns them into :class:`MikeyDecodeError`.  A payload
        class defines ``pull`` or ``decode_body`` (each defaults to the other).
        """
        if cls.decode_body.__func__ is Payload.decode_body.__func__:  # type: ignore[attr-defined]
            raise NotImplementedError(f"{cls.__name__} defines neither pull nor decode_body")
        r = Reader(data, pos, end)
        p = cls.decode_body(r)
        return p, r.pos

    def encode_body(self, w: Writer) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view: ``{"type": NAME, field: value, field_name: registry name, ...}``."""
        out: dict[str, Any] = {"type": self.NAME}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            if not f.repr and f.name != "key":
                continue
            value = getattr(self, f.name)
            out[f.name] = value_to_json(value)
            if isinstance(value, IntEnum):
                out[f.name + "_name"] = value.name
        return out


#: What the chain decoder needs per payload number: the class's ``pull``, whether
#: it has a next-payload octet, and the class.
ChainInfo = tuple[Callable[[bytes, int, int], tuple[Payload, int]], bool, type[Payload]]


class _Registry(dict[int, type[Payload]]):
    """The payload-number registry; keeps :attr:`chain` (its decoder view) in step."""

    def __init__(self) -> None:
        super().__init__()
        self.chain: dict[int, ChainInfo] = {}

    def chain_info(self, payload_type: int) -> ChainInfo | None:
        cls = self.get(payload_type)
        if cls is None:
            return None
        info = self.chain[payload_type] = (cls.pull, cls.HAS_NEXT, cls)
        return info

    def __setitem__(self, key: int, value: type[Payload]) -> None:
        super().__setitem__(key, value)
        self.chain.clear()

    def __delitem__(self, key: int) -> None:
        super().__delitem__(key)
        self.chain.clear()

    def update(self, *args: Any, **kwargs: Any) -> None:
        super().update(*args, **kwargs)
        self.chain.clear()

    def pop(self, *args: Any) -> Any:
        self.chain.clear()
        return super().pop(*args)

    def popitem(self) -> tuple[int, type[Payload]]:
        self.chain.clear()
        return super().popitem()

    def setdefault(self, key: int, default: Any = None) -> Any:
        self.chain.clear()
        return super().setdefault(key, default)

    def clear(self) -> None:
        super().clear()
        self.chain.clear()

    def __ior__(self, other: Any) -> _Registry:  # type: ignore[override,misc]
        super().__ior__(other)
        self.chain.clear()
        return self


REGISTRY: _Registry = _Registry()


def register(cls: P) -> P:
    """Class decorator: put a payload class in the payload-number registry."""
    REGISTRY[cls.TYPE] = cls
    return cls


def value_to_json(value: Any) -> Any:
    """Turn payload field values into JSON-friendly ones (bytes become hex)."""
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    if isinstance(value, bool):
        return value
    if isinstance(value, IntEnum):
        return int(value)
    if isinstance(value, int | str) or value is None:
        return value
    if isinstance(value, tuple | list):
        return [value_to_json(v) for v in value]
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: value_to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return repr(value)


# --- Key validity data (RFC 3830 §6.14) ------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class SpiValidity:
    """KV type 1: an SPI (or SRTP MKI)."""

    spi: bytes

    def to_dict(self) -> dict[str, Any]:
        return {"kv_type": int(KVType.SPI), "kv_type_name": "SPI", "spi": self.spi.hex()}


@dataclasses.dataclass(frozen=True, slots=True)
class IntervalValidity:
    """KV type 2: the key is valid From..To (for SRTP: 6-octet packet indices)."""

    valid_from: bytes
    valid_to: bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "kv_type": int(KVType.INTERVAL),
            "kv_type_name": "INTERVAL",
            "valid_from": self.valid_from.hex(),
            "valid_to": self.valid_to.hex(),
        }


KeyValidity = SpiValidity | IntervalValidity | None


def key_validity_type(kv: KeyValidity) -> int:
    if kv is None:
        return KVType.NULL
    if isinstance(kv, SpiValidity):
        return KVType.SPI
    return KVType.INTERVAL


def read_key_validity(r: Reader, kv_type: int) -> KeyValidity:
    """Read KV data of the given KV type (RFC 3830 §6.14)."""
    kv, r.pos = pull_key_validity(r.data, r.pos, r.end, kv_type)
    return kv


_MAKE_SPI: Callable[[bytes], SpiValidity] = fast_constructor(SpiValidity)
_MAKE_INTERVAL: Callable[[bytes, bytes], IntervalValidity] = fast_constructor(IntervalValidity)


def pull_key_validity(data: bytes, pos: int, end: int, kv_type: int) -> tuple[KeyValidity, int]:
    """:func:`read_key_validity` on a raw buffer; returns the KV and the position after it."""
    if kv_type == 0:
        return None, pos
    if kv_type == 1:
        if pos >= end:
            raise ReadPastEnd(pos, 1, 0)
        q = pos + 1 + data[pos]
        if q > end:
            raise ReadPastEnd(pos + 1, data[pos], end - pos - 1)
        return _MAKE_SPI(data[pos + 1 : q]), q
    if kv_type == 2:
        if pos >= end:
            raise ReadPastEnd(pos, 1, 0)
        q = pos + 1 + data[pos]
        if q >= end:
            if q > end:
                raise ReadPastEnd(pos + 1, data[pos], end - pos - 1)
            raise ReadPastEnd(q, 1, 0)
        r = q + 1 + data[q]
        if r > end:
            raise ReadPastEnd(q + 1, data[q], end - q - 1)
        return _MAKE_INTERVAL(data[pos + 1 : q], data[q + 1 : r]), r
    raise FieldError(f"unknown KV type {kv_type}: cannot tell the length of its KV data", pos)


def write_key_validity(w: Writer, kv: KeyValidity) -> None:
    if kv is None:
        return
    if isinstance(kv, SpiValidity):
        w.u8(_len8(kv.spi, "SPI"))
        w.put(kv.spi)
    else:
        w.u8(_len8(kv.valid_from, "Valid From"))
        w.put(kv.valid_from)
        w.u8(_len8(kv.valid_to, "Valid To"))
        w.put(kv.valid_to)


def _len8(data: bytes, what: str) -> int:
    if len(data) > 0xFF:
        raise MikeyEncodeError(f"{what} is {len(data)} octets; its length field holds at most 255")
    return len(data)


# --- Field helpers shared by the payload families ------------------------------------------

U16_FROM = struct.Struct(">H").unpack_from
B_H_FROM = struct.Struct(">BH").unpack_from
BBH_FROM = struct.Struct(">BBH").unpack_from
PACK_B_H = struct.Struct(">BH").pack
PACK_BB = struct.Struct(">BB").pack
PACK_H = struct.Struct(">H").pack
PACK_BBH = struct.Struct(">BBH").pack


def len_check(data: bytes | bytearray, bits: int, what: str) -> int:
    """Encode-side: the length of *data*, refused if its *bits*-bit length field cannot hold it."""
    if len(data) >= 1 << bits:
        raise MikeyEncodeError(f"{what} is {len(data)} octets; its {bits}-bit length field cannot hold that")
    return len(data)


def expect_length(lengths: dict[int, int], selector: int, value: bytes, what: str, selector_name: str) -> None:
    """Encode-side check that a field has the length its selector's registry entry gives."""
    expected = lengths.get(selector)
    if expected is not None and len(value) != expected:
        raise MikeyEncodeError(f"{what} is {len(value)} octets; {selector_name} {selector} needs {expected}")


def unknown_length(value: int, what: str, pos: int) -> FieldError:
    """Decode-side: a selector (MAC alg, TS type, ...) whose registry gives no length for what follows."""
    return FieldError(f"unknown {what} {value}: cannot tell the length of the field that follows", pos)


def pull_b_h_data(data: bytes, pos: int, end: int) -> tuple[int, bytes, int]:
    """Read ``octet(8) | length(16) | data``; returns the octet, the data and the position after it."""
    if pos + 3 > end:
        raise ReadPastEnd(pos, 3, end - pos)
    t, n = B_H_FROM(data, pos)
    pos += 3
    q = pos + n
    if q > end:
        raise ReadPastEnd(pos, n, end - pos)
    return t, data[pos:q], q


def pull_selected_fixed(data: bytes, pos: int, end: int, lengths: dict[int, int], what: str) -> tuple[int, bytes, int]:
    """One octet selecting the length of the field after it (CHASH Hash func, V Auth alg, ...).

    Returns the selector, the field and the position after it.
    """
    if pos >= end:
        raise ReadPastEnd(pos, 1, 0)
    sel = data[pos]
    n = lengths.get(sel)
    if n is None:
        raise unknown_length(sel, what, pos)
    pos += 1
    q = pos + n
    if q > end:
        raise ReadPastEnd(pos, n, end - pos)
    return sel, data[pos:q], q


class TimestampFields:
    """What T (RFC 3830 §6.6) and TR (RFC 6043 §6.4) share: a TS type and TS value."""

    __slots__ = ()
    ts_type: TSType | int
    ts_value: bytes

    @property
    def ts_int(self) -> int:
        return int.from_bytes(self.ts_value, "big")

    def unix_time(self, reference: float | None = None) -> float | None:
        """The timestamp as Unix seconds (NTP types), or None for COUNTER.

        NTP timestamps carry seconds modulo 2^32 (RFC 5905 §6): the era is the one
        closest to *reference* (the receiver's clock); without one, RFC 4330 §3's
        rule (1968-2104).  See :func:`mikey.identities.unix_from_ntp`.
        """
        v = self.ts_int
        if self.ts_type in (TSType.NTP_UTC, TSType.NTP):
            return unix_from_ntp(v, reference)
        if self.ts_type == TSType.NTP_UTC_32:
            # RFC 6043 §6.3: the 32 most significant bits of NTP-UTC (seconds).
            return float(unix_from_ntp_seconds(v, reference))
        return None

    def iv_value(self) -> bytes:
        """The 64-bit timestamp used in the KEMAC AES-CM IV (RFC 3830 §4.2.3; shorter types left-padded)."""
        return self.ts_value.rjust(8, b"\x00")


class IdFields:
    """What ID (RFC 3830 §6.7) and IDR (RFC 6043 §6.6) share: ID data."""

    __slots__ = ()
    data: bytes

    @property
    def text(self) -> str:
        """The ID data decoded as UTF-8 (with replacement characters where it is not)."""
        return self.data.decode("utf-8", "replace")


# --- Payload chains (RFC 3830 §6: each payload names the type of the next) ---------------------


def decode_chain(data: bytes, pos: int, first: int, first_where: str) -> tuple[list[Payload], list[int], int]:
    """Decode the payload chain starting at *pos* with payload type *first*, up to ``len(data)``.

    Returns the payloads, their start offsets and the position after the last one.
    *first_where* names what announced the first payload, for error messages.
    """
    payloads: list[Payload] = []
    offsets: list[int] = []
    append = payloads.append
    append_offset = offsets.append
    end = len(data)
    next_type = first
    chain = REGISTRY.chain
    cls: type[Payload] | None = None
    while next_type:
        info = chain.get(next_type)
        if info is None:
            info = REGISTRY.chain_info(next_type)
            if info is None:
                where = cls.NAME if cls is not None else first_where
                raise MikeyDecodeError(f"unknown payload type {next_type}", payload=where, offset=pos)
        pull, has_next, cls = info
        append_offset(pos)
        try:
            if has_next:
                if pos >= end:
                    raise ReadPastEnd(pos, 1, 0)
                next_type = data[pos]
                p, pos = pull(data, pos + 1, end)
            else:
                next_type = 0
                p, pos = pull(data, pos, end)
        except ReadPastEnd as e:
            raise MikeyDecodeError(f"truncated {cls.NAME} payload ({e})", payload=cls.NAME, offset=e.offset) from None
        except FieldError as e:
            raise e.decode_error(cls.NAME) from None
        append(p)
    return payloads, offsets, pos


def encode_chain(w: Writer, payloads: Sequence[Payload], offsets: list[int] | None = None) -> None:
    """Write *payloads* as a chain, each with its successor's type as next payload (0 after the last).

    Appends each payload's start offset to *offsets* when given.
    """
    n = len(payloads)
    buf = w.buf
    try:
        for i, p in enumerate(payloads):
            if offsets is not None:
                offsets.append(len(buf))
            if p.HAS_NEXT:
                buf.append(payloads[i + 1].TYPE if i + 1 < n else 0)
            elif i + 1 < n:
                raise MikeyEncodeError(f"{p.NAME} has no next-payload field and must be the last payload")
            p.encode_body(w)
    except (struct.error, OverflowError, ValueError, TypeError) as e:
        raise MikeyEncodeError(f"{p.NAME}: field value out of range ({e})") from None


def decode_sub_payloads(data: bytes | bytearray, first: int = PayloadType.KEY_DATA) -> list[Payload]:
    """Decode a chain of (sub-)payloads, e.g. the Key data in a KEMAC's decrypted Encr data.

    *first* is the type of the first payload, which the enclosing payload implies
    (Key data in KEMAC, RFC 3830 §6.2; ID then Key data in PK mode).
    """
    if not isinstance(data, bytes):
        data = bytes(data)
    payloads, _, pos = decode_chain(data, 0, first, "sub-payload chain")
    if pos != len(data):
        last = payloads[-1].NAME if payloads else "sub-payload chain"
        raise MikeyDecodeError(f"{len(data) - pos} trailing octets after the last sub-payload", payload=last, offset=pos)
    return payloads


def encode_sub_payloads(payloads: Sequence[Payload]) -> bytes:
    """Encode a chain of (sub-)payloads; the last one gets next payload = Last payload."""
    w = Writer()
    encode_chain(w, payloads)
    return w.getvalue()
