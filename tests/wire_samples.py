"""Sample MIKEY payloads and messages: one per payload type, one per data type.

Shared by the wire tests, the tshark interop test and anyone who needs a
well-formed message of a given kind.  Everything is deterministic (fixed
bytes, fixed timestamps).  Messages of the data types that
:mod:`mikey.wire.validate` has layouts for pass ``validate()``.

- :func:`sample_payloads` -> ``{name: payload}``: every payload class (the
  sub-payloads Key data, SK and ECCPT included) with its variants: every KV
  type, every Key data type, every TS type, SP with SRTP and TESLA params,
  GenExt typed constructors, TP/TICKET with flags.
- :func:`sample_headers` -> ``{name: CommonHeader}``: all three CS ID map types.
- :func:`sample_messages` -> ``{name: Message}``: ``"dt/<DATA_TYPE>"`` for
  data types 0-26 and ``"pt/<PAYLOAD>"`` for every payload type.
"""

from __future__ import annotations

from hypothesis import strategies as st

from mikey.constants import (
    DH_VALUE_LENGTHS,
    HASH_LENGTHS,
    MAC_LENGTHS,
    PRF,
    TS_LENGTHS,
    CacheType,
    CertType,
    CSIdMapType,
    DataType,
    DHGroup,
    ECCCurve,
    EncrAlg,
    ErrorNo,
    GenExtType,
    HashFunc,
    IDRole,
    IDType,
    KeyDataType,
    KeyIdType,
    MacAlg,
    PayloadType,
    ProtType,
    RANDRole,
    SakkeIDScheme,
    SakkeParams,
    SecretKeyType,
    SignatureType,
    SRTPParam,
    TESLAParam,
    TicketType,
    TSRole,
    TSType,
)
from mikey.wire import (
    CertPayload,
    ChashPayload,
    CommonHeader,
    DhPayload,
    EccptPayload,
    ErrorPayload,
    EskPayload,
    GeneralExtensionPayload,
    GenericIdEntry,
    IbakePayload,
    IdPayload,
    IdrPayload,
    IntervalValidity,
    KemacPayload,
    KeyDataPayload,
    KeyIdEntry,
    Message,
    Payload,
    PkePayload,
    RandPayload,
    RandrPayload,
    SakkePayload,
    SecurityPolicyPayload,
    SignPayload,
    SkPayload,
    SpiValidity,
    SrtpIdEntry,
    TicketPayload,
    TicketPolicyPayload,
    TimestampPayload,
    TrPayload,
    VerificationPayload,
    encode_sub_payloads,
)
from mikey.wire.payloads.rfc6267 import ecc_point_field_length

__all__ = [
    "CSB_ID",
    "NTP_VALUE",
    "sample_payloads",
    "sample_headers",
    "sample_messages",
    "sample_sub_payload_chains",
    "srtp_policy",
    "tesla_policy",
    "kv_strategy",
    "payload_strategies",
    "header_strategy",
    "message_strategy",
]

CSB_ID = 0x12345678
#: 2023-11-14T22:13:20.25Z as a 64-bit NTP timestamp.
NTP_VALUE = TimestampPayload.ntp_utc(1_700_000_000.25).ts_value


def _b(n: int, seed: int = 1) -> bytes:
    """*n* deterministic, non-constant octets."""
    return bytes((seed * 31 + i * 7) & 0xFF for i in range(n))


def srtp_policy(policy_no: int = 1) -> SecurityPolicyPayload:
    """AES-CM-128 / HMAC-SHA-1-80 with one- and multi-octet values (RFC 3830 §6.10.1, RFC 4771)."""
    return SecurityPolicyPayload(
        policy_no,
        ProtType.SRTP,
        (
            (SRTPParam.ENCR_ALG, b"\x01"),
            (SRTPParam.SESSION_ENCR_KEY_LEN, b"\x10"),
            (SRTPParam.AUTH_ALG, b"\x01"),
            (SRTPParam.SESSION_AUTH_KEY_LEN, b"\x14"),
            (SRTPParam.SESSION_SALT_KEY_LEN, b"\x0e"),
            (SRTPParam.SRTP_PRF, b"\x00"),
            (SRTPParam.KEY_DERIVATION_RATE, b"\x00\x00\x00\x00"),
            (SRTPParam.SRTP_ENCRYPTION, b"\x01"),
            (SRTPParam.SRTCP_ENCRYPTION, b"\x01"),
            (SRTPParam.FEC_ORDER, b"\x00"),
            (SRTPParam.SRTP_AUTHENTICATION, b"\x01"),
            (SRTPParam.AUTH_TAG_LEN, b"\x0a"),
            (SRTPParam.SRTP_PREFIX_LEN, b"\x00"),
            (SRTPParam.ROC_TRANSMISSION_RATE, b"\x00\x01"),
        ),
    )


