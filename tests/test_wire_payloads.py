"""Payload codecs (RFC 3830 §6, RFC 4563, RFC 6043 §6, RFC 6267 §6.1, RFC 6509 §4).

Round trips for every payload class and variant, known byte layouts written by
hand from the RFC figures, typed views and helpers, frozen-dataclass semantics,
and hypothesis round trips per payload class.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wire_samples import (
    NTP_VALUE,
    payload_strategies,
    sample_headers,
    sample_payloads,
    sample_sub_payload_chains,
)

from mikey.constants import (
    PRF,
    CSIdMapType,
    DataType,
    EncrAlg,
    GenExtType,
    KeyDataType,
    KeyIdType,
    MacAlg,
    PayloadType,
    ProtType,
    SRTPParam,
    TSType,
)
from mikey.errors import MikeyDecodeError, MikeyEncodeError
from mikey.identities import ntp_from_unix, unix_from_ntp
from mikey.wire import (
    REGISTRY,
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
    decode_sub_payloads,
    encode_sub_payloads,
)
from mikey.wire.buffer import Reader, Writer

PAYLOADS = sample_payloads()
HDR_ONLY = bytes.fromhex("01000000123456780000")  # RFC 3830 §6.1, #CS 0, SRTP-ID map


def _wrap(p: Payload) -> Message:
    return Message(CommonHeader(DataType.PSK_INIT, 0x12345678), (p,))


def _body(p: Payload) -> bytes:
    """The payload's octets as they appear in a message (next-payload octet included)."""
    if p.SUB_PAYLOAD:
        return encode_sub_payloads([p])
    return _wrap(p).encode()[10:]


def _roundtrip(p: Payload) -> None:
    if p.SUB_PAYLOAD:
        raw = encode_sub_payloads([p])
        back = decode_sub_payloads(raw, p.TYPE)
        assert back == [p]
        assert encode_sub_payloads(back) == raw
    else:
        m = _wrap(p)
        raw = m.encode()
        d = Message.decode(raw)
        assert d == m
        assert d.payloads[0] == p and hash(d.payloads[0]) == hash(p)
        assert d.encode() == raw


# --- every payload class and variant ------------------------------------------------------


def test_every_registered_payload_class_has_samples() -> None:
    names = {type(p) for p in PAYLOADS.values()}
    assert set(REGISTRY.values()) <= names
    assert len(REGISTRY) == 24  # next-payload values 1-17, 20-26 (+ HDR = 25 classes)
    assert {p.TYPE for p in PAYLOADS.values()} == set(PayloadType) - {PayloadType.LAST}


@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_payload_roundtrip(name: str) -> None:
    _roundtrip(PAYLOADS[name])


@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_payload_to_dict_is_json(name: str) -> None:
    d = PAYLOADS[name].to_dict()
    assert d["type"] == PAYLOADS[name].NAME
    json.dumps(d)


@pytest.mark.parametrize("name", sorted(sample_sub_payload_chains()))
def test_sub_payload_chains_roundtrip(name: str) -> None:
    chain = sample_sub_payload_chains()[name]
    raw = encode_sub_payloads(chain)
    back = decode_sub_payloads(raw, chain[0].TYPE)
    assert back == chain
    assert encode_sub_payloads(back) == raw


@pytest.mark.parametrize("name", sorted(sample_headers()))
def test_header_roundtrip(name: str) -> None:
    h = sample_headers()[name]
    m = Message(h)
    raw = m.encode()
    d = Message.decode(raw)
    assert d.header == h
    assert d.encode() == raw
    json.dumps(d.to_dict())


# --- known layouts (written by hand from the RFC figures) -----------------------------------


