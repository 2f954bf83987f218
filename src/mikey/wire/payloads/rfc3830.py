"""The RFC 3830 payloads (§6.2-§6.15)."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ...constants import (
    DH_VALUE_LENGTHS,
    HASH_LENGTHS,
    KEY_TYPES_WITH_SALT,
    MAC_LENGTHS,
    TS_LENGTHS,
    CacheType,
    CertType,
    DHGroup,
    EncrAlg,
    ErrorNo,
    HashFunc,
    IDType,
    KeyDataType,
    MacAlg,
    PayloadType,
    ProtType,
    SignatureType,
    SRTPParam,
    TESLAParam,
    TSType,
)
from ...errors import MikeyDecodeError, MikeyEncodeError, UnknownDHGroupDecodeError
from ...identities import ntp_from_unix
from .base import (
    B_H_FROM,
    BBH_FROM,
    PACK_B_H,
    PACK_BB,
    PACK_BBH,
    PACK_H,
    U16_FROM,
    FieldError,
    IdFields,
    KeyValidity,
    Payload,
    ReadPastEnd,
    TimestampFields,
    Writer,
    decode_sub_payloads,
    enum_table,
    expect_length,
    fast_constructor,
    key_validity_type,
    len_check,
    lookup,
    pull_b_h_data,
    pull_key_validity,
    pull_selected_fixed,
    register,
    unknown_length,
    write_key_validity,
)

__all__ = [
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
]


class _UnknownDHGroup(FieldError):
    """Internal: a DH-Group with no known value length; becomes :class:`UnknownDHGroupDecodeError`."""

    def __init__(self, group: int, offset: int) -> None:
        super().__init__(f"unknown DH-Group {group}: cannot tell the length of the field that follows", offset)
        self.group = group

    def decode_error(self, payload: str) -> MikeyDecodeError:
        return UnknownDHGroupDecodeError(str(self), group=self.group, payload=payload, offset=self.offset)


_ENCR_ALG = enum_table(EncrAlg)
_MAC_ALG = enum_table(MacAlg)
_CACHE = enum_table(CacheType)
_DH_GROUP = enum_table(DHGroup)
_S_TYPE = enum_table(SignatureType)
_TS_TYPE = enum_table(TSType)
_ID_TYPE = enum_table(IDType)
_CERT_TYPE = enum_table(CertType)
_HASH = enum_table(HashFunc)
_PROT = enum_table(ProtType)
_ERROR_NO = enum_table(ErrorNo)
_KEY_TYPE = enum_table(KeyDataType)
#: Registry member and value length, for the fields whose type fixes the length of what follows.
_TS_INFO: dict[int, tuple[TSType, int]] = {t: (TSType(t), n) for t, n in TS_LENGTHS.items()}
_MAC_INFO: dict[int, tuple[MacAlg, int]] = {a: (MacAlg(a), n) for a, n in MAC_LENGTHS.items()}


@register
@dataclass(frozen=True, slots=True)
class KemacPayload(Payload):
    """KEMAC: encrypted Key data sub-payloads and a MAC (RFC 3830 §6.2, RFC 6043 §6.2).

    ``encr_data`` holds the Key data sub-payloads encrypted with ``encr_alg``
    (in the clear for NULL); the MAC length follows from ``mac_alg``.
    """

    encr_alg: EncrAlg | int
    encr_data: bytes
    mac_alg: MacAlg | int
    mac: bytes = b""

    TYPE = PayloadType.KEMAC
    NAME = "KEMAC"

    @classmethod
    def pull(cls, data: bytes, pos: int, end: int) -> tuple[KemacPayload, int]:
        if pos + 3 > end:
            raise ReadPastEnd(pos, 3, end - pos)
        encr_alg, n = B_H_FROM(data, pos)
        pos += 3
        q = pos + n
        if q >= end:
            if q > end:
                raise ReadPastEnd(pos, n, end - pos)
            raise ReadPastEnd(q, 1, 0)
        mac_alg = data[q]
        info = _MAC_INFO.get(mac_alg)
        if info is None:
            raise unknown_length(mac_alg, "MAC alg", q)
        r = q + 1 + info[1]
        if r > end:
            raise ReadPastEnd(q + 1, info[1], end - q - 1)
        return _MAKE_KEMAC(_ENCR_ALG.get(encr_alg, encr_alg), data[pos:q], info[0], data[q + 1 : r]), r

    def encode_body(self, w: Writer) -> None:
        expect_length(MAC_LENGTHS, self.mac_alg, self.mac, "KEMAC MAC", "MAC alg")
        buf = w.buf
        buf += PACK_B_H(self.encr_alg, len_check(self.encr_data, 16, "KEMAC Encr data"))
        buf += self.encr_data
        buf.append(self.mac_alg)
        buf += self.mac

    def key_data(self, plaintext: bytes | None = None, *, first: int = PayloadType.KEY_DATA) -> list[Payload]:
        """Decode the sub-payload chain in *plaintext* (default: ``encr_data``, for NULL encryption)."""
        return decode_sub_payloads(self.encr_data if plaintext is None else plaintext, first)


@register
@dataclass(frozen=True, slots=True)
class PkePayload(Payload):
    """PKE: the envelope key encrypted to the peer's public key (RFC 3830 §6.3)."""

    c: CacheType | int
    data: bytes

    TYPE = PayloadType.PKE
    NAME = "PKE"

    @classmethod
    def pull(cls, data: bytes, pos: int, end: int) -> tuple[PkePayload, int]:
        if pos + 2 > end:
            raise ReadPastEnd(pos, 2, end - pos)
        (v,) = U16_FROM(data, pos)
        pos += 2
        q = pos + (v & 0x3FFF)
        if q > end:
            raise ReadPastEnd(pos, v & 0x3FFF, end - pos)
        c = v >> 14
        return _MAKE_PKE(_CACHE.get(c, c), data[pos:q]), q

    def encode_body(self, w: Writer) -> None:
        if not 0 <= self.c <= 3:
            raise MikeyEncodeError("PKE C must fit in 2 bits")
        w.u16((self.c << 14) | len_check(self.data, 14, "PKE Data"))
        w.put(self.data)


