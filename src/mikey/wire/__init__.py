"""Wire format: bytes <-> typed MIKEY payloads (RFC 3830 §6 and extensions). No keys, clocks or policy.

Imports nothing of ``mikey`` but :mod:`mikey.constants`, :mod:`mikey.errors` and :mod:`mikey.identities`.
"""

from __future__ import annotations

from .header import CommonHeader, GenericIdEntry, SrtpIdEntry
from .message import Message, parse_text
from .payloads import *  # noqa: F403
from .payloads import __all__ as _payload_all

__all__ = [
    "CommonHeader",
    "SrtpIdEntry",
    "GenericIdEntry",
    "Message",
    "parse_text",
    *_payload_all,
]
