"""General Extension payload (RFC 3830 §6.15) and its typed contents.

Type 1 SDP IDs (RFC 4567 §7), type 3 Key ID (RFC 4563 §4), type 4 CSB ID (RFC 4738
§3.9) are given typed views; every other type (vendor ID, TESLA I-key, OMA BCAST,
the 3GPP TS 33.180 types 6 and 7) is kept as opaque data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...constants import GenExtType, KeyIdType, PayloadType
from ...errors import MikeyDecodeError, MikeyEncodeError
from .base import (
    B_H_FROM,
    PACK_B_H,
    Payload,
    ReadPastEnd,
    Writer,
    enum_table,
    fast_constructor,
    lookup,
    register,
)

__all__ = ["GeneralExtensionPayload", "KeyIdEntry"]


@dataclass(frozen=True, slots=True)
class KeyIdEntry:
    """One Key ID Type sub-payload of General Extension type 3 (RFC 4563 §4)."""

    key_id_type: KeyIdType | int
    key_id: bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "key_id_type": int(self.key_id_type),
            "key_id_type_name": getattr(self.key_id_type, "name", f"unknown({self.key_id_type})"),
            "key_id": self.key_id.hex(),
        }


@register
@dataclass(frozen=True, slots=True)
class GeneralExtensionPayload(Payload):
    """General Extension: Type(8), Length(16), Data (RFC 3830 §6.15)."""

    ext_type: GenExtType | int
    data: bytes

    TYPE = PayloadType.GEN_EXT
    NAME = "GEN_EXT"

    # -- typed constructors -------------------------------------------------------------

    @classmethod
    def sdp_ids(cls, ids: list[str]) -> GeneralExtensionPayload:
        """Type 1: the list of SDP key-management protocol ids, space separated (RFC 4567 §4.1.4)."""
        return cls(GenExtType.SDP_IDS, " ".join(ids).encode("ascii"))

    @classmethod
    def key_ids(cls, entries: list[KeyIdEntry]) -> GeneralExtensionPayload:
        """Type 3: Key ID sub-payloads (RFC 4563 §4)."""
        w = Writer()
        for e in entries:
            if len(e.key_id) > 255:
                raise MikeyEncodeError("Key ID longer than 255 octets")
            w.u8(e.key_id_type)
            w.u8(len(e.key_id))
            w.put(e.key_id)
        return cls(GenExtType.KEY_ID, w.getvalue())

    @classmethod
    def csb_id(cls, csb_id: int) -> GeneralExtensionPayload:
        """Type 4: the Responder's modified CSB ID for RSA-R group mode (RFC 4738 §3.9)."""
        return cls(GenExtType.CSB_ID, csb_id.to_bytes(4, "big"))

    # -- typed views ---------------------------------------------------------------------

    def parse_key_ids(self) -> list[KeyIdEntry]:
        """The Key ID sub-payloads of a type-3 extension; raises MikeyDecodeError if malformed."""
        data = self.data
        end = len(data)
        out = []
        p = 0
        while p < end:
            if p + 2 > end:
                raise MikeyDecodeError("truncated Key ID sub-payload", payload="GEN_EXT", offset=p)
            q = p + 2 + data[p + 1]
            if q > end:
                raise MikeyDecodeError("truncated Key ID sub-payload", payload="GEN_EXT", offset=p + 2)
            out.append(KeyIdEntry(lookup(KeyIdType, data[p]), data[p + 2 : q]))
            p = q
        return out

    def parse_sdp_ids(self) -> list[str]:
        return self.data.decode("ascii", "replace").split()

    def parse_csb_id(self) -> int:
        if len(self.data) != 4:
            raise MikeyDecodeError("CSB ID extension must carry 4 octets", payload="GEN_EXT")
        return int.from_bytes(self.data, "big")

    def parsed(self) -> Any:
        """A typed view of the data where the type has one, else None."""
        try:
            if self.ext_type == GenExtType.KEY_ID:
                return [e.to_dict() for e in self.parse_key_ids()]
            if self.ext_type == GenExtType.SDP_IDS:
                return self.parse_sdp_ids()
            if self.ext_type == GenExtType.CSB_ID:
                return f"{self.parse_csb_id():08x}"
            if self.ext_type == GenExtType.VENDOR_ID:
                return self.data.decode("ascii") if self.data.isascii() and self.data.isalnum() else None
        except MikeyDecodeError:
            return None
        return None

    @classmethod
    def pull(cls, data: bytes, pos: int, end: int) -> tuple[GeneralExtensionPayload, int]:
        if pos + 3 > end:
            raise ReadPastEnd(pos, 3, end - pos)
        t, n = B_H_FROM(data, pos)
        pos += 3
        q = pos + n
        if q > end:
            raise ReadPastEnd(pos, n, end - pos)
        return _MAKE_GEN_EXT(_EXT_TYPE.get(t, t), data[pos:q]), q

    def encode_body(self, w: Writer) -> None:
        if len(self.data) > 0xFFFF:
            raise MikeyEncodeError("General Extension data longer than 65535 octets")
        w.buf += PACK_B_H(self.ext_type, len(self.data))
        w.buf += self.data

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "type": self.NAME,
            "ext_type": int(self.ext_type),
            "ext_type_name": getattr(self.ext_type, "name", f"unknown({self.ext_type})"),
            "data": self.data.hex(),
        }
        p = self.parsed()
        if p is not None:
            d["parsed"] = p
        return d


_EXT_TYPE = enum_table(GenExtType)
_MAKE_GEN_EXT: Callable[..., GeneralExtensionPayload] = fast_constructor(GeneralExtensionPayload)