@pytest.mark.parametrize(
    ("payload", "hex_body"),
    [
        # RFC 3830 §6.6: next | TS type | TS value
        (TimestampPayload(TSType.NTP, bytes.fromhex("0102030405060708")), "00 01 0102030405060708"),
        (TimestampPayload.counter(0x01020304), "00 02 01020304"),
        # §6.11: next | RAND len | RAND
        (RandPayload(b"\xaa" * 3), "00 03 aaaaaa"),
        # §6.12: next | Err no | reserved(16)
        (ErrorPayload(13), "00 0d 0000"),
        # §6.2: next | Encr alg | Encr data len(16) | Encr data | Mac alg | MAC
        (KemacPayload(EncrAlg.AES_CM_128, b"\x11\x22", MacAlg.HMAC_SHA_1_160, b"\x33" * 20), "00 01 0002 1122 01" + "33" * 20),
        # §6.3: next | C(2) Data len(14) | Data
        (PkePayload(2, b"\x55" * 3), "00 8003 555555"),
        # §6.4: next | DH-Group | DH-value | Reserv(4) KV(4) | KV data
        (DhPayload(1, b"\x01" * 96, SpiValidity(b"\x07")), "00 01" + "01" * 96 + " 01 01 07"),
        (DhPayload(1, b"\x01" * 96, IntervalValidity(b"\x01", b"\x02\x03"), 5), "00 01" + "01" * 96 + " 52 01 01 02 0203"),
        # §6.5: S type(4) | Signature len(12) | Signature (no next-payload octet)
        (SignPayload(2, b"\x99" * 3), "2003 999999"),
        # §6.7: next | ID Type | ID len(16) | ID data
        (IdPayload.uri("a"), "00 01 0001 61"),
        # §6.8: next | Hash func | Hash
        # §6.9: next | Auth alg | Ver data
        (
            SecurityPolicyPayload(1, ProtType.SRTP, ((0, b"\x01"), (6, b"\x00\x00\x00\x00"))),
            "00 01 00 0009 00 01 01 06 04 00000000",
        ),
        # §6.15: next | Type | Data len(16) | Data
        (GeneralExtensionPayload.csb_id(0xCAFEBABE), "00 04 0004 cafebabe"),
        # RFC 6043 §6.4 / §6.6 / §6.8: role octet first
        (TrPayload(2, TSType.COUNTER, b"\x00\x00\x00\x05"), "00 02 02 00000005"),
        (IdrPayload(6, 1, b"k"), "00 06 01 0001 6b"),
        (RandrPayload(3, b"\x01\x02"), "00 03 02 0102"),
        # §6.10 TP: next | Ticket type(16) | Subtype | Version | PRF(7) Flags(12) Res(5) | TP Data len(16) | TP Data
        (TicketPolicyPayload(1, 2, 3, 1, 0b100000000001, b"\xee", 0b10101), "00 0001 02 03 03 0035 0001 ee"),
        (TicketPayload(1, 0, 0, 0, 0xFFF, b"", b"\x01", b"\x02\x03"), "00 0001 00 00 01ffe0 0000 0001 01 0002 0203"),
        # RFC 6509 §4.2: next | SAKKE params | ID scheme | SAKKE data len(16) | data
        (SakkePayload(1, 2, b"\x04\x05"), "00 01 02 0002 0405"),
        # RFC 6267 §6.1.1 / §6.1.2: next | Encr data len(16) | Encr data
        (IbakePayload(b"\x01"), "00 0001 01"),
        (EskPayload(b""), "00 0000"),
        # RFC 3830 §6.13 Key data: next | Type(4) KV(4) | Key len(16) | Key | [Salt len | Salt] | KV data
        (KeyDataPayload(KeyDataType.TEK_SALT, b"\x0a", b"\x0b\x0c", SpiValidity(b"\x0d")), "00 31 0001 0a 0002 0b0c 01 0d"),
        (KeyDataPayload(KeyDataType.TGK, b"\x0a"), "00 00 0001 0a"),
        # RFC 6267 §6.1.5 SK: next | Type(4) KV(4) | Key len(16) | Key | KV data
        (SkPayload(1, b"\x0a", IntervalValidity(b"", b"\x01")), "00 12 0001 0a 00 01 01"),
    ],
)
def test_known_layout(payload: Payload, hex_body: str) -> None:
    expected = bytes.fromhex(hex_body.replace(" ", ""))
    assert _body(payload) == expected
    _roundtrip(payload)