def tesla_policy(policy_no: int = 2) -> SecurityPolicyPayload:
    """A TESLA policy (RFC 4442 §4.3)."""
    return SecurityPolicyPayload(
        policy_no,
        ProtType.TESLA,
        (
            (TESLAParam.PRF, b"\x00"),
            (TESLAParam.KEY_DISCLOSURE_DELAY, b"\x00\x02"),
            (TESLAParam.T0_NTP, NTP_VALUE),
            (TESLAParam.T_INT, b"\x00\x00\x03\xe8"),
            (TESLAParam.MAC, b"\x00"),
            (TESLAParam.MAC_KEY_LEN, b"\x14"),
        ),
    )


def _ecc_point(curve: int) -> bytes:
    n = ecc_point_field_length(curve)
    assert n is not None
    return b"\x04" + _b(n - 1, curve)


def sample_payloads() -> dict[str, Payload]:
    """Every payload class with its variants, keyed ``"<NAME>/<variant>"``."""
    p: dict[str, Payload] = {}
    spi = SpiValidity(b"\x00\x00\x00\x2a")
    interval = IntervalValidity(b"\x00\x00\x00\x00\x00\x00", b"\x00\x00\xff\xff\xff\xff")

    # Key data sub-payloads: every key type, every KV type.
    for kt in KeyDataType:
        salt = _b(14, 3) if kt in (KeyDataType.TGK_SALT, KeyDataType.TEK_SALT, KeyDataType.GTGK_SALT) else None
        p[f"KEY_DATA/{kt.name}"] = KeyDataPayload(kt, _b(16, kt), salt)
    p["KEY_DATA/kv_spi"] = KeyDataPayload(KeyDataType.TGK, _b(16), None, spi)
    p["KEY_DATA/kv_interval"] = KeyDataPayload(KeyDataType.TEK_SALT, _b(16), _b(14), interval)
    p["KEY_DATA/empty_key"] = KeyDataPayload(KeyDataType.TGK, b"")

    null_chain = encode_sub_payloads([p["KEY_DATA/TGK"], p["KEY_DATA/kv_spi"]])
    p["KEMAC/null_null"] = KemacPayload(EncrAlg.NULL, null_chain, MacAlg.NULL)
    p["KEMAC/null_sha1"] = KemacPayload(EncrAlg.NULL, null_chain, MacAlg.HMAC_SHA_1_160, _b(20, 9))
    p["KEMAC/aes_cm_sha1"] = KemacPayload(EncrAlg.AES_CM_128, _b(40, 5), MacAlg.HMAC_SHA_1_160, _b(20, 6))
    p["KEMAC/aes_kw_sha256"] = KemacPayload(EncrAlg.AES_KW_128, _b(48, 7), MacAlg.HMAC_SHA_256_256, _b(32, 8))
    p["KEMAC/aes_cm_256"] = KemacPayload(EncrAlg.AES_CM_256, _b(40, 5), MacAlg.HMAC_SHA_256_256, _b(32, 8))
    p["KEMAC/mac_only"] = KemacPayload(EncrAlg.NULL, b"", MacAlg.HMAC_SHA_1_160, _b(20, 2))

    for c in CacheType:
        p[f"PKE/{c.name}"] = PkePayload(c, _b(128, c + 1))
    p["PKE/c3"] = PkePayload(3, _b(256, 4))

    for g in DHGroup:
        p[f"DH/{g.name}"] = DhPayload(g, _b({0: 192, 1: 96, 2: 128}[g], g))
    p["DH/kv_spi"] = DhPayload(DHGroup.OAKLEY_1, _b(96, 3), spi)
    p["DH/kv_interval"] = DhPayload(DHGroup.OAKLEY_2, _b(128, 4), interval)

    p["SIGN/RSA_PKCS1_V1_5"] = SignPayload(SignatureType.RSA_PKCS1_V1_5, _b(256, 1))
    p["SIGN/RSA_PSS"] = SignPayload(SignatureType.RSA_PSS, _b(128, 2))
    p["SIGN/ECCSI"] = SignPayload(SignatureType.ECCSI, _b(129, 3))
    p["SIGN/max_len"] = SignPayload(SignatureType.RSA_PSS, _b(0xFFF, 4))

    p["T/NTP_UTC"] = TimestampPayload(TSType.NTP_UTC, NTP_VALUE)
    p["T/NTP"] = TimestampPayload(TSType.NTP, bytes.fromhex("0102030405060708"))
    p["T/COUNTER"] = TimestampPayload.counter(42)
    p["T/NTP_UTC_32"] = TimestampPayload(TSType.NTP_UTC_32, NTP_VALUE[:4])

    p["ID/NAI"] = IdPayload.nai("alice@example.org")
    p["ID/URI"] = IdPayload.uri("sip:bob@example.org")
    p["ID/BYTE_STRING"] = IdPayload(IDType.BYTE_STRING, _b(32, 11))

    for ct in CertType:
        p[f"CERT/{ct.name}"] = CertPayload(ct, b"http://ca.example.org/c.der" if ct == 1 else _b(300, ct + 1))

    p["CHASH/SHA_1"] = ChashPayload(HashFunc.SHA_1, _b(20, 1))
    p["CHASH/MD5"] = ChashPayload(HashFunc.MD5, _b(16, 2))
    p["CHASH/SHA_256"] = ChashPayload(HashFunc.SHA_256, _b(32, 3))

    p["V/NULL"] = VerificationPayload(MacAlg.NULL)
    p["V/HMAC_SHA_1_160"] = VerificationPayload(MacAlg.HMAC_SHA_1_160, _b(20, 1))
    p["V/HMAC_SHA_256_256"] = VerificationPayload(MacAlg.HMAC_SHA_256_256, _b(32, 2))

    p["SP/srtp"] = srtp_policy(1)
    p["SP/srtp_constructor"] = SecurityPolicyPayload.srtp(
        3,
        {
            SRTPParam.ENCR_ALG: 6,
            SRTPParam.SESSION_ENCR_KEY_LEN: 16,
            SRTPParam.SESSION_SALT_KEY_LEN: 12,
            SRTPParam.AEAD_AUTH_TAG_LEN: 16,
            SRTPParam.ROC_TRANSMISSION_RATE: 1,
        },
    )
    p["SP/tesla"] = tesla_policy(2)
    p["SP/empty"] = SecurityPolicyPayload(4, ProtType.SRTP, ())

    p["RAND/16"] = RandPayload(_b(16, 1))
    p["RAND/32"] = RandPayload(_b(32, 2))
    p["RAND/255"] = RandPayload(_b(255, 3))

    for e in ErrorNo:
        p[f"ERR/{e.name}"] = ErrorPayload(e)

    for r in TSRole:
        p[f"TR/{r.name}"] = TrPayload(r, TSType.NTP_UTC, NTP_VALUE)
    p["TR/counter"] = TrPayload(TSRole.REKEYING_INTERVAL, TSType.COUNTER, b"\x00\x00\x0e\x10")

    for r in IDRole:
        p[f"IDR/{r.name}"] = IdrPayload(r, IDType.URI, f"sip:{r.name.lower()}@example.org".encode())
    p["IDR/uid"] = IdrPayload(IDRole.INITIATOR_UID_3GPP, IDType.URI, _b(32, 5))

    for r in RANDRole:
        p[f"RANDR/{r.name}"] = RandrPayload(r, _b(16, r))

    tp_chain = bytes([PayloadType.IDR]) + encode_sub_payloads(
        [IdrPayload(IDRole.RESPONDER, IDType.URI, b"sip:bob@example.org")]
    )
    p["TP/flags_DFHN"] = TicketPolicyPayload(TicketType.MIKEY_BASE_TICKET, 1, 1, PRF.MIKEY_1, 0b101010000010)
    p["TP/all_flags"] = TicketPolicyPayload(TicketType.MIKEY_BASE_TICKET, 2, 3, PRF.PRF_HMAC_SHA_256, 0xFFF, tp_chain)
    p["TP/reserved"] = TicketPolicyPayload(TicketType.GPP_BASE_TICKET, 0, 0, 0x7F, 0, b"", 0x1F)
    p["TICKET/base"] = TicketPayload(
        TicketType.MIKEY_BASE_TICKET, 1, 1, PRF.PRF_HMAC_SHA_256, 0b100000000001, tp_chain, _b(64, 7), _b(8, 2)
    )
    p["TICKET/empty"] = TicketPayload(TicketType.GPP_BASE_TICKET, 0, 0, 0, 0)

    p["GEN_EXT/VENDOR_ID"] = GeneralExtensionPayload(GenExtType.VENDOR_ID, b"ACME")
    p["GEN_EXT/SDP_IDS"] = GeneralExtensionPayload.sdp_ids(["mikey", "sdes"])
    p["GEN_EXT/TESLA_I_KEY"] = GeneralExtensionPayload(GenExtType.TESLA_I_KEY, _b(20, 3))
    p["GEN_EXT/KEY_ID"] = GeneralExtensionPayload.key_ids(
        [
            KeyIdEntry(KeyIdType.MBMS_KEY_DOMAIN_ID, b"\x00\xf1\x10"),
            KeyIdEntry(KeyIdType.MBMS_SERVICE_KEY_ID, b"\x00\x00\x00\x01"),
            KeyIdEntry(KeyIdType.MBMS_TRAFFIC_KEY_ID, b"\x00\x02"),
        ]
    )
    p["GEN_EXT/CSB_ID"] = GeneralExtensionPayload.csb_id(0xCAFEBABE)
    p["GEN_EXT/OMA_BCAST"] = GeneralExtensionPayload(GenExtType.OMA_BCAST, _b(12, 4))
    p["GEN_EXT/SAKKE_TO_SELF"] = GeneralExtensionPayload(GenExtType.SAKKE_TO_SELF, _b(20, 5))
    p["GEN_EXT/KEY_PARAMETERS_3GPP"] = GeneralExtensionPayload(GenExtType.KEY_PARAMETERS_3GPP, _b(102, 6))
    p["GEN_EXT/empty"] = GeneralExtensionPayload(GenExtType.VENDOR_ID, b"")

    for curve in (ECCCurve.P_192, ECCCurve.P_256, ECCCurve.P_384, ECCCurve.P_521, ECCCurve.K_571):
        p[f"ECCPT/{curve.name}"] = EccptPayload(curve, _ecc_point(curve))
    p["ECCPT/auth_kv"] = EccptPayload(ECCCurve.P_256, _ecc_point(ECCCurve.P_256), MacAlg.HMAC_SHA_256_256, 16, spi)
    p["SK/SK"] = SkPayload(SecretKeyType.SK, _b(32, 1))
    p["SK/kv_interval"] = SkPayload(SecretKeyType.SK, _b(16, 2), interval)
    p["IBAKE/ecc"] = IbakePayload(_b(150, 1))
    p["ESK/sk"] = EskPayload(_b(80, 2))

    p["SAKKE/ps1"] = SakkePayload(SakkeParams.PARAMETER_SET_1, SakkeIDScheme.TEL_URI_MONTHLY, _b(273, 1))
    p["SAKKE/uid"] = SakkePayload(SakkeParams.PARAMETER_SET_1, SakkeIDScheme.UID_3GPP, b"\x04" + _b(272, 2))
    return p


