"""MIKEY-SAKKE (RFC 6509) with the 3GPP TS 33.180 (MCPTT/MCX) profile.

I_MESSAGE = HDR (data type 26, V=0), T, RAND, [IDRi], [IDRr], [IDRkmsi], [IDRkmsr],
            {SP}, SAKKE, SIGN                                      (RFC 6509 §2.2.1)

There is no response.  The SAKKE payload carries the Shared Secret Value (SSV),
encapsulated for the Responder's identifier (RFC 6508 §6.2.1); the SSV is the
TGK and keys derive as in RFC 3830 §4.1.3 with the PRF named in the HDR
(RFC 6509 §3.1).  The SIGN payload holds an ECCSI signature (RFC 6507 §5.2.1)
over the whole message up to the signature field, including the SIGN payload's
2-octet S type/length header (RFC 3830 §5.2; the deployed Streamwide and ALEA
messages verify only that way).

Identifiers (the public keys):

* ID scheme 1 (RFC 6509 §3.2): ``"YYYY-MM" 0x00 "tel:+digits" 0x00``, month of T;
  carried in IDR roles 1/2 as the URI.
* ID scheme 2 (3GPP TS 33.180 §F.2.1): the MIKEY-SAKKE UID, SHA-256 over URI, KMS
  URI, key period, offset and period number (the period holding T); carried in
  IDR roles 8/9 as real MCPTT messages do.

3GPP profile: key purposes (GMK, PCK, CSK, ...: the top 4 bits of the key ID),
the CSB ID set to the key ID (PCK, CSK) or to the GUK-ID (GMK, TS 33.180 §7.3.2
via the TS 33.220 KDF), the encrypted key-parameters General Extension (type
7, protected with DPCK = KDF(SSV, 0x53, DPPK-ID) in AES-128-GCM as TS 33.180
§8.5.4 / §E.6 are implemented by Streamwide and ALEA), SAKKE-to-self (General
Extension type 6: the SSV encapsulated again for the Initiator's own UID), and
the AES-GCM SRTP policy (RFC 7714 §15).
"""

from __future__ import annotations

import datetime as _dt
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from ..constants import (
    PRF,
    CSIdMapType,
    DataType,
    ErrorNo,
    GenExtType,
    IDRole,
    IDType,
    KeyPurpose,
    ProtType,
    SakkeIDScheme,
    SignatureType,
    SRTPEncrAlg,
    SRTPParam,
    TSType,
)
from ..crypto import eccsi
from ..crypto import prf as prf_crypto
from ..crypto import sakke as sakke_crypto
from ..crypto.aead import aes_gcm_open, aes_gcm_seal
from ..errors import (
    AuthenticationError,
    CryptoError,
    KeyMaterialError,
    MikeyDecodeError,
    MikeyProtocolError,
    StateError,
    UnspecifiedError,
    UnsupportedIDError,
    UnsupportedPRFError,
)
from ..identities import key_period_number, rfc6509_identifier, uid_3gpp
from ..wire import (
    CommonHeader,
    GeneralExtensionPayload,
    GenericIdEntry,
    IdrPayload,
    Message,
    Payload,
    RandPayload,
    SakkePayload,
    SecurityPolicyPayload,
    SignPayload,
    SrtpIdEntry,
    TimestampPayload,
)
from .base import (
    CryptoSessionKeys,
    ExchangeResult,
    Initiator,
    OfferKeywords,
    Responder,
    ResponderKeywords,
    ResponderOutcome,
    Rng,
    State,
    build_error_message,
    check_keywords,
    derive_crypto_sessions,
    fill_ssrcs,
    random_csb_id,
)

if TYPE_CHECKING:
    from typing import Unpack

__all__ = [
    "SakkeInitiator",
    "SakkeResponder",
    "SakkeKeySource",
    "UserKeySet",
    "KeyParameters",
    "SIGNATURE_COVERAGE",
    "KEY_TYPES",
    "key_purpose",
    "make_key_id",
    "parse_key_type",
    "recover_gmk_id",
    "gcm_srtp_policy",
    "group_session_keys",
    "encode_key_parameters",
    "decode_key_parameters",
    "sakke_to_self_extension",
]

#: How the ECCSI signature covers the message: "rfc" (up to and including the SIGN
#: header, RFC 3830 §5.2) or "exclude-sign-header" (up to the SIGN payload), a variant
#: some implementations produce; a Responder accepts it only when asked to.
SIGNATURE_COVERAGE = ("rfc", "exclude-sign-header")

#: CLI / API names of the 3GPP key purposes (TS 33.180: purpose tag = top 4 bits of the key ID).
KEY_TYPES: dict[str, KeyPurpose] = {
    "gmk": KeyPurpose.GMK,
    "pck": KeyPurpose.PCK,
    "csk": KeyPurpose.CSK,
    "spk": KeyPurpose.SPK,
    "mkfc": KeyPurpose.MKFC,
    "mscck": KeyPurpose.MSCCK,
    "musik": KeyPurpose.MUSIK,
}

_FC_GUK_ID = 0x50
_MCDATA_PROTECTED = 0x43  # message type Streamwide writes (TS 24.282 protected payload)
_MCDATA_AEAD_AES_128_GCM = 1


# --------------------------------------------------------------------------- message time


