"""The results of a key exchange: what the modes hand back, without the mode engine.

:class:`ExchangeResult` (the crypto session bundle and its SRTP keys),
:class:`CryptoSessionKeys` (one crypto session's master key and salt, RFC 3830
§4.1.3), :class:`CryptoSessionSpec` (a crypto session an Initiator offers) and
:class:`ResponderOutcome` (a Responder's keys and response).  The session layer,
the CLI and the package ``__init__`` import these from here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..wire import CommonHeader, SecurityPolicyPayload
from ..wire.payloads.base import KeyValidity

__all__ = ["CryptoSessionSpec", "CryptoSessionKeys", "ExchangeResult", "ResponderOutcome"]


@dataclass(frozen=True)
class CryptoSessionSpec:
    """A crypto session the Initiator offers: one SRTP stream (SSRC 0 = Responder fills it in)."""

    ssrc: int = 0
    roc: int = 0
    policy_no: int = 0
    cs_id: int | None = None  # GENERIC-ID only; SRTP-ID uses the position


@dataclass(frozen=True)
class CryptoSessionKeys:
    """The SRTP keying of one crypto session: master key and salt derived from the TGK (RFC 3830 §4.1.3)."""

    cs_id: int
    ssrc: int | None
    roc: int
    policy: SecurityPolicyPayload | None
    master_key: bytes = field(repr=False)
    master_salt: bytes = field(repr=False)
    spi: bytes = b""

    def fingerprint(self) -> str:
        """A short, non-secret digest of key || salt, to compare both ends without showing keys."""
        return hashlib.sha256(b"mikey-fp" + self.master_key + self.master_salt).hexdigest()[:16]

    def to_dict(self, *, secrets: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {
            "cs_id": self.cs_id,
            "ssrc": f"{self.ssrc:08x}" if self.ssrc is not None else None,
            "roc": self.roc,
            "policy_no": self.policy.policy_no if self.policy is not None else None,
            "fingerprint": self.fingerprint(),
        }
        if self.spi:
            d["spi"] = self.spi.hex()
        if secrets:
            d["srtp_master_key"] = self.master_key.hex()
            d["srtp_master_salt"] = self.master_salt.hex()
        return d


@dataclass(frozen=True)
class ExchangeResult:
    """The outcome of a key exchange: the crypto session bundle and its SRTP keys.

    ``authenticated`` tells whether the peer was authenticated (Responder: the
    I_MESSAGE MAC/signature verified; Initiator: the response verified).
    """

    mode: str
    csb_id: int
    tgk: bytes = field(repr=False)
    rand: bytes
    prf: int
    crypto_sessions: tuple[CryptoSessionKeys, ...]
    authenticated: bool
    header: CommonHeader
    policies: tuple[SecurityPolicyPayload, ...] = ()
    initiator_id: bytes | None = None
    responder_id: bytes | None = None
    key_validity: KeyValidity = None
    extras: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def session(self, cs_id: int) -> CryptoSessionKeys:
        for cs in self.crypto_sessions:
            if cs.cs_id == cs_id:
                return cs
        raise KeyError(cs_id)

    def to_dict(self, *, secrets: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {
            "mode": self.mode,
            "csb_id": f"{self.csb_id:08x}",
            "rand": self.rand.hex(),
            "prf": int(self.prf),
            "authenticated": self.authenticated,
            "crypto_sessions": [cs.to_dict(secrets=secrets) for cs in self.crypto_sessions],
        }
        if secrets:
            d["tgk"] = self.tgk.hex()
        if self.initiator_id is not None:
            d["initiator_id"] = self.initiator_id.decode("utf-8", "replace")
        if self.responder_id is not None:
            d["responder_id"] = self.responder_id.decode("utf-8", "replace")
        if self.extras:
            d["extras"] = _json_safe(dict(self.extras))
        return d


def _json_safe(value: Any) -> Any:
    """Mode-specific result details as JSON values (bytes as hex, enums as ints)."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json_safe(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    if isinstance(value, bool) or value is None or isinstance(value, str | float):
        return value
    if isinstance(value, int):
        return int(value)
    to_dict = getattr(value, "to_dict", None)
    return to_dict() if callable(to_dict) else str(value)


@dataclass(frozen=True)
class ResponderOutcome:
    """What a Responder's :meth:`receive` returns: the keys and the response to send (or None)."""

    result: ExchangeResult
    response: bytes | None
