"""MIKEY in RTSP: the ``KeyMgmt`` header (RFC 4567 §3.2, §4.2, §5.3/§5.4).

``KeyMgmt: prot=mikey; uri="rtsp://host/path"; data="<base64>"``.  The §3.2 ABNF
omits ``data`` but the prose and every example carry it, so it is read and written
as in the examples.  Several entries may be listed, separated by commas.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from .errors import MikeyDecodeError

__all__ = [
    "HEADER_NAME",
    "STATUS_KEY_MANAGEMENT_FAILURE",
    "KeyMgmtHeaderEntry",
    "format_keymgmt_header",
    "parse_keymgmt_header",
]

HEADER_NAME = "KeyMgmt"
#: RFC 4567 §3.2: "463 Key management failure".
STATUS_KEY_MANAGEMENT_FAILURE = 463

_SEPARATORS = frozenset(';,="')


@dataclass(frozen=True)
class KeyMgmtHeaderEntry:
    """One key-mgmt-spec.  ``data`` is None when the entry carries no data parameter."""

    prot: str
    uri: str | None
    data: bytes | None

    def __repr__(self) -> str:
        size = "None" if self.data is None else f"<{len(self.data)} octets>"
        return f"KeyMgmtHeaderEntry(prot={self.prot!r}, uri={self.uri!r}, data={size})"


def _quote(text: str) -> str:
    if '"' in text or "\\" in text or any(ord(c) < 0x20 for c in text):
        raise ValueError("value cannot be carried in an RTSP quoted string")
    return f'"{text}"'


def format_keymgmt_header(data: bytes, uri: str | None = None, prot: str = "mikey") -> str:
    """The ``KeyMgmt`` header value for one entry (RFC 4567 §3.2, §5.3)."""
    parts = [f"prot={prot}"]
    if uri is not None:
        parts.append(f"uri={_quote(uri)}")
    parts.append(f"data={_quote(base64.b64encode(data).decode('ascii'))}")
    return "; ".join(parts)


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, message: str) -> MikeyDecodeError:
        return MikeyDecodeError(message, payload="KeyMgmt header", offset=self.pos)

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t\r\n":
            self.pos += 1

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def token(self, *, value: bool = False) -> str:
        """A parameter name, or (``value=True``) an unquoted value, which may contain '='."""
        start = self.pos
        while self.pos < len(self.text):
            c = self.text[self.pos]
            if (c in _SEPARATORS and not (value and c == "=")) or c in " \t\r\n":
                break
            self.pos += 1
        if start == self.pos:
            raise self.error("expected a token")
        return self.text[start : self.pos]

    def quoted(self) -> str:
        self.pos += 1  # opening quote
        out: list[str] = []
        while self.pos < len(self.text):
            c = self.text[self.pos]
            if c == '"':
                self.pos += 1
                return "".join(out)
            if c == "\\" and self.pos + 1 < len(self.text):
                out.append(self.text[self.pos + 1])
                self.pos += 2
                continue
            out.append(c)
            self.pos += 1
        raise self.error("unterminated quoted string")


def _decode_data(text: str, scanner: _Scanner) -> bytes:
    compact = "".join(text.split())
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise scanner.error("KeyMgmt data is not valid base64") from None


def parse_keymgmt_header(value: str) -> list[KeyMgmtHeaderEntry]:
    """Parse a ``KeyMgmt`` header value (a leading ``KeyMgmt:`` name is tolerated).

    Parameter names are case-insensitive, values may be quoted, unknown parameters are
    ignored.  A missing ``prot``, bad syntax or bad base64 raises MikeyDecodeError.
    """
    text = value.strip()
    if text[:8].lower() == "keymgmt:":
        text = text[8:]
    sc = _Scanner(text)
    entries: list[KeyMgmtHeaderEntry] = []
    params: dict[str, str] = {}

    def finish() -> None:
        if not params:
            raise sc.error("empty key-mgmt-spec")
        if "prot" not in params:
            raise sc.error("key-mgmt-spec without prot")
        raw = params.get("data")
        data = None if raw is None else _decode_data(raw, sc)
        entries.append(KeyMgmtHeaderEntry(params["prot"], params.get("uri"), data))
        params.clear()

    sc.skip_ws()
    while True:
        sc.skip_ws()
        c = sc.peek()
        if c == "":
            finish()
            break
        if c == ",":
            finish()
            sc.pos += 1
            continue
        if c == ";":  # empty parameter, e.g. the trailing ";" of the ABNF
            sc.pos += 1
            continue
        name = sc.token().lower()
        sc.skip_ws()
        if sc.peek() != "=":
            raise sc.error(f"expected '=' after {name!r}")
        sc.pos += 1
        sc.skip_ws()
        val = sc.quoted() if sc.peek() == '"' else sc.token(value=True)
        if name in params:
            raise sc.error(f"duplicate parameter {name!r}")
        params[name] = val
        sc.skip_ws()
        if sc.peek() not in (";", ",", ""):
            raise sc.error("expected ';' or ',' between parameters")
        if sc.peek() == ";":
            sc.pos += 1
    return entries
