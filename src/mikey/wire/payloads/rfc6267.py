"""MIKEY-IBAKE payloads (RFC 6267 §6.1.1-§6.1.5): IBAKE, ESK, ECCPT and SK sub-payloads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...constants import ECC_CURVE_BITS, ECCCurve, MacAlg, PayloadType, SecretKeyType
from ...errors import MikeyEncodeError
from .base import (
    FieldError,
    KeyValidity,
    Payload,
    Reader,
    Writer,
    decode_sub_payloads,
    key_validity_type,
    len_check,
    lookup,
    read_key_validity,
    register,
    write_key_validity,
)

__all__ = ["IbakePayload", "EskPayload", "EccptPayload", "SkPayload", "ecc_point_field_length"]


def ecc_point_field_length(curve: int) -> int | None:
    """Octets of the ECC point field: an uncompressed point (04||x||y) padded to a 32-bit boundary.

    RFC 6267 §6.1.4 says the point is padded to end on a 32-bit boundary; the
    padding is counted from the start of the point.
    """
    bits: int | None = ECC_CURVE_BITS.get(curve)
    if bits is None:
        return None
    n = 1 + 2 * ((bits + 7) // 8)
    return (n + 3) & ~3


class _EncrDataPayload(Payload):
    __slots__ = ()
    encr_data: bytes

    def sub_payloads(self, plaintext: bytes | None = None, first: int = PayloadType.ECCPT) -> list[Payload]:
        return decode_sub_payloads(self.encr_data if plaintext is None else plaintext, first)

    def encode_body(self, w: Writer) -> None:
        w.u16(len_check(self.encr_data, 16, f"{self.NAME} Encr data"))
        w.put(self.encr_data)


@register
@dataclass(frozen=True, slots=True)
class IbakePayload(_EncrDataPayload):
    """IBAKE: IBE-encrypted ECCPT sub-payloads and identities (RFC 6267 §6.1.1)."""

    encr_data: bytes

    TYPE = PayloadType.IBAKE
    NAME = "IBAKE"

    @classmethod
    def decode_body(cls, r: Reader) -> IbakePayload:
        return cls(r.take(r.u16()))


@register
@dataclass(frozen=True, slots=True)
class EskPayload(_EncrDataPayload):
    """ESK: IBE-encrypted SK sub-payload (RFC 6267 §6.1.2)."""

    encr_data: bytes

    TYPE = PayloadType.ESK
    NAME = "ESK"

    @classmethod
    def decode_body(cls, r: Reader) -> EskPayload:
        return cls(r.take(r.u16()))


@register
@dataclass(frozen=True, slots=True)
class EccptPayload(Payload):
    """ECCPT: EC Diffie-Hellman sub-payload (RFC 6267 §6.1.4)."""

    curve: ECCCurve | int
    point: bytes
    auth_alg: MacAlg | int = MacAlg.NULL
    tgk_len: int = 0
    kv: KeyValidity = None
    reserved: int = 0

    TYPE = PayloadType.ECCPT
    NAME = "ECCPT"
    SUB_PAYLOAD = True

    @classmethod
    def decode_body(cls, r: Reader) -> EccptPayload:
        curve = r.u8()
        n = ecc_point_field_length(curve)
        if n is None:
            raise FieldError(f"unknown ECC curve {curve}: cannot tell the length of the ECC point", r.pos - 1)
        point = r.take(n)
        auth = r.u8()
        tgk_len = r.u16()
        b = r.u8()
        kv = read_key_validity(r, b & 0x0F)
        return cls(lookup(ECCCurve, curve), point, lookup(MacAlg, auth), tgk_len, kv, b >> 4)

    def encode_body(self, w: Writer) -> None:
        n = ecc_point_field_length(self.curve)
        if n is not None and len(self.point) != n:
            raise MikeyEncodeError(f"ECC point field is {len(self.point)} octets; curve {self.curve} needs {n}")
        w.u8(self.curve)
        w.put(self.point)
        w.u8(self.auth_alg)
        w.u16(self.tgk_len)
        w.u8(((self.reserved & 0x0F) << 4) | key_validity_type(self.kv))
        write_key_validity(w, self.kv)

    def to_dict(self) -> dict[str, Any]:
        d = Payload.to_dict(self)
        d["kv_type"] = key_validity_type(self.kv)
        return d


@register
@dataclass(frozen=True, slots=True)
class SkPayload(Payload):
    """SK: Secret Key sub-payload (RFC 6267 §6.1.5)."""

    sk_type: SecretKeyType | int
    key: bytes = field(repr=False)
    kv: KeyValidity = None

    TYPE = PayloadType.SK
    NAME = "SK"
    SUB_PAYLOAD = True

    @classmethod
    def decode_body(cls, r: Reader) -> SkPayload:
        b = r.u8()
        key = r.take(r.u16())
        return cls(lookup(SecretKeyType, b >> 4), key, read_key_validity(r, b & 0x0F))

    def encode_body(self, w: Writer) -> None:
        if not 0 <= self.sk_type <= 0x0F:
            raise MikeyEncodeError("SK Type must fit in 4 bits")
        w.u8((self.sk_type << 4) | key_validity_type(self.kv))
        w.u16(len_check(self.key, 16, "SK key data"))
        w.put(self.key)
        write_key_validity(w, self.kv)

    def to_dict(self) -> dict[str, Any]:
        d = Payload.to_dict(self)
        d["kv_type"] = key_validity_type(self.kv)
        return d
