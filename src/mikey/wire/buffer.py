"""A small read/write cursor for the MIKEY wire format.

Reading past the end raises :class:`ReadPastEnd`, an internal error that the
message decoder turns into :class:`mikey.errors.MikeyDecodeError` with the name of
the payload being read and the byte offset.
"""

from __future__ import annotations

import struct

from ..errors import MikeyDecodeError

__all__ = ["Reader", "Writer", "ReadPastEnd", "FieldError"]

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


class ReadPastEnd(Exception):
    """Internal: a read went past the end of the buffer (or of a bounded region)."""

    def __init__(self, offset: int, wanted: int, available: int) -> None:
        super().__init__(f"truncated: needed {wanted} octets, {available} left")
        self.offset = offset


class FieldError(Exception):
    """Internal: a field holds a value the decoder cannot go on from (e.g. an unknown length-defining type)."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset

    def decode_error(self, payload: str) -> MikeyDecodeError:
        """The public error for this failure while decoding *payload*."""
        return MikeyDecodeError(str(self), payload=payload, offset=self.offset)


class Reader:
    """Cursor over bytes; all reads are big-endian and bounds-checked."""

    __slots__ = ("data", "pos", "end")

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    @property
    def remaining(self) -> int:
        return self.end - self.pos

    def eof(self) -> bool:
        return self.pos >= self.end

    def _need(self, n: int) -> int:
        pos = self.pos
        if pos + n > self.end:
            raise ReadPastEnd(pos, n, self.end - pos)
        self.pos = pos + n
        return pos

    def u8(self) -> int:
        pos = self.pos
        if pos >= self.end:
            raise ReadPastEnd(pos, 1, 0)
        self.pos = pos + 1
        return self.data[pos]

    def u16(self) -> int:
        return _U16.unpack_from(self.data, self._need(2))[0]  # type: ignore[no-any-return]

    def u32(self) -> int:
        return _U32.unpack_from(self.data, self._need(4))[0]  # type: ignore[no-any-return]

    def u64(self) -> int:
        return _U64.unpack_from(self.data, self._need(8))[0]  # type: ignore[no-any-return]

    def take(self, n: int) -> bytes:
        pos = self._need(n)
        return bytes(self.data[pos : pos + n])

    def rest(self) -> bytes:
        pos = self.pos
        self.pos = self.end
        return bytes(self.data[pos : self.end])


class Writer:
    """Append-only big-endian writer over a bytearray."""

    __slots__ = ("buf",)

    def __init__(self) -> None:
        self.buf = bytearray()

    def __len__(self) -> int:
        return len(self.buf)

    def u8(self, v: int) -> None:
        self.buf.append(v)

    def u16(self, v: int) -> None:
        self.buf += _U16.pack(v)

    def u32(self, v: int) -> None:
        self.buf += _U32.pack(v)

    def u64(self, v: int) -> None:
        self.buf += _U64.pack(v)

    def put(self, b: bytes) -> None:
        self.buf += b

    def getvalue(self) -> bytes:
        return bytes(self.buf)