def test_eccpt_layout_pads_point_to_32_bits() -> None:
    # RFC 6267 §6.1.4: P-256 point 04||x||y is 65 octets, padded to 68.
    point = b"\x04" + b"\x01" * 64 + b"\x00" * 3
    p = EccptPayload(8, point, MacAlg.HMAC_SHA_256_256, 16, SpiValidity(b"\x01"), 0)
    assert _body(p) == bytes.fromhex("00 08") + point + bytes.fromhex("02 0010 01 01 01")
    with pytest.raises(MikeyEncodeError):
        encode_sub_payloads([EccptPayload(8, point[:-1])])


def test_chash_and_v_layouts() -> None:
    from mikey.wire import ChashPayload, VerificationPayload

    assert _body(ChashPayload(1, b"\x01" * 16)) == b"\x00\x01" + b"\x01" * 16
    assert _body(VerificationPayload(0)) == b"\x00\x00"
    assert _body(VerificationPayload(2, b"\x02" * 32)) == b"\x00\x02" + b"\x02" * 32


def test_srtp_id_map_layout() -> None:
    # RFC 3830 §6.1.1: Policy_no_i(8) SSRC_i(32) ROC_i(32), repeated #CS times.
    h = CommonHeader(0, 0x12345678, (SrtpIdEntry(1, 0x12345678, 0), SrtpIdEntry(2, 0x23456789, 1)))
    raw = Message(h).encode()
    assert raw == bytes.fromhex("01000000123456780200" "011234567800000000" "022345678900000001")
    assert h.n_cs == 2 and h.cs_ids() == [1, 2]


def test_empty_map_layout() -> None:
    # RFC 4563 §5: CS ID map type 1, no map info; #CS still counts the crypto sessions.
    h = CommonHeader(DataType.SAKKE, 1, (), CSIdMapType.EMPTY, prf=PRF.PRF_HMAC_SHA_256, cs_count=3)
    raw = Message(h).encode()
    assert raw == bytes.fromhex("011a00010000000103" "01")
    d = Message.decode(raw).header
    assert d.n_cs == 3 and d.cs_count == 3 and d.cs_ids() == [1, 2, 3] and d.cs_id_map == ()


def test_generic_id_map_layout() -> None:
    # RFC 6043 §6.1.1: CS ID | Prot type | S(1) #P(7) | P list | Session Data len(16) | data | SPI len | SPI
    e = GenericIdEntry.srtp(5, 0x11223344, roc=7, seq=9, policies=(1, 2), spi=b"\xab")
    h = CommonHeader(14, 1, (e,), CSIdMapType.GENERIC_ID)
    raw = Message(h).encode()
    assert raw[8:] == bytes.fromhex("01 02" "05 00 82 0102 000a 11223344 00000007 0009 01 ab".replace(" ", ""))
    d = Message.decode(raw).header
    (de,) = d.cs_id_map
    assert isinstance(de, GenericIdEntry)
    assert (de.ssrc, de.roc, de.seq, de.s_flag, de.policies, de.spi) == (0x11223344, 7, 9, True, (1, 2), b"\xab")
    assert d.cs_ids() == [5]
    plain = GenericIdEntry.srtp(1, 0xAABBCCDD)
    assert (plain.ssrc, plain.roc, plain.seq, plain.s_flag) == (0xAABBCCDD, None, None, False)
    assert GenericIdEntry(1, 1, (), b"\x01").ssrc is None
    assert "ssrc" not in GenericIdEntry(1, ProtType.TESLA, (), b"").to_dict()


def test_hdr_fields_v_prf_version() -> None:
    h = CommonHeader(7, 0xFFFFFFFF, (), v=True, prf=1, version=1)
    raw = Message(h).encode()
    assert raw == bytes.fromhex("01 07 00 81 ffffffff 00 00".replace(" ", ""))
    d = Message.decode(raw).header
    assert d.v is True and d.prf == PRF.PRF_HMAC_SHA_256 and d.data_type == DataType.DHHMAC_INIT
    assert isinstance(d.prf, PRF) and isinstance(d.data_type, DataType)


# --- registry values: known as enum members, unknown kept as int ------------------------------