@register
@dataclass(frozen=True, slots=True)
class DhPayload(Payload):
    """DH: the DH group and public value, with optional key validity (RFC 3830 §6.4)."""

    group: DHGroup | int
    value: bytes
    kv: KeyValidity = None
    reserved: int = 0

    TYPE = PayloadType.DH
    NAME = "DH"

    @classmethod
    def pull(cls, data: bytes, pos: int, end: int) -> tuple[DhPayload, int]:
        if pos >= end:
            raise ReadPastEnd(pos, 1, 0)
        group = data[pos]
        n = DH_VALUE_LENGTHS.get(group)
        if n is None:
            raise _UnknownDHGroup(group, pos)
        pos += 1
        q = pos + n
        if q >= end:
            if q > end:
                raise ReadPastEnd(pos, n, end - pos)
            raise ReadPastEnd(q, 1, 0)
        b = data[q]
        kv, r = pull_key_validity(data, q + 1, end, b & 0x0F)
        return _MAKE_DH(_DH_GROUP.get(group, group), data[pos:q], kv, b >> 4), r

    def encode_body(self, w: Writer) -> None:
        expect_length(DH_VALUE_LENGTHS, self.group, self.value, "DH value", "group")
        w.u8(self.group)
        w.put(self.value)
        w.u8(((self.reserved & 0x0F) << 4) | key_validity_type(self.kv))
        write_key_validity(w, self.kv)

    def to_dict(self) -> dict[str, Any]:
        d = Payload.to_dict(self)
        d["kv_type"] = key_validity_type(self.kv)
        return d


@register
@dataclass(frozen=True, slots=True)
class SignPayload(Payload):
    """SIGN: S type(4) | Signature len(12) | Signature (RFC 3830 §6.5, RFC 6509 §4.3).

    Always the last payload; it has no next-payload field.  The signature
    covers everything before the Signature field, including the 2-octet
    S type/length header.
    """

    s_type: SignatureType | int
    signature: bytes

    TYPE = PayloadType.SIGN
    NAME = "SIGN"
    HAS_NEXT = False

    @classmethod
    def pull(cls, data: bytes, pos: int, end: int) -> tuple[SignPayload, int]:
        if pos + 2 > end:
            raise ReadPastEnd(pos, 2, end - pos)
        (v,) = U16_FROM(data, pos)
        pos += 2
        q = pos + (v & 0x0FFF)
        if q > end:
            raise ReadPastEnd(pos, v & 0x0FFF, end - pos)
        s = v >> 12
        return _MAKE_SIGN(_S_TYPE.get(s, s), data[pos:q]), q

    def encode_body(self, w: Writer) -> None:
        if not 0 <= self.s_type <= 0x0F:
            raise MikeyEncodeError("SIGN S type must fit in 4 bits")
        w.buf += PACK_H((self.s_type << 12) | len_check(self.signature, 12, "SIGN Signature"))
        w.buf += self.signature


