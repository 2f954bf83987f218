"""Bridge from MIKEY results to SRTP (libsrtp through ``pylibsrtp``).

* :class:`SrtpPolicyParams` reads and writes the SRTP policy of an SP payload
  (RFC 3830 §6.10.1, RFC 4771 §4, RFC 7714 §14.3/§15).
* :func:`srtp_profile` maps a policy to a libsrtp profile; :func:`make_policy` and
  :class:`SrtpContext` build libsrtp streams from the MIKEY TEK (master key) and salt.
* :func:`srtp_kdf` is the SRTP key derivation (RFC 3711 §4.3, RFC 6188 §3) written over
  ``cryptography``'s AES-CTR, to show what libsrtp derives from the MIKEY keys.

Limits of pylibsrtp 1.0: only four profiles (AES-128-CM with 80/32-bit tag,
AEAD-AES-128/256-GCM), no key derivation rate, no NULL cipher/auth.  It has no call
for the rollover counter either: the ROC of the CS ID map (RFC 3830 §6.1.1) is set
through libsrtp's own ``srtp_set_stream_roc``, reached with :mod:`ctypes` in the
library pylibsrtp loaded (see :func:`libsrtp_version`).
"""

from __future__ import annotations

import ctypes
import functools
import os
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

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
    "libsrtp_version",
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
    ignore_rcc: bool = False,
) -> pylibsrtp.Policy:
    """A libsrtp stream policy from the MIKEY TEK and salt (RFC 3830 §4.1.3, RFC 3711 §8.2).

    ``ssrc=None`` makes a wildcard stream (any outbound / any inbound SSRC).  A policy
    carries no ROC: :class:`SrtpContext` sets it on the stream.
    """
    profile = srtp_profile(params, ignore_rcc=ignore_rcc)
    if len(master_key) != params.encr_key_len:
        raise CryptoError(f"master key must be {params.encr_key_len} octets, got {len(master_key)}")
    if len(master_salt) != params.salt_key_len:
        raise CryptoError(f"master salt must be {params.salt_key_len} octets, got {len(master_salt)}")
    if ssrc is None:
        ssrc_type = pylibsrtp.Policy.SSRC_ANY_OUTBOUND if outbound else pylibsrtp.Policy.SSRC_ANY_INBOUND
        ssrc_value = 0
    else:
        _check_u32(ssrc, "SSRC")
        ssrc_type, ssrc_value = pylibsrtp.Policy.SSRC_SPECIFIC, ssrc
    return pylibsrtp.Policy(
        key=master_key + master_salt, ssrc_type=ssrc_type, ssrc_value=ssrc_value, srtp_profile=profile
    )


def _check_u32(value: int, name: str) -> None:
    if not 0 <= value <= 0xFFFFFFFF:
        raise CryptoError(f"{name} must fit in 32 bits")


# --- the rollover counter through libsrtp (RFC 3711 §3.3.1) -----------------------------

# The libsrtp releases whose srtp_set_stream_roc/srtp_get_stream_roc this binding was checked
# against: 2.3 to 2.x, ``srtp_err_status_t f(srtp_t, uint32_t ssrc, uint32_t roc / uint32_t *roc)``
# with the SSRC in host order, the ROC taking effect with the stream's next SRTP packet.
_LIBSRTP_MIN: Final = (2, 3)
_LIBSRTP_BELOW: Final = (3, 0)


@functools.cache
def _libsrtp() -> ctypes.CDLL:
    """pylibsrtp's own extension module, opened with ``RTLD_NOLOAD``: the library already loaded."""
    from pylibsrtp import _binding

    mode = getattr(os, "RTLD_NOLOAD", 0) | ctypes.RTLD_LOCAL
    try:
        lib = ctypes.CDLL(_binding.__file__, mode=mode)
        lib.srtp_get_version_string.restype = ctypes.c_char_p
        lib.srtp_get_version_string.argtypes = []
        lib.srtp_get_version.restype = ctypes.c_uint
        lib.srtp_get_version.argtypes = []
    except (OSError, AttributeError) as exc:
        raise UnsupportedSPParamsError(f"cannot reach libsrtp inside pylibsrtp: {exc}") from None
    return lib