def test_unknown_registry_values_stay_ints() -> None:
    raw = bytes.fromhex("01 63 0c 05 00000001 00 00" "00 c8 0000".replace(" ", ""))
    m = Message.decode(raw)
    assert m.header.data_type == 99 and not isinstance(m.header.data_type, DataType)
    assert m.header.prf == 5 and not isinstance(m.header.prf, PRF)
    (err,) = m.payloads
    assert isinstance(err, ErrorPayload) and err.error_no == 200 and type(err.error_no) is int
    assert m.encode() == raw
    d = m.to_dict()
    assert d["payloads"][0]["data_type_name"] == "unknown(99)"


def test_decoded_registry_values_are_enum_members() -> None:
    raw = _wrap(KemacPayload(1, b"", 2, b"\x00" * 32)).encode()
    (k,) = Message.decode(raw).payloads
    assert isinstance(k, KemacPayload)
    assert k.encr_alg is EncrAlg.AES_CM_128 and k.mac_alg is MacAlg.HMAC_SHA_256_256


# --- typed views and helpers ----------------------------------------------------------------


def test_genext_typed_constructors_and_views() -> None:
    sdp = GeneralExtensionPayload.sdp_ids(["mikey", "sdes"])
    assert sdp.ext_type == GenExtType.SDP_IDS and sdp.data == b"mikey sdes"
    assert sdp.parse_sdp_ids() == ["mikey", "sdes"] and sdp.parsed() == ["mikey", "sdes"]

    entries = [KeyIdEntry(KeyIdType.MBMS_SERVICE_KEY_ID, b"\x01\x02"), KeyIdEntry(7, b"")]
    kid = GeneralExtensionPayload.key_ids(entries)
    assert kid.data == bytes.fromhex("01 02 0102 07 00".replace(" ", ""))
    assert kid.parse_key_ids() == entries
    assert kid.parsed() == [e.to_dict() for e in entries]
    assert isinstance(kid.parse_key_ids()[0].key_id_type, KeyIdType)
    with pytest.raises(MikeyEncodeError):
        GeneralExtensionPayload.key_ids([KeyIdEntry(0, b"\x00" * 256)])
    bad = GeneralExtensionPayload(GenExtType.KEY_ID, b"\x01\x05\x00")
    with pytest.raises(MikeyDecodeError) as ei:
        bad.parse_key_ids()
    assert ei.value.payload == "GEN_EXT"
    assert bad.parsed() is None and "parsed" not in bad.to_dict()

    csb = GeneralExtensionPayload.csb_id(0x01020304)
    assert csb.parse_csb_id() == 0x01020304 and csb.parsed() == "01020304"
    with pytest.raises(MikeyDecodeError):
        GeneralExtensionPayload(GenExtType.CSB_ID, b"\x01").parse_csb_id()
    assert GeneralExtensionPayload(GenExtType.VENDOR_ID, b"ACME").parsed() == "ACME"
    assert GeneralExtensionPayload(GenExtType.VENDOR_ID, b"\x00\x01").parsed() is None
    assert GeneralExtensionPayload(GenExtType.OMA_BCAST, b"\x00").parsed() is None
    for p in (sdp, kid, csb):
        _roundtrip(p)


def test_timestamp_helpers() -> None:
    t = TimestampPayload.ntp_utc(1_700_000_000.5)
    assert t.ts_type == TSType.NTP_UTC and len(t.ts_value) == 8
    assert t.unix_time() == pytest.approx(1_700_000_000.5, abs=1e-6)
    assert t.iv_value() == t.ts_value
    assert unix_from_ntp(ntp_from_unix(12345.25)) == pytest.approx(12345.25)
    c = TimestampPayload.counter(7)
    assert c.unix_time() is None and c.iv_value() == b"\x00" * 7 + b"\x07" and c.ts_int == 7
    t32 = TimestampPayload(TSType.NTP_UTC_32, NTP_VALUE[:4])
    assert t32.unix_time() == 1_700_000_000.0
    assert TrPayload(1, TSType.NTP, NTP_VALUE).unix_time() == pytest.approx(1_700_000_000.25, abs=1e-6)
    assert "unix_time" in t.to_dict() and "unix_time" not in c.to_dict()