@register
@dataclass(frozen=True, slots=True)
class TimestampPayload(TimestampFields, Payload):
    """T: TS type and TS value (RFC 3830 §6.6, RFC 6043 §6.3)."""

    ts_type: TSType | int
    ts_value: bytes

    TYPE = PayloadType.T
    NAME = "T"

    @classmethod
    def ntp_utc(cls, unix_seconds: float) -> TimestampPayload:
        """An NTP-UTC timestamp (TS type 0) for the Unix time *unix_seconds* (the caller's clock).

        From 2036-02-07T06:28:16Z the seconds field wraps into NTP era 1 (RFC 5905 §6).
        """
        return cls(TSType.NTP_UTC, ntp_from_unix(unix_seconds).to_bytes(8, "big"))

    @classmethod
    def counter(cls, value: int) -> TimestampPayload:
        return cls(TSType.COUNTER, value.to_bytes(4, "big"))

    @classmethod
    def pull(cls, data: bytes, pos: int, end: int) -> tuple[TimestampPayload, int]:
        if pos >= end:
            raise ReadPastEnd(pos, 1, 0)
        t = data[pos]
        info = _TS_INFO.get(t)
        if info is None:
            raise unknown_length(t, "TS type", pos)
        pos += 1
        q = pos + info[1]
        if q > end:
            raise ReadPastEnd(pos, info[1], end - pos)
        return _MAKE_T(info[0], data[pos:q]), q

    def encode_body(self, w: Writer) -> None:
        expect_length(TS_LENGTHS, self.ts_type, self.ts_value, "TS value", "TS type")
        buf = w.buf
        buf.append(self.ts_type)
        buf += self.ts_value

    def to_dict(self) -> dict[str, Any]:
        d = Payload.to_dict(self)
        t = self.unix_time()
        if t is not None:
            d["unix_time"] = t
        return d


@register
@dataclass(frozen=True, slots=True)
class IdPayload(IdFields, Payload):
    """ID: an identity (NAI, URI or byte string) (RFC 3830 §6.7, RFC 6043 §6.5)."""

    id_type: IDType | int
    data: bytes

    TYPE = PayloadType.ID
    NAME = "ID"

    @classmethod
    def uri(cls, uri: str) -> IdPayload:
        return cls(IDType.URI, uri.encode())

    @classmethod
    def nai(cls, nai: str) -> IdPayload:
        return cls(IDType.NAI, nai.encode())

    @classmethod
    def pull(cls, data: bytes, pos: int, end: int) -> tuple[IdPayload, int]:
        t, v, q = pull_b_h_data(data, pos, end)
        return _MAKE_ID(_ID_TYPE.get(t, t), v), q

    def encode_body(self, w: Writer) -> None:
        w.buf += PACK_B_H(self.id_type, len_check(self.data, 16, "ID data"))
        w.buf += self.data


@register
@dataclass(frozen=True, slots=True)
class CertPayload(Payload):
    """CERT: a certificate (X.509v3 DER) or its URL (RFC 3830 §6.7)."""

    cert_type: CertType | int
    data: bytes = field(repr=False)

    TYPE = PayloadType.CERT
    NAME = "CERT"

    @classmethod
    def pull(cls, data: bytes, pos: int, end: int) -> tuple[CertPayload, int]:
        t, v, q = pull_b_h_data(data, pos, end)
        return _MAKE_CERT(_CERT_TYPE.get(t, t), v), q

    def encode_body(self, w: Writer) -> None:
        w.buf += PACK_B_H(self.cert_type, len_check(self.data, 16, "CERT data"))
        w.buf += self.data

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.NAME,
            "cert_type": int(self.cert_type),
            "cert_type_name": getattr(self.cert_type, "name", f"unknown({self.cert_type})"),
            "data": self.data.hex(),
        }