def libsrtp_version() -> str:
    """The version of the libsrtp pylibsrtp runs (``srtp_get_version_string``), e.g. ``libsrtp2 2.7.0``."""
    raw: bytes = _libsrtp().srtp_get_version_string()
    return raw.decode("ascii", "replace")


class _RocApi:
    """``srtp_set_stream_roc`` / ``srtp_get_stream_roc`` on the ``srtp_t`` of a ``pylibsrtp.Session``.

    Built only after checking pylibsrtp 1.x, libsrtp 2.3 to 2.x, and that the session
    holds its ``srtp_t`` where pylibsrtp 1.0 does; otherwise UnsupportedSPParamsError.
    """

    def __init__(self) -> None:
        from pylibsrtp import _binding

        if not pylibsrtp.__version__.startswith("1."):
            raise UnsupportedSPParamsError(
                f"setting the SRTP ROC is checked with pylibsrtp 1.x only, found {pylibsrtp.__version__}"
            )
        lib = _libsrtp()
        number: int = lib.srtp_get_version()
        if not _LIBSRTP_MIN <= (number >> 24 & 0xFF, number >> 16 & 0xFF) < _LIBSRTP_BELOW:
            raise UnsupportedSPParamsError(
                f"setting the SRTP ROC is checked with libsrtp 2.3 to 2.x only, found {libsrtp_version()}"
            )
        try:
            set_roc, get_roc = lib.srtp_set_stream_roc, lib.srtp_get_stream_roc
        except AttributeError as exc:
            raise UnsupportedSPParamsError(f"libsrtp in pylibsrtp has no ROC functions: {exc}") from None
        set_roc.restype, set_roc.argtypes = ctypes.c_int, [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint32]
        get_roc.restype = ctypes.c_int
        get_roc.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.POINTER(ctypes.c_uint32)]
        self._set: Callable[..., int] = set_roc
        self._get: Callable[..., int] = get_roc
        self._ffi: Any = _binding.ffi
        self._holder_type: Any = self._ffi.typeof("srtp_t *")

    def _session_pointer(self, session: pylibsrtp.Session) -> ctypes.c_void_p:
        holder = getattr(session, "_srtp", None)
        if holder is None or self._ffi.typeof(holder) is not self._holder_type:
            raise UnsupportedSPParamsError("pylibsrtp.Session does not hold its srtp_t as pylibsrtp 1.0 does")
        return ctypes.c_void_p(int(self._ffi.cast("uintptr_t", holder[0])))

    def set(self, session: pylibsrtp.Session, ssrc: int, roc: int) -> None:
        if self._set(self._session_pointer(session), ssrc, roc) != 0:
            raise CryptoError(f"libsrtp has no stream for SSRC {ssrc:08x} to set the ROC on")

    def get(self, session: pylibsrtp.Session, ssrc: int) -> int:
        out = ctypes.c_uint32()
        if self._get(self._session_pointer(session), ssrc, ctypes.byref(out)) != 0:
            raise CryptoError(f"libsrtp has no stream for SSRC {ssrc:08x}")
        return out.value


@functools.cache
def _roc_api() -> _RocApi:
    return _RocApi()


def _packet_ssrc(packet: bytes, rtcp: bool) -> int | None:
    """The SSRC of an RTP (RFC 3550 §5.1, octets 8-11) or RTCP (§6.4.1, octets 4-7) packet."""
    offset = 4 if rtcp else 8
    if len(packet) < offset + 4:
        return None
    ssrc: int = struct.unpack_from("!I", packet, offset)[0]
    return ssrc