def _ts_unix(t: TimestampPayload, now: float) -> float:
    when = t.unix_time(now)
    if when is None:
        raise UnspecifiedError("MIKEY-SAKKE needs an NTP-UTC or NTP timestamp (RFC 6509 §2.2.1)")
    return when


# --------------------------------------------------------------------------- key IDs and purposes


def key_purpose(key_id: int) -> int:
    """The purpose tag: the 4 most significant bits of a 32-bit key ID (TS 33.180)."""
    return (key_id >> 28) & 0x0F


def make_key_id(purpose: int, rng: Rng = os.urandom) -> int:
    """A random 32-bit key ID carrying *purpose* in its top 4 bits."""
    if not 0 <= purpose <= 15:
        raise ValueError("purpose tag must fit in 4 bits")
    return (purpose << 28) | (int.from_bytes(rng(4), "big") & 0x0FFFFFFF)


def parse_key_type(name: str | int | None) -> int | None:
    """A key purpose from a name ("gmk", "pck", ...) or a number; None stays None."""
    if name is None or isinstance(name, int):
        return name
    try:
        return int(KEY_TYPES[name.lower()])
    except KeyError:
        raise ValueError(f"unknown key type {name!r}; one of {', '.join(KEY_TYPES)}") from None


def recover_gmk_id(gmk: bytes, guk_id: int, own_uri: str | bytes) -> int:
    """GMK-ID from a received GUK-ID (the CSB ID): XOR the same KDF output back (TS 33.180 §7.3.2)."""
    uri = own_uri.encode() if isinstance(own_uri, str) else own_uri
    mask = int.from_bytes(prf_crypto.kdf_ts33220(gmk, _FC_GUK_ID, uri)[-4:], "big") & 0x0FFFFFFF
    return guk_id ^ mask


def gcm_srtp_policy(policy_no: int = 0, key_len: int = 16) -> SecurityPolicyPayload:
    """The MCPTT SRTP policy: AES-GCM (encr alg 6), 12-octet salt, AEAD tag 16 (RFC 7714 §15)."""
    return SecurityPolicyPayload.srtp(
        policy_no,
        {
            SRTPParam.ENCR_ALG: SRTPEncrAlg.AES_GCM,
            SRTPParam.SESSION_ENCR_KEY_LEN: key_len,
            SRTPParam.SESSION_SALT_KEY_LEN: 12,
            SRTPParam.SRTP_PRF: 0,
            SRTPParam.KEY_DERIVATION_RATE: 0,
            SRTPParam.AEAD_AUTH_TAG_LEN: 16,
        },
    )


def group_session_keys(
    gmk: bytes,
    gmk_id: int,
    sender_uri: str | bytes,
    rand: bytes,
    cs_ids: Sequence[int],
    policies: Sequence[SecurityPolicyPayload] = (),
    prf: int = PRF.PRF_HMAC_SHA_256,
) -> tuple[CryptoSessionKeys, ...]:
    """SRTP master keys a group member derives from the GMK for one sender's streams.

    The CSB ID in the RFC 3830 §4.1.3 label is the sender's GUK-ID (TS 33.180 §7.3.2).
    """
    guk = prf_crypto.guk_id(gmk, gmk_id, sender_uri)
    hdr = CommonHeader(DataType.SAKKE, guk, (), CSIdMapType.EMPTY, False, prf, cs_count=0)
    return derive_crypto_sessions(gmk, hdr, rand, policies, cs_ids=cs_ids, csb_id=guk)


# --------------------------------------------------------------------------- key parameters (GenExt 7)


@dataclass(frozen=True)
class KeyParameters:
    """3GPP key parameters (TS 33.180 §E.6): key type, status, activation/expiry, text, MC group IDs."""

    key_type: int
    status: int = 1
    activation_time: int = 0
    expiry_time: int = 0
    text: bytes = b""
    group_ids: bytes | None = None
    legacy: bool = False

    def encode(self) -> bytes:
        out = struct.pack(">BI", self.key_type, self.status)
        out += self.activation_time.to_bytes(5, "big") + self.expiry_time.to_bytes(5, "big")
        out += len(self.text).to_bytes(2, "big") + self.text
        if self.group_ids is not None:
            out += len(self.group_ids).to_bytes(2, "big") + self.group_ids
        return out

    @classmethod
    def decode(cls, data: bytes) -> KeyParameters:
        if len(data) < 17:
            raise MikeyDecodeError("3GPP key parameters are shorter than 17 octets", payload="GEN_EXT")
        key_type, status = struct.unpack_from(">BI", data)
        act = int.from_bytes(data[5:10], "big")
        exp = int.from_bytes(data[10:15], "big")
        n = int.from_bytes(data[15:17], "big")
        if 17 + n > len(data):
            raise MikeyDecodeError("3GPP key parameters text runs past the end", payload="GEN_EXT")
        text = data[17 : 17 + n]
        pos = 17 + n
        groups = None
        if pos + 2 <= len(data):
            m = int.from_bytes(data[pos : pos + 2], "big")
            groups = data[pos + 2 : pos + 2 + m]
        return cls(key_type, status, act, exp, text, groups)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "key_type": _purpose_name(self.key_type),
            "status": self.status,
            "activation_time": self.activation_time,
            "expiry_time": self.expiry_time,
        }
        if self.text:
            d["text"] = self.text.decode("utf-8", "replace")
        if self.group_ids:
            d["group_ids"] = self.group_ids.hex()
        if self.legacy:
            d["legacy_format"] = True
        return d