def test_security_policy_helpers() -> None:
    sp = SecurityPolicyPayload.srtp(1, {SRTPParam.ENCR_ALG: 1, SRTPParam.ROC_TRANSMISSION_RATE: 3, 6: b"\x00" * 4})
    assert sp.params == ((0, b"\x01"), (13, b"\x00\x03"), (6, b"\x00" * 4))
    assert sp.get(SRTPParam.ENCR_ALG) == b"\x01" and sp.get(99) is None
    assert sp.get_int(13) == 3 and sp.get_int(99) is None and sp.get_int(99, 5) == 5
    d = sp.to_dict()
    assert [p["name"] for p in d["params"]] == ["ENCR_ALG", "ROC_TRANSMISSION_RATE", "KEY_DERIVATION_RATE"]
    listed = SecurityPolicyPayload(1, 0, [(1, bytearray(b"\x10"))])  # type: ignore[arg-type]
    assert listed.params == ((1, b"\x10"),)
    assert SecurityPolicyPayload(1, 1, ((0, b"\x00"),)).to_dict()["params"][0]["name"] == "PRF"
    assert "name" not in SecurityPolicyPayload(1, 7, ((0, b"\x00"),)).to_dict()["params"][0]


def test_sp_param_value_lengths_other_than_one_octet() -> None:
    # Mixed lengths and zero-length values go through the general splitter.
    sp = SecurityPolicyPayload(9, 0, ((0, b""), (1, b"\x01\x02"), (2, b"\x01"), (3, b"\x00" * 255)))
    _roundtrip(sp)
    # Lengths all one octet but a zero-length value inside: same octet count as the fast path.
    tricky = SecurityPolicyPayload(9, 0, ((1, b"\x01"), (0, b""), (5, b"\x01\x02")))
    _roundtrip(tricky)


def test_id_text_and_cert_repr() -> None:
    assert IdPayload.uri("sip:é@x").text == "sip:é@x"
    assert IdPayload(2, b"\xff").text == "\ufffd"
    assert IdrPayload(1, 1, b"sip:a").text == "sip:a"
    assert IdPayload.nai("a@b").id_type == 0


def test_kemac_key_data_view() -> None:
    k = PAYLOADS["KEMAC/null_sha1"]
    assert isinstance(k, KemacPayload)
    subs = k.key_data()
    assert subs == [PAYLOADS["KEY_DATA/TGK"], PAYLOADS["KEY_DATA/kv_spi"]]
    assert k.key_data(encode_sub_payloads([PAYLOADS["KEY_DATA/TEK"]])) == [PAYLOADS["KEY_DATA/TEK"]]
    with pytest.raises(MikeyDecodeError):
        KemacPayload(0, b"\x00\x00", 0).key_data()


def test_ibake_esk_sub_payload_views() -> None:
    ecc = PAYLOADS["ECCPT/P_256"]
    ib = IbakePayload(encode_sub_payloads([ecc]))
    assert ib.sub_payloads() == [ecc]
    sk = PAYLOADS["SK/SK"]
    esk = EskPayload(encode_sub_payloads([sk]))
    assert esk.sub_payloads(first=PayloadType.SK) == [sk]
    assert esk.sub_payloads(encode_sub_payloads([sk]), PayloadType.SK) == [sk]


def test_ticket_policy_flags_and_tp_data() -> None:
    tp = PAYLOADS["TP/all_flags"]
    assert isinstance(tp, TicketPolicyPayload)
    assert all(tp.flag(c) for c in "DEFGHIJKLMNO")
    flags = PAYLOADS["TP/flags_DFHN"]
    assert isinstance(flags, TicketPolicyPayload)
    assert [c for c in "DEFGHIJKLMNO" if flags.flag(c)] == ["D", "F", "H", "N"]
    assert flags.to_dict()["flag_bits"]["D"] is True and flags.to_dict()["flag_bits"]["E"] is False
    (idr,) = tp.tp_payloads()
    assert isinstance(idr, IdrPayload) and idr.data == b"sip:bob@example.org"
    assert flags.tp_payloads() == []
    t = PAYLOADS["TICKET/base"]
    assert isinstance(t, TicketPayload)
    assert t.flag("D") and t.flag("O") and not t.flag("E")
    assert t.to_dict()["ticket_data"] == t.ticket_data.hex()
    assert len(t.tp_payloads()) == 1
    with pytest.raises(MikeyEncodeError):
        _wrap(TicketPolicyPayload(1, 0, 0, 0, 0x1000)).encode()
    with pytest.raises(MikeyEncodeError):
        _wrap(TicketPolicyPayload(1, 0, 0, 0x80, 0)).encode()