def sample_sub_payload_chains() -> dict[str, list[Payload]]:
    """Chains that travel inside KEMAC / ESK / IBAKE / TP data (first payload type implied)."""
    ps = sample_payloads()
    return {
        "key_data": [v for k, v in ps.items() if k.startswith("KEY_DATA/")],
        "sk": [ps["SK/SK"], ps["SK/kv_interval"]],
        "eccpt": [v for k, v in ps.items() if k.startswith("ECCPT/")],
        "ibake_ids": [ps["ECCPT/P_256"], ps["IDR/INITIATOR"], ps["IDR/RESPONDER"]],
    }


def sample_headers() -> dict[str, CommonHeader]:
    """HDRs with each CS ID map type (RFC 3830 §6.1.1, RFC 4563 §5, RFC 6043 §6.1.1)."""
    return {
        "srtp_id_0": CommonHeader(DataType.PSK_INIT, CSB_ID),
        "srtp_id_2": CommonHeader(
            DataType.PSK_INIT, CSB_ID, (SrtpIdEntry(1, 0xDEADBEEF, 0), SrtpIdEntry(1, 0xCAFEBABE, 7)), v=True
        ),
        "empty_map": CommonHeader(
            DataType.SAKKE, CSB_ID, (), CSIdMapType.EMPTY, prf=PRF.PRF_HMAC_SHA_256, cs_count=1
        ),
        "generic_id": CommonHeader(
            DataType.TRANSFER_INIT,
            CSB_ID,
            (
                GenericIdEntry.srtp(1, 0x11223344, policies=(1,)),
                GenericIdEntry.srtp(2, 0x55667788, roc=3, seq=0x1234, policies=(1, 2), spi=b"\x01\x02"),
                GenericIdEntry(3, ProtType.TESLA, (2,), b"\xaa\xbb", b"", False),
            ),
            CSIdMapType.GENERIC_ID,
            prf=PRF.PRF_HMAC_SHA_256,
        ),
    }


