"""Payload base class, registry, and the pieces shared by several payloads.

Every payload is a frozen dataclass with ``decode_body`` (reads what follows the
next-payload octet) and ``encode_body`` (writes the same).  The next-payload
octet itself is written by the container (:mod:`mikey.wire.message`), never by
hand (RFC 3830 §6: each payload names the type of the one after it).
"""

from __future__ import annotations

import dataclasses
from enum import IntEnum
from typing import Any, ClassVar, TypeVar

from ...constants import KVType
from ..buffer import FieldError, Reader, Writer

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
]

E = TypeVar("E", bound=IntEnum)
P = TypeVar("P", bound="type[Payload]")

_LOOKUP_CACHE: dict[type[IntEnum], dict[int, IntEnum]] = {}


def lookup(enum: type[E], value: int) -> E | int:
    """Fast registry lookup: the enum member for *value*, or the plain int if unknown."""
    table = _LOOKUP_CACHE.get(enum)
    if table is None:
        table = {m.value: m for m in enum}
        _LOOKUP_CACHE[enum] = table
    return table.get(value, value)


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
    def decode_body(cls, r: Reader) -> Payload:  # pragma: no cover - abstract
        raise NotImplementedError

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


REGISTRY: dict[int, type[Payload]] = {}


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
    if kv_type == KVType.NULL:
        return None
    if kv_type == KVType.SPI:
        return SpiValidity(r.take(r.u8()))
    if kv_type == KVType.INTERVAL:
        vf = r.take(r.u8())
        vt = r.take(r.u8())
        return IntervalValidity(vf, vt)
    raise FieldError(f"unknown KV type {kv_type}: cannot tell the length of its KV data", r.pos)


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
    from ...errors import MikeyEncodeError

    if len(data) > 0xFF:
        raise MikeyEncodeError(f"{what} is {len(data)} octets; its length field holds at most 255")
    return len(data)
