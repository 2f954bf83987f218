"""MIKEY-SAKKE payload (RFC 6509 §4.2)."""

from __future__ import annotations

from dataclasses import dataclass

from ...constants import PayloadType, SakkeIDScheme, SakkeParams
from ..buffer import Reader, Writer
from .base import Payload, lookup, register
from .rfc3830 import _len_check

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
    def decode_body(cls, r: Reader) -> SakkePayload:
        p = r.u8()
        s = r.u8()
        return cls(lookup(SakkeParams, p), lookup(SakkeIDScheme, s), r.take(r.u16()))

    def encode_body(self, w: Writer) -> None:
        w.u8(self.params)
        w.u8(self.id_scheme)
        w.u16(_len_check(self.data, 16, "SAKKE data"))
        w.put(self.data)