def _hdr(dt: DataType, *, v: bool = False, n_cs: int = 2, prf: int = PRF.MIKEY_1) -> CommonHeader:
    entries = tuple(SrtpIdEntry(1, 0x10000000 + i, 0) for i in range(n_cs))
    return CommonHeader(dt, CSB_ID + int(dt), entries, CSIdMapType.SRTP_ID, v=v, prf=prf)


def _generic_hdr(dt: DataType, *, v: bool = False) -> CommonHeader:
    return CommonHeader(
        dt,
        CSB_ID + int(dt),
        (GenericIdEntry.srtp(1, 0x20000001, policies=(1,)), GenericIdEntry.srtp(2, 0x20000002, policies=(1,))),
        CSIdMapType.GENERIC_ID,
        v=v,
        prf=PRF.PRF_HMAC_SHA_256,
    )


def _data_type_messages(ps: dict[str, Payload]) -> dict[str, Message]:
    T = ps["T/NTP_UTC"]
    RAND = ps["RAND/16"]
    IDI = ps["ID/URI"]
    IDR_ = IdPayload.uri("sip:responder@example.org")
    CERT = ps["CERT/X509V3"]
    SP = ps["SP/srtp"]
    KEMAC = ps["KEMAC/aes_cm_sha1"]
    KEMAC_MAC = ps["KEMAC/mac_only"]
    V = ps["V/HMAC_SHA_1_160"]
    V256 = ps["V/HMAC_SHA_256_256"]
    SIGN = ps["SIGN/RSA_PKCS1_V1_5"]
    PKE = ps["PKE/NO_CACHE"]
    CHASH = ps["CHASH/SHA_256"]
    DHI = ps["DH/OAKLEY_2"]
    DHR = DhPayload(DHGroup.OAKLEY_2, _b(128, 99))
    IDRI = ps["IDR/INITIATOR"]
    IDRR = ps["IDR/RESPONDER"]
    IDRK = ps["IDR/KMS"]
    TP = ps["TP/flags_DFHN"]
    TICKET = ps["TICKET/base"]
    KEMAC256 = ps["KEMAC/aes_cm_256"]
    kpr_kemac = KemacPayload(
        EncrAlg.NULL,
        encode_sub_payloads([KeyDataPayload(KeyDataType.K_PR, _b(32, 4))]),
        MacAlg.HMAC_SHA_256_256,
        _b(32, 1),
    )
    ibake = ps["IBAKE/ecc"]
    esk = ps["ESK/sk"]

    D = DataType
    layouts: dict[DataType, tuple[CommonHeader, list[Payload]]] = {
        D.PSK_INIT: (_hdr(D.PSK_INIT, v=True), [T, RAND, IDI, IDR_, SP, KEMAC]),
        D.PSK_RESP: (_hdr(D.PSK_RESP), [T, IDR_, V]),
        D.PK_INIT: (_hdr(D.PK_INIT, v=True), [T, RAND, CERT, IDR_, SP, KEMAC, CHASH, PKE, SIGN]),
        D.PK_RESP: (_hdr(D.PK_RESP), [T, V]),
        D.DH_INIT: (_hdr(D.DH_INIT), [T, RAND, CERT, IDR_, SP, DHI, SIGN]),
        D.DH_RESP: (_hdr(D.DH_RESP), [T, CERT, IDI, DHR, DHI, ps["SIGN/RSA_PSS"]]),
        D.ERROR: (_hdr(D.ERROR, n_cs=0), [T, ps["ERR/AUTH_FAILURE"], ps["ERR/INVALID_SP"], V]),
        D.DHHMAC_INIT: (_hdr(D.DHHMAC_INIT, v=True), [T, RAND, IDI, IDR_, SP, DHI, KEMAC_MAC]),
        D.DHHMAC_RESP: (_hdr(D.DHHMAC_RESP), [T, IDR_, IDI, DHR, DHI, KEMAC_MAC]),
        D.RSA_R_INIT: (_hdr(D.RSA_R_INIT, v=True), [T, RAND, CERT, IDR_, SP, ps["GEN_EXT/SDP_IDS"], SIGN]),
        D.RSA_R_RESP: (
            _hdr(D.RSA_R_RESP),
            [T, RAND, ps["CERT/X509V3_ENCR"], SP, ps["GEN_EXT/CSB_ID"], KEMAC, ps["PKE/CACHE"], SIGN],
        ),
        # RFC 6043 §4.2 (MIKEY-TICKET); GENERIC-ID maps.
        D.REQUEST_INIT_PSK: (_generic_hdr(D.REQUEST_INIT_PSK, v=True), [T, RAND, IDRI, IDRK, TP, KEMAC256]),
        D.REQUEST_INIT_PK: (
            _generic_hdr(D.REQUEST_INIT_PK, v=True),
            [T, RAND, IDRI, IDRK, CERT, TP, KEMAC256, CHASH, PKE, SIGN],
        ),
        D.REQUEST_RESP: (_generic_hdr(D.REQUEST_RESP), [T, IDRK, TICKET, KEMAC256, V256]),
        D.TRANSFER_INIT: (_generic_hdr(D.TRANSFER_INIT, v=True), [T, RAND, IDRI, IDRR, SP, TICKET, KEMAC256]),
        D.TRANSFER_RESP: (
            _generic_hdr(D.TRANSFER_RESP),
            [T, IDRR, ps["RANDR/RESPONDER"], ps["RANDR/KMS"], SP, KEMAC256, V256],
        ),
        D.RESOLVE_INIT_PSK: (_generic_hdr(D.RESOLVE_INIT_PSK, v=True), [T, RAND, IDRR, IDRK, TICKET, KEMAC256]),
        D.RESOLVE_INIT_PK: (
            _generic_hdr(D.RESOLVE_INIT_PK, v=True),
            [T, RAND, IDRR, IDRK, CERT, TICKET, KEMAC256, CHASH, PKE, SIGN],
        ),
        D.RESOLVE_RESP: (
            _generic_hdr(D.RESOLVE_RESP),
            [T, ps["TR/TIME_OF_ISSUE"], ps["TR/END_OF_VALIDITY"], IDRK, KEMAC256, V256],
        ),
        # RFC 6267 §4.2 (MIKEY-IBAKE).
        D.REQUEST_KEY_PSK: (_hdr(D.REQUEST_KEY_PSK, n_cs=0, prf=PRF.PRF_HMAC_SHA_256), [T, RAND, IDRI, IDRK, KEMAC256]),
        D.REQUEST_KEY_PKE: (
            _hdr(D.REQUEST_KEY_PKE, n_cs=0, prf=PRF.PRF_HMAC_SHA_256),
            [T, RAND, IDRI, IDRK, KEMAC256, PKE],
        ),
        D.REQUEST_KEY_RESP: (_hdr(D.REQUEST_KEY_RESP, n_cs=0, prf=PRF.PRF_HMAC_SHA_256), [T, IDRK, kpr_kemac]),
        D.IBAKE_I_MESSAGE_1: (_hdr(D.IBAKE_I_MESSAGE_1, v=True), [T, RAND, IDRI, IDRR, SP, ibake]),
        D.IBAKE_R_MESSAGE_1: (_hdr(D.IBAKE_R_MESSAGE_1), [T, IDRI, IDRR, ibake]),
        D.IBAKE_I_MESSAGE_2: (_hdr(D.IBAKE_I_MESSAGE_2), [T, IDRI, IDRR, ibake, esk, V]),
        D.IBAKE_R_MESSAGE_2: (_hdr(D.IBAKE_R_MESSAGE_2), [T, IDRI, IDRR, V]),
        # RFC 6509 §2.2.1 with the 3GPP layout (empty map, PRF-HMAC-SHA-256, ECCSI).
        D.SAKKE: (
            CommonHeader(D.SAKKE, CSB_ID + 26, (), CSIdMapType.EMPTY, prf=PRF.PRF_HMAC_SHA_256, cs_count=1),
            [
                T,
                RAND,
                ps["IDR/INITIATOR_UID_3GPP"],
                ps["IDR/RESPONDER_UID_3GPP"],
                ps["IDR/INITIATOR_KMS"],
                ps["IDR/RESPONDER_KMS"],
                ps["SP/srtp_constructor"],
                ps["GEN_EXT/KEY_PARAMETERS_3GPP"],
                ps["SAKKE/uid"],
                ps["SIGN/ECCSI"],
            ],
        ),
    }
    # SP policy 3 in the SAKKE message: the empty map has no entries referring to it.
    assert set(layouts) == set(DataType)
    return {f"dt/{dt.name}": Message(h, tuple(pl)) for dt, (h, pl) in sorted(layouts.items())}


