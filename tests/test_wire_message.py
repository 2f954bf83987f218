"""The message container (RFC 3830 §6): chaining, raw bytes and offsets, vendor messages, decode errors."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from wire_samples import message_strategy, sample_messages

from mikey.constants import CSIdMapType, DataType, PayloadType
from mikey.errors import MikeyDecodeError, MikeyEncodeError, MikeyError, UnknownDHGroupDecodeError
from mikey.wire import (
    CommonHeader,
    ErrorPayload,
    GeneralExtensionPayload,
    GenericIdEntry,
    IdrPayload,
    KemacPayload,
    KeyDataPayload,
    Message,
    RandPayload,
    SakkePayload,
    SecurityPolicyPayload,
    SignPayload,
    SrtpIdEntry,
    TimestampPayload,
    decode_sub_payloads,
    encode_sub_payloads,
    parse_text,
)

VECTORS = Path(__file__).parent / "vectors"
MESSAGES = sample_messages()


def _load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text())


def _vendor_cases() -> list[tuple[str, dict[str, Any]]]:
    out = []
    sw = _load("mikey_sakke_streamwide.json")
    for c in sw["cases"]["i_messages"]:
        out.append((f"streamwide:{c['name']}", c))
    for c in _load("mikey_sakke_alea_via_streamwide.json")["cases"]:
        out.append((f"alea:{c['name']}", c))
    return out


VENDOR = _vendor_cases()


# --- sample messages ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_sample_message_roundtrip(name: str) -> None:
    m = MESSAGES[name]
    raw, offsets = m.encode_with_offsets()
    d = Message.decode(raw)
    assert d == m
    assert d.encode() == raw
    assert d.raw == raw and d.offsets == offsets
    assert len(offsets) == len(m.payloads)
    json.dumps(d.to_dict())
    assert d.to_dict() == m.to_dict()


def test_every_data_type_and_payload_type_has_a_sample() -> None:
    assert {k for k in MESSAGES if k.startswith("dt/")} == {f"dt/{d.name}" for d in DataType}
    pts = {k for k in MESSAGES if k.startswith("pt/")}
    assert pts == {f"pt/{p.name}" for p in PayloadType if p != PayloadType.LAST}
    for d in DataType:
        assert MESSAGES[f"dt/{d.name}"].header.data_type == d


def test_payload_spans_and_raw_bytes() -> None:
    m = MESSAGES["dt/PK_INIT"]
    raw = m.encode()
    d = Message.decode(bytearray(raw))
    assert d.raw_bytes() == raw and isinstance(d.raw, bytes)
    starts = [d.payload_span(i)[0] for i in range(len(d.payloads))]
    assert starts == list(d.offsets)
    assert d.payload_span(len(d.payloads) - 1)[1] == len(raw)
    # Each span re-encodes alone to the same bytes (apart from its next-payload octet).
    for i, p in enumerate(d.payloads):
        a, b = d.payload_span(i)
        body = raw[a + 1 : b] if p.HAS_NEXT else raw[a:b]
        single = Message(m.header, (p,)).encode()
        assert single[d.offsets[0] + (1 if p.HAS_NEXT else 0) :] == body
    # A locally built message computes spans from its own encoding.
    assert m.raw is None and m.raw_bytes() == raw and m.payload_span(0) == d.payload_span(0)
    e = m.encoded()
    assert e.raw == raw and e.offsets == d.offsets and e == m


def test_find_index_replace() -> None:
    m = MESSAGES["dt/PSK_INIT"]
    assert m.find(KemacPayload) is m.payloads[-1]
    assert m.find(SignPayload) is None
    assert len(m.find_all(TimestampPayload)) == 1
    assert m.index(RandPayload) == 1
    with pytest.raises(KeyError):
        m.index(SignPayload)
    r = m.replace_payload(1, RandPayload(b"\x00" * 16))
    assert r.payloads[1] == RandPayload(b"\x00" * 16) and r.payloads[0] is m.payloads[0] and r.raw is None
    w = m.with_payloads(list(m.payloads[:2]))
    assert len(w.payloads) == 2 and isinstance(w.payloads, tuple)
    assert m.data_type == DataType.PSK_INIT and m.csb_id == m.header.csb_id
    assert repr(m).startswith("Message(PSK_INIT, csb_id=")
    assert Message(CommonHeader(0, 1), [RandPayload(b"")]).payloads == (RandPayload(b""),)  # type: ignore[arg-type]


def test_raw_and_offsets_do_not_take_part_in_equality() -> None:
    m = MESSAGES["dt/DH_INIT"]
    d = Message.decode(m.encode())
    assert d == m and hash(d.header) == hash(m.header)


# --- GStreamer (gst-plugins-base tests/check/libs/mikey.c) ------------------------------------------


def test_gstreamer_asserted_and_derived_messages() -> None:
    g = _load("mikey_messages_gstreamer.json")["cases"]
    # create_common: HDR with #CS = 0, no payloads (asserted)
    hdr_only = bytes.fromhex(g[0]["message"])
    m = Message.decode(hdr_only)
    assert m.header == CommonHeader(DataType.PSK_INIT, 0x12345678) and m.payloads == ()
    assert Message(CommonHeader(DataType.PSK_INIT, 0x12345678)).encode() == hdr_only
    # SRTP-ID map info of two crypto sessions (asserted: octets 10..27)
    cs = g[1]["cs"]
    entries = tuple(SrtpIdEntry(c["policy_no"], int(c["ssrc"], 16), int(c["roc"], 16)) for c in cs)
    two = Message(CommonHeader(DataType.PSK_INIT, 0x12345678, entries)).encode()
    assert len(two) == 28
    assert two[10:] == bytes.fromhex(g[1]["cs_id_map_info"])
    assert two == bytes.fromhex(g[1]["full_message_derived"])
    assert Message.decode(two).header.cs_id_map == entries
    # HDR + T (size 20) and HDR + T + KEMAC (round trip)
    t_msg = bytes.fromhex(g[2]["message_derived"])
    assert len(t_msg) == 20
    d = Message.decode(t_msg)
    assert d.payloads == (TimestampPayload(1, bytes.fromhex("0102030405060708")),)
    assert d.encode() == t_msg
    k_msg = bytes.fromhex(g[3]["message_derived"])
    d = Message.decode(k_msg)
    kemac = d.payloads[1]
    assert isinstance(kemac, KemacPayload)
    assert (kemac.encr_alg, kemac.mac_alg, kemac.mac) == (0, 0, b"")
    assert kemac.encr_data == bytes.fromhex(g[3]["kemac_payload_derived"])[4:-1]
    (kd,) = kemac.key_data()
    assert isinstance(kd, KeyDataPayload)
    assert kd.key_type == 2 and kd.key == bytes.fromhex(g[3]["key_data"]) and kd.kv is None and kd.salt is None
    assert d.encode() == k_msg


# --- vendor MIKEY-SAKKE I_MESSAGEs (Streamwide, ALEA) -------------------------------------------------

_FIELD_MAP: dict[str, dict[str, str]] = {
    # JSON "parsed" key -> attribute of our payload (or a callable name below)
    "HDR": {"version": "version", "data_type": "data_type", "prf": "prf", "n_cs": "n_cs", "cs_id_map_type": "cs_id_map_type"},
    "T": {"ts_type": "ts_type", "ts_value": "ts_value"},
    "RAND": {"rand": "rand"},
    "IDR": {"id_role": "id_role", "id_type": "id_type", "id_data": "data"},
    "SP": {"policy_no": "policy_no", "prot_type": "prot_type"},
    "GenExt": {"type": "ext_type", "data": "data"},
    "SAKKE": {"sakke_params": "params", "id_scheme": "id_scheme", "sakke_data": "data"},
    "SIGN": {"s_type": "s_type", "signature": "signature"},
}
_NAMES = {"GenExt": "GEN_EXT"}


def _norm(v: Any) -> Any:
    return v.hex() if isinstance(v, bytes) else int(v) if isinstance(v, int) else v


@pytest.mark.parametrize("case", [c for _, c in VENDOR], ids=[n for n, _ in VENDOR])
def test_vendor_message_fields(case: dict[str, Any]) -> None:
    raw = bytes.fromhex(case["i_message_hex"])
    assert base64.b64decode(case["i_message_base64"]) == raw
    if "sdp_key_mgmt_value" in case:
        assert parse_text(case["sdp_key_mgmt_value"]) == raw
        assert parse_text("a=key-mgmt:" + case["sdp_key_mgmt_value"]) == raw
    m = Message.decode(raw)
    assert m.encode() == raw
    parsed = case["parsed"]
    assert len(parsed) == len(m.payloads) + 1
    hdr = parsed[0]
    h = m.header
    assert hdr["payload"] == "HDR"
    for k, attr in _FIELD_MAP["HDR"].items():
        assert _norm(getattr(h, attr)) == hdr[k], k
    assert h.v == bool(hdr["V"]) and f"{h.csb_id:08x}" == hdr["csb_id"]
    assert len(h.cs_id_map) == len(hdr["cs_id_map"])
    for e, exp_e in zip(h.cs_id_map, hdr["cs_id_map"], strict=True):
        if isinstance(e, SrtpIdEntry):
            assert (e.policy_no, f"{e.ssrc:08x}", f"{e.roc:08x}") == (exp_e["policy_no"], exp_e["ssrc"], exp_e["roc"])
        else:
            assert isinstance(e, GenericIdEntry)
            got = (e.cs_id, int(e.prot_type), int(e.s_flag), list(e.policies), e.session_data.hex(), e.spi.hex())
            want = ("cs_id", "prot_type", "S", "policies", "session_data", "spi")
            assert got == tuple(exp_e[k] for k in want)
    first = m.payloads[0].TYPE if m.payloads else 0
    assert hdr["next_payload"] == first
    assert raw[: len(bytes.fromhex(hdr["raw_hex"]))] == bytes.fromhex(hdr["raw_hex"])
    for i, (p, exp) in enumerate(zip(m.payloads, parsed[1:], strict=True)):
        assert p.NAME == _NAMES.get(exp["payload"], exp["payload"])
        for k, attr in _FIELD_MAP[exp["payload"]].items():
            assert _norm(getattr(p, attr)) == exp[k], (exp["payload"], k)
        if "next_payload" in exp:
            nxt = m.payloads[i + 1].TYPE if i + 1 < len(m.payloads) else 0
            assert exp["next_payload"] == nxt
        if "raw_hex" in exp:
            a, b = m.payload_span(i)
            assert raw[a:b] == bytes.fromhex(exp["raw_hex"])
        if exp["payload"] == "IDR":
            assert isinstance(p, IdrPayload) and len(p.data) == exp["id_len"]
            if "id_ascii" in exp:
                assert p.text == exp["id_ascii"]
        elif exp["payload"] == "SP":
            assert isinstance(p, SecurityPolicyPayload)
            assert [[t, v.hex()] for t, v in p.params] == exp["params"]
        elif exp["payload"] == "GenExt":
            assert isinstance(p, GeneralExtensionPayload) and len(p.data) == exp["length"]
        elif exp["payload"] == "SAKKE":
            assert isinstance(p, SakkePayload) and len(p.data) == exp["sakke_data_len"]
        elif exp["payload"] == "SIGN":
            assert isinstance(p, SignPayload) and len(p.signature) == exp["sig_len"]
            # "signed_part_len" counts the octets before SIGN; the ECCSI signature covers
            # those plus the S type/length octets (see the vectors' "verification").
            assert m.payload_span(i)[0] == exp["signed_part_len"]
    json.dumps(m.to_dict())


# --- decode errors ---------------------------------------------------------------------------------

_TRUNCATION_SAMPLES = [
    "dt/PSK_INIT",
    "dt/PK_INIT",
    "dt/DH_RESP",
    "dt/ERROR",
    "dt/TRANSFER_INIT",
    "dt/SAKKE",
    "pt/KEY_DATA",
    "pt/TP",
    "pt/TICKET",
    "pt/ECCPT",
    "pt/DH",
    "pt/GEN_EXT",
]


@pytest.mark.parametrize("name", _TRUNCATION_SAMPLES)
def test_truncated_at_every_position(name: str) -> None:
    raw = MESSAGES[name].encode()
    names = {"HDR"} | {p.NAME for p in MESSAGES[name].payloads}
    for n in range(len(raw)):
        with pytest.raises(MikeyDecodeError) as ei:
            Message.decode(raw[:n])
        e = ei.value
        assert e.payload in names, (n, e)
        assert e.offset is not None and 0 <= e.offset <= n, (n, e)
        assert e.err_no == 12
        assert "offset" in str(e)


@pytest.mark.parametrize("vendor", [c for _, c in VENDOR[:2]], ids=[n for n, _ in VENDOR[:2]])
def test_vendor_truncated_at_every_position(vendor: dict[str, Any]) -> None:
    raw = bytes.fromhex(vendor["i_message_hex"])
    for n in range(len(raw)):
        with pytest.raises(MikeyDecodeError) as ei:
            Message.decode(raw[:n])
        assert ei.value.payload and ei.value.offset is not None


def test_truncation_offsets_point_at_the_cut_field() -> None:
    raw = MESSAGES["dt/PSK_INIT"].encode()
    d = Message.decode(raw)
    kemac_at = d.offsets[-1]
    with pytest.raises(MikeyDecodeError) as ei:
        Message.decode(raw[: kemac_at + 10])
    assert ei.value.payload == "KEMAC" and ei.value.offset == kemac_at + 4  # the Encr data
    with pytest.raises(MikeyDecodeError) as ei:
        Message.decode(raw[:6])
    assert ei.value.payload == "HDR" and ei.value.offset == 4  # the CSB ID
    with pytest.raises(MikeyDecodeError) as ei:
        Message.decode(raw[:15])
    assert ei.value.payload == "HDR" and ei.value.offset == 10  # the first SRTP-ID entry
    with pytest.raises(MikeyDecodeError) as ei:
        Message.decode(b"")
    assert ei.value.payload == "HDR" and ei.value.offset == 0


def test_unknown_payload_number() -> None:
    raw = bytearray(MESSAGES["dt/PSK_INIT"].encode())
    raw[2] = 18  # HDR next payload: unassigned
    with pytest.raises(MikeyDecodeError) as ei:
        Message.decode(bytes(raw))
    assert ei.value.payload == "HDR" and ei.value.offset == 28 and "18" in str(ei.value)
    d = Message.decode(MESSAGES["dt/PSK_INIT"].encode())
    raw = bytearray(d.raw or b"")
    raw[d.offsets[1]] = 0xFF  # RAND's next payload
    with pytest.raises(MikeyDecodeError) as ei:
        Message.decode(bytes(raw))
    assert ei.value.payload == "RAND" and ei.value.offset == d.offsets[2]
    with pytest.raises(MikeyDecodeError):
        decode_sub_payloads(b"\x00", 99)


def test_trailing_bytes() -> None:
    raw = MESSAGES["dt/PSK_INIT"].encode()
    with pytest.raises(MikeyDecodeError) as ei:
        Message.decode(raw + b"\x00")
    assert ei.value.payload == "KEMAC" and ei.value.offset == len(raw)
    with pytest.raises(MikeyDecodeError) as ei:
        Message.decode(bytes.fromhex("01000000123456780000") + b"xy")
    assert ei.value.payload == "HDR" and ei.value.offset == 10
    sub = encode_sub_payloads([KeyDataPayload(0, b"\x01")])
    with pytest.raises(MikeyDecodeError) as ei:
        decode_sub_payloads(sub + b"\x00")
    assert ei.value.offset == len(sub)
    signed = MESSAGES["pt/SIGN"].encode()
    with pytest.raises(MikeyDecodeError):
        Message.decode(signed + b"\x00")


def test_unknown_cs_id_map_type() -> None:
    raw = bytearray(Message(CommonHeader(0, 1)).encode())
    raw[9] = 3
    with pytest.raises(MikeyDecodeError) as ei:
        Message.decode(bytes(raw))
    assert ei.value.payload == "HDR" and ei.value.offset == 9 and "map type" in str(ei.value)


def test_absurd_cs_count() -> None:
    # #CS = 255 with SRTP-ID map but only one entry present.
    raw = bytes.fromhex("01 00 00 00 00000001 ff 00".replace(" ", "")) + bytes(9)
    with pytest.raises(MikeyDecodeError) as ei:
        Message.decode(raw)
    assert ei.value.payload == "HDR" and ei.value.offset == 19
    raw = bytes.fromhex("01 00 00 00 00000001 ff 02".replace(" ", "")) + bytes(5)
    with pytest.raises(MikeyDecodeError):
        Message.decode(raw)
    # #CS = 255 with the Empty map is fine (no map info).
    m = Message.decode(bytes.fromhex("01 1a 00 01 00000001 ff 01".replace(" ", "")))
    assert m.header.n_cs == 255 and m.header.cs_id_map_type == CSIdMapType.EMPTY


@pytest.mark.parametrize(
    ("hex_payloads", "first", "payload"),
    [
        ("00 00 ffff", 1, "KEMAC"),  # Encr data len past the end
        ("00 00 0000 07", 1, "KEMAC"),  # unknown MAC alg: length unknown
        ("00 09 00000000", 5, "T"),  # unknown TS type
        ("00 03" + "00" * 96, 3, "DH"),  # unknown DH group
        ("00 01" + "00" * 96 + "03", 3, "DH"),  # unknown KV type
        ("00 05" + "00" * 20, 8, "CHASH"),  # unknown hash func
        ("00 03" + "00" * 20, 9, "V"),  # unknown auth alg
        ("00 01 00 0005 00 01 01 00 05", 10, "SP"),  # param value runs past the Policy param length
        ("00 01 00 0001 00", 10, "SP"),  # param header cut by the Policy param length
        ("00 01 00 0010 00 01 01", 10, "SP"),  # Policy param length past the end
        ("00 10 aa", 11, "RAND"),  # RAND len past the end
        ("ff ff", 4, "SIGN"),  # Signature len past the end
        ("00 4003 00", 2, "PKE"),
        ("00 01 01 0009", 14, "IDR"),
        ("00 01 09 00000000", 13, "TR"),  # unknown TS type in TR
        ("00 0001 00 00 000000 0001", 16, "TP"),
        ("00 0001 00 00 000000 0000 0002 00", 17, "TICKET"),
        ("00 00 0003 00", 21, "GEN_EXT"),
        ("00 01 01 0100", 26, "SAKKE"),
        ("00 0005 00", 22, "IBAKE"),
    ],
)
def test_wrong_lengths(hex_payloads: str, first: int, payload: str) -> None:
    hdr = bytearray(bytes.fromhex("01000000123456780000"))
    hdr[2] = first
    with pytest.raises(MikeyDecodeError) as ei:
        Message.decode(bytes(hdr) + bytes.fromhex(hex_payloads.replace(" ", "")))
    assert ei.value.payload == payload
    assert ei.value.offset is not None and ei.value.offset >= 10


def test_unknown_dh_group_is_a_typed_decode_error() -> None:
    """RFC 3830 §6.4: an unknown DH-Group leaves the DH value's length unknown; the error says which group."""
    hdr = bytearray(bytes.fromhex("01000000123456780000"))
    hdr[2] = 3
    with pytest.raises(UnknownDHGroupDecodeError) as ei:
        Message.decode(bytes(hdr) + bytes.fromhex("00 07".replace(" ", "")) + bytes(96))
    e = ei.value
    assert e.group == 7 and e.payload == "DH" and e.offset == 11 and e.err_no == 12
    assert isinstance(e, MikeyDecodeError) and "DH-Group 7" in e.message
    # Other DH decode failures (a truncated value, an unknown KV type) are not this error.
    for tail in ("00 01" + "00" * 20, "00 01" + "00" * 96 + "03"):
        with pytest.raises(MikeyDecodeError) as other:
            Message.decode(bytes(hdr) + bytes.fromhex(tail.replace(" ", "")))
        assert other.value.payload == "DH" and not isinstance(other.value, UnknownDHGroupDecodeError)