class SrtpContext:
    """One direction of SRTP/SRTCP keyed from MIKEY, wrapping a ``pylibsrtp.Session``.

    ``roc`` is the rollover counter the stream is at (RFC 3711 §3.3.1, carried in the CS
    ID map, RFC 3830 §6.1.1), so a sender can key a running stream and a receiver can
    join one: the first SRTP packet has index 2^16 * ROC + SEQ, and the ROC counts on
    from there.  libsrtp keeps the ROC per SSRC: with ``ssrc`` it is set on that stream;
    a wildcard context with a non-zero ROC gives each new SSRC its own stream at that ROC
    on its first packet (an inbound one is dropped again if the packet fails
    authentication).  SRTCP has its own index (§3.4) and needs no ROC.

    libsrtp failures on unprotect (bad tag, wrong ROC, replay) raise :class:`AuthenticationError`.
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
        _check_u32(roc, "ROC")
        policy = make_policy(
            master_key, master_salt, self.params, ssrc=ssrc, outbound=outbound, ignore_rcc=ignore_rcc
        )
        self._roc = roc
        # SSRC -> ROC handed to libsrtp, which applies it with that stream's next SRTP packet.
        self._pending: dict[int, int] = {}
        # Wildcard context with a non-zero ROC: the policy for the per-SSRC streams, and their SSRCs.
        self._join_policy: pylibsrtp.Policy | None = None
        self._joined: set[int] = set()
        if roc and ssrc is None:
            _roc_api()
            policy.ssrc_type = pylibsrtp.Policy.SSRC_SPECIFIC
            self._join_policy = policy
            self._session = pylibsrtp.Session()
        else:
            self._session = pylibsrtp.Session(policy=policy)
            if roc and ssrc is not None:
                self._set_roc(ssrc, roc)

    def __repr__(self) -> str:
        direction = "outbound" if self.outbound else "inbound"
        return f"SrtpContext({direction}, ssrc={self.ssrc!r}, encr_alg={self.params.encr_alg})"

    def roc(self, ssrc: int | None = None) -> int:
        """The ROC of the stream for *ssrc* (default: this context's SSRC), from ``srtp_get_stream_roc``.

        Before the stream's first SRTP packet this is the ROC it was given.
        """
        ssrc = self.ssrc if ssrc is None else ssrc
        if ssrc is None:
            raise CryptoError("a wildcard SRTP context needs the SSRC whose ROC to read")
        if ssrc in self._pending:
            return self._pending[ssrc]
        return _roc_api().get(self._session, ssrc)

    def _set_roc(self, ssrc: int, roc: int) -> None:
        _roc_api().set(self._session, ssrc, roc)
        self._pending[ssrc] = roc

    def _join(self, packet: bytes, rtcp: bool) -> int | None:
        """Add the stream of a new SSRC at the context's ROC (wildcard context only); its SSRC if added."""
        if self._join_policy is None:
            return None
        ssrc = _packet_ssrc(packet, rtcp)
        if ssrc is None or ssrc in self._joined:
            return None
        self._join_policy.ssrc_value = ssrc
        try:
            self._session.add_stream(self._join_policy)
        except pylibsrtp.Error as exc:
            raise CryptoError(f"libsrtp could not add the stream for SSRC {ssrc:08x}: {exc}") from None
        self._set_roc(ssrc, self._roc)
        self._joined.add(ssrc)
        return ssrc

    def _leave(self, ssrc: int | None) -> None:
        """Drop a stream :meth:`_join` added for a packet that then failed, so forged SSRCs cost nothing."""
        if ssrc is not None:
            self._session.remove_stream(ssrc)
            self._joined.discard(ssrc)
            self._pending.pop(ssrc, None)

    def _applied(self, packet: bytes) -> None:
        """An SRTP packet passed: libsrtp has applied any pending ROC of its SSRC."""
        if self._pending:
            ssrc = _packet_ssrc(packet, False)
            if ssrc is not None:
                self._pending.pop(ssrc, None)

    def protect(self, packet: bytes) -> bytes:
        self._join(packet, False)
        try:
            out = self._session.protect(packet)
        except pylibsrtp.Error as exc:
            raise CryptoError(f"SRTP protect failed: {exc}") from None
        self._applied(packet)
        return out

    def protect_rtcp(self, packet: bytes) -> bytes:
        self._join(packet, True)
        try:
            return self._session.protect_rtcp(packet)
        except pylibsrtp.Error as exc:
            raise CryptoError(f"SRTCP protect failed: {exc}") from None

    def unprotect(self, packet: bytes) -> bytes:
        joined = self._join(packet, False)
        try:
            out = self._session.unprotect(packet)
        except pylibsrtp.Error as exc:
            self._leave(joined)
            raise AuthenticationError(f"SRTP unprotect failed: {exc}") from None
        self._applied(out)
        return out

    def unprotect_rtcp(self, packet: bytes) -> bytes:
        joined = self._join(packet, True)
        try:
            return self._session.unprotect_rtcp(packet)
        except pylibsrtp.Error as exc:
            self._leave(joined)
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