def _payload_type_messages(ps: dict[str, Payload]) -> dict[str, Message]:
    """One message per payload type; the payload under test comes after HDR, T, RAND.

    Sub-payloads travel inside their container (Key data in a NULL-encrypted
    KEMAC, SK in ESK, ECCPT in IBAKE), since they cannot stand in a message.
    """
    hdr = _hdr(DataType.PSK_INIT)
    T = ps["T/NTP_UTC"]
    RAND = ps["RAND/16"]
    chosen: dict[PayloadType, list[Payload]] = {
        PayloadType.KEMAC: [ps["KEMAC/null_sha1"]],
        PayloadType.PKE: [ps["PKE/CACHE_FOR_CSB"]],
        PayloadType.DH: [ps["DH/OAKLEY_1"], ps["DH/kv_spi"]],
        PayloadType.SIGN: [ps["SIGN/RSA_PSS"]],
        PayloadType.T: [ps["T/COUNTER"]],
        PayloadType.ID: [ps["ID/NAI"], ps["ID/URI"], ps["ID/BYTE_STRING"]],
        PayloadType.CERT: [ps["CERT/X509V3"], ps["CERT/X509V3_URL"]],
        PayloadType.CHASH: [ps["CHASH/SHA_1"]],
        PayloadType.V: [ps["V/HMAC_SHA_1_160"]],
        PayloadType.SP: [ps["SP/srtp"], ps["SP/tesla"]],
        PayloadType.RAND: [ps["RAND/32"]],
        PayloadType.ERR: [ps["ERR/INVALID_TS"], ps["ERR/INVALID_TPPAR"]],
        PayloadType.TR: [ps["TR/START_OF_VALIDITY"]],
        PayloadType.IDR: [ps["IDR/INITIATOR"], ps["IDR/RESPONDER_KMS"]],
        PayloadType.RANDR: [ps["RANDR/INITIATOR"]],
        PayloadType.TP: [ps["TP/all_flags"]],
        PayloadType.TICKET: [ps["TICKET/base"]],
        PayloadType.KEY_DATA: [
            KemacPayload(
                EncrAlg.NULL,
                encode_sub_payloads([ps["KEY_DATA/TGK"], ps["KEY_DATA/TEK_SALT"], ps["KEY_DATA/kv_interval"]]),
                MacAlg.HMAC_SHA_1_160,
                _b(20, 3),
            )
        ],
        PayloadType.GEN_EXT: [ps["GEN_EXT/VENDOR_ID"], ps["GEN_EXT/KEY_ID"], ps["GEN_EXT/CSB_ID"]],
        PayloadType.IBAKE: [IbakePayload(encode_sub_payloads([ps["ECCPT/P_256"]]))],
        PayloadType.ESK: [EskPayload(encode_sub_payloads([ps["SK/SK"]]))],
        PayloadType.SK: [EskPayload(encode_sub_payloads([ps["SK/kv_interval"]]))],
        PayloadType.ECCPT: [IbakePayload(encode_sub_payloads([ps["ECCPT/auth_kv"]]))],
        PayloadType.SAKKE: [ps["SAKKE/ps1"]],
    }
    assert set(chosen) == set(PayloadType) - {PayloadType.LAST}
    out: dict[str, Message] = {}
    for pt, under_test in chosen.items():
        body: list[Payload] = [T, RAND, *under_test]
        if pt == PayloadType.T:
            body = [*under_test, RAND]
        elif pt == PayloadType.RAND:
            body = [T, *under_test]
        out[f"pt/{pt.name}"] = Message(hdr, tuple(body))
    return out