def _purpose_name(purpose: int | None) -> str | None:
    if purpose is None:
        return None
    for name, value in KEY_TYPES.items():
        if value == purpose:
            return name
    return f"purpose-{purpose}"


def encode_key_parameters(
    params: KeyParameters, ssv: bytes, dppk_id: int, *, iv: bytes, date_time: int = 1
) -> GeneralExtensionPayload:
    """General Extension type 7: the key parameters as an MCData protected payload (TS 33.180 §8.5.4).

    message type(1) | date-time(5) | payload ID(4) | seq(1) | algorithm(1) | IV(16) | DPPK-ID(4) |
    type(1) | length(2) | AES-128-GCM(DPCK, IV, AD) ciphertext || tag, with
    DPCK = KDF(SSV, 0x53, DPPK-ID) and AD = the first 12 octets || IV || DPPK-ID.
    """
    if len(iv) != 16:
        raise ValueError("IV must be 16 octets")
    head = bytes([_MCDATA_PROTECTED]) + date_time.to_bytes(5, "big") + bytes(5) + bytes([_MCDATA_AEAD_AES_128_GCM])
    dppk = dppk_id.to_bytes(4, "big")
    ct = aes_gcm_seal(prf_crypto.derive_dpck(ssv, dppk), iv, params.encode(), head + iv + dppk)
    return GeneralExtensionPayload(
        GenExtType.KEY_PARAMETERS_3GPP, head + iv + dppk + b"\x00" + len(ct).to_bytes(2, "big") + ct
    )


def decode_key_parameters(ext: GeneralExtensionPayload, ssv: bytes) -> KeyParameters:
    """Decrypt and parse a type-7 General Extension (also the old clear 17-octet Streamwide form).

    Raises :class:`AuthenticationError` if the protected payload does not decrypt.
    """
    d = ext.data
    if len(d) in (17, 18) and 1 <= d[0] <= 3 and int.from_bytes(d[1:6], "big") == 256 and not any(d[6:12]):
        # Streamwide <= 1.1.13: not encrypted, message type = key type + 1.
        return KeyParameters(d[0] - 1, legacy=True)
    if len(d) < 35:
        raise MikeyDecodeError("3GPP key-parameters extension is too short", payload="GEN_EXT")
    iv = d[12:28]
    dppk = d[28:32]
    n = int.from_bytes(d[33:35], "big")
    ct = d[35 : 35 + n] if 35 + n <= len(d) else d[35:]
    try:
        plain = aes_gcm_open(prf_crypto.derive_dpck(ssv, dppk), iv, ct, d[:12] + iv + dppk)
    except (AuthenticationError, CryptoError):
        raise AuthenticationError("3GPP key parameters do not decrypt with the SSV") from None
    return KeyParameters.decode(plain)


def sakke_to_self_extension(sakke: SakkePayload) -> GeneralExtensionPayload:
    """General Extension type 6: SAKKE params(8) | ID scheme(8) | length(16) | SED (TS 33.180 §E.5)."""
    body = bytes([int(sakke.params), int(sakke.id_scheme)]) + len(sakke.data).to_bytes(2, "big") + sakke.data
    return GeneralExtensionPayload(GenExtType.SAKKE_TO_SELF, body)


def _parse_sakke_to_self(ext: GeneralExtensionPayload) -> SakkePayload:
    d = ext.data
    if len(d) < 4 or 4 + int.from_bytes(d[2:4], "big") != len(d):
        raise MikeyDecodeError("malformed SAKKE-to-self extension", payload="GEN_EXT")
    return SakkePayload(d[0], d[1], d[4:])


# --------------------------------------------------------------------------- key material interface


class UserKeySet(Protocol):
    """One user's keys for one key period (see :class:`mikey.keystore.IdentityKeys`)."""

    @property
    def identifier(self) -> bytes: ...

    @property
    def pvt(self) -> bytes: ...

    def signer(self) -> eccsi.EccsiSigner: ...

    def receiver(self) -> sakke_crypto.SakkeReceiver: ...


class SakkeKeySource(Protocol):
    """What the mode needs from a keystore (see :class:`mikey.keystore.SakkeKeystore`)."""

    @property
    def uri(self) -> str: ...

    @property
    def kms_uri(self) -> str: ...

    @property
    def kpak(self) -> bytes: ...

    @property
    def z(self) -> bytes: ...

    @property
    def sakke_params(self) -> int: ...

    @property
    def id_scheme(self) -> int: ...

    @property
    def key_period(self) -> int: ...

    @property
    def key_period_offset(self) -> int: ...

    def user_keys(self, identifier: bytes) -> UserKeySet | None: ...


def _params_for(value: int) -> sakke_crypto.SakkeParams:
    if value != 1:
        raise UnspecifiedError(f"SAKKE params {value} is not supported (only Parameter Set 1, RFC 6509 App. A)")
    return sakke_crypto.PARAMETER_SET_1