@pytest.mark.parametrize(
    ("hex_sub", "first", "payload"),
    [
        ("00 10 0001 aa 0005 bb", 20, "KEY_DATA"),  # salt length past the end
        ("00 30 0001 aa", 20, "KEY_DATA"),  # salt length missing
        ("00 03 0001 aa", 20, "KEY_DATA"),  # unknown KV type
        ("00 01 0001 aa 05 00", 20, "KEY_DATA"),  # SPI length past the end
        ("00 02 0001 aa 00", 20, "KEY_DATA"),  # Valid To length missing
        ("00 02 0001 aa 01 00 03 00", 20, "KEY_DATA"),  # Valid To past the end
        ("00 02 0001 aa 09", 20, "KEY_DATA"),  # Valid From past the end
        ("00 63 00", 25, "ECCPT"),  # unknown curve
        ("00 10 0005", 24, "SK"),
    ],
)
def test_wrong_lengths_in_sub_payloads(hex_sub: str, first: int, payload: str) -> None:
    with pytest.raises(MikeyDecodeError) as ei:
        decode_sub_payloads(bytes.fromhex(hex_sub.replace(" ", "")), first)
    assert ei.value.payload == payload and ei.value.offset is not None


def test_bad_generic_id_maps() -> None:
    base = bytes.fromhex("01 0e 00 01 00000001 01 02".replace(" ", ""))
    for tail in ("01", "01 00 02 01", "01 00 01 01 00", "01 00 00 0004 aabb", "01 00 00 0000", "01 00 00 0000 03 aa"):
        with pytest.raises(MikeyDecodeError) as ei:
            Message.decode(base + bytes.fromhex(tail.replace(" ", "")))
        assert ei.value.payload == "HDR"