def sample_messages() -> dict[str, Message]:
    """``"dt/<DATA_TYPE>"`` for every data type and ``"pt/<PAYLOAD>"`` for every payload type."""
    ps = sample_payloads()
    return {**_data_type_messages(ps), **_payload_type_messages(ps)}


# --- hypothesis strategies ------------------------------------------------------------------
# Random *valid* payloads and messages (every length within its field, fixed-length fields
# the right size), for the round-trip properties.  Registry values are drawn from the
# registries and from unregistered numbers, which the decoder must keep as plain ints.




def _blob(max_size: int = 40) -> st.SearchStrategy[bytes]:
    return st.binary(max_size=max_size)


def _u(bits: int) -> st.SearchStrategy[int]:
    return st.integers(0, (1 << bits) - 1)


def kv_strategy() -> st.SearchStrategy[SpiValidity | IntervalValidity | None]:
    return st.one_of(
        st.none(),
        st.builds(SpiValidity, _blob(20)),
        st.builds(IntervalValidity, _blob(8), _blob(8)),
    )


def _key_data() -> st.SearchStrategy[KeyDataPayload]:
    def build(kt: int, key: bytes, salt: bytes, kv: SpiValidity | IntervalValidity | None) -> KeyDataPayload:
        has_salt = kt in (1, 3, 5)
        return KeyDataPayload(kt, key, salt if has_salt else None, kv)

    return st.builds(build, _u(4), _blob(), _blob(16), kv_strategy())


