"""MIKEY in SDP: the ``a=key-mgmt`` attribute (RFC 4567 §3.1, §4.1, §7).

``a=key-mgmt:<prtcl-id> <base64 data>`` may appear at session level, media level or
both; a media-level attribute overrides the session-level one for that media
(RFC 4567 §3.1).  Protocol ids other than ``mikey`` are kept so callers can choose.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from .errors import MikeyDecodeError

__all__ = [
    "KeyMgmtAttribute",
    "parse_key_mgmt",
    "mikey_messages",
    "mikey_message_for_media",
    "format_key_mgmt",
    "add_key_mgmt",
    "decode_key_mgmt_value",
    "make_sdp",
]

_ATTR_PREFIX = "a=key-mgmt:"
_PRTCL_ID = re.compile(r"^[A-Za-z0-9!#$%&'*+\-.^_`{|}~]+$")


@dataclass(frozen=True)
class KeyMgmtAttribute:
    """One ``a=key-mgmt`` line.  ``media_index`` counts m= sections from 0.

    ``raw`` is the data text as written.  For protocol ids other than ``mikey`` whose data
    is not valid base64, ``data`` is empty and only ``raw`` is meaningful.
    """

    prot_id: str
    data: bytes
    level: Literal["session", "media"]
    media_index: int | None = None
    raw: str = ""

    def __repr__(self) -> str:
        return (
            f"KeyMgmtAttribute(prot_id={self.prot_id!r}, data=<{len(self.data)} octets>, "
            f"level={self.level!r}, media_index={self.media_index!r})"
        )


def _b64decode(text: str) -> bytes:
    compact = "".join(text.split())
    if not compact:
        raise MikeyDecodeError("empty key-mgmt data", payload="key-mgmt")
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise MikeyDecodeError("key-mgmt data is not valid base64", payload="key-mgmt") from None


def _split_raw(value: str) -> tuple[str, str]:
    # key-mgmt-att-value = 0*1SP prtcl-id SP keymgmt-data (RFC 4567 §3.1)
    parts = value.strip().split(None, 1)
    if len(parts) != 2 or not _PRTCL_ID.match(parts[0]):
        raise MikeyDecodeError("key-mgmt attribute needs a protocol id and data", payload="key-mgmt")
    return parts[0], parts[1].strip()


def _split_value(value: str) -> tuple[str, bytes]:
    prot_id, raw = _split_raw(value)
    return prot_id, _b64decode(raw)


def decode_key_mgmt_value(text: str) -> bytes:
    """Data of ``'mikey <base64>'``, of a full ``a=key-mgmt:`` line, or of bare base64.

    Raises MikeyDecodeError on bad base64 or on a protocol id other than ``mikey``.
    """
    value = text.strip()
    if value.startswith(_ATTR_PREFIX):
        value = value[len(_ATTR_PREFIX) :]
    parts = value.split(None, 1)
    if len(parts) == 2:
        prot_id, data = _split_value(value)
        if prot_id.lower() != "mikey":
            raise MikeyDecodeError(f"key-mgmt protocol {prot_id!r} is not mikey", payload="key-mgmt")
        return data
    return _b64decode(value)


def _lines(sdp: str) -> list[str]:
    return sdp.replace("\r\n", "\n").split("\n")


def parse_key_mgmt(sdp: str) -> list[KeyMgmtAttribute]:
    """Every ``a=key-mgmt`` attribute in an SDP body, in order (RFC 4567 §3.1).

    A ``mikey`` attribute whose data is not base64 raises MikeyDecodeError.
    """
    result: list[KeyMgmtAttribute] = []
    media_index: int | None = None
    for line in _lines(sdp):
        line = line.strip()
        if line.startswith("m="):
            media_index = 0 if media_index is None else media_index + 1
        elif line.startswith(_ATTR_PREFIX):
            prot_id, raw = _split_raw(line[len(_ATTR_PREFIX) :])
            if prot_id.lower() == "mikey":
                data = _b64decode(raw)
            else:
                try:
                    data = _b64decode(raw)
                except MikeyDecodeError:
                    data = b""
            if media_index is None:
                result.append(KeyMgmtAttribute(prot_id, data, "session", None, raw))
            else:
                result.append(KeyMgmtAttribute(prot_id, data, "media", media_index, raw))
    return result


def mikey_messages(sdp: str) -> list[KeyMgmtAttribute]:
    """The ``mikey`` key-mgmt attributes only (protocol id compared case-insensitively)."""
    return [a for a in parse_key_mgmt(sdp) if a.prot_id.lower() == "mikey"]


def mikey_message_for_media(sdp: str, media_index: int) -> bytes | None:
    """The MIKEY message that applies to one media: media level wins over session level."""
    session: bytes | None = None
    for attr in mikey_messages(sdp):
        if attr.level == "media" and attr.media_index == media_index:
            return attr.data
        if attr.level == "session" and session is None:
            session = attr.data
    return session


def format_key_mgmt(data: bytes, prot_id: str = "mikey") -> str:
    """``a=key-mgmt:<prot_id> <base64>`` (no line terminator)."""
    if not _PRTCL_ID.match(prot_id):
        raise ValueError(f"invalid key management protocol id {prot_id!r}")
    return f"{_ATTR_PREFIX}{prot_id} {base64.b64encode(data).decode('ascii')}"


def add_key_mgmt(sdp: str, data: bytes, media_index: int | None = None, prot_id: str = "mikey") -> str:
    """Insert a key-mgmt line at session level (before the first m=) or at the end of a media section.

    Keeps the body's line ending (CRLF or LF) and whether it ends with one.
    """
    eol = "\r\n" if "\r\n" in sdp else "\n"
    lines = _lines(sdp)
    trailing = bool(lines) and lines[-1] == ""
    if trailing:
        lines.pop()
    media_starts = [i for i, line in enumerate(lines) if line.startswith("m=")]
    new_line = format_key_mgmt(data, prot_id)
    if media_index is None:
        pos = media_starts[0] if media_starts else len(lines)
    else:
        if not 0 <= media_index < len(media_starts):
            raise IndexError(f"SDP has no media section {media_index}")
        nxt = media_index + 1
        pos = media_starts[nxt] if nxt < len(media_starts) else len(lines)
    lines.insert(pos, new_line)
    return eol.join(lines) + (eol if trailing else "")


def make_sdp(
    session_name: str,
    address: str,
    media: Sequence[tuple[str, int, str, Sequence[int]]] = (("audio", 49000, "RTP/SAVP", (0,)),),
    key_mgmt: bytes | None = None,
    at_media: bool = False,
    *,
    username: str = "-",
    session_id: int = 0,
    version: int = 0,
) -> str:
    """A minimal SDP body (CRLF) with optional MIKEY key-mgmt at session or every media level."""
    ip_ver = "IP6" if ":" in address else "IP4"
    lines = [
        "v=0",
        f"o={username} {session_id} {version} IN {ip_ver} {address}",
        f"s={session_name or '-'}",
        f"c=IN {ip_ver} {address}",
        "t=0 0",
    ]
    if key_mgmt is not None and not at_media:
        lines.append(format_key_mgmt(key_mgmt))
    for kind, port, proto, formats in media:
        lines.append(f"m={kind} {port} {proto} {' '.join(str(f) for f in formats)}")
        if key_mgmt is not None and at_media:
            lines.append(format_key_mgmt(key_mgmt))
    return "\r\n".join(lines) + "\r\n"