@register
@dataclass(frozen=True, slots=True)
class ChashPayload(Payload):
    """CHASH: hash of a certificate (RFC 3830 §6.8, RFC 6043 §6.7)."""

    hash_func: HashFunc | int
    digest: bytes

    TYPE = PayloadType.CHASH
    NAME = "CHASH"

    @classmethod
    def pull(cls, data: bytes, pos: int, end: int) -> tuple[ChashPayload, int]:
        h, value, q = pull_selected_fixed(data, pos, end, HASH_LENGTHS, "Hash func")
        return _MAKE_CHASH(_HASH.get(h, h), value), q

    def encode_body(self, w: Writer) -> None:
        expect_length(HASH_LENGTHS, self.hash_func, self.digest, "CHASH", "hash func")
        w.u8(self.hash_func)
        w.put(self.digest)


@register
@dataclass(frozen=True, slots=True)
class VerificationPayload(Payload):
    """V: the verification MAC of a response (RFC 3830 §6.9)."""

    auth_alg: MacAlg | int
    ver_data: bytes = b""

    TYPE = PayloadType.V
    NAME = "V"

    @classmethod
    def pull(cls, data: bytes, pos: int, end: int) -> tuple[VerificationPayload, int]:
        a, value, q = pull_selected_fixed(data, pos, end, MAC_LENGTHS, "Auth alg")
        return _MAKE_V(_MAC_ALG.get(a, a), value), q

    def encode_body(self, w: Writer) -> None:
        expect_length(MAC_LENGTHS, self.auth_alg, self.ver_data, "V data", "auth alg")
        w.u8(self.auth_alg)
        w.put(self.ver_data)


@register
@dataclass(frozen=True, slots=True)
class SecurityPolicyPayload(Payload):
    """SP: a security policy as type/length/value parameters (RFC 3830 §6.10, §6.10.1).

    ``params`` keeps the parameters in wire order, each ``(type, value)``.
    """

    policy_no: int
    prot_type: ProtType | int
    params: tuple[tuple[int, bytes], ...] = ()

    TYPE = PayloadType.SP
    NAME = "SP"

    def __post_init__(self) -> None:
        if not isinstance(self.params, tuple):
            object.__setattr__(self, "params", tuple((int(t), bytes(v)) for t, v in self.params))

    @classmethod
    def srtp(cls, policy_no: int, params: dict[int, int | bytes]) -> SecurityPolicyPayload:
        """An SRTP policy from ``{SRTPParam: value}``; ints are written as one octet (two for param 13)."""
        out: list[tuple[int, bytes]] = []
        for t, v in params.items():
            if isinstance(v, int):
                v = v.to_bytes(2 if t == SRTPParam.ROC_TRANSMISSION_RATE else 1, "big")
            out.append((int(t), v))
        return cls(policy_no, ProtType.SRTP, tuple(out))

    def get(self, param_type: int) -> bytes | None:
        """The value of the first parameter of *param_type*, or None."""
        for t, v in self.params:
            if t == param_type:
                return v
        return None

    def get_int(self, param_type: int, default: int | None = None) -> int | None:
        v = self.get(param_type)
        return int.from_bytes(v, "big") if v is not None else default

    @classmethod
    def pull(cls, data: bytes, pos: int, end: int) -> tuple[SecurityPolicyPayload, int]:
        if pos + 4 > end:
            raise ReadPastEnd(pos, 4, end - pos)
        policy_no, prot, length = BBH_FROM(data, pos)
        p = pos + 4
        stop = p + length
        if stop > end:
            raise ReadPastEnd(p, length, end - p)
        body = data[p:stop]
        params = _SP_PARAMS_CACHE.get(body)
        if params is None:
            params = _split_sp_params(body, p)
            _remember_sp(params, body)
        return _MAKE_SP(policy_no, _PROT.get(prot, prot), params), stop

    def encode_body(self, w: Writer) -> None:
        params = self.params
        try:
            body = _SP_BODY_CACHE.get(params)
        except TypeError:  # a value that is not hashable (bytearray): no caching
            body = None
        if body is None:
            try:
                body = b"".join([PACK_BB(t, len(v)) + v for t, v in params])
            except (struct.error, TypeError, ValueError):
                for t, v in params:
                    if not isinstance(t, int) or not 0 <= t <= 255 or len(v) > 255:
                        raise MikeyEncodeError(f"SP parameter {t} does not fit its type/length octets") from None
                raise
            _remember_sp(params, body)
        w.buf += PACK_BBH(self.policy_no, self.prot_type, len_check(body, 16, "SP Policy param"))
        w.buf += body

    def to_dict(self) -> dict[str, Any]:
        enum: type[SRTPParam] | type[TESLAParam] | None = (
            SRTPParam if self.prot_type == ProtType.SRTP else TESLAParam if self.prot_type == ProtType.TESLA else None
        )
        params = []
        for t, v in self.params:
            item: dict[str, Any] = {"param_type": t, "value": v.hex()}
            if enum is not None:
                m = lookup(enum, t)
                item["name"] = getattr(m, "name", f"unknown({t})")
            if len(v) <= 4:
                item["int"] = int.from_bytes(v, "big")
            params.append(item)
        return {
            "type": self.NAME,
            "policy_no": self.policy_no,
            "prot_type": int(self.prot_type),
            "prot_type_name": getattr(self.prot_type, "name", f"unknown({self.prot_type})"),
            "params": params,
        }


