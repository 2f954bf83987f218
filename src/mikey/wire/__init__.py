"""Wire format: bytes <-> typed MIKEY payloads (RFC 3830 §6 and extensions). No keys, clocks or policy."""

from __future__ import annotations

from .header import CommonHeader, GenericIdEntry, SrtpIdEntry
from .message import Message, decode_sub_payloads, encode_sub_payloads, parse_text
from .payloads import *  # noqa: F403
from .payloads import __all__ as _payload_all

__all__ = [
    "CommonHeader",
    "SrtpIdEntry",
    "GenericIdEntry",
    "Message",
    "decode_sub_payloads",
    "encode_sub_payloads",
    "parse_text",
    *_payload_all,
]
