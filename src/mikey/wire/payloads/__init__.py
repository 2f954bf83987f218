"""MIKEY payload classes, one module per RFC family, the payload-number registry and sub-payload chains."""

from __future__ import annotations

from .base import (
    REGISTRY,
    IntervalValidity,
    KeyValidity,
    Payload,
    SpiValidity,
    decode_sub_payloads,
    encode_sub_payloads,
)
from .genext import GeneralExtensionPayload, KeyIdEntry
from .rfc3830 import (
    CertPayload,
    ChashPayload,
    DhPayload,
    ErrorPayload,
    IdPayload,
    KemacPayload,
    KeyDataPayload,
    PkePayload,
    RandPayload,
    SecurityPolicyPayload,
    SignPayload,
    TimestampPayload,
    VerificationPayload,
)
from .rfc6043 import IdrPayload, RandrPayload, TicketPayload, TicketPolicyPayload, TrPayload
from .rfc6267 import EccptPayload, EskPayload, IbakePayload, SkPayload
from .rfc6509 import SakkePayload

__all__ = [
    "REGISTRY",
    "Payload",
    "KeyValidity",
    "SpiValidity",
    "IntervalValidity",
    "KemacPayload",
    "PkePayload",
    "DhPayload",
    "SignPayload",
    "TimestampPayload",
    "IdPayload",
    "CertPayload",
    "ChashPayload",
    "VerificationPayload",
    "SecurityPolicyPayload",
    "RandPayload",
    "ErrorPayload",
    "KeyDataPayload",
    "GeneralExtensionPayload",
    "KeyIdEntry",
    "TrPayload",
    "IdrPayload",
    "RandrPayload",
    "TicketPolicyPayload",
    "TicketPayload",
    "IbakePayload",
    "EskPayload",
    "EccptPayload",
    "SkPayload",
    "SakkePayload",
    "decode_sub_payloads",
    "encode_sub_payloads",
]