@register
@dataclass(frozen=True, slots=True)
class RandPayload(Payload):
    """RAND: a random bit string, SHOULD be at least 128 bits (RFC 3830 §6.11)."""

    rand: bytes

    TYPE = PayloadType.RAND
    NAME = "RAND"

    @classmethod
    def pull(cls, data: bytes, pos: int, end: int) -> tuple[RandPayload, int]:
        if pos >= end:
            raise ReadPastEnd(pos, 1, 0)
        q = pos + 1 + data[pos]
        if q > end:
            raise ReadPastEnd(pos + 1, data[pos], end - pos - 1)
        return _MAKE_RAND(data[pos + 1 : q]), q

    def encode_body(self, w: Writer) -> None:
        buf = w.buf
        buf.append(len_check(self.rand, 8, "RAND"))
        buf += self.rand


@register
@dataclass(frozen=True, slots=True)
class ErrorPayload(Payload):
    """ERR: Error no and a reserved field (RFC 3830 §6.12)."""

    error_no: ErrorNo | int
    reserved: int = 0

    TYPE = PayloadType.ERR
    NAME = "ERR"

    @classmethod
    def pull(cls, data: bytes, pos: int, end: int) -> tuple[ErrorPayload, int]:
        if pos + 3 > end:
            raise ReadPastEnd(pos, 3, end - pos)
        e, reserved = B_H_FROM(data, pos)
        return _MAKE_ERR(_ERROR_NO.get(e, e), reserved), pos + 3

    def encode_body(self, w: Writer) -> None:
        w.buf += PACK_B_H(self.error_no, self.reserved)


@register
@dataclass(frozen=True, slots=True)
class KeyDataPayload(Payload):
    """Key data sub-payload (RFC 3830 §6.13; types 4-6 RFC 6043, 7 RFC 6267).

    Travels only inside KEMAC.  Salt is present for the +SALT types.
    """

    key_type: KeyDataType | int
    key: bytes = field(repr=False)
    salt: bytes | None = field(default=None, repr=False)
    kv: KeyValidity = None

    TYPE = PayloadType.KEY_DATA
    NAME = "KEY_DATA"
    SUB_PAYLOAD = True

    @classmethod
    def pull(cls, data: bytes, pos: int, end: int) -> tuple[KeyDataPayload, int]:
        b, key, pos = pull_b_h_data(data, pos, end)
        key_type = b >> 4
        salt: bytes | None = None
        if key_type in KEY_TYPES_WITH_SALT:
            if pos + 2 > end:
                raise ReadPastEnd(pos, 2, end - pos)
            (n,) = U16_FROM(data, pos)
            pos += 2
            q = pos + n
            if q > end:
                raise ReadPastEnd(pos, n, end - pos)
            salt = data[pos:q]
            pos = q
        kv, pos = pull_key_validity(data, pos, end, b & 0x0F)
        return _MAKE_KEY_DATA(_KEY_TYPE.get(key_type, key_type), key, salt, kv), pos

    def encode_body(self, w: Writer) -> None:
        if not 0 <= self.key_type <= 0x0F:
            raise MikeyEncodeError("Key data Type must fit in 4 bits")
        has_salt = self.key_type in KEY_TYPES_WITH_SALT
        if has_salt != (self.salt is not None):
            raise MikeyEncodeError("Key data salt must be present exactly for the +SALT key types")
        w.u8((self.key_type << 4) | key_validity_type(self.kv))
        w.u16(len_check(self.key, 16, "Key data"))
        w.put(self.key)
        if self.salt is not None:
            w.u16(len_check(self.salt, 16, "Salt data"))
            w.put(self.salt)
        write_key_validity(w, self.kv)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "type": self.NAME,
            "key_type": int(self.key_type),
            "key_type_name": getattr(self.key_type, "name", f"unknown({self.key_type})"),
            "key_len": len(self.key),
            "key": self.key.hex(),
            "kv_type": key_validity_type(self.kv),
        }
        if self.salt is not None:
            d["salt"] = self.salt.hex()
        if self.kv is not None:
            d["kv"] = self.kv.to_dict()
        return d