def _kemac() -> st.SearchStrategy[KemacPayload]:
    return st.sampled_from(sorted(MAC_LENGTHS)).flatmap(
        lambda m: st.builds(KemacPayload, _u(8), _blob(80), st.just(m), st.binary(min_size=MAC_LENGTHS[m], max_size=MAC_LENGTHS[m]))
    )


def _fixed(table: dict[int, int], build: object) -> st.SearchStrategy[Payload]:
    return st.sampled_from(sorted(table)).flatmap(
        lambda k: st.binary(min_size=table[k], max_size=table[k]).map(lambda v: build(k, v))  # type: ignore[operator]
    )


def _dh() -> st.SearchStrategy[DhPayload]:
    return st.sampled_from(sorted(DH_VALUE_LENGTHS)).flatmap(
        lambda g: st.builds(
            DhPayload,
            st.just(g),
            st.binary(min_size=DH_VALUE_LENGTHS[g], max_size=DH_VALUE_LENGTHS[g]),
            kv_strategy(),
            _u(4),
        )
    )


def _sp() -> st.SearchStrategy[SecurityPolicyPayload]:
    params = st.lists(st.tuples(_u(8), _blob(6)), max_size=20).map(tuple)
    return st.builds(SecurityPolicyPayload, _u(8), _u(8), params)


