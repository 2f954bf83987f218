"""MIKEY-SAKKE payload (RFC 6509 §4.2)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ...constants import PayloadType, SakkeIDScheme, SakkeParams
from .base import (
    BBH_FROM,
    PACK_BBH,
    Payload,
    ReadPastEnd,
    Writer,
    enum_table,
    fast_constructor,
    len_check,
    register,
)

__all__ = ["SakkePayload"]


@register
@dataclass(frozen=True, slots=True)
class SakkePayload(Payload):
    """SAKKE: parameter set, ID scheme and SAKKE Encapsulated Data (RFC 6509 §4.2, RFC 6508 §4)."""

    params: SakkeParams | int
    id_scheme: SakkeIDScheme | int
    data: bytes

    TYPE = PayloadType.SAKKE
    NAME = "SAKKE"

    @classmethod
    def pull(cls, data: bytes, pos: int, end: int) -> tuple[SakkePayload, int]:
        if pos + 4 > end:
            raise ReadPastEnd(pos, 4, end - pos)
        p, s, n = BBH_FROM(data, pos)
        pos += 4
        q = pos + n
        if q > end:
            raise ReadPastEnd(pos, n, end - pos)
        return _MAKE_SAKKE(_PARAMS.get(p, p), _SCHEME.get(s, s), data[pos:q]), q

    def encode_body(self, w: Writer) -> None:
        w.buf += PACK_BBH(self.params, self.id_scheme, len_check(self.data, 16, "SAKKE data"))
        w.buf += self.data


_PARAMS = enum_table(SakkeParams)
_SCHEME = enum_table(SakkeIDScheme)
_MAKE_SAKKE: Callable[..., SakkePayload] = fast_constructor(SakkePayload)