#: The 256 one-octet byte strings, and enough 0x01 length octets for any SP body.
_OCTETS: tuple[bytes, ...] = tuple(bytes([i]) for i in range(256))
_ONES = b"\x01" * 21845

#: Parsed SP parameter lists by body octets.  Policies repeat from message to message
#: (one per media line, unchanged across rekeys) and the parsed value is immutable,
#: so sharing it is safe.  Set SP_PARAMS_CACHE_SIZE to 0 to disable.
SP_PARAMS_CACHE_SIZE = 256
_SP_PARAMS_CACHE: dict[bytes, tuple[tuple[int, bytes], ...]] = {}
_SP_BODY_CACHE: dict[tuple[tuple[int, bytes], ...], bytes] = {}


def _remember_sp(params: tuple[tuple[int, bytes], ...], body: bytes) -> None:
    """Remember the pair both ways (bounded: cleared when full)."""
    if len(_SP_PARAMS_CACHE) >= SP_PARAMS_CACHE_SIZE:
        _SP_PARAMS_CACHE.clear()
        _SP_BODY_CACHE.clear()
    if SP_PARAMS_CACHE_SIZE:
        try:
            _SP_BODY_CACHE[params] = body
        except TypeError:  # unhashable values
            return
        _SP_PARAMS_CACHE[body] = params


def _split_sp_params(body: bytes, base: int) -> tuple[tuple[int, bytes], ...]:
    """Split an SP Policy param field into ``(type, value)`` pairs (RFC 3830 §6.10).

    *base* is the body's offset in the message, for error offsets.
    """
    stop = len(body)
    if stop % 3 == 0 and body[1::3] == _ONES[: stop // 3]:
        # Common case: every value is one octet; split in C.
        return tuple(zip(body[0::3], map(_OCTETS.__getitem__, body[2::3]), strict=True))
    params: list[tuple[int, bytes]] = []
    append = params.append
    p = 0
    while p < stop:
        if p + 2 > stop:
            raise ReadPastEnd(base + p, 2, stop - p)
        q = p + 2 + body[p + 1]
        if q > stop:
            raise ReadPastEnd(base + p + 2, body[p + 1], stop - p - 2)
        append((body[p], body[p + 2 : q]))
        p = q
    return tuple(params)


_MAKE_KEMAC: Callable[..., KemacPayload] = fast_constructor(KemacPayload)
_MAKE_PKE: Callable[..., PkePayload] = fast_constructor(PkePayload)
_MAKE_DH: Callable[..., DhPayload] = fast_constructor(DhPayload)
_MAKE_SIGN: Callable[..., SignPayload] = fast_constructor(SignPayload)
_MAKE_T: Callable[..., TimestampPayload] = fast_constructor(TimestampPayload)
_MAKE_ID: Callable[..., IdPayload] = fast_constructor(IdPayload)
_MAKE_CERT: Callable[..., CertPayload] = fast_constructor(CertPayload)
_MAKE_CHASH: Callable[..., ChashPayload] = fast_constructor(ChashPayload)
_MAKE_V: Callable[..., VerificationPayload] = fast_constructor(VerificationPayload)
_MAKE_SP: Callable[..., SecurityPolicyPayload] = fast_constructor(SecurityPolicyPayload)
_MAKE_RAND: Callable[..., RandPayload] = fast_constructor(RandPayload)
_MAKE_ERR: Callable[..., ErrorPayload] = fast_constructor(ErrorPayload)
_MAKE_KEY_DATA: Callable[..., KeyDataPayload] = fast_constructor(KeyDataPayload)
