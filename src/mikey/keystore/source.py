"""Where key material comes from: a file path, or the file's bytes."""

from __future__ import annotations

import os
from pathlib import Path

from mikey.errors import KeyMaterialError

__all__ = ["Source", "read_source"]

#: A file path, or the file's bytes.
Source = str | os.PathLike[str] | bytes


def read_source(source: Source) -> bytes:
    """The bytes of *source*; an unreadable file raises :class:`KeyMaterialError` (no contents echoed)."""
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source)
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise KeyMaterialError(f"cannot read {os.fspath(source)!r}: {exc.strerror}") from None
