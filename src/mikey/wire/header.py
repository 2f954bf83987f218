"""The Common Header payload (HDR) and its CS ID maps.

RFC 3830 §6.1 (HDR, SRTP-ID map §6.1.1), RFC 4563 §5 (Empty map), RFC 6043 §6.1.1
(GENERIC-ID map).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import starmap as _starmap
from typing import Any

from ..constants import PRF, CSIdMapType, DataType, ProtType
from ..errors import MikeyEncodeError
from .buffer import FieldError, Reader, ReadPastEnd, Writer
from .payloads.base import enum_table, fast_constructor, value_to_json

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
        hdr, next_payload, r.pos = cls.pull(r.data, r.pos, r.end)
        return hdr, next_payload

    @classmethod
    def pull(cls, data: bytes, pos: int, end: int) -> tuple[CommonHeader, int, int]:
        """Decode HDR at ``data[pos:end]``; returns it, the next-payload value and the position after it."""
        if pos + 10 > end:
            # Name the first field that is cut short (for the error's offset).
            have = end - pos
            field_at = 4 if 4 <= have < 8 else have
            raise ReadPastEnd(pos + field_at, 10 - field_at, have - field_at)
        version, data_type, next_payload, b, csb_id, n_cs, map_type = _HDR_FROM(data, pos)
        pos += 10
        cs_count: int | None = None
        if map_type == 0:  # SRTP-ID (RFC 3830 §6.1.1)
            stop = pos + 9 * n_cs
            if stop > end:
                k = (end - pos) // 9
                raise ReadPastEnd(pos + 9 * k, 9, end - pos - 9 * k)
            entries: tuple[CsIdMapEntry, ...] = tuple(_starmap(_MAKE_SRTP_ID, _SRTP_ITER(data[pos:stop])))
            pos = stop
        elif map_type == 2:  # GENERIC-ID (RFC 6043 §6.1.1)
            entries, pos = _pull_generic_id(data, pos, end, n_cs)
        elif map_type == 1:  # Empty map (RFC 4563 §5)
            entries = ()
            cs_count = n_cs
        else:
            raise FieldError(f"unknown CS ID map type {map_type}: cannot tell the length of its map info", pos - 1)
        prf = b & 0x7F
        hdr = _MAKE_HDR(
            _DATA_TYPE.get(data_type, data_type),
            csb_id,
            entries,
            _MAP_TYPE[map_type],
            b > 0x7F,
            _PRF.get(prf, prf),
            version,
            cs_count,
        )
        return hdr, next_payload, pos

    def encode(self, w: Writer, next_payload: int) -> None:
        n = self.n_cs
        if self.cs_count is not None and self.cs_id_map and self.cs_count != len(self.cs_id_map):
            raise MikeyEncodeError("HDR cs_count disagrees with the number of CS ID map entries")
        if not 0 <= n <= 255:
            raise MikeyEncodeError(f"HDR #CS is {n}; it must fit in 8 bits")
        if not 0 <= self.prf <= 0x7F:
            raise MikeyEncodeError("HDR PRF func must fit in 7 bits")
        map_type = self.cs_id_map_type
        buf = w.buf
        buf += _PACK_HDR(
            self.version,
            self.data_type,
            next_payload,
            (0x80 if self.v else 0) | self.prf,
            self.csb_id,
            n,
            map_type,
        )
        for e in self.cs_id_map:
            if type(e) is SrtpIdEntry:
                if map_type != 0:
                    raise MikeyEncodeError("SRTP-ID entry in a header whose map type is not SRTP-ID")
                buf += _PACK_SRTP_ID(e.policy_no, e.ssrc, e.roc)
            elif isinstance(e, GenericIdEntry):
                if map_type != CSIdMapType.GENERIC_ID:
                    raise MikeyEncodeError("GENERIC-ID entry in a header whose map type is not GENERIC-ID")
                if len(e.policies) > 0x7F or len(e.session_data) > 0xFFFF or len(e.spi) > 0xFF:
                    raise MikeyEncodeError("GENERIC-ID entry field too long")
                buf += _PACK_BBB(e.cs_id, e.prot_type, (0x80 if e.s_flag else 0) | len(e.policies))
                buf += bytes(e.policies)
                buf += _PACK_H(len(e.session_data))
                buf += e.session_data
                buf.append(len(e.spi))
                buf += e.spi
            elif isinstance(e, SrtpIdEntry):
                if map_type != 0:
                    raise MikeyEncodeError("SRTP-ID entry in a header whose map type is not SRTP-ID")
                buf += _PACK_SRTP_ID(e.policy_no, e.ssrc, e.roc)
            else:
                raise MikeyEncodeError(f"CS ID map entry of unknown kind {type(e).__name__}")

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


_HDR = struct.Struct(">BBBBIBB")
_HDR_FROM = _HDR.unpack_from
_PACK_HDR = _HDR.pack
_SRTP_ID = struct.Struct(">BII")
_SRTP_ITER = _SRTP_ID.iter_unpack
_PACK_SRTP_ID = _SRTP_ID.pack
_PACK_BBB = struct.Struct(">BBB").pack
_PACK_H = struct.Struct(">H").pack
_U16_FROM = struct.Struct(">H").unpack_from
_DATA_TYPE = enum_table(DataType)
_PRF = enum_table(PRF)
_PROT = enum_table(ProtType)
_MAP_TYPE = enum_table(CSIdMapType)
_MAKE_HDR: Callable[..., CommonHeader] = fast_constructor(CommonHeader)
_MAKE_SRTP_ID: Callable[..., SrtpIdEntry] = fast_constructor(SrtpIdEntry)
_MAKE_GENERIC_ID: Callable[..., GenericIdEntry] = fast_constructor(GenericIdEntry)


def _pull_generic_id(data: bytes, pos: int, end: int, n_cs: int) -> tuple[tuple[CsIdMapEntry, ...], int]:
    """The #CS blocks of a GENERIC-ID map (RFC 6043 §6.1.1)."""
    entries: list[CsIdMapEntry] = []
    for _ in range(n_cs):
        if pos + 3 > end:
            raise ReadPastEnd(pos, 3, end - pos)
        cs_id, prot, sp = data[pos], data[pos + 1], data[pos + 2]
        pos += 3
        q = pos + (sp & 0x7F)
        if q + 2 > end:
            if q > end:
                raise ReadPastEnd(pos, sp & 0x7F, end - pos)
            raise ReadPastEnd(q, 2, end - q)
        policies = tuple(data[pos:q])
        (n,) = _U16_FROM(data, q)
        pos = q + 2
        q = pos + n
        if q >= end:
            if q > end:
                raise ReadPastEnd(pos, n, end - pos)
            raise ReadPastEnd(q, 1, 0)
        sdata = data[pos:q]
        pos = q + 1
        q = pos + data[q]
        if q > end:
            raise ReadPastEnd(pos, q - pos, end - pos)
        entries.append(_MAKE_GENERIC_ID(cs_id, _PROT.get(prot, prot), policies, sdata, data[pos:q], sp > 0x7F))
        pos = q
    return tuple(entries), pos