def identifier_for(keys: SakkeKeySource, uri: str, when: float, id_scheme: int, period_shift: int = 0) -> bytes:
    """The identifier of *uri* at Unix time *when* under *id_scheme* (1: RFC 6509, 2: 3GPP UID)."""
    if id_scheme == SakkeIDScheme.TEL_URI_MONTHLY:
        if period_shift:
            moment = _dt.datetime.fromtimestamp(when, _dt.UTC)
            month = moment.year * 12 + moment.month - 1 + period_shift
            moment = moment.replace(year=month // 12, month=month % 12 + 1, day=1)
            return rfc6509_identifier(uri, moment)
        return rfc6509_identifier(uri, when)
    if id_scheme == SakkeIDScheme.UID_3GPP:
        period = key_period_number(when, keys.key_period, keys.key_period_offset) + period_shift
        return uid_3gpp(uri, keys.kms_uri, keys.key_period, keys.key_period_offset, period)
    raise UnspecifiedError(f"SAKKE ID scheme {id_scheme} is not supported")


def _period_extras(keys: SakkeKeySource, when: float, id_scheme: int) -> dict[str, Any]:
    """The key period of the message time T that chose the identifiers (RFC 6509 §3.2, TS 33.180 §F.2.1)."""
    if id_scheme == SakkeIDScheme.UID_3GPP:
        return {"key_period_no": key_period_number(when, keys.key_period, keys.key_period_offset)}
    moment = _dt.datetime.fromtimestamp(when, _dt.UTC)
    return {"key_period_month": f"{moment.year:04d}-{moment.month:02d}"}


def _role_ids(scheme: int) -> tuple[int, int]:
    if scheme == SakkeIDScheme.UID_3GPP:
        return IDRole.INITIATOR_UID_3GPP, IDRole.RESPONDER_UID_3GPP
    return IDRole.INITIATOR, IDRole.RESPONDER


# --------------------------------------------------------------------------- Initiator


class SakkeInitiator(Initiator):
    """The MIKEY-SAKKE Initiator: builds and signs the one I_MESSAGE (RFC 6509 §2.2.1).

    ``key_type`` selects the 3GPP profile ("gmk", "pck", "csk", ... or a purpose
    number): the CSB ID becomes the key ID (PCK, CSK, ...) or the GUK-ID (GMK) and a
    type-7 key-parameters extension is added.  Without it the message is plain RFC
    6509 with a random CSB ID.  ``ssv`` (the key, e.g. a GMK) and ``key_id`` default
    to random values.
    """

    MODE: ClassVar[str] = "sakke"

    def __init__(
        self,
        keys: SakkeKeySource,
        responder_uri: str,
        *,
        key_type: str | int | None = None,
        ssv: bytes | None = None,
        key_id: int | None = None,
        cs_id_map_type: int | None = None,
        cs_ids: Sequence[int] = (),
        id_scheme: int | None = None,
        include_identities: bool = True,
        key_parameters: KeyParameters | bool = True,
        sakke_to_self: bool = False,
        signature_coverage: str = "rfc",
        **options: Unpack[OfferKeywords],
    ) -> None:
        """The offer keywords are :class:`~mikey.modes.base.OfferKeywords` (``prf`` defaults to
        PRF-HMAC-SHA-256, RFC 6509 §2.1); ``cs_id_map_type`` None picks GENERIC-ID, SRTP-ID or empty."""
        check_keywords(options, OfferKeywords)
        rng = options.get("rng", os.urandom)
        super().__init__(rng=rng)
        prf = options.get("prf", PRF.PRF_HMAC_SHA_256)
        csb_id, rand = options.get("csb_id"), options.get("rand")
        crypto_sessions, policies = options.get("crypto_sessions"), options.get("policies")
        if signature_coverage not in SIGNATURE_COVERAGE:
            raise ValueError(f"signature_coverage must be one of {SIGNATURE_COVERAGE}")
        if prf not in (PRF.MIKEY_1, PRF.PRF_HMAC_SHA_256):
            raise UnsupportedPRFError(f"PRF func {prf} is not supported")
        self.keys = keys
        self.responder_uri = responder_uri
        self.purpose = parse_key_type(key_type)
        self.params = _params_for(keys.sakke_params)
        if ssv is not None and len(ssv) != self.params.ssv_len:
            raise ValueError(f"the SSV must be {self.params.ssv_len} octets")
        self._ssv = ssv if ssv is not None else rng(self.params.ssv_len)
        if key_id is not None and self.purpose is not None and key_purpose(key_id) != self.purpose:
            raise ValueError(f"key ID {key_id:08x} does not carry the {_purpose_name(self.purpose)} purpose tag")
        if self.purpose is not None and key_id is None:
            key_id = make_key_id(self.purpose, rng)
        self.key_id = key_id
        self.guk_id: int | None = None
        if self.purpose == KeyPurpose.GMK and key_id is not None:
            self.guk_id = prf_crypto.guk_id(self._ssv, key_id, responder_uri)
        if csb_id is None:
            csb_id = self.guk_id if self.guk_id is not None else key_id
        self.csb_id = csb_id if csb_id is not None else random_csb_id(rng)
        self.rand = rand if rand is not None else rng(16)
        self.specs = list(crypto_sessions) if crypto_sessions is not None else []
        if cs_id_map_type is None:
            if self.purpose is not None and self.specs:
                cs_id_map_type = CSIdMapType.GENERIC_ID
            elif self.specs:
                cs_id_map_type = CSIdMapType.SRTP_ID
            else:
                cs_id_map_type = CSIdMapType.EMPTY
        self.cs_id_map_type = cs_id_map_type
        self.cs_ids = list(cs_ids)
        if policies is None:
            policies = [gcm_srtp_policy(0)] if self.specs or self.cs_ids else []
        self.policies = list(policies)
        self.prf = prf
        self.id_scheme = id_scheme if id_scheme is not None else keys.id_scheme
        self.include_identities = include_identities
        self.key_parameters: KeyParameters | None = None
        if isinstance(key_parameters, KeyParameters):
            self.key_parameters = key_parameters
        elif key_parameters and self.purpose is not None:
            group_ids = b"\x00" if self.purpose == KeyPurpose.GMK else None
            self.key_parameters = KeyParameters(self.purpose, group_ids=group_ids)
        self.sakke_to_self = sakke_to_self
        self.signature_coverage = signature_coverage
        self.header: CommonHeader | None = None
        self.i_message: bytes | None = None
        self._result: ExchangeResult | None = None

    def __repr__(self) -> str:
        return f"SakkeInitiator(csb_id={self.csb_id:08x}, to={self.responder_uri!r}, state={self.state.value})"

    def _build_header(self) -> CommonHeader:
        entries: list[SrtpIdEntry | GenericIdEntry] = []
        if self.cs_id_map_type == CSIdMapType.SRTP_ID:
            entries = [SrtpIdEntry(s.policy_no, s.ssrc, s.roc) for s in self.specs]
        elif self.cs_id_map_type == CSIdMapType.GENERIC_ID:
            spi = b""
            if self.key_id is not None:
                spi = self.key_id.to_bytes(4, "big")
                if self.guk_id is not None:
                    spi += self.guk_id.to_bytes(4, "big")
            for i, s in enumerate(self.specs, 1):
                data = s.ssrc.to_bytes(4, "big") if s.ssrc else b""
                entries.append(
                    GenericIdEntry(s.cs_id if s.cs_id is not None else i, ProtType.SRTP, (s.policy_no,), data, spi)
                )
        else:
            return CommonHeader(
                DataType.SAKKE, self.csb_id, (), self.cs_id_map_type, False, self.prf, cs_count=len(self.specs)
            )
        return CommonHeader(DataType.SAKKE, self.csb_id, tuple(entries), self.cs_id_map_type, False, self.prf)

    def _build(self, now: float) -> bytes:
        """The signed I_MESSAGE (RFC 6509 §2.2.1), timestamped *now* (Unix seconds)."""
        keys = self.keys
        own_id = identifier_for(keys, keys.uri, now, self.id_scheme)
        peer_id = identifier_for(keys, self.responder_uri, now, self.id_scheme)
        own = keys.user_keys(own_id)
        if own is None:
            raise KeyMaterialError(f"no signing keys for {keys.uri!r} in the key period of {now:.0f}")
        self.header = self._build_header()
        t = TimestampPayload.ntp_utc(now)
        payloads: list[Payload] = [t, RandPayload(self.rand)]
        if self.include_identities:
            role_i, role_r = _role_ids(self.id_scheme)
            if self.id_scheme == SakkeIDScheme.UID_3GPP:
                payloads += [IdrPayload(role_i, IDType.URI, own_id), IdrPayload(role_r, IDType.URI, peer_id)]
            else:
                payloads += [
                    IdrPayload(role_i, IDType.URI, keys.uri.encode()),
                    IdrPayload(role_r, IDType.URI, self.responder_uri.encode()),
                ]
            kms = keys.kms_uri.encode()
            payloads += [
                IdrPayload(IDRole.INITIATOR_KMS, IDType.URI, kms),
                IdrPayload(IDRole.RESPONDER_KMS, IDType.URI, kms),
            ]
        payloads += self.policies
        _, sed = sakke_crypto.encapsulate(self._ssv, peer_id, keys.z, self.params)
        sakke_payload = SakkePayload(self.params.sakke_params_value, self.id_scheme, sed)
        payloads.append(sakke_payload)
        if self.key_parameters is not None:
            payloads.append(
                encode_key_parameters(
                    self.key_parameters, self._ssv, self.csb_id, iv=self.rng(16), date_time=int(now)
                )
            )
        if self.sakke_to_self:
            _, sed_self = sakke_crypto.encapsulate(self._ssv, own_id, keys.z, self.params)
            payloads.append(
                sakke_to_self_extension(SakkePayload(self.params.sakke_params_value, self.id_scheme, sed_self))
            )
        sig_len = eccsi.SIGNATURE_LENGTH
        payloads.append(SignPayload(SignatureType.ECCSI, bytes(sig_len)))
        draft = Message(self.header, tuple(payloads)).encode()
        signed = draft[: len(draft) - sig_len]
        if self.signature_coverage == "exclude-sign-header":
            signed = signed[:-2]
        signature = own.signer().sign(signed)
        self.i_message = draft[: len(draft) - sig_len] + signature
        self.state = State.DONE
        self._result = _make_result(
            ssv=self._ssv,
            header=self.header,
            rand=self.rand,
            policies=self.policies,
            cs_ids=self.cs_ids,
            initiator=self.keys.uri.encode(),
            responder=self.responder_uri.encode(),
            extras=self._extras(own_id, peer_id) | _period_extras(keys, now, self.id_scheme),
        )
        return self.i_message

    def _extras(self, own_id: bytes, peer_id: bytes) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id_scheme": int(self.id_scheme),
            "initiator_uri": self.keys.uri,
            "responder_uri": self.responder_uri,
            "initiator_identifier": own_id.hex(),
            "responder_identifier": peer_id.hex(),
        }
        if self.purpose is not None:
            out["key_type"] = _purpose_name(self.purpose)
        if self.key_id is not None:
            out["key_id"] = f"{self.key_id:08x}"
        if self.guk_id is not None:
            out["guk_id"] = f"{self.guk_id:08x}"
        return out

    def receive(self, data: bytes, now: float) -> ExchangeResult:
        """MIKEY-SAKKE has no response (RFC 6509 §2.1); an Error message raises :class:`PeerError`."""
        msg = Message.decode(data)
        if msg.data_type == DataType.ERROR:
            raise self._on_error_message(msg)
        raise StateError("MIKEY-SAKKE has no response message (RFC 6509 §2.1)")


