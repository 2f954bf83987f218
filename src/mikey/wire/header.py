"""The Common Header payload (HDR) and its CS ID maps.

RFC 3830 §6.1 (HDR, SRTP-ID map §6.1.1), RFC 4563 §5 (Empty map), RFC 6043 §6.1.1
(GENERIC-ID map).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..constants import PRF, CSIdMapType, DataType, ProtType
from ..errors import MikeyEncodeError
from .buffer import FieldError, Reader, Writer
from .payloads.base import lookup, value_to_json

__all__ = ["CommonHeader", "SrtpIdEntry", "GenericIdEntry", "CsIdMapEntry"]


@dataclass(frozen=True, slots=True)
class SrtpIdEntry:
    """One SRTP-ID map entry (RFC 3830 §6.1.1). Its CS ID is its position, from 1.

    An SSRC of 0 is a placeholder the Responder fills in.
    """

    policy_no: int
    ssrc: int
    roc: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"policy_no": self.policy_no, "ssrc": f"{self.ssrc:08x}", "roc": self.roc}


@dataclass(frozen=True, slots=True)
class GenericIdEntry:
    """One GENERIC-ID map block (RFC 6043 §6.1.1).

    For Prot type SRTP, Session Data is SSRC(32) [ROC(32) SEQ(16)] with S set when
    ROC and SEQ are present; :attr:`ssrc`, :attr:`roc` and :attr:`seq` read it.
    """

    cs_id: int
    prot_type: ProtType | int = ProtType.SRTP
    policies: tuple[int, ...] = ()
    session_data: bytes = b""
    spi: bytes = b""
    s_flag: bool = False

    @classmethod
    def srtp(
        cls,
        cs_id: int,
        ssrc: int,
        *,
        roc: int | None = None,
        seq: int = 0,
        policies: tuple[int, ...] = (),
        spi: bytes = b"",
    ) -> GenericIdEntry:
        """Build an SRTP block; ROC/SEQ are included (S=1) when *roc* is given."""
        data = ssrc.to_bytes(4, "big")
        if roc is not None:
            data += roc.to_bytes(4, "big") + seq.to_bytes(2, "big")
        return cls(cs_id, ProtType.SRTP, tuple(policies), data, spi, roc is not None)

    @property
    def ssrc(self) -> int | None:
        return int.from_bytes(self.session_data[:4], "big") if len(self.session_data) >= 4 else None

    @property
    def roc(self) -> int | None:
        return int.from_bytes(self.session_data[4:8], "big") if len(self.session_data) >= 8 else None

    @property
    def seq(self) -> int | None:
        return int.from_bytes(self.session_data[8:10], "big") if len(self.session_data) >= 10 else None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "cs_id": self.cs_id,
            "prot_type": int(self.prot_type),
            "s_flag": self.s_flag,
            "policies": list(self.policies),
            "session_data": self.session_data.hex(),
            "spi": self.spi.hex(),
        }
        if self.prot_type == ProtType.SRTP and self.ssrc is not None:
            out["ssrc"] = f"{self.ssrc:08x}"
            if self.roc is not None:
                out["roc"] = self.roc
                out["seq"] = self.seq
        return out


CsIdMapEntry = SrtpIdEntry | GenericIdEntry


@dataclass(frozen=True, slots=True)
class CommonHeader:
    """HDR (RFC 3830 §6.1): version, data type, V, PRF func, CSB ID, #CS and the CS ID map.

    ``cs_id_map`` holds the entries for the SRTP-ID and GENERIC-ID maps; #CS is
    their count.  For the Empty map (and any map type without entries) the
    count is ``cs_count``.
    """

    data_type: DataType | int
    csb_id: int
    cs_id_map: tuple[CsIdMapEntry, ...] = ()
    cs_id_map_type: CSIdMapType | int = CSIdMapType.SRTP_ID
    v: bool = False
    prf: PRF | int = PRF.MIKEY_1
    version: int = 1
    cs_count: int | None = field(default=None)

    NAME = "HDR"

    def __post_init__(self) -> None:
        if not isinstance(self.cs_id_map, tuple):
            object.__setattr__(self, "cs_id_map", tuple(self.cs_id_map))

    @property
    def n_cs(self) -> int:
        """#CS: the number of crypto sessions in the bundle."""
        if self.cs_count is not None:
            return self.cs_count
        return len(self.cs_id_map)

    def cs_ids(self) -> list[int]:
        """The crypto session IDs: positions 1..#CS for SRTP-ID, the listed IDs for GENERIC-ID."""
        if self.cs_id_map_type == CSIdMapType.GENERIC_ID:
            return [e.cs_id for e in self.cs_id_map if isinstance(e, GenericIdEntry)]
        return list(range(1, self.n_cs + 1))

    # -- codec ---------------------------------------------------------------------------

    @classmethod
    def decode(cls, r: Reader) -> tuple[CommonHeader, int]:
        """Decode HDR; returns it with the next-payload value."""
        version = r.u8()
        data_type = r.u8()
        next_payload = r.u8()
        b = r.u8()
        csb_id = r.u32()
        n_cs = r.u8()
        map_type = r.u8()
        entries: list[CsIdMapEntry] = []
        cs_count: int | None = None
        if map_type == CSIdMapType.SRTP_ID:
            for _ in range(n_cs):
                entries.append(SrtpIdEntry(r.u8(), r.u32(), r.u32()))
        elif map_type == CSIdMapType.GENERIC_ID:
            for _ in range(n_cs):
                cs_id = r.u8()
                prot = r.u8()
                sp = r.u8()
                policies = tuple(r.take(sp & 0x7F))
                sdata = r.take(r.u16())
                spi = r.take(r.u8())
                entries.append(GenericIdEntry(cs_id, lookup(ProtType, prot), policies, sdata, spi, bool(sp & 0x80)))
        elif map_type == CSIdMapType.EMPTY:
            cs_count = n_cs
        else:
            raise FieldError(f"unknown CS ID map type {map_type}: cannot tell the length of its map info", r.pos - 1)
        hdr = cls(
            lookup(DataType, data_type),
            csb_id,
            tuple(entries),
            lookup(CSIdMapType, map_type),
            bool(b & 0x80),
            lookup(PRF, b & 0x7F),
            version,
            cs_count,
        )
        return hdr, next_payload

    def encode(self, w: Writer, next_payload: int) -> None:
        n = self.n_cs
        if self.cs_count is not None and self.cs_id_map and self.cs_count != len(self.cs_id_map):
            raise MikeyEncodeError("HDR cs_count disagrees with the number of CS ID map entries")
        if not 0 <= n <= 255:
            raise MikeyEncodeError(f"HDR #CS is {n}; it must fit in 8 bits")
        if not 0 <= self.prf <= 0x7F:
            raise MikeyEncodeError("HDR PRF func must fit in 7 bits")
        w.u8(self.version)
        w.u8(self.data_type)
        w.u8(next_payload)
        w.u8((0x80 if self.v else 0) | self.prf)
        w.u32(self.csb_id)
        w.u8(n)
        w.u8(self.cs_id_map_type)
        for e in self.cs_id_map:
            if isinstance(e, SrtpIdEntry):
                if self.cs_id_map_type != CSIdMapType.SRTP_ID:
                    raise MikeyEncodeError("SRTP-ID entry in a header whose map type is not SRTP-ID")
                w.u8(e.policy_no)
                w.u32(e.ssrc)
                w.u32(e.roc)
            else:
                if self.cs_id_map_type != CSIdMapType.GENERIC_ID:
                    raise MikeyEncodeError("GENERIC-ID entry in a header whose map type is not GENERIC-ID")
                if len(e.policies) > 0x7F or len(e.session_data) > 0xFFFF or len(e.spi) > 0xFF:
                    raise MikeyEncodeError("GENERIC-ID entry field too long")
                w.u8(e.cs_id)
                w.u8(e.prot_type)
                w.u8((0x80 if e.s_flag else 0) | len(e.policies))
                w.put(bytes(e.policies))
                w.u16(len(e.session_data))
                w.put(e.session_data)
                w.u8(len(e.spi))
                w.put(e.spi)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "HDR",
            "version": self.version,
            "data_type": int(self.data_type),
            "data_type_name": _name(self.data_type),
            "v": self.v,
            "prf": int(self.prf),
            "prf_name": _name(self.prf),
            "csb_id": f"{self.csb_id:08x}",
            "n_cs": self.n_cs,
            "cs_id_map_type": int(self.cs_id_map_type),
            "cs_id_map_type_name": _name(self.cs_id_map_type),
            "cs_id_map": value_to_json(self.cs_id_map),
        }
        return out


def _name(v: int) -> str:
    return v.name if hasattr(v, "name") else f"unknown({v})"
