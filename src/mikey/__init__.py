"""mikey: MIKEY (Multimedia Internet KEYing, RFC 3830 and extensions) for Python."""

from __future__ import annotations

from .constants import DataType, PayloadType
from .errors import MikeyDecodeError, MikeyError, MikeyValidationError
from .wire import Message

__version__ = "0.1.0"

__all__ = ["Message", "DataType", "PayloadType", "MikeyError", "MikeyDecodeError", "MikeyValidationError"]