# --- sub-payload chains and text forms ---------------------------------------------------------------


def test_sub_payload_chain_next_payload_octets() -> None:
    a, b = KeyDataPayload(0, b"\x01"), KeyDataPayload(2, b"\x02")
    raw = encode_sub_payloads([a, b])
    assert raw[0] == 20 and raw[5] == 0  # next payload: Key data, then Last
    assert decode_sub_payloads(raw) == [a, b]
    assert decode_sub_payloads(bytearray(raw)) == [a, b]
    with pytest.raises(MikeyDecodeError):
        decode_sub_payloads(b"")  # the first sub-payload is implied, so it must be there
    assert encode_sub_payloads([]) == b""


def test_parse_text_forms() -> None:
    raw = MESSAGES["dt/PSK_INIT"].encode()
    b64 = base64.b64encode(raw).decode()
    for text in (
        raw.hex(),
        raw.hex().upper(),
        "0x" + raw.hex(),
        " ".join(raw.hex()[i : i + 8] for i in range(0, len(raw.hex()), 8)),
        b64,
        b64[:10] + "\n" + b64[10:],
        f"mikey {b64}",
        f"mikey\t{b64}",
        f"a=key-mgmt:mikey {b64}",
        f"KeyMgmt: mikey {b64}",
    ):
        assert parse_text(text) == raw, text
    for bad in ("not base64!", "mikey %%%", "abc"):
        with pytest.raises(MikeyDecodeError):
            parse_text(bad)