def _make_result(
    *,
    ssv: bytes,
    header: CommonHeader,
    rand: bytes,
    policies: Sequence[SecurityPolicyPayload],
    cs_ids: Sequence[int],
    initiator: bytes | None,
    responder: bytes | None,
    extras: dict[str, Any],
    authenticated: bool = False,
) -> ExchangeResult:
    sessions = derive_crypto_sessions(ssv, header, rand, policies, cs_ids=cs_ids or None)
    return ExchangeResult(
        mode="sakke",
        csb_id=header.csb_id,
        tgk=ssv,
        rand=rand,
        prf=int(header.prf),
        crypto_sessions=sessions,
        authenticated=authenticated,
        header=header,
        policies=tuple(policies),
        initiator_id=initiator,
        responder_id=responder,
        extras=extras,
    )


# --------------------------------------------------------------------------- Responder


@dataclass
class _Parsed:
    t: TimestampPayload
    rand: bytes
    sakke: SakkePayload
    sign: SignPayload
    idr: dict[int, bytes] = field(default_factory=dict)


class SakkeResponder(Responder):
    """The MIKEY-SAKKE Responder (RFC 6509 §2.2.2): T and replay checks, identifiers, ECCSI, SAKKE.

    ``initiator_uri`` is the sender the application expects (e.g. from SIP); when
    given, the signature is checked against its identifier and a differing IDRi
    is refused.  Otherwise the identifier comes from the message (IDRi URI for
    scheme 1, the role-8 UID for scheme 2).  ``cs_ids`` names crypto sessions to
    derive keys for when the CS ID map lists none.  ``allow_signature_without_header``
    accepts the variant signature that omits the SIGN header (an interop option).
    ``accept_to_self`` lets the Initiator's own devices take the key from a
    SAKKE-to-self extension.
    """

    MODE: ClassVar[str] = "sakke"

    def __init__(
        self,
        keys: SakkeKeySource,
        *,
        initiator_uri: str | None = None,
        cs_ids: Sequence[int] = (),
        allow_signature_without_header: bool = False,
        accept_to_self: bool = False,
        strict_key_parameters: bool = False,
        **options: Unpack[ResponderKeywords],
    ) -> None:
        """The shared keywords (``own_ssrcs``, ``replay_cache``, ``clock_skew``, ``rng``) are
        :class:`~mikey.modes.base.ResponderKeywords`; the identity is the key source's URI (no ``id_r``)."""
        self._init_responder(options, ResponderKeywords)
        self.keys = keys
        self.initiator_uri = initiator_uri
        self.cs_ids = list(cs_ids)
        self.allow_signature_without_header = allow_signature_without_header
        self.accept_to_self = accept_to_self
        self.strict_key_parameters = strict_key_parameters

    def __repr__(self) -> str:
        return f"SakkeResponder(uri={self.keys.uri!r}, state={self.state.value})"

    @staticmethod
    def _parse(msg: Message) -> _Parsed:
        t = msg.find(TimestampPayload)
        rand = msg.find(RandPayload)
        sk = msg.find(SakkePayload)
        sign = msg.find(SignPayload)
        if t is None or rand is None or sk is None or sign is None:
            raise UnspecifiedError("a MIKEY-SAKKE I_MESSAGE needs T, RAND, SAKKE and SIGN (RFC 6509 §2.2.1)")
        if msg.payloads[-1] is not sign:
            raise UnspecifiedError("SIGN must be the last payload (RFC 3830 §6.5)")
        if t.ts_type not in (TSType.NTP_UTC, TSType.NTP):
            raise UnspecifiedError("MIKEY-SAKKE needs an NTP-UTC or NTP timestamp (RFC 6509 §2.2.1)")
        idr: dict[int, bytes] = {}
        for p in msg.find_all(IdrPayload):
            if int(p.id_role) in idr and idr[int(p.id_role)] != p.data:
                raise UnsupportedIDError(f"two different IDR payloads with ID Role {int(p.id_role)}")
            idr[int(p.id_role)] = p.data
        return _Parsed(t, rand.rand, sk, sign, idr)

    def _initiator_identifier(self, p: _Parsed, when: float, scheme: int) -> tuple[bytes, str | None]:
        role_i, _ = _role_ids(scheme)
        carried = p.idr.get(role_i)
        uri = self.initiator_uri
        if uri is None and scheme == SakkeIDScheme.TEL_URI_MONTHLY and carried is not None:
            uri = carried.decode("utf-8", "replace")
            carried = None
        if uri is None:
            if carried is None:
                raise UnsupportedIDError("the I_MESSAGE does not name its Initiator and none is expected")
            if scheme == SakkeIDScheme.UID_3GPP and len(carried) != 32:
                raise UnsupportedIDError("the Initiator UID must be 32 octets")
            return carried, None
        if scheme == SakkeIDScheme.TEL_URI_MONTHLY:
            uri_in_msg = p.idr.get(IDRole.INITIATOR)
            if uri_in_msg is not None and uri_in_msg != uri.encode():
                raise UnsupportedIDError("IDRi does not name the expected Initiator")
            return identifier_for(self.keys, uri, when, scheme), uri
        expected = identifier_for(self.keys, uri, when, scheme)
        if carried is not None and carried != expected:
            raise UnsupportedIDError(
                "the Initiator UID is not the expected Initiator's for the key period of T (TS 33.180 §F.2.1)"
            )
        return expected, uri

    def _signer_identifier(self, p: _Parsed, when: float, scheme: int) -> tuple[bytes, str | None]:
        """The identifier to verify the signature with: the expected Initiator's for the period of T, if known.

        Only the key period holding T counts (RFC 6509 §3.2: the identifiers' period is
        the timestamp's), so keys of a neighbouring period never sign a message: a
        device keyed out of period N+1 cannot go on signing with its period-N key.
        """
        if self.initiator_uri is not None:
            return identifier_for(self.keys, self.initiator_uri, when, scheme), self.initiator_uri
        return self._initiator_identifier(p, when, scheme)

    def _own_keys(self, p: _Parsed, when: float, scheme: int) -> tuple[UserKeySet, bytes]:
        """This Responder's key set for the key period holding T (RFC 6509 §3.2, §3.3).

        The period is the message's, not the Responder's clock's: across a boundary
        (T just before it, the local clock just after, or the reverse, within the
        allowed skew) the Responder uses the key set of T's period, which it holds
        because it keeps two periods' keys (RFC 6509 §3.3).
        """
        keys = self.keys
        _, role_r = _role_ids(scheme)
        carried = p.idr.get(role_r)
        if scheme == SakkeIDScheme.TEL_URI_MONTHLY:
            if carried is not None and carried != keys.uri.encode():
                raise UnsupportedIDError("IDRr does not name this Responder")
            ident = identifier_for(keys, keys.uri, when, scheme)
            mine = keys.user_keys(ident)
            if mine is None:
                raise UnsupportedIDError("no Receiver Secret Key for the month of the timestamp")
            return mine, ident
        ident = identifier_for(keys, keys.uri, when, scheme)
        if carried is not None and carried != ident:
            if keys.user_keys(carried) is not None:
                raise UnsupportedIDError("IDRr is this Responder's UID for another key period than T's (RFC 6509 §3.2)")
            raise UnsupportedIDError("the I_MESSAGE is not addressed to this Responder")
        mine = keys.user_keys(ident)
        if mine is None:
            period = key_period_number(when, keys.key_period, keys.key_period_offset)
            raise UnsupportedIDError(f"no Receiver Secret Key for key period {period}, the period of the timestamp")
        return mine, ident

    def _check_kms(self, p: _Parsed) -> None:
        kms = self.keys.kms_uri.encode()
        for role in (IDRole.INITIATOR_KMS, IDRole.RESPONDER_KMS, IDRole.KMS):
            got = p.idr.get(role)
            if got is not None and got.rstrip(b"\x00") != kms:
                raise UnsupportedIDError(f"IDR role {int(role)} names a KMS this Responder does not trust")

    def _verify_signature(self, msg: Message, p: _Parsed, initiator: bytes) -> None:
        if p.sign.s_type != SignatureType.ECCSI:
            raise AuthenticationError(f"SIGN S type {int(p.sign.s_type)} is not ECCSI (RFC 6509 §4.3)")
        raw = msg.raw_bytes()
        sig = p.sign.signature
        covered = raw[: len(raw) - len(sig)]
        try:
            eccsi.verify(covered, sig, initiator, self.keys.kpak)
        except AuthenticationError:
            if not self.allow_signature_without_header:
                raise
            eccsi.verify(covered[:-2], sig, initiator, self.keys.kpak)

    def _on_init(self, msg: Message, now: float) -> ResponderOutcome:
        hdr = msg.header
        t: TimestampPayload | None = msg.find(TimestampPayload)
        try:
            p = self._parse(msg)
            t = p.t
            admission = self.admit(msg, t, now)
            if hdr.prf not in (PRF.MIKEY_1, PRF.PRF_HMAC_SHA_256):
                raise UnsupportedPRFError(f"PRF func {hdr.prf} is not supported")
            when = _ts_unix(t, now)
            scheme = int(p.sakke.id_scheme)
            if scheme not in (SakkeIDScheme.TEL_URI_MONTHLY, SakkeIDScheme.UID_3GPP):
                raise UnspecifiedError(f"SAKKE ID scheme {scheme} is not supported")
            params = _params_for(int(p.sakke.params))
            # Authenticate first (RFC 6509 §2.2.2), then apply the identifier policy.
            initiator, initiator_uri = self._signer_identifier(p, when, scheme)
            self._verify_signature(msg, p, initiator)
            self._check_kms(p)
            initiator, initiator_uri = self._initiator_identifier(p, when, scheme)
            to_self = False
            try:
                mine, own_id = self._own_keys(p, when, scheme)
            except UnsupportedIDError:
                if not self.accept_to_self:
                    raise
                mine, own_id = self._to_self_keys(initiator)
                to_self = True
            sakke_payload = p.sakke
            if to_self:
                sakke_payload = self._to_self_payload(msg)
            receiver = mine.receiver()
            if receiver.params is not params:
                raise UnspecifiedError("the SAKKE parameter set differs from this Responder's keys")
            ssv = receiver.decapsulate(sakke_payload.data)
            self.remember(admission)
            extras = self._profile(msg, p, ssv, scheme, initiator, own_id, initiator_uri, to_self)
            extras |= _period_extras(self.keys, when, scheme)
            header = fill_ssrcs(hdr, self.own_ssrcs)
            policies = tuple(msg.find_all(SecurityPolicyPayload))
            result = _make_result(
                ssv=ssv,
                header=header,
                rand=p.rand,
                policies=policies,
                cs_ids=self.cs_ids,
                initiator=(initiator_uri.encode() if initiator_uri is not None else initiator.hex().encode()),
                responder=self.keys.uri.encode(),
                extras=extras,
                authenticated=True,
            )
        except MikeyProtocolError as exc:
            if exc.err_no is not None:
                ts = t if t is not None else TimestampPayload.ntp_utc(now)
                exc.error_message = build_error_message(hdr.csb_id, [exc.err_no], ts)
            raise
        except (MikeyDecodeError, KeyMaterialError) as exc:
            err = UnspecifiedError(f"cannot process the I_MESSAGE: {exc}")
            err.error_message = build_error_message(hdr.csb_id, [ErrorNo.UNSPECIFIED], t or TimestampPayload.ntp_utc(now))
            raise err from None
        self.result = result
        self.state = State.DONE
        return ResponderOutcome(result, None)

    HANDLERS = {(State.START, DataType.SAKKE): _on_init}

    def _to_self_keys(self, initiator: bytes) -> tuple[UserKeySet, bytes]:
        mine = self.keys.user_keys(initiator)
        if mine is None:
            raise UnsupportedIDError("the I_MESSAGE is not addressed to this Responder")
        return mine, initiator

    @staticmethod
    def _to_self_payload(msg: Message) -> SakkePayload:
        for g in msg.find_all(GeneralExtensionPayload):
            if g.ext_type == GenExtType.SAKKE_TO_SELF:
                return _parse_sakke_to_self(g)
        raise UnsupportedIDError("the I_MESSAGE is not addressed to this Responder and has no SAKKE-to-self")

    def _profile(
        self,
        msg: Message,
        p: _Parsed,
        ssv: bytes,
        scheme: int,
        initiator: bytes,
        own_id: bytes,
        initiator_uri: str | None,
        to_self: bool,
    ) -> dict[str, Any]:
        """3GPP details: key purpose, key ID (GMK-ID from the GUK-ID), key parameters."""
        out: dict[str, Any] = {
            "id_scheme": scheme,
            "initiator_identifier": initiator.hex(),
            "responder_identifier": own_id.hex(),
            "responder_uri": self.keys.uri,
        }
        if initiator_uri is not None:
            out["initiator_uri"] = initiator_uri
        if to_self:
            out["sakke_to_self"] = True
        kp: KeyParameters | None = None
        for g in msg.find_all(GeneralExtensionPayload):
            if g.ext_type != GenExtType.KEY_PARAMETERS_3GPP:
                continue
            try:
                kp = decode_key_parameters(g, ssv)
            except (AuthenticationError, MikeyDecodeError) as exc:
                if self.strict_key_parameters:
                    raise AuthenticationError(f"3GPP key parameters: {exc}") from None
                out["key_parameters_error"] = str(exc)
        if kp is None:
            if scheme == SakkeIDScheme.UID_3GPP:
                # No key parameters: report the CSB ID's purpose tag without asserting a key type.
                out["key_id"] = f"{msg.csb_id:08x}"
                out["purpose_tag"] = _purpose_name(key_purpose(msg.csb_id))
            return out
        purpose = kp.key_type
        out["key_parameters"] = kp.to_dict()
        out["key_type"] = _purpose_name(purpose)
        if purpose == KeyPurpose.GMK and not to_self:
            gmk_id = recover_gmk_id(ssv, msg.csb_id, self.keys.uri)
            out["guk_id"] = f"{msg.csb_id:08x}"
            out["key_id"] = f"{gmk_id:08x}"
            if key_purpose(gmk_id) != KeyPurpose.GMK:
                raise AuthenticationError("the GUK-ID does not yield a GMK-ID for this Responder")
        else:
            out["key_id"] = f"{msg.csb_id:08x}"
        return out
