"""Carrying a MIKEY exchange in SDP offer/answer and RTSP (RFC 4567 §4.1, §4.2, §7).

The offerer puts the I_MESSAGE in ``a=key-mgmt:mikey`` of its offer; the answerer
takes it, and puts its R_MESSAGE (or an Error message) in the answer, or no
key-mgmt attribute at all when the mode sends no response (PSK or PK without V,
SAKKE).  In RTSP the same data travels in the ``KeyMgmt`` header (§3.2).
"""

from __future__ import annotations

from collections.abc import Sequence

from .errors import MikeyDecodeError
from .rtsp import format_keymgmt_header, parse_keymgmt_header
from .sdp import add_key_mgmt, make_sdp, mikey_message_for_media, mikey_messages

__all__ = [
    "make_offer",
    "take_offer",
    "make_answer",
    "take_answer",
    "rtsp_keymgmt_header",
    "take_rtsp_keymgmt",
    "Media",
]

#: One m= line for :func:`mikey.sdp.make_sdp`: (media, port, protocol, formats).
Media = tuple[str, int, str, Sequence[int]]

_MIKEY_ATTR = "a=key-mgmt:mikey"


def _without_mikey(sdp: str, media_index: int | None) -> str:
    """*sdp* without ``mikey`` key-mgmt lines at one level (session level when *media_index* is None)."""
    eol = "\r\n" if "\r\n" in sdp else "\n"
    out: list[str] = []
    current: int | None = None
    for line in sdp.replace("\r\n", "\n").split("\n"):
        if line.startswith("m="):
            current = 0 if current is None else current + 1
        if current == media_index and line.strip().lower().startswith(_MIKEY_ATTR):
            continue
        out.append(line)
    return eol.join(out)


def _with_message(
    message: bytes | None,
    sdp: str | None,
    media_index: int | None,
    session_name: str,
    address: str,
    port: int,
    media: Sequence[Media] | None,
) -> str:
    if sdp is None:
        body = make_sdp(session_name, address, media or (("audio", port, "RTP/SAVP", (0,)),))
    else:
        body = _without_mikey(sdp, media_index)
    if message is None:
        return body
    return add_key_mgmt(body, message, media_index)


def make_offer(
    i_message: bytes,
    *,
    sdp: str | None = None,
    media_index: int | None = None,
    session_name: str = "mikey",
    address: str = "127.0.0.1",
    port: int = 49170,
    media: Sequence[Media] | None = None,
) -> str:
    """An SDP offer carrying *i_message* (RFC 4567 §4.1).

    With *sdp* the attribute is added to that body (replacing a ``mikey`` one at the
    same level), otherwise a minimal RTP/SAVP body is made.  ``media_index=None``
    puts it at session level, which covers every media (§3.1).
    """
    return _with_message(i_message, sdp, media_index, session_name, address, port, media)


def _take(sdp: str, media_index: int | None) -> bytes | None:
    if media_index is not None:
        return mikey_message_for_media(sdp, media_index)
    attrs = mikey_messages(sdp)
    for attr in attrs:
        if attr.level == "session":
            return attr.data
    return attrs[0].data if attrs else None


def take_offer(sdp: str, media_index: int | None = None) -> bytes:
    """The MIKEY message of an SDP offer: session level, else the first media level.

    With *media_index*, the message for that media (media level wins, §3.1).  Raises
    :class:`MikeyDecodeError` when the offer has none.
    """
    data = _take(sdp, media_index)
    if data is None:
        raise MikeyDecodeError("SDP offer has no a=key-mgmt:mikey attribute", payload="key-mgmt")
    return data


def make_answer(
    r_message: bytes | None,
    *,
    sdp: str | None = None,
    media_index: int | None = None,
    session_name: str = "mikey",
    address: str = "127.0.0.1",
    port: int = 49172,
    media: Sequence[Media] | None = None,
) -> str:
    """An SDP answer carrying *r_message*, or no key-mgmt attribute when it is None (RFC 4567 §4.1)."""
    return _with_message(r_message, sdp, media_index, session_name, address, port, media)


def take_answer(sdp: str, media_index: int | None = None) -> bytes | None:
    """The MIKEY message of an SDP answer (R_MESSAGE or Error message), or None when it carries none."""
    return _take(sdp, media_index)


def rtsp_keymgmt_header(message: bytes, uri: str | None = None) -> str:
    """The ``KeyMgmt`` header value carrying *message* for *uri* (RFC 4567 §3.2)."""
    return format_keymgmt_header(message, uri)


def take_rtsp_keymgmt(value: str, uri: str | None = None) -> bytes:
    """The MIKEY message of a ``KeyMgmt`` header value.

    With *uri*, an entry for that URI is preferred, then one without a URI (which
    applies to every URI).  Raises :class:`MikeyDecodeError` when there is none.
    """
    entries = [e for e in parse_keymgmt_header(value) if e.prot.lower() == "mikey" and e.data is not None]
    if uri is not None:
        entries = [e for e in entries if e.uri == uri] + [e for e in entries if e.uri is None]
    if not entries or entries[0].data is None:
        target = f" for {uri}" if uri is not None else ""
        raise MikeyDecodeError(f"KeyMgmt header has no mikey data{target}", payload="KeyMgmt header")
    return entries[0].data
