"""MIKEY number registries (RFC 3830 §10 and the RFCs that extend them).

One :class:`enum.IntEnum` per IANA registry.  Decoders keep values these enums
do not know as plain ``int`` (see :func:`enum_or_int`) so that vendor messages
still decode; :func:`mikey.wire.validate.validate` flags them.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TypeVar

E = TypeVar("E", bound=IntEnum)

MIKEY_VERSION = 1
SDP_PROTOCOL_ID = "mikey"
UDP_PORT = 2269


def enum_or_int(enum: type[E], value: int) -> E | int:
    """Return ``enum(value)`` if the registry knows *value*, else the plain int."""
    try:
        return enum(value)
    except ValueError:
        return value


def name_of(enum: type[IntEnum], value: int) -> str:
    """Registry name of *value*, or ``"unknown(N)"``."""
    try:
        return enum(value).name
    except ValueError:
        return f"unknown({value})"


class DataType(IntEnum):
    """HDR Data type (RFC 3830 §6.1, 4650, 4738, 6043, 6267, 6509)."""

    PSK_INIT = 0
    PSK_RESP = 1
    PK_INIT = 2
    PK_RESP = 3
    DH_INIT = 4
    DH_RESP = 5
    ERROR = 6
    DHHMAC_INIT = 7
    DHHMAC_RESP = 8
    RSA_R_INIT = 9
    RSA_R_RESP = 10
    REQUEST_INIT_PSK = 11
    REQUEST_INIT_PK = 12
    REQUEST_RESP = 13
    TRANSFER_INIT = 14
    TRANSFER_RESP = 15
    RESOLVE_INIT_PSK = 16
    RESOLVE_INIT_PK = 17
    RESOLVE_RESP = 18
    REQUEST_KEY_PSK = 19
    REQUEST_KEY_PKE = 20
    REQUEST_KEY_RESP = 21
    IBAKE_I_MESSAGE_1 = 22
    IBAKE_R_MESSAGE_1 = 23
    IBAKE_I_MESSAGE_2 = 24
    IBAKE_R_MESSAGE_2 = 25
    SAKKE = 26


class PayloadType(IntEnum):
    """Next payload values (RFC 3830 §6.1 Table 6.1.c and extensions)."""

    LAST = 0
    KEMAC = 1
    PKE = 2
    DH = 3
    SIGN = 4
    T = 5
    ID = 6
    CERT = 7
    CHASH = 8
    V = 9
    SP = 10
    RAND = 11
    ERR = 12
    TR = 13
    IDR = 14
    RANDR = 15
    TP = 16
    TICKET = 17
    KEY_DATA = 20
    GEN_EXT = 21
    IBAKE = 22
    ESK = 23
    SK = 24
    ECCPT = 25
    SAKKE = 26


class PRF(IntEnum):
    """HDR PRF func (RFC 3830 §6.1, RFC 6043 §6.1)."""

    MIKEY_1 = 0
    PRF_HMAC_SHA_256 = 1


class CSIdMapType(IntEnum):
    """HDR CS ID map type (RFC 3830 §6.1, RFC 4563 §5, RFC 6043 §6.1.1)."""

    SRTP_ID = 0
    EMPTY = 1
    GENERIC_ID = 2


class EncrAlg(IntEnum):
    """KEMAC Encr alg (RFC 3830 Table 6.2.a, RFC 6043 §6.2)."""

    NULL = 0
    AES_CM_128 = 1
    AES_KW_128 = 2
    AES_CM_256 = 3


class MacAlg(IntEnum):
    """KEMAC / V MAC alg (RFC 3830 Table 6.2.b, RFC 6043 §6.2)."""

    NULL = 0
    HMAC_SHA_1_160 = 1
    HMAC_SHA_256_256 = 2


MAC_LENGTHS: dict[int, int] = {MacAlg.NULL: 0, MacAlg.HMAC_SHA_1_160: 20, MacAlg.HMAC_SHA_256_256: 32}


class CacheType(IntEnum):
    """PKE C: envelope key cache indicator (RFC 3830 Table 6.3)."""

    NO_CACHE = 0
    CACHE = 1
    CACHE_FOR_CSB = 2


class DHGroup(IntEnum):
    """DH-Group (RFC 3830 Table 6.4)."""

    OAKLEY_5 = 0
    OAKLEY_1 = 1
    OAKLEY_2 = 2


DH_VALUE_LENGTHS: dict[int, int] = {DHGroup.OAKLEY_5: 192, DHGroup.OAKLEY_1: 96, DHGroup.OAKLEY_2: 128}


class SignatureType(IntEnum):
    """SIGN S type (RFC 3830 Table 6.5, RFC 6509 §4.3)."""

    RSA_PKCS1_V1_5 = 0
    RSA_PSS = 1
    ECCSI = 2


class TSType(IntEnum):
    """T TS type (RFC 3830 Table 6.6, RFC 6043 §6.3)."""

    NTP_UTC = 0
    NTP = 1
    COUNTER = 2
    NTP_UTC_32 = 3


TS_LENGTHS: dict[int, int] = {TSType.NTP_UTC: 8, TSType.NTP: 8, TSType.COUNTER: 4, TSType.NTP_UTC_32: 4}


class IDType(IntEnum):
    """ID Type (RFC 3830 Table 6.7.a, RFC 6043 §6.5)."""

    NAI = 0
    URI = 1
    BYTE_STRING = 2


class CertType(IntEnum):
    """Cert Type (RFC 3830 Table 6.7.b)."""

    X509V3 = 0
    X509V3_URL = 1
    X509V3_SIGN = 2
    X509V3_ENCR = 3


class HashFunc(IntEnum):
    """CHASH Hash func (RFC 3830 Table 6.8, RFC 6043 §6.7)."""

    SHA_1 = 0
    MD5 = 1
    SHA_256 = 2


HASH_LENGTHS: dict[int, int] = {HashFunc.SHA_1: 20, HashFunc.MD5: 16, HashFunc.SHA_256: 32}


class ProtType(IntEnum):
    """SP Prot type (RFC 3830 Table 6.10, RFC 4442)."""

    SRTP = 0
    TESLA = 1


class SRTPParam(IntEnum):
    """SRTP policy parameter types (RFC 3830 Table 6.10.1.a, RFC 4771, RFC 7714)."""

    ENCR_ALG = 0
    SESSION_ENCR_KEY_LEN = 1
    AUTH_ALG = 2
    SESSION_AUTH_KEY_LEN = 3
    SESSION_SALT_KEY_LEN = 4
    SRTP_PRF = 5
    KEY_DERIVATION_RATE = 6
    SRTP_ENCRYPTION = 7
    SRTCP_ENCRYPTION = 8
    FEC_ORDER = 9
    SRTP_AUTHENTICATION = 10
    AUTH_TAG_LEN = 11
    SRTP_PREFIX_LEN = 12
    ROC_TRANSMISSION_RATE = 13
    SRTP_AUTH_ALG = 14
    SRTCP_AUTH_ALG = 15
    SRTP_SESSION_AUTH_KEY_LEN = 16
    SRTCP_SESSION_AUTH_KEY_LEN = 17
    SRTP_AUTH_TAG_LEN = 18
    SRTCP_AUTH_TAG_LEN = 19
    AEAD_AUTH_TAG_LEN = 20


class TESLAParam(IntEnum):
    """TESLA policy parameter types (RFC 4442 §4.3)."""

    PRF = 0
    KEY_DISCLOSURE_DELAY = 1
    T0_NTP = 2
    T_INT = 3
    MAC = 4
    MAC_KEY_LEN = 5
    T0_NTP_UTC = 6


class SRTPEncrAlg(IntEnum):
    """SRTP encryption algorithm (RFC 3830 Table 6.10.1.b, 5748, 7714, 8269)."""

    NULL = 0
    AES_CM = 1
    AES_F8 = 2
    SEED_CTR = 3
    SEED_CCM = 4
    SEED_GCM = 5
    AES_GCM = 6
    ARIA_CTR = 7
    ARIA_GCM = 8


class SRTPAuthAlg(IntEnum):
    """SRTP authentication algorithm (RFC 3830 Table 6.10.1.c, RFC 4771)."""

    NULL = 0
    HMAC_SHA_1 = 1
    RCCM1 = 2
    RCCM2 = 3
    RCCM3 = 4


class SRTPPRF(IntEnum):
    """SRTP PRF (RFC 3830 Table 6.10.1.d, 5748, 8269)."""

    AES_CM = 0
    SEED_CTR = 1
    ARIA_CTR = 2


class ErrorNo(IntEnum):
    """ERR Error no (RFC 3830 Table 6.12, RFC 4738, RFC 6043)."""

    AUTH_FAILURE = 0
    INVALID_TS = 1
    INVALID_PRF = 2
    INVALID_MAC = 3
    INVALID_EA = 4
    INVALID_HA = 5
    INVALID_DH = 6
    INVALID_ID = 7
    INVALID_CERT = 8
    INVALID_SP = 9
    INVALID_SPPAR = 10
    INVALID_DT = 11
    UNSPECIFIED = 12
    UNSUPPORTED_MESSAGE_TYPE = 13
    INVALID_TICKET = 14
    INVALID_TPPAR = 15


class KeyDataType(IntEnum):
    """Key data sub-payload Type (RFC 3830 Table 6.13.a, RFC 6043, RFC 6267)."""

    TGK = 0
    TGK_SALT = 1
    TEK = 2
    TEK_SALT = 3
    GTGK = 4
    GTGK_SALT = 5
    MPK = 6
    K_PR = 7


KEY_TYPES_WITH_SALT = frozenset({KeyDataType.TGK_SALT, KeyDataType.TEK_SALT, KeyDataType.GTGK_SALT})


class KVType(IntEnum):
    """Key validity type (RFC 3830 Table 6.13.b)."""

    NULL = 0
    SPI = 1
    INTERVAL = 2


class GenExtType(IntEnum):
    """General Extension Type (RFC 3830 §6.15 and extensions; 6/7 are 3GPP TS 33.180)."""

    VENDOR_ID = 0
    SDP_IDS = 1
    TESLA_I_KEY = 2
    KEY_ID = 3
    CSB_ID = 4
    OMA_BCAST = 5
    SAKKE_TO_SELF = 6
    KEY_PARAMETERS_3GPP = 7


class KeyIdType(IntEnum):
    """Key ID sub-payload types of General Extension type 3 (RFC 4563 §4)."""

    MBMS_KEY_DOMAIN_ID = 0
    MBMS_SERVICE_KEY_ID = 1
    MBMS_TRAFFIC_KEY_ID = 2


class TSRole(IntEnum):
    """TR TS Role (RFC 6043 Table 6.9)."""

    TIME_OF_ISSUE = 1
    START_OF_VALIDITY = 2
    END_OF_VALIDITY = 3
    REKEYING_INTERVAL = 4


class IDRole(IntEnum):
    """IDR ID Role (RFC 6043 Table 6.10, RFC 6509 §4.4; 8/9 are 3GPP UIDs)."""

    INITIATOR = 1
    RESPONDER = 2
    KMS = 3
    PSK = 4
    APPLICATION = 5
    INITIATOR_KMS = 6
    RESPONDER_KMS = 7
    INITIATOR_UID_3GPP = 8
    RESPONDER_UID_3GPP = 9


class RANDRole(IntEnum):
    """RANDR RAND Role (RFC 6043 Table 6.13)."""

    INITIATOR = 1
    RESPONDER = 2
    KMS = 3


class TicketType(IntEnum):
    """TP/TICKET Ticket Type (RFC 6043 Table 6.15)."""

    MIKEY_BASE_TICKET = 1
    GPP_BASE_TICKET = 2


class ECCCurve(IntEnum):
    """ECCPT ECC curve (RFC 6267 Table 5)."""

    P_192 = 1
    B_163 = 2
    K_163 = 3
    SECT163R1 = 4
    P_224 = 5
    B_233 = 6
    K_233 = 7
    P_256 = 8
    B_283 = 9
    K_283 = 10
    P_384 = 11
    B_409 = 12
    K_409 = 13
    P_521 = 14
    B_571 = 15
    K_571 = 16


ECC_CURVE_BITS: dict[int, int] = {
    1: 192, 2: 163, 3: 163, 4: 163, 5: 224, 6: 233, 7: 233, 8: 256,
    9: 283, 10: 283, 11: 384, 12: 409, 13: 409, 14: 521, 15: 571, 16: 571,
}


class SecretKeyType(IntEnum):
    """SK Type (RFC 6267 Table 6)."""

    SK = 1


class SakkeParams(IntEnum):
    """SAKKE params (RFC 6509 Table 4)."""

    PARAMETER_SET_1 = 1


class SakkeIDScheme(IntEnum):
    """SAKKE ID scheme (RFC 6509 Table 5; 2 = 3GPP hashed UID, TS 33.180)."""

    TEL_URI_MONTHLY = 1
    UID_3GPP = 2


class KeyPurpose(IntEnum):
    """3GPP TS 33.180 key purpose tag (top 4 bits of the key ID)."""

    GMK = 0
    PCK = 1
    CSK = 2
    SPK = 3
    MKFC = 4
    MSCCK = 5
    MUSIK = 6
