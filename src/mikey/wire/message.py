"""A MIKEY message: the Common Header and the payload chain (RFC 3830 §6).

The container owns next-payload chaining: a message is built from a list of
payloads and each payload's next-payload octet is written from its successor's
type.  A decoded message keeps the bytes it came from and each payload's
offset, because MACs and signatures are verified over the bytes received,
never over a re-encoding (RFC 3830 §5.2).
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..errors import MikeyDecodeError, MikeyEncodeError
from .buffer import FieldError, ReadPastEnd, Writer
from .header import CommonHeader
from .payloads import Payload
from .payloads.base import decode_chain, encode_chain

__all__ = ["Message", "parse_text"]

T = TypeVar("T", bound=Payload)

_new = object.__new__
_pull_header = CommonHeader.pull


@dataclass(frozen=True)
class Message:
    """A MIKEY message: ``header`` then ``payloads`` in wire order.

    ``raw`` and ``offsets`` are set on decoded messages (and by
    :meth:`encode_with_offsets`-based builders); they take no part in equality.
    ``offsets[i]`` is where ``payloads[i]`` starts in ``raw``.
    """

    header: CommonHeader
    payloads: tuple[Payload, ...] = ()
    raw: bytes | None = field(default=None, compare=False, repr=False)
    offsets: tuple[int, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.payloads, tuple):
            object.__setattr__(self, "payloads", tuple(self.payloads))

    # -- codec ---------------------------------------------------------------------------

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview) -> Message:
        """Decode a whole message; raises :class:`MikeyDecodeError` on any malformed input."""
        if type(data) is not bytes:
            data = bytes(data)
        try:
            header, next_type, pos = _pull_header(data, 0, len(data))
        except ReadPastEnd as e:
            raise MikeyDecodeError(f"truncated HDR payload ({e})", payload="HDR", offset=e.offset) from None
        except FieldError as e:
            raise e.decode_error("HDR") from None
        payloads, offsets, pos = decode_chain(data, pos, next_type, "HDR")
        if pos != len(data):
            last = payloads[-1].NAME if payloads else "HDR"
            raise MikeyDecodeError(
                f"{len(data) - pos} trailing octets after the last payload", payload=last, offset=pos
            )
        if cls is Message:
            # The frozen dataclass __init__ costs more than the decode of a small payload.
            msg = _new(cls)
            d = msg.__dict__
            d["header"] = header
            d["payloads"] = tuple(payloads)
            d["raw"] = data
            d["offsets"] = tuple(offsets)
            return msg
        return cls(header, tuple(payloads), data, tuple(offsets))

    def encode(self) -> bytes:
        """Encode the message; next-payload fields come from the payload order."""
        w = Writer()
        payloads = self.payloads
        try:
            self.header.encode(w, payloads[0].TYPE if payloads else 0)
        except (struct.error, OverflowError, ValueError, TypeError) as e:
            raise MikeyEncodeError(f"HDR: field value out of range ({e})") from None
        encode_chain(w, payloads)
        return bytes(w.buf)

    def encode_with_offsets(self) -> tuple[bytes, tuple[int, ...]]:
        w = Writer()
        payloads = self.payloads
        try:
            self.header.encode(w, payloads[0].TYPE if payloads else 0)
        except (struct.error, OverflowError, ValueError, TypeError) as e:
            raise MikeyEncodeError(f"HDR: field value out of range ({e})") from None
        offsets: list[int] = []
        encode_chain(w, payloads, offsets)
        return bytes(w.buf), tuple(offsets)

    def encoded(self) -> Message:
        """This message with ``raw``/``offsets`` filled in from its own encoding."""
        raw, offsets = self.encode_with_offsets()
        return Message(self.header, self.payloads, raw, offsets)

    def replace_payload(self, index: int, payload: Payload) -> Message:
        ps = list(self.payloads)
        ps[index] = payload
        return Message(self.header, tuple(ps))

    def with_payloads(self, payloads: Iterable[Payload]) -> Message:
        return Message(self.header, tuple(payloads))

    # -- access --------------------------------------------------------------------------

    @property
    def data_type(self) -> int:
        return self.header.data_type

    @property
    def csb_id(self) -> int:
        return self.header.csb_id

    def find(self, cls: type[T]) -> T | None:
        """The first payload of class *cls*, or None."""
        for p in self.payloads:
            if type(p) is cls:
                return p
        return None

    def find_all(self, cls: type[T]) -> list[T]:
        return [p for p in self.payloads if type(p) is cls]

    def index(self, cls: type[Payload]) -> int:
        for i, p in enumerate(self.payloads):
            if type(p) is cls:
                return i
        raise KeyError(cls.NAME)

    def raw_bytes(self) -> bytes:
        """The bytes this message was decoded from (or its encoding, if built locally)."""
        return self.raw if self.raw is not None else self.encode()

    def payload_span(self, index: int) -> tuple[int, int]:
        """``(start, end)`` of payload *index* in :meth:`raw_bytes`."""
        offsets = self.offsets if self.raw is not None else self.encode_with_offsets()[1]
        raw = self.raw_bytes()
        end = offsets[index + 1] if index + 1 < len(offsets) else len(raw)
        return offsets[index], end

    def to_dict(self) -> dict[str, Any]:
        """JSON view: ``{"payloads": [{"type": "HDR", ...}, ...]}``."""
        return {"payloads": [self.header.to_dict()] + [p.to_dict() for p in self.payloads]}

    def __repr__(self) -> str:
        names = ",".join(p.NAME for p in self.payloads)
        dt = getattr(self.header.data_type, "name", self.header.data_type)
        return f"Message({dt}, csb_id={self.header.csb_id:08x}, payloads=[HDR,{names}])"


def parse_text(text: str) -> bytes:
    """Bytes of a MIKEY message given as hex, base64, or ``mikey <base64>`` (SDP key-mgmt value).

    Whitespace is ignored. Raises :class:`MikeyDecodeError` if it is none of these.
    """
    s = text.strip()
    if s.lower().startswith("a=key-mgmt:"):
        s = s[len("a=key-mgmt:") :].strip()
    if s.lower().startswith("keymgmt:"):
        s = s[len("keymgmt:") :].strip()
    if s.lower().startswith("mikey ") or s.lower().startswith("mikey\t"):
        s = s[5:].strip()
        return _b64(s)
    compact = "".join(s.split())
    if compact.lower().startswith("0x"):
        compact = compact[2:]
    if compact and len(compact) % 2 == 0 and all(c in "0123456789abcdefABCDEF" for c in compact):
        return bytes.fromhex(compact)
    return _b64(compact)


def _b64(s: str) -> bytes:
    compact = "".join(s.split())
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise MikeyDecodeError("not hex, base64 or 'mikey <base64>'") from None