def test_encode_errors_are_mikey_errors() -> None:
    with pytest.raises(MikeyEncodeError):
        Message(CommonHeader(0, 1), (ErrorPayload(-1),)).encode()
    with pytest.raises(MikeyError):
        Message(CommonHeader(256, 1)).encode()


# --- hypothesis ------------------------------------------------------------------------------------


@settings(max_examples=1000, deadline=None)
@given(message_strategy())
def test_random_message_roundtrip(m: Message) -> None:
    raw, offsets = m.encode_with_offsets()
    d = Message.decode(raw)
    assert d == m
    assert d.offsets == offsets
    assert d.encode() == raw
    json.dumps(d.to_dict())


# --- decoded objects behave like constructed ones ------------------------------------------------------


def test_decoded_objects_pickle_copy_replace() -> None:
    import copy
    import dataclasses
    import pickle

    for name in ("dt/PSK_INIT", "dt/TRANSFER_INIT", "dt/SAKKE", "pt/DH"):
        d = Message.decode(MESSAGES[name].encode())
        assert pickle.loads(pickle.dumps(d)) == d
        assert copy.deepcopy(d) == d and copy.copy(d) == d
        assert dataclasses.replace(d, payloads=d.payloads[:1]).payloads == d.payloads[:1]
        h = dataclasses.replace(d.header, csb_id=7)
        assert h.csb_id == 7 and h.cs_id_map == d.header.cs_id_map
        assert dataclasses.asdict(d.header)["csb_id"] == d.header.csb_id
        for p in d.payloads:
            assert type(p).__dict__.get("__slots__") is not None  # still the slotted class
            assert dataclasses.is_dataclass(p) and pickle.loads(pickle.dumps(p)) == p


def test_registry_changes_reach_the_decoder() -> None:
    from dataclasses import dataclass

    from mikey.wire import REGISTRY, Payload
    from mikey.wire.buffer import Reader

    @dataclass(frozen=True, slots=True)
    class Experimental(Payload):
        value: int

        TYPE = 250
        NAME = "EXPERIMENTAL"

        @classmethod
        def decode_body(cls, r: Reader) -> Experimental:
            return cls(r.u8())

        def encode_body(self, w: Any) -> None:
            w.u8(self.value)

    raw = Message(CommonHeader(0, 1), (Experimental(7),)).encode()  # type: ignore[arg-type]
    with pytest.raises(MikeyDecodeError):
        Message.decode(raw)
    REGISTRY[250] = Experimental
    try:
        assert Message.decode(raw).payloads == (Experimental(7),)
        with pytest.raises(MikeyDecodeError) as ei:
            Message.decode(raw[:-1])
        assert ei.value.payload == "EXPERIMENTAL"
    finally:
        del REGISTRY[250]
    with pytest.raises(MikeyDecodeError):
        Message.decode(raw)
