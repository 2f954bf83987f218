"""Bridge from MIKEY results to SRTP (libsrtp through ``pylibsrtp``).

* :class:`SrtpPolicyParams` reads and writes the SRTP policy of an SP payload
  (RFC 3830 §6.10.1, RFC 4771 §4, RFC 7714 §14.3/§15).
* :func:`srtp_profile` maps a policy to a libsrtp profile; :func:`make_policy` and
  :class:`SrtpContext` build libsrtp streams from the MIKEY TEK (master key) and salt.
* :func:`srtp_kdf` is the SRTP key derivation (RFC 3711 §4.3, RFC 6188 §3) written over
  ``cryptography``'s AES-CTR, to show what libsrtp derives from the MIKEY keys.

Limits of pylibsrtp 1.0: only four profiles (AES-128-CM with 80/32-bit tag,
AEAD-AES-128/256-GCM), no key derivation rate, no NULL cipher/auth, and no API to set
the rollover counter.  A non-zero ROC therefore raises
:class:`UnsupportedSPParamsError` instead of silently desynchronising.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

import pylibsrtp
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .constants import SRTPAuthAlg, SRTPEncrAlg, SRTPParam
from .errors import AuthenticationError, CryptoError, MikeyDecodeError, UnsupportedSPParamsError

__all__ = [
    "SP_ENCR_ALG",
    "SP_ENCR_KEY_LEN",
    "SP_AUTH_ALG",
    "SP_AUTH_KEY_LEN",
    "SP_SALT_KEY_LEN",
    "SP_PRF",
    "SP_KDR",
    "SP_SRTP_ENCR",
    "SP_SRTCP_ENCR",
    "SP_FEC_ORDER",
    "SP_SRTP_AUTH",
    "SP_AUTH_TAG_LEN",
    "SP_PREFIX_LEN",
    "SP_ROC_RATE",
    "SP_SRTP_AUTH_ALG",
    "SP_SRTCP_AUTH_ALG",
    "SP_SRTP_AUTH_KEY_LEN",
    "SP_SRTCP_AUTH_KEY_LEN",
    "SP_SRTP_AUTH_TAG_LEN",
    "SP_SRTCP_AUTH_TAG_LEN",
    "SP_AEAD_TAG_LEN",
    "SRTP_ENCR_NULL",
    "SRTP_ENCR_AES_CM",
    "SRTP_ENCR_AES_F8",
    "SRTP_ENCR_AES_GCM",
    "SRTP_AUTH_NULL",
    "SRTP_AUTH_HMAC_SHA1",
    "SRTP_AUTH_RCCM1",
    "SRTP_AUTH_RCCM2",
    "SRTP_AUTH_RCCM3",
    "LABEL_RTP_ENCR",
    "LABEL_RTP_AUTH",
    "LABEL_RTP_SALT",
    "LABEL_RTCP_ENCR",
    "LABEL_RTCP_AUTH",
    "LABEL_RTCP_SALT",
    "SrtpPolicyParams",
    "srtp_profile",
    "make_policy",
    "SrtpContext",
    "srtp_kdf",
]

# Aliases of mikey.constants registry values: RFC 3830 Table 6.10.1.a, RFC 4771 Tables 2-3,
# RFC 7714 §14.3.
SP_ENCR_ALG: Final = SRTPParam.ENCR_ALG
SP_ENCR_KEY_LEN: Final = SRTPParam.SESSION_ENCR_KEY_LEN
SP_AUTH_ALG: Final = SRTPParam.AUTH_ALG
SP_AUTH_KEY_LEN: Final = SRTPParam.SESSION_AUTH_KEY_LEN
SP_SALT_KEY_LEN: Final = SRTPParam.SESSION_SALT_KEY_LEN
SP_PRF: Final = SRTPParam.SRTP_PRF
SP_KDR: Final = SRTPParam.KEY_DERIVATION_RATE
SP_SRTP_ENCR: Final = SRTPParam.SRTP_ENCRYPTION
SP_SRTCP_ENCR: Final = SRTPParam.SRTCP_ENCRYPTION
SP_FEC_ORDER: Final = SRTPParam.FEC_ORDER
SP_SRTP_AUTH: Final = SRTPParam.SRTP_AUTHENTICATION
SP_AUTH_TAG_LEN: Final = SRTPParam.AUTH_TAG_LEN
SP_PREFIX_LEN: Final = SRTPParam.SRTP_PREFIX_LEN
SP_ROC_RATE: Final = SRTPParam.ROC_TRANSMISSION_RATE
SP_SRTP_AUTH_ALG: Final = SRTPParam.SRTP_AUTH_ALG
SP_SRTCP_AUTH_ALG: Final = SRTPParam.SRTCP_AUTH_ALG
SP_SRTP_AUTH_KEY_LEN: Final = SRTPParam.SRTP_SESSION_AUTH_KEY_LEN
SP_SRTCP_AUTH_KEY_LEN: Final = SRTPParam.SRTCP_SESSION_AUTH_KEY_LEN
SP_SRTP_AUTH_TAG_LEN: Final = SRTPParam.SRTP_AUTH_TAG_LEN
SP_SRTCP_AUTH_TAG_LEN: Final = SRTPParam.SRTCP_AUTH_TAG_LEN
SP_AEAD_TAG_LEN: Final = SRTPParam.AEAD_AUTH_TAG_LEN

# RFC 3830 Table 6.10.1.b, RFC 7714 §14.3.
SRTP_ENCR_NULL: Final = SRTPEncrAlg.NULL
SRTP_ENCR_AES_CM: Final = SRTPEncrAlg.AES_CM
SRTP_ENCR_AES_F8: Final = SRTPEncrAlg.AES_F8
SRTP_ENCR_AES_GCM: Final = SRTPEncrAlg.AES_GCM
# RFC 3830 Table 6.10.1.c, RFC 4771 Table 1.
SRTP_AUTH_NULL: Final = SRTPAuthAlg.NULL
SRTP_AUTH_HMAC_SHA1: Final = SRTPAuthAlg.HMAC_SHA_1
SRTP_AUTH_RCCM1: Final = SRTPAuthAlg.RCCM1
SRTP_AUTH_RCCM2: Final = SRTPAuthAlg.RCCM2
SRTP_AUTH_RCCM3: Final = SRTPAuthAlg.RCCM3

_RCC_ALGS: Final = frozenset({SRTP_AUTH_RCCM1, SRTP_AUTH_RCCM2, SRTP_AUTH_RCCM3})
_AEAD_ALGS: Final = frozenset({SRTP_ENCR_AES_GCM})

# RFC 3711 §4.3.1/§4.3.2 key derivation labels.
LABEL_RTP_ENCR: Final = 0x00
LABEL_RTP_AUTH: Final = 0x01
LABEL_RTP_SALT: Final = 0x02
LABEL_RTCP_ENCR: Final = 0x03
LABEL_RTCP_AUTH: Final = 0x04
LABEL_RTCP_SALT: Final = 0x05

# Minimum octets used when writing a parameter (RFC 4771: R is 16-bit); else one octet,
# or as many as the value needs (a KDR of 2^24 takes four).
_PARAM_WIDTH: Final[dict[int, int]] = {SP_ROC_RATE: 2}


@dataclass(frozen=True)
class SrtpPolicyParams:
    """The SRTP policy of a MIKEY SP payload (RFC 3830 §6.10.1, RFC 4771 §4, RFC 7714 §15).

    Absent parameters take the RFC 3830/RFC 3711 defaults; for AES-GCM the salt defaults
    to 12 octets (RFC 7714 §8.1) and the AEAD tag to 16 octets (RFC 7714 §14.3).  The
    RFC 4771 SRTP-/SRTCP-specific parameters stay ``None`` when absent; the
    ``effective_*`` helpers apply their precedence rule.  Unknown parameter types are
    kept in ``unknown`` and written back.
    """

    encr_alg: int = SRTP_ENCR_AES_CM
    encr_key_len: int = 16
    auth_alg: int = SRTP_AUTH_HMAC_SHA1
    auth_key_len: int = 20
    salt_key_len: int = 14
    prf: int = 0
    kdr: int = 0
    srtp_encr: bool = True
    srtcp_encr: bool = True
    fec_order: int = 0
    srtp_auth: bool = True
    auth_tag_len: int = 10
    prefix_len: int = 0
    roc_rate: int | None = None
    srtp_auth_alg: int | None = None
    srtcp_auth_alg: int | None = None
    srtp_auth_key_len: int | None = None
    srtcp_auth_key_len: int | None = None
    srtp_auth_tag_len: int | None = None
    srtcp_auth_tag_len: int | None = None
    aead_tag_len: int | None = None
    unknown: tuple[tuple[int, bytes], ...] = field(default=())

    @property
    def is_aead(self) -> bool:
        return self.encr_alg in _AEAD_ALGS

    @property
    def effective_srtp_auth_alg(self) -> int:
        """RFC 4771 §4: type 14 takes precedence over type 2."""
        return self.auth_alg if self.srtp_auth_alg is None else self.srtp_auth_alg

    @property
    def effective_srtcp_auth_alg(self) -> int:
        return self.auth_alg if self.srtcp_auth_alg is None else self.srtcp_auth_alg

    @property
    def effective_srtp_tag_len(self) -> int:
        return self.auth_tag_len if self.srtp_auth_tag_len is None else self.srtp_auth_tag_len

    @property
    def effective_srtcp_tag_len(self) -> int:
        return self.auth_tag_len if self.srtcp_auth_tag_len is None else self.srtcp_auth_tag_len

    @classmethod
    def aes_gcm(cls, key_len: int = 16) -> SrtpPolicyParams:
        """AEAD_AES_128_GCM / AEAD_AES_256_GCM policy (RFC 7714 §15 Table 4)."""
        return cls(encr_alg=SRTP_ENCR_AES_GCM, encr_key_len=key_len, salt_key_len=12, aead_tag_len=16)

    @classmethod
    def from_params(cls, pairs: Iterable[tuple[int, bytes]]) -> SrtpPolicyParams:
        """Read (type, value) pairs of an SRTP SP payload; values are big-endian integers.

        A repeated type keeps its last value.  Empty values raise MikeyDecodeError.
        """
        values: dict[int, int] = {}
        unknown: list[tuple[int, bytes]] = []
        for ptype, value in pairs:
            if ptype > SP_AEAD_TAG_LEN or ptype < 0:
                unknown.append((ptype, bytes(value)))
                continue
            if not value:
                raise MikeyDecodeError(f"SRTP policy parameter {ptype} has an empty value", payload="SP")
            values[ptype] = int.from_bytes(value, "big")

        encr_alg = values.get(SP_ENCR_ALG, SRTP_ENCR_AES_CM)
        aead = encr_alg in _AEAD_ALGS

        def flag(ptype: int) -> bool:
            return bool(values.get(ptype, 1))

        return cls(
            encr_alg=encr_alg,
            encr_key_len=values.get(SP_ENCR_KEY_LEN, 16),
            auth_alg=values.get(SP_AUTH_ALG, SRTP_AUTH_HMAC_SHA1),
            auth_key_len=values.get(SP_AUTH_KEY_LEN, 20),
            salt_key_len=values.get(SP_SALT_KEY_LEN, 12 if aead else 14),
            prf=values.get(SP_PRF, 0),
            kdr=values.get(SP_KDR, 0),
            srtp_encr=flag(SP_SRTP_ENCR),
            srtcp_encr=flag(SP_SRTCP_ENCR),
            fec_order=values.get(SP_FEC_ORDER, 0),
            srtp_auth=flag(SP_SRTP_AUTH),
            auth_tag_len=values.get(SP_AUTH_TAG_LEN, 10),
            prefix_len=values.get(SP_PREFIX_LEN, 0),
            roc_rate=values.get(SP_ROC_RATE),
            srtp_auth_alg=values.get(SP_SRTP_AUTH_ALG),
            srtcp_auth_alg=values.get(SP_SRTCP_AUTH_ALG),
            srtp_auth_key_len=values.get(SP_SRTP_AUTH_KEY_LEN),
            srtcp_auth_key_len=values.get(SP_SRTCP_AUTH_KEY_LEN),
            srtp_auth_tag_len=values.get(SP_SRTP_AUTH_TAG_LEN),
            srtcp_auth_tag_len=values.get(SP_SRTCP_AUTH_TAG_LEN),
            aead_tag_len=values.get(SP_AEAD_TAG_LEN, 16 if aead else None),
            unknown=tuple(unknown),
        )

    def to_params(self) -> list[tuple[int, bytes]]:
        """(type, value) pairs in type order, defaults written out.

        For AEAD ciphers the HMAC parameters (types 2, 3, 10, 11) are left out unless
        they differ from the defaults; RFC 4771 parameters are written when set.
        """
        items: list[tuple[int, int | None]] = [
            (SP_ENCR_ALG, self.encr_alg),
            (SP_ENCR_KEY_LEN, self.encr_key_len),
            (SP_AUTH_ALG, self.auth_alg),
            (SP_AUTH_KEY_LEN, self.auth_key_len),
            (SP_SALT_KEY_LEN, self.salt_key_len),
            (SP_PRF, self.prf),
            (SP_KDR, self.kdr),
            (SP_SRTP_ENCR, int(self.srtp_encr)),
            (SP_SRTCP_ENCR, int(self.srtcp_encr)),
            (SP_FEC_ORDER, self.fec_order),
            (SP_SRTP_AUTH, int(self.srtp_auth)),
            (SP_AUTH_TAG_LEN, self.auth_tag_len),
            (SP_PREFIX_LEN, self.prefix_len),
            (SP_ROC_RATE, self.roc_rate),
            (SP_SRTP_AUTH_ALG, self.srtp_auth_alg),
            (SP_SRTCP_AUTH_ALG, self.srtcp_auth_alg),
            (SP_SRTP_AUTH_KEY_LEN, self.srtp_auth_key_len),
            (SP_SRTCP_AUTH_KEY_LEN, self.srtcp_auth_key_len),
            (SP_SRTP_AUTH_TAG_LEN, self.srtp_auth_tag_len),
            (SP_SRTCP_AUTH_TAG_LEN, self.srtcp_auth_tag_len),
            (SP_AEAD_TAG_LEN, self.aead_tag_len),
        ]
        hmac_defaults: dict[int, int] = {
            SP_AUTH_ALG: 1,
            SP_AUTH_KEY_LEN: 20,
            SP_SRTP_AUTH: 1,
            SP_AUTH_TAG_LEN: 10,
        }
        out: list[tuple[int, bytes]] = []
        for ptype, value in items:
            if value is None:
                continue
            if self.is_aead and hmac_defaults.get(ptype) == value:
                continue
            width = max(_PARAM_WIDTH.get(ptype, 1), (value.bit_length() + 7) // 8)
            out.append((ptype, value.to_bytes(width, "big")))
        out.extend(self.unknown)
        return out


def srtp_profile(params: SrtpPolicyParams, *, ignore_rcc: bool = False) -> int:
    """The pylibsrtp profile constant for a MIKEY SRTP policy.

    Supported: AES-CM-128 + HMAC-SHA1 with an 80- or 32-bit SRTP tag, and AES-GCM with a
    16- or 32-octet key and 16-octet tag (RFC 7714 §15).  libsrtp's ``_32`` profile always
    uses an 80-bit SRTCP tag (RFC 5764 §4.1.2), so a 32-bit tag is accepted for SRTCP too.
    ``ignore_rcc`` maps RFC 4771 RCC transforms as if they were absent (the ROC is then
    not carried; 3GPP MCPTT policies ask for RCCm3 with AES-GCM).  Everything else
    raises :class:`UnsupportedSPParamsError`.
    """
    problems: list[str] = []
    if params.unknown:
        problems.append("unknown parameter types " + ", ".join(str(t) for t, _ in params.unknown))
    if params.prf != 0:
        problems.append(f"SRTP PRF {params.prf} (only AES-CM)")
    if params.kdr != 0:
        problems.append("a non-zero key derivation rate")
    if not (params.srtp_encr and params.srtcp_encr):
        problems.append("SRTP/SRTCP encryption turned off")
    if params.prefix_len != 0:
        problems.append("a non-zero SRTP prefix length")
    if params.fec_order != 0:
        problems.append(f"FEC order {params.fec_order}")

    profile: int | None = None
    if params.is_aead:
        if params.salt_key_len != 12:
            problems.append(f"AES-GCM salt length {params.salt_key_len} (must be 12)")
        if params.aead_tag_len not in (None, 16):
            problems.append(f"AEAD tag length {params.aead_tag_len} (must be 16)")
        auth_algs = {params.effective_srtp_auth_alg, params.effective_srtcp_auth_alg}
        if auth_algs & _RCC_ALGS and not ignore_rcc:
            problems.append("RFC 4771 RCC integrity transforms")
        if params.encr_key_len == 16:
            profile = pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM
        elif params.encr_key_len == 32:
            profile = pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM
        else:
            problems.append(f"AES-GCM key length {params.encr_key_len}")
    elif params.encr_alg == SRTP_ENCR_AES_CM:
        if params.encr_key_len != 16:
            problems.append(f"AES-CM key length {params.encr_key_len} (libsrtp binding: 16 only)")
        if params.salt_key_len != 14:
            problems.append(f"AES-CM salt length {params.salt_key_len} (must be 14)")
        if not params.srtp_auth:
            problems.append("SRTP authentication turned off")
        for name, alg in (
            ("SRTP", params.effective_srtp_auth_alg),
            ("SRTCP", params.effective_srtcp_auth_alg),
        ):
            if alg in _RCC_ALGS and ignore_rcc:
                continue
            if alg != SRTP_AUTH_HMAC_SHA1:
                problems.append(f"{name} authentication algorithm {alg}")
        key_lens = {
            params.auth_key_len if params.srtp_auth_key_len is None else params.srtp_auth_key_len,
            params.auth_key_len if params.srtcp_auth_key_len is None else params.srtcp_auth_key_len,
        }
        if key_lens != {20}:
            problems.append("HMAC-SHA1 session auth key length other than 20")
        srtp_tag, srtcp_tag = params.effective_srtp_tag_len, params.effective_srtcp_tag_len
        if srtp_tag == 10 and srtcp_tag == 10:
            profile = pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80
        elif srtp_tag == 4 and srtcp_tag in (4, 10):
            profile = pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32
        else:
            problems.append(f"auth tag lengths {srtp_tag}/{srtcp_tag}")
    else:
        problems.append(f"SRTP encryption algorithm {params.encr_alg}")

    if problems or profile is None:
        raise UnsupportedSPParamsError("SRTP policy not supported by libsrtp: " + "; ".join(problems))
    return profile


def make_policy(
    master_key: bytes,
    master_salt: bytes,
    params: SrtpPolicyParams,
    *,
    ssrc: int | None,
    outbound: bool,
    roc: int = 0,
    ignore_rcc: bool = False,
) -> pylibsrtp.Policy:
    """A libsrtp stream policy from the MIKEY TEK and salt (RFC 3830 §4.1.3, RFC 3711 §8.2).

    ``ssrc=None`` makes a wildcard stream (any outbound / any inbound SSRC).  pylibsrtp
    cannot set the ROC, so ``roc`` must be 0.
    """
    profile = srtp_profile(params, ignore_rcc=ignore_rcc)
    if len(master_key) != params.encr_key_len:
        raise CryptoError(f"master key must be {params.encr_key_len} octets, got {len(master_key)}")
    if len(master_salt) != params.salt_key_len:
        raise CryptoError(f"master salt must be {params.salt_key_len} octets, got {len(master_salt)}")
    if roc != 0:
        raise UnsupportedSPParamsError("pylibsrtp cannot set a non-zero initial ROC")
    if ssrc is None:
        ssrc_type = pylibsrtp.Policy.SSRC_ANY_OUTBOUND if outbound else pylibsrtp.Policy.SSRC_ANY_INBOUND
        ssrc_value = 0
    else:
        if not 0 <= ssrc <= 0xFFFFFFFF:
            raise CryptoError("SSRC must fit in 32 bits")
        ssrc_type, ssrc_value = pylibsrtp.Policy.SSRC_SPECIFIC, ssrc
    return pylibsrtp.Policy(
        key=master_key + master_salt, ssrc_type=ssrc_type, ssrc_value=ssrc_value, srtp_profile=profile
    )


class SrtpContext:
    """One direction of SRTP/SRTCP keyed from MIKEY, wrapping a ``pylibsrtp.Session``.

    libsrtp failures on unprotect (bad tag, replay) raise :class:`AuthenticationError`.
    """

    def __init__(
        self,
        master_key: bytes,
        master_salt: bytes,
        params: SrtpPolicyParams | None = None,
        *,
        ssrc: int | None = None,
        outbound: bool,
        roc: int = 0,
        ignore_rcc: bool = False,
    ) -> None:
        self.params = params if params is not None else SrtpPolicyParams()
        self.outbound = outbound
        self.ssrc = ssrc
        policy = make_policy(
            master_key, master_salt, self.params, ssrc=ssrc, outbound=outbound, roc=roc, ignore_rcc=ignore_rcc
        )
        self._session = pylibsrtp.Session(policy=policy)

    def __repr__(self) -> str:
        direction = "outbound" if self.outbound else "inbound"
        return f"SrtpContext({direction}, ssrc={self.ssrc!r}, encr_alg={self.params.encr_alg})"

    def protect(self, packet: bytes) -> bytes:
        try:
            return self._session.protect(packet)
        except pylibsrtp.Error as exc:
            raise CryptoError(f"SRTP protect failed: {exc}") from None

    def protect_rtcp(self, packet: bytes) -> bytes:
        try:
            return self._session.protect_rtcp(packet)
        except pylibsrtp.Error as exc:
            raise CryptoError(f"SRTCP protect failed: {exc}") from None

    def unprotect(self, packet: bytes) -> bytes:
        try:
            return self._session.unprotect(packet)
        except pylibsrtp.Error as exc:
            raise AuthenticationError(f"SRTP unprotect failed: {exc}") from None

    def unprotect_rtcp(self, packet: bytes) -> bytes:
        try:
            return self._session.unprotect_rtcp(packet)
        except pylibsrtp.Error as exc:
            raise AuthenticationError(f"SRTCP unprotect failed: {exc}") from None


def srtp_kdf(master_key: bytes, master_salt: bytes, label: int, index: int, kdr: int, length: int) -> bytes:
    """SRTP session key derivation (RFC 3711 §4.3.1, §4.3.3; RFC 6188 §3).

    key_id = label || (index DIV kdr) (48 bits, or 32 for SRTCP labels: the index is
    passed as is); x = key_id XOR master_salt; output = AES-CM(master_key, x * 2^16).
    A 12-octet AEAD master salt (RFC 7714) is padded with two zero octets, as libsrtp does.
    """
    if len(master_key) not in (16, 24, 32):
        raise CryptoError("SRTP master key must be 16, 24 or 32 octets")
    if len(master_salt) == 12:
        master_salt += bytes(2)
    if len(master_salt) != 14:
        raise CryptoError("SRTP master salt must be 14 (or 12 for AEAD) octets")
    if not 0 <= label <= 0xFF or index < 0 or kdr < 0 or length < 0:
        raise CryptoError("invalid SRTP KDF input")
    r = 0 if kdr == 0 else index // kdr
    key_id = (label << 48) | (r & 0xFFFFFFFFFFFF)
    x = key_id ^ int.from_bytes(master_salt, "big")
    enc = Cipher(algorithms.AES(master_key), modes.CTR((x << 16).to_bytes(16, "big"))).encryptor()
    return enc.update(bytes(length)) + enc.finalize()