def test_key_data_to_dict_and_repr_hide_nothing_they_should_not() -> None:
    kd = KeyDataPayload(KeyDataType.TGK_SALT, b"\x01" * 16, b"\x02" * 14, IntervalValidity(b"\x00", b"\x05"))
    d = kd.to_dict()
    assert d["key_len"] == 16 and d["salt"] == "02" * 14 and d["kv"]["kv_type_name"] == "INTERVAL"
    # keys are not in repr (DESIGN.md: keys never appear in repr)
    assert "0101" not in repr(kd) and "\\x01" not in repr(kd) and "\\x02" not in repr(kd)
    assert "\\x01" not in repr(SkPayload(1, b"\x01" * 8))
    assert SpiValidity(b"\x01").to_dict()["kv_type"] == 1


# --- frozen dataclass semantics ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["KEMAC/aes_cm_sha1", "SP/srtp", "T/NTP_UTC", "KEY_DATA/TEK_SALT", "ECCPT/P_256"])
def test_decoded_payloads_are_frozen_and_hashable(name: str) -> None:
    p = PAYLOADS[name]
    raw = encode_sub_payloads([p]) if p.SUB_PAYLOAD else _wrap(p).encode()
    d = decode_sub_payloads(raw, p.TYPE)[0] if p.SUB_PAYLOAD else Message.decode(raw).payloads[0]
    assert type(d) is type(p)
    first = dataclasses.fields(d)[0].name  # type: ignore[arg-type]
    with pytest.raises((dataclasses.FrozenInstanceError, AttributeError)):
        setattr(d, first, 1)
    with pytest.raises((dataclasses.FrozenInstanceError, AttributeError, TypeError)):
        d.not_a_field = 1  # type: ignore[attr-defined]
    assert d == p and hash(d) == hash(p) and repr(d).startswith(type(p).__name__ + "(")
    assert dataclasses.replace(d) == p  # type: ignore[type-var]
    assert {d: 1}[p] == 1


def test_decoded_header_and_entries_are_frozen() -> None:
    d = Message.decode(Message(sample_headers()["srtp_id_2"]).encode())
    with pytest.raises((dataclasses.FrozenInstanceError, AttributeError)):
        d.header.csb_id = 1  # type: ignore[misc]
    with pytest.raises((dataclasses.FrozenInstanceError, AttributeError)):
        d.header.cs_id_map[0].ssrc = 1  # type: ignore[misc]
    with pytest.raises((dataclasses.FrozenInstanceError, AttributeError)):
        d.payloads = ()  # type: ignore[misc]
    assert hash(d.header) == hash(sample_headers()["srtp_id_2"])


# --- encode-side range checks -------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        KemacPayload(0, b"", MacAlg.HMAC_SHA_1_160, b"\x00" * 19),
        KemacPayload(0, b"\x00" * 0x10000, 0),
        KemacPayload(256, b"", 0),
        PkePayload(4, b""),
        PkePayload(0, b"\x00" * 0x4000),
        DhPayload(0, b"\x00" * 10),
        SignPayload(16, b""),
        SignPayload(0, b"\x00" * 0x1000),
        TimestampPayload(TSType.NTP_UTC, b"\x00" * 4),
        IdPayload(0, b"\x00" * 0x10000),
        SecurityPolicyPayload(1, 0, ((256, b"\x00"),)),
        SecurityPolicyPayload(1, 0, ((1, b"\x00" * 256),)),
        SecurityPolicyPayload(256, 0, ()),
        RandPayload(b"\x00" * 256),
        ErrorPayload(0, 0x10000),
        GeneralExtensionPayload(0, b"\x00" * 0x10000),
        TrPayload(1, TSType.COUNTER, b"\x00"),
        SakkePayload(1, 1, b"\x00" * 0x10000),
        DhPayload(1, b"\x00" * 96, SpiValidity(b"\x00" * 256)),
    ],
)
def test_encode_out_of_range_raises_encode_error(payload: Payload) -> None:
    with pytest.raises(MikeyEncodeError):
        _wrap(payload).encode()