def _tp_fields() -> tuple[st.SearchStrategy[int], ...]:
    return (_u(16), _u(8), _u(8), _u(7), _u(12))


def _eccpt() -> st.SearchStrategy[EccptPayload]:
    return st.sampled_from([int(c) for c in ECCCurve]).flatmap(
        lambda c: st.builds(
            EccptPayload,
            st.just(c),
            st.binary(min_size=ecc_point_field_length(c) or 0, max_size=ecc_point_field_length(c) or 0),
            _u(8),
            _u(16),
            kv_strategy(),
            _u(4),
        )
    )


def payload_strategies() -> dict[str, st.SearchStrategy[Payload]]:
    """One strategy per payload class, keyed by its NAME."""
    return {
        "KEMAC": _kemac(),
        "PKE": st.builds(PkePayload, _u(2), _blob(100)),
        "DH": _dh(),
        "SIGN": st.builds(SignPayload, _u(4), _blob(300)),
        "T": _fixed(TS_LENGTHS, TimestampPayload),
        "ID": st.builds(IdPayload, _u(8), _blob()),
        "CERT": st.builds(CertPayload, _u(8), _blob(100)),
        "CHASH": _fixed(HASH_LENGTHS, ChashPayload),
        "V": _fixed(MAC_LENGTHS, VerificationPayload),
        "SP": _sp(),
        "RAND": st.builds(RandPayload, _blob(255)),
        "ERR": st.builds(ErrorPayload, _u(8), _u(16)),
        "TR": st.sampled_from(sorted(TS_LENGTHS)).flatmap(
            lambda t: st.builds(TrPayload, _u(8), st.just(t), st.binary(min_size=TS_LENGTHS[t], max_size=TS_LENGTHS[t]))
        ),
        "IDR": st.builds(IdrPayload, _u(8), _u(8), _blob()),
        "RANDR": st.builds(RandrPayload, _u(8), _blob(40)),
        "TP": st.builds(TicketPolicyPayload, *_tp_fields(), _blob(), _u(5)),
        "TICKET": st.builds(TicketPayload, *_tp_fields(), _blob(), _blob(), _blob(), _u(5)),
        "KEY_DATA": _key_data(),
        "GEN_EXT": st.builds(GeneralExtensionPayload, _u(8), _blob()),
        "IBAKE": st.builds(IbakePayload, _blob(60)),
        "ESK": st.builds(EskPayload, _blob(60)),
        "SK": st.builds(SkPayload, _u(4), _blob(), kv_strategy()),
        "ECCPT": _eccpt(),
        "SAKKE": st.builds(SakkePayload, _u(8), _u(8), _blob(300)),
    }


def _generic_entry() -> st.SearchStrategy[GenericIdEntry]:
    return st.builds(
        GenericIdEntry,
        _u(8),
        _u(8),
        st.lists(_u(8), max_size=5).map(tuple),
        _blob(12),
        _blob(6),
        st.booleans(),
    )


def header_strategy() -> st.SearchStrategy[CommonHeader]:
    common = (_u(8), _u(32))
    srtp = st.builds(
        lambda dt, csb, entries, v, prf, ver: CommonHeader(dt, csb, tuple(entries), CSIdMapType.SRTP_ID, v, prf, ver),
        *common,
        st.lists(st.builds(SrtpIdEntry, _u(8), _u(32), _u(32)), max_size=6),
        st.booleans(),
        _u(7),
        _u(8),
    )
    empty = st.builds(
        lambda dt, csb, n, v, prf: CommonHeader(dt, csb, (), CSIdMapType.EMPTY, v, prf, 1, n),
        *common,
        _u(8),
        st.booleans(),
        _u(7),
    )
    generic = st.builds(
        lambda dt, csb, entries, v, prf: CommonHeader(dt, csb, tuple(entries), CSIdMapType.GENERIC_ID, v, prf),
        *common,
        st.lists(_generic_entry(), max_size=4),
        st.booleans(),
        _u(7),
    )
    return st.one_of(srtp, empty, generic)


def message_strategy(max_payloads: int = 8) -> st.SearchStrategy[Message]:
    """Random well-formed messages: any non-SIGN payloads, optionally ending with SIGN."""
    strategies = payload_strategies()
    body = st.one_of([s for name, s in strategies.items() if name != "SIGN"])
    return st.builds(
        lambda h, ps, sign: Message(h, tuple(ps) + ((sign,) if sign is not None else ())),
        header_strategy(),
        st.lists(body, max_size=max_payloads),
        st.none() | strategies["SIGN"],
    )