@pytest.mark.parametrize(
    "payload",
    [
        KeyDataPayload(16, b""),
        KeyDataPayload(KeyDataType.TGK_SALT, b""),  # salt missing
        KeyDataPayload(KeyDataType.TGK, b"", b"\x00"),  # salt where the type has none
        SkPayload(16, b""),
    ],
)
def test_encode_sub_payload_out_of_range(payload: Payload) -> None:
    with pytest.raises(MikeyEncodeError):
        encode_sub_payloads([payload])


def test_header_encode_errors() -> None:
    with pytest.raises(MikeyEncodeError):
        Message(CommonHeader(0, 1, tuple(SrtpIdEntry(1, i) for i in range(256)))).encode()
    with pytest.raises(MikeyEncodeError):
        Message(CommonHeader(0, 1, (), prf=0x80)).encode()
    with pytest.raises(MikeyEncodeError):
        Message(CommonHeader(0, 1, (SrtpIdEntry(1, 1),), cs_count=2)).encode()
    with pytest.raises(MikeyEncodeError):
        Message(CommonHeader(0, 1, (SrtpIdEntry(1, 1),), CSIdMapType.GENERIC_ID)).encode()
    with pytest.raises(MikeyEncodeError):
        Message(CommonHeader(0, 1, (GenericIdEntry(1),), CSIdMapType.SRTP_ID)).encode()
    with pytest.raises(MikeyEncodeError):
        Message(CommonHeader(0, 1, (GenericIdEntry(1, 0, tuple(range(128))),), CSIdMapType.GENERIC_ID)).encode()
    with pytest.raises(MikeyEncodeError):
        Message(CommonHeader(0, 1 << 32)).encode()
    with pytest.raises(MikeyEncodeError):
        Message(CommonHeader(0, 1, (SrtpIdEntry(1, 1 << 32),))).encode()


def test_sign_must_be_last_when_encoding() -> None:
    with pytest.raises(MikeyEncodeError):
        Message(CommonHeader(0, 1), (SignPayload(0, b""), RandPayload(b""))).encode()


# --- the cursor ----------------------------------------------------------------------------------


def test_reader_and_writer() -> None:
    w = Writer()
    w.u8(1)
    w.u16(0x0203)
    w.u32(0x04050607)
    w.u64(0x08090A0B0C0D0E0F)
    w.put(b"xy")
    assert len(w) == 17
    r = Reader(w.getvalue())
    assert (r.u8(), r.u16(), r.u32(), r.u64()) == (1, 0x0203, 0x04050607, 0x08090A0B0C0D0E0F)
    assert r.remaining == 2 and not r.eof()
    assert r.take(1) == b"x" and r.rest() == b"y" and r.eof()
    from mikey.wire.buffer import ReadPastEnd

    for op in (r.u8, r.u16, r.u32, r.u64, lambda: r.take(1)):
        with pytest.raises(ReadPastEnd):
            op()


def test_decode_body_and_pull_agree() -> None:
    """The Reader-based entry point and the raw-buffer one read the same thing."""
    for name in ("KEMAC/aes_cm_sha1", "SP/tesla", "DH/kv_interval", "TICKET/base", "ECCPT/auth_kv"):
        p = PAYLOADS[name]
        body = _body(p)[1:] if p.HAS_NEXT else _body(p)
        r = Reader(body + b"tail")
        assert type(p).decode_body(r) == p
        assert r.pos == len(body)
        q, end = type(p).pull(body + b"tail", 0, len(body))
        assert q == p and end == len(body)


# --- hypothesis: every payload class ----------------------------------------------------------


@pytest.mark.parametrize("name", sorted(payload_strategies()))
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_random_payload_roundtrip(name: str, data: st.DataObject) -> None:
    p = data.draw(payload_strategies()[name])
    _roundtrip(p)
    json.dumps(p.to_dict())
