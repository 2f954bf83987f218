"""The ``mikey`` command line: decode, initiate/respond/complete (PSK, RFC 3830 §3.1), speed, exit codes."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mikey.cli import main
from mikey.constants import (
    PRF,
    CacheType,
    CertType,
    DataType,
    DHGroup,
    ECCCurve,
    EncrAlg,
    GenExtType,
    HashFunc,
    IDRole,
    IDType,
    KeyDataType,
    MacAlg,
    PayloadType,
    RANDRole,
    SakkeIDScheme,
    SakkeParams,
    SecretKeyType,
    SignatureType,
    SRTPParam,
    TicketType,
    TSRole,
    TSType,
)
from mikey.crypto import prf as prf_crypto
from mikey.wire import (
    CertPayload,
    ChashPayload,
    CommonHeader,
    DhPayload,
    EccptPayload,
    ErrorPayload,
    EskPayload,
    GeneralExtensionPayload,
    IbakePayload,
    IdPayload,
    IdrPayload,
    KemacPayload,
    KeyDataPayload,
    Message,
    PkePayload,
    RandPayload,
    RandrPayload,
    SakkePayload,
    SecurityPolicyPayload,
    SignPayload,
    SkPayload,
    TicketPayload,
    TicketPolicyPayload,
    TimestampPayload,
    TrPayload,
    VerificationPayload,
    encode_sub_payloads,
)
from mikey.wire.payloads.rfc6267 import ecc_point_field_length

VECTORS = Path(__file__).parent / "vectors"
SRC = Path(__file__).resolve().parent.parent / "src"

PSK = "000102030405060708090a0b0c0d0e0f"
TGK = "101112131415161718191a1b1c1d1e1f"
RAND = "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"
CSB = "0badcafe"
NOW = 1_700_000_000


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code, out, _ = run(capsys, *argv, "--json")
    return code, json.loads(out)


# --- sample messages -----------------------------------------------------------------------------


def all_payloads_message() -> bytes:
    """One message carrying every payload type, with clear sub-payload chains where they can be."""
    key_data = encode_sub_payloads([KeyDataPayload(KeyDataType.TGK, bytes(range(16)))])
    tp_data = bytes([PayloadType.RAND]) + encode_sub_payloads([RandPayload(bytes(16))])
    payloads = (
        TimestampPayload(TSType.NTP_UTC, bytes(8)),
        TrPayload(TSRole.TIME_OF_ISSUE, TSType.NTP_UTC, bytes(8)),
        RandPayload(bytes(range(16))),
        RandrPayload(RANDRole.INITIATOR, bytes(16)),
        IdPayload(IDType.URI, b"sip:alice@example.org"),
        IdrPayload(IDRole.RESPONDER, IDType.URI, b"sip:bob@example.org"),
        CertPayload(CertType.X509V3, b"\x30\x03\x02\x01\x01"),
        ChashPayload(HashFunc.SHA_256, bytes(32)),
        DhPayload(DHGroup.OAKLEY_2, bytes(128)),
        PkePayload(CacheType.NO_CACHE, key_data),
        KemacPayload(EncrAlg.NULL, key_data, MacAlg.NULL, b""),
        SecurityPolicyPayload.srtp(0, {SRTPParam.ENCR_ALG: 1}),
        GeneralExtensionPayload(GenExtType.VENDOR_ID, b"abc"),
        TicketPolicyPayload(TicketType.MIKEY_BASE_TICKET, 1, 1, 0, 0, tp_data),
        TicketPayload(TicketType.MIKEY_BASE_TICKET, 1, 1, 0, 0, tp_data, b"tick", b""),
        EskPayload(encode_sub_payloads([SkPayload(SecretKeyType.SK, bytes(16))])),
        IbakePayload(encode_sub_payloads([EccptPayload(ECCCurve.P_256, bytes(ecc_point_field_length(ECCCurve.P_256) or 0))])),
        SakkePayload(SakkeParams.PARAMETER_SET_1, SakkeIDScheme.TEL_URI_MONTHLY, bytes(273)),
        VerificationPayload(MacAlg.HMAC_SHA_1_160, bytes(20)),
        ErrorPayload(1),
        SignPayload(SignatureType.RSA_PKCS1_V1_5, bytes(16)),
    )
    return Message(CommonHeader(DataType.PSK_INIT, 0x01020304), payloads).encode()


def streamwide_messages() -> list[tuple[str, str]]:
    data = json.loads((VECTORS / "mikey_sakke_streamwide.json").read_text())
    return [(c["name"], c["sdp_key_mgmt_value"]) for c in data["cases"]["i_messages"]]


def alea_messages() -> list[tuple[str, str]]:
    data = json.loads((VECTORS / "mikey_sakke_alea_via_streamwide.json").read_text())
    return [(c["name"], c["i_message_hex"]) for c in data["cases"]]


def gstreamer_messages() -> list[str]:
    data = json.loads((VECTORS / "mikey_messages_gstreamer.json").read_text())
    out = []
    for c in data["cases"]:
        for key in ("message", "message_derived", "full_message_derived"):
            if key in c:
                out.append(c[key])
    return out


def initiate_args(*extra: str) -> list[str]:
    return [
        "initiate", "--mode", "psk", "--psk", PSK, "--tgk", TGK, "--rand", RAND, "--csb-id", CSB,
        "--now", str(NOW), *extra,
    ]


# --- decode ------------------------------------------------------------------------------------


def test_decode_every_payload_type_json(capsys: pytest.CaptureFixture[str]) -> None:
    """Every payload of INDEX.md §2.2 decodes and is named; clear sub-payloads are nested (RFC 3830 §6)."""
    code, obj = run_json(capsys, "decode", all_payloads_message().hex())
    assert code == 0
    types = [p["type"] for p in obj["payloads"]]
    assert types == [
        "HDR", "T", "TR", "RAND", "RANDR", "ID", "IDR", "CERT", "CHASH", "DH", "PKE", "KEMAC", "SP",
        "GEN_EXT", "TP", "TICKET", "ESK", "IBAKE", "SAKKE", "V", "ERR", "SIGN",
    ]
    by_type = {p["type"]: p for p in obj["payloads"]}
    kemac = by_type["KEMAC"]
    assert kemac["encr_alg_name"] == "NULL"
    assert [k["type"] for k in kemac["key_data"]] == ["KEY_DATA"]
    assert kemac["key_data"][0]["key"] == bytes(range(16)).hex()
    assert kemac["key_data"][0]["key_type_name"] == "TGK"
    assert by_type["PKE"]["key_data"][0]["type"] == "KEY_DATA"
    assert [p["type"] for p in by_type["TP"]["tp_payloads"]] == ["RAND"]
    assert [p["type"] for p in by_type["TICKET"]["tp_payloads"]] == ["RAND"]
    assert [p["type"] for p in by_type["ESK"]["sub_payloads"]] == ["SK"]
    assert [p["type"] for p in by_type["IBAKE"]["sub_payloads"]] == ["ECCPT"]
    assert by_type["HDR"]["data_type_name"] == "PSK_INIT"
    assert by_type["ERR"]["error_no"] == 1
    assert by_type["IDR"]["id_role_name"] == "RESPONDER"
    # Offsets and lengths tile the message exactly.
    total = sum(p["length"] for p in obj["payloads"])
    assert total == len(all_payloads_message()) == obj["length"]
    assert obj["ok"] is True


def test_decode_every_payload_type_text(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "decode", all_payloads_message().hex())
    assert code == 0
    assert out.startswith("MIKEY message, ")
    for name in ("HDR (Common Header", "KEMAC (Key data transport", "KEY_DATA (Key data sub-payload)",
                 "SIGN (Signature", "TICKET (Ticket", "ECCPT (Elliptic Curve point)", "SK (Secret Key"):
        assert name in out
    assert "data_type: 0 (PSK_INIT)" in out
    assert "encr_alg: 0 (NULL)" in out
    assert 'sip:alice@example.org"' in out  # ID data shown as text too


@pytest.mark.parametrize(("name", "text"), streamwide_messages() + alea_messages())
def test_decode_vendor_sakke_messages(capsys: pytest.CaptureFixture[str], name: str, text: str) -> None:
    """Vendor MIKEY-SAKKE I_MESSAGEs (3GPP TS 33.180 style, RFC 6509) decode fully, in both formats."""
    code, obj = run_json(capsys, "decode", text)
    assert code == 0, name
    types = [p["type"] for p in obj["payloads"]]
    assert types[0] == "HDR" and types[-1] == "SIGN"
    assert "SAKKE" in types and "IDR" in types
    hdr = obj["payloads"][0]
    assert hdr["data_type_name"] == "SAKKE"
    sakke = next(p for p in obj["payloads"] if p["type"] == "SAKKE")
    assert sakke["params_name"] == "PARAMETER_SET_1"
    code, out, _ = run(capsys, "decode", text)
    assert code == 0
    assert "data_type: 26 (SAKKE)" in out
    assert "s_type: 2 (ECCSI)" in out


@pytest.mark.parametrize("hexmsg", gstreamer_messages())
def test_decode_gstreamer_messages(capsys: pytest.CaptureFixture[str], hexmsg: str) -> None:
    code, obj = run_json(capsys, "decode", hexmsg)
    assert code == 0
    assert obj["payloads"][0]["csb_id"] == "12345678"
    kemacs = [p for p in obj["payloads"] if p["type"] == "KEMAC"]
    for k in kemacs:  # NULL-encrypted KEMAC: the TEK is shown in place
        assert k["key_data"][0]["key"] == "102030405060708090a0b0c0d0e0f010"


def test_decode_input_formats(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                              tmp_path: Path) -> None:
    data = all_payloads_message()
    b64 = base64.b64encode(data).decode()
    expected = run_json(capsys, "decode", data.hex())[1]
    for text in (data.hex(), data.hex().upper(), "0x" + data.hex(), b64, f"mikey {b64}", f"a=key-mgmt:mikey {b64}"):
        assert run_json(capsys, "decode", text) == (0, expected), text
    # @FILE
    f = tmp_path / "msg.txt"
    f.write_text(f"mikey {b64}\n")
    assert run_json(capsys, "decode", f"@{f}") == (0, expected)
    # @FILE holding the binary message itself (MIKEY is binary; it starts with version octet 0x01)
    binary = tmp_path / "msg.bin"
    binary.write_bytes(data)
    assert run_json(capsys, "decode", f"@{binary}") == (0, expected)
    code, out, err = run(capsys, "decode", f"@{binary}")
    assert code == 0 and out.startswith(f"MIKEY message, {len(data)} octets") and not err
    # stdin, both with no argument and with '-'
    for argv in (["decode", "--json"], ["decode", "-", "--json"]):
        monkeypatch.setattr(sys, "stdin", io.StringIO(data.hex() + "\n"))
        code = main(argv)
        assert code == 0
        assert json.loads(capsys.readouterr().out) == expected
    # the global --json before the command works too
    assert main(["--json", "decode", b64]) == 0
    assert json.loads(capsys.readouterr().out) == expected


def test_decode_errors_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    data = all_payloads_message()
    code, obj = run_json(capsys, "decode", data[:-3].hex())
    assert code == 1
    assert obj["ok"] is False
    assert obj["error"]["kind"] == "decode"
    assert obj["error"]["err_no"] == 12
    assert obj["error"]["payload"] == "SIGN"
    assert isinstance(obj["error"]["offset"], int)
    code, out, _ = run(capsys, "decode", "0100")
    assert code == 1
    assert "cannot decode" in out and "HDR" in out and "offset" in out
    code, out, _ = run(capsys, "decode", "not a message!")
    assert code == 1
    assert "not hex, base64" in out


def nested_tp_message(depth: int) -> bytes:
    """A TP payload whose TP data holds a TP payload ... *depth* times (RFC 6043 §6.10 TP data is a payload chain)."""
    inner = b""
    for _ in range(depth):
        tp = TicketPolicyPayload(TicketType.MIKEY_BASE_TICKET, 1, 1, 0, 0, inner)
        inner = bytes([PayloadType.TP]) + encode_sub_payloads([tp])
    tp = TicketPolicyPayload(TicketType.MIKEY_BASE_TICKET, 1, 1, 0, 0, inner)
    return Message(CommonHeader(DataType.PSK_INIT, 1), (tp,)).encode()


def test_decode_deeply_nested_payloads(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """1,500 nested TP payloads (16,520 octets) decode in the library; the dissector refuses them cleanly."""
    data = nested_tp_message(1500)
    assert len(data) == 16_520 and Message.decode(data).payloads[0].NAME == "TP"
    f = tmp_path / "nested.bin"
    f.write_bytes(data)
    for source in (data.hex(), f"@{f}"):
        code, obj = run_json(capsys, "decode", source)
        assert code == 1 and obj["error"]["kind"] == "decode" and "nested more than 32 levels" in obj["error"]["message"]
        code, out, err = run(capsys, "decode", source)
        assert code == 1 and not err and out.count("\n") == 1 and "nested more than 32 levels" in out
    # 32 levels are dissected in full
    code, obj = run_json(capsys, "decode", nested_tp_message(31).hex())
    level, depth = obj["payloads"][1], 0
    while "tp_payloads" in level:
        level, depth = level["tp_payloads"][0], depth + 1
    assert code == 0 and depth == 31


def test_respond_reads_binary_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, *initiate_args("--raw"))
    f = tmp_path / "imsg.bin"
    f.write_bytes(bytes.fromhex(out.strip()))
    code, resp = run_json(capsys, "respond", "--mode", "psk", "--psk", PSK, "--imsg", f"@{f}", "--now", str(NOW))
    assert code == 0 and resp["authenticated"] is True and resp["csb_id"] == CSB
    # printable text that is not hex/base64 is still reported as such, not taken as binary
    f.write_text("hello, world\n")
    code, out, err = run(capsys, "decode", f"@{f}")
    assert code == 1 and "not hex, base64" in out and not err


def test_decode_validate(capsys: pytest.CaptureFixture[str]) -> None:
    # The every-payload message is no valid PSK I_MESSAGE.
    code, obj = run_json(capsys, "decode", "--validate", all_payloads_message().hex())
    assert code == 1
    assert obj["valid"] is False and obj["violations"]
    code, out, _ = run(capsys, "decode", "--validate", all_payloads_message().hex())
    assert code == 1 and "INVALID" in out
    # A real PSK I_MESSAGE is valid.
    code, out, _ = run(capsys, *initiate_args("--raw"))
    code, obj = run_json(capsys, "decode", "--validate", out.strip())
    assert code == 0
    assert obj["valid"] is True and obj["violations"] == []


# --- exit codes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["initiate", "--mode", "psk"],  # --psk missing
        ["initiate", "--mode", "nope", "--psk", PSK],
        ["initiate", "--mode", "psk", "--psk", "xyz"],
        ["initiate", "--mode", "psk", "--psk", PSK, "--encr", "des"],
        ["initiate", "--mode", "psk", "--psk", PSK, "--csb-id", "100000000"],
        ["initiate", "--mode", "psk", "--psk", PSK, "--now", "yesterday"],
        ["complete", "--mode", "psk", "--psk", PSK],  # --imsg missing
        ["decode", "@/nonexistent/file"],
        # AES-KW needs the Key data to be a multiple of 8 octets: a 16-octet TGK cannot be sent
        ["initiate", "--mode", "psk", "--psk", PSK, "--tgk", TGK, "--encr", "aes-kw-128"],
    ],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert main(argv) == 2
    capsys.readouterr()


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "decode" in capsys.readouterr().out
    assert main(["initiate", "--mode", "psk", "--help"]) == 0
    assert "--psk" in capsys.readouterr().out


# --- PSK exchange --------------------------------------------------------------------------------


def expected_sessions(tgk: str, csb: str, rand: str, n: int, prf: int = PRF.MIKEY_1) -> list[tuple[str, str]]:
    """SRTP master key/salt per CS recomputed from the TGK (RFC 3830 §4.1.3)."""
    out = []
    for cs_id in range(1, n + 1):
        key = prf_crypto.derive_tek(bytes.fromhex(tgk), cs_id, int(csb, 16), bytes.fromhex(rand), 16, prf)
        salt = prf_crypto.derive_srtp_salt(bytes.fromhex(tgk), cs_id, int(csb, 16), bytes.fromhex(rand), 14, prf)
        out.append((key.hex(), salt.hex()))
    return out


def test_psk_round_trip(capsys: pytest.CaptureFixture[str]) -> None:
    """initiate -> respond -> complete, deterministic with --now and fixed TGK/RAND/CSB ID (RFC 3830 §3.1)."""
    code, init = run_json(capsys, *initiate_args("--ssrc", "0x11223344", "--ssrc", "0", "--verify", "--show-keys"))
    assert code == 0
    assert init["ok"] is True
    assert init["tgk"] == TGK and init["csb_id"] == CSB and init["rand"] == RAND
    # Deterministic: the same options give the same I_MESSAGE.
    assert run_json(capsys, *initiate_args("--ssrc", "0x11223344", "--ssrc", "0", "--verify", "--show-keys"))[1] == init
    keys = expected_sessions(TGK, CSB, RAND, 2)
    assert [(cs["srtp_master_key"], cs["srtp_master_salt"]) for cs in init["crypto_sessions"]] == keys
    assert [cs["ssrc"] for cs in init["crypto_sessions"]] == ["11223344", "00000000"]

    imsg = init["i_message"]
    msg = Message.decode(bytes.fromhex(imsg))
    assert [p.NAME for p in msg.payloads] == ["T", "RAND", "SP", "KEMAC"]
    assert msg.header.v is True

    code, resp = run_json(capsys, "respond", "--mode", "psk", "--psk", PSK, "--imsg", imsg,
                          "--now", str(NOW + 2), "--ssrc", "cafebabe", "--show-keys")
    assert code == 0
    assert resp["ok"] is True and resp["authenticated"] is True
    assert resp["tgk"] == TGK and resp["csb_id"] == CSB and resp["rand"] == RAND
    assert [(cs["srtp_master_key"], cs["srtp_master_salt"]) for cs in resp["crypto_sessions"]] == keys
    assert [cs["ssrc"] for cs in resp["crypto_sessions"]] == ["11223344", "cafebabe"]
    assert [cs["roc"] for cs in resp["crypto_sessions"]] == [0, 0]
    assert [cs["cs_id"] for cs in resp["crypto_sessions"]] == [1, 2]
    rmsg = resp["r_message"]
    assert Message.decode(bytes.fromhex(rmsg)).data_type == DataType.PSK_RESP

    code, comp = run_json(capsys, "complete", "--mode", "psk", "--psk", PSK, "--imsg", imsg, "--rmsg", rmsg,
                          "--now", str(NOW + 3), "--show-keys")
    assert code == 0
    assert comp["ok"] is True and comp["authenticated"] is True
    assert comp["crypto_sessions"] == resp["crypto_sessions"]
    assert comp["tgk"] == TGK

    # Same exchange with the messages in other encodings.
    b64 = base64.b64encode(bytes.fromhex(rmsg)).decode()
    code, comp2 = run_json(capsys, "complete", "--mode", "psk", "--psk", PSK, "--imsg",
                           "mikey " + base64.b64encode(bytes.fromhex(imsg)).decode(), "--rmsg", b64, "--show-keys")
    assert code == 0 and comp2 == comp


def _secret_free(obj: dict[str, Any], *secrets: str) -> bool:
    text = json.dumps(obj)
    return not any(s in text for s in secrets)


def test_json_shows_keys_only_with_show_keys(capsys: pytest.CaptureFixture[str]) -> None:
    """No secret (TGK, SRTP master key or salt, PSK) in any command's JSON unless --show-keys asks for it."""
    keys = expected_sessions(TGK, CSB, RAND, 1)
    secrets = (TGK, PSK, *keys[0])
    code, init = run_json(capsys, *initiate_args("--verify"))
    assert code == 0 and _secret_free(init, *secrets) and "tgk" not in init
    assert init["crypto_sessions"][0]["fingerprint"] and "srtp_master_key" not in init["crypto_sessions"][0]
    code, resp = run_json(capsys, "respond", "--mode", "psk", "--psk", PSK, "--imsg", init["i_message"],
                          "--now", str(NOW))
    assert code == 0 and _secret_free(resp, *secrets)
    code, comp = run_json(capsys, "complete", "--mode", "psk", "--psk", PSK, "--imsg", init["i_message"],
                          "--rmsg", resp["r_message"])
    assert code == 0 and _secret_free(comp, *secrets)
    assert comp["crypto_sessions"] == resp["crypto_sessions"] == init["crypto_sessions"]  # same fingerprints
    code, out, _ = run(capsys, "respond", "--mode", "psk", "--psk", PSK, "--imsg", init["i_message"], "--now", str(NOW))
    assert code == 0 and not any(s in out for s in secrets)


@pytest.mark.parametrize(
    ("encr", "mac", "prf"),
    [
        ("null", "null", "mikey-1"),
        ("aes-cm-128", "hmac-sha1", "mikey-256"),
        ("aes-kw-128", "hmac-sha256", "mikey-1"),
        ("aes-cm-256", "hmac-sha256", "mikey-256"),
    ],
)
def test_psk_algorithms(capsys: pytest.CaptureFixture[str], encr: str, mac: str, prf: str) -> None:
    # AES-KW (RFC 3394) wraps multiples of 8 octets: a 20-octet TGK makes a 24-octet Key data sub-payload.
    tgk = ["--tgk", TGK + "20212223"] if encr == "aes-kw-128" else []
    null = ["--allow-null-security"] if "null" in (encr, mac) else []
    code, init = run_json(capsys, *initiate_args("--encr", encr, "--mac", mac, "--prf", prf, "--verify",
                                                 "--show-keys", *null), *tgk)
    assert code == 0
    kemac = Message.decode(bytes.fromhex(init["i_message"])).find(KemacPayload)
    assert kemac is not None and kemac.encr_alg.name.lower().replace("_", "-") == encr
    code, resp = run_json(capsys, "respond", "--mode", "psk", "--psk", PSK, "--imsg", init["i_message"],
                          "--now", str(NOW), "--show-keys", *null)
    assert code == 0
    prf_no = PRF.MIKEY_1 if prf == "mikey-1" else PRF.PRF_HMAC_SHA_256
    assert resp["prf"] == prf_no
    keys = expected_sessions(init["tgk"], CSB, RAND, 1, prf_no)
    assert [(cs["srtp_master_key"], cs["srtp_master_salt"]) for cs in resp["crypto_sessions"]] == keys
    code, comp = run_json(capsys, "complete", "--mode", "psk", "--psk", PSK, "--imsg", init["i_message"],
                          "--rmsg", resp["r_message"], "--show-keys", *null)
    assert code == 0 and comp["crypto_sessions"] == resp["crypto_sessions"]
    assert resp["extras"]["null_security"] is comp["extras"]["null_security"] is bool(null)
    assert resp["authenticated"] is comp["authenticated"] is (mac != "null")


def test_null_security_refused_unless_allowed(capsys: pytest.CaptureFixture[str]) -> None:
    """RFC 3830 §4.2.3/§4.2.4: NULL encryption/MAC only with --allow-null-security, on every command."""
    code, out, err = run(capsys, *initiate_args("--encr", "null", "--mac", "null"))
    assert code == 2 and "--allow-null-security" in out and not err
    code, init = run_json(capsys, *initiate_args("--encr", "null", "--mac", "null", "--verify",
                                                 "--allow-null-security"))
    assert code == 0 and init["extras"]["null_security"] is True
    imsg = init["i_message"]
    # respond: exit 1, one line naming the switch, and the Error message with Error no 4 (Invalid EA)
    code, out, err = run(capsys, "respond", "--mode", "psk", "--psk", PSK, "--imsg", imsg, "--now", str(NOW))
    assert code == 1 and not err
    (line,) = [ln for ln in out.splitlines() if ln.startswith("rejected:")]
    assert "--allow-null-security" in line and line.endswith("(Error no 4)")
    code, rej = run_json(capsys, "respond", "--mode", "psk", "--psk", PSK, "--imsg", imsg, "--now", str(NOW))
    assert code == 1 and rej["error"]["err_no"] == 4 and "tgk" not in rej
    err_msg = Message.decode(bytes.fromhex(rej["r_message"]))
    assert [p.error_no for p in err_msg.payloads if isinstance(p, ErrorPayload)] == [4]
    assert err_msg.find(VerificationPayload) is None  # unauthenticated
    code, comp = run_json(capsys, "complete", "--mode", "psk", "--psk", PSK, "--imsg", imsg)
    assert code == 1 and comp["error"]["err_no"] == 4
    # a NULL MAC alone gives Error no 3 (Invalid MA)
    code, init3 = run_json(capsys, *initiate_args("--mac", "null", "--allow-null-security"))
    code, rej = run_json(capsys, "respond", "--mode", "psk", "--psk", PSK, "--imsg", init3["i_message"],
                         "--now", str(NOW))
    assert code == 1 and rej["error"]["err_no"] == 3
    # accepted with the switch, and marked in JSON and text
    code, resp = run_json(capsys, "respond", "--mode", "psk", "--psk", PSK, "--imsg", imsg, "--now", str(NOW),
                          "--allow-null-security")
    assert code == 0 and resp["authenticated"] is False and resp["extras"]["null_security"] is True
    code, out, _ = run(capsys, "respond", "--mode", "psk", "--psk", PSK, "--imsg", imsg, "--now", str(NOW),
                       "--allow-null-security")
    assert code == 0 and "authenticated:  no" in out and "NULL security:  yes" in out
    code, comp = run_json(capsys, "complete", "--mode", "psk", "--psk", PSK, "--imsg", imsg, "--rmsg",
                          resp["r_message"], "--allow-null-security")
    assert code == 0 and comp["extras"]["null_security"] is True
    assert comp["crypto_sessions"] == resp["crypto_sessions"]


def test_psk_without_verification(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = run(capsys, *initiate_args("--raw"))
    assert code == 0
    imsg = out.strip()
    # respond reads the I_MESSAGE from stdin
    monkeypatch.setattr(sys, "stdin", io.StringIO(imsg))
    code, resp = run_json(capsys, "respond", "--mode", "psk", "--psk", PSK, "--now", str(NOW))
    assert code == 0
    assert resp["r_message"] is None
    # or as the raw binary message on stdin
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(bytes.fromhex(imsg))))
    assert run_json(capsys, "respond", "--mode", "psk", "--psk", PSK, "--now", str(NOW)) == (0, resp)
    code, comp = run_json(capsys, "complete", "--mode", "psk", "--psk", PSK, "--imsg", imsg)
    assert code == 0
    assert comp["authenticated"] is False
    assert comp["crypto_sessions"] == resp["crypto_sessions"]


def test_psk_text_output_hides_keys(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, *initiate_args("--verify"))
    assert code == 0
    assert "I_MESSAGE:" in out and "a=key-mgmt:mikey " in out and f"CSB ID:         {CSB}" in out
    keys = expected_sessions(TGK, CSB, RAND, 1)
    assert TGK not in out and keys[0][0] not in out
    code, out, _ = run(capsys, *initiate_args("--show-keys"))
    assert TGK in out and keys[0][0] in out and keys[0][1] in out


def test_dh_private_only_with_show_keys(capsys: pytest.CaptureFixture[str]) -> None:
    """initiate keeps the DH exponent (which the stateless complete needs) out of its output unless
    --show-keys asks for it; with it, the initiate -> respond -> complete flow works (RFC 4650)."""
    x_i = "5eed1234567890abcdef0123456789abcdef0123456789abcdef"
    base = ["initiate", "--mode", "dhhmac", "--psk", PSK, "--id-r", "sip:bob@example.org", "--dh-private", x_i,
            "--now", str(NOW)]
    code, out, _ = run(capsys, *base)
    assert code == 0 and x_i not in out and "not shown:      dh_private" in out
    code, init = run_json(capsys, *base)
    assert code == 0 and "dh_private" not in init and x_i not in json.dumps(init) and init["dh_group"] == 0
    code, init = run_json(capsys, *base, "--show-keys")
    assert code == 0 and init["dh_private"] == x_i and init["dh_group"] == 0
    code, out, _ = run(capsys, *base, "--show-keys")
    assert f"dh_private: {x_i}" in out
    code, resp = run_json(capsys, "respond", "--mode", "dhhmac", "--psk", PSK, "--imsg", init["i_message"],
                          "--now", str(NOW))
    assert code == 0 and "tgk" not in resp
    code, comp = run_json(capsys, "complete", "--mode", "dhhmac", "--psk", PSK, "--imsg", init["i_message"],
                          "--rmsg", resp["r_message"], "--dh-private", init["dh_private"], "--now", str(NOW))
    assert code == 0 and comp["authenticated"] and comp["crypto_sessions"] == resp["crypto_sessions"]


def test_respond_rejects_wrong_psk(capsys: pytest.CaptureFixture[str]) -> None:
    """A MAC failure gives ok=false, Error no 0, and an unauthenticated Error message (RFC 3830 §5.1.2)."""
    code, init = run_json(capsys, *initiate_args())
    code, resp = run_json(capsys, "respond", "--mode", "psk", "--psk", "ff" * 16, "--imsg", init["i_message"],
                          "--now", str(NOW))
    assert code == 1
    assert resp["ok"] is False
    assert resp["error"]["kind"] == "authentication"
    assert resp["error"]["err_no"] == 0
    err = Message.decode(bytes.fromhex(resp["r_message"]))
    assert err.data_type == DataType.ERROR
    assert err.csb_id == int(CSB, 16)
    assert [p.error_no for p in err.payloads if isinstance(p, ErrorPayload)] == [0]
    code, out, _ = run(capsys, "respond", "--mode", "psk", "--psk", "ff" * 16, "--imsg", init["i_message"],
                       "--now", str(NOW))
    assert code == 1
    assert "rejected: authentication" in out and "Error message: " in out


def test_respond_rejects_stale_timestamp(capsys: pytest.CaptureFixture[str]) -> None:
    """A timestamp outside the clock skew gives Error no 1 (RFC 3830 §5.4)."""
    code, init = run_json(capsys, *initiate_args())
    code, resp = run_json(capsys, "respond", "--mode", "psk", "--psk", PSK, "--imsg", init["i_message"],
                          "--now", str(NOW + 3600))
    assert code == 1
    assert resp["error"]["err_no"] == 1
    err = Message.decode(bytes.fromhex(resp["r_message"]))
    assert [p.error_no for p in err.payloads if isinstance(p, ErrorPayload)] == [1]


def test_respond_rejects_garbage(capsys: pytest.CaptureFixture[str]) -> None:
    code, resp = run_json(capsys, "respond", "--mode", "psk", "--psk", PSK, "--imsg", "0100000000")
    assert code == 1
    assert resp["ok"] is False and resp["error"]["kind"] == "decode"


def test_complete_rejects_tampered_and_error_messages(capsys: pytest.CaptureFixture[str]) -> None:
    code, init = run_json(capsys, *initiate_args("--verify"))
    imsg = init["i_message"]
    code, resp = run_json(capsys, "respond", "--mode", "psk", "--psk", PSK, "--imsg", imsg, "--now", str(NOW))
    rmsg = bytearray(bytes.fromhex(resp["r_message"]))
    rmsg[-1] ^= 1
    code, comp = run_json(capsys, "complete", "--mode", "psk", "--psk", PSK, "--imsg", imsg, "--rmsg", rmsg.hex())
    assert code == 1
    assert comp["ok"] is False and comp["error"]["kind"] == "authentication" and comp["error"]["err_no"] == 0
    # The wrong PSK is caught on the Initiator's own I_MESSAGE.
    code, comp = run_json(capsys, "complete", "--mode", "psk", "--psk", "ff" * 16, "--imsg", imsg,
                          "--rmsg", resp["r_message"])
    assert code == 1 and comp["error"]["kind"] == "authentication"
    # The Responder's Error message is reported with its Error no.
    code, rej = run_json(capsys, "respond", "--mode", "psk", "--psk", PSK, "--imsg", imsg, "--now", str(NOW + 3600))
    code, comp = run_json(capsys, "complete", "--mode", "psk", "--psk", PSK, "--imsg", imsg, "--rmsg", rej["r_message"])
    assert code == 1
    assert comp["error"]["kind"] == "peer-error"
    assert comp["error"]["err_no"] == 1 and comp["error"]["err_nos"] == [1]
    # V set but no R_MESSAGE given: nothing was rejected, an input is missing (exit 2)
    code, _, err = run(capsys, "complete", "--mode", "psk", "--psk", PSK, "--imsg", imsg)
    assert code == 2 and "pass the verification message (--rmsg)" in err


def test_complete_with_identities(capsys: pytest.CaptureFixture[str]) -> None:
    """IDi and IDr enter the verification MAC (RFC 3830 §5.2); complete rebuilds them from the I_MESSAGE."""
    code, init = run_json(capsys, *initiate_args("--verify", "--id-i", "sip:alice@example.org",
                                                 "--id-r", "sip:bob@example.org"))
    assert code == 0
    assert init["initiator_id"] == "sip:alice@example.org"
    code, resp = run_json(capsys, "respond", "--mode", "psk", "--psk", PSK, "--imsg", init["i_message"],
                          "--now", str(NOW))
    assert code == 0
    code, comp = run_json(capsys, "complete", "--mode", "psk", "--psk", PSK, "--imsg", init["i_message"],
                          "--rmsg", resp["r_message"])
    assert code == 0 and comp["authenticated"] is True
    assert comp["responder_id"] == "sip:bob@example.org"


# --- speed ----------------------------------------------------------------------------------------


def test_speed_json_structure(capsys: pytest.CaptureFixture[str]) -> None:
    code, obj = run_json(capsys, "speed", "--quick")
    assert code == 0
    assert obj["baseline_hmac_sha1_us"] > 0
    assert obj["baselines"]["hmac-sha1"] == obj["baseline_hmac_sha1_us"]
    names = [r["name"] for r in obj["results"]]
    for expected in ("decode PSK I_MESSAGE", "encode PSK I_MESSAGE", "PSK initiator", "PSK responder"):
        assert expected in names
    for r in obj["results"]:
        assert set(r) >= {"name", "us_per_op", "ratio_to_baseline", "baseline"}
        assert r["us_per_op"] > 0
        assert r["baseline"] in obj["baselines"]
        assert r["ratio_to_baseline"] == pytest.approx(r["us_per_op"] / obj["baselines"][r["baseline"]])


def test_speed_text_and_filter(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "speed", "--quick", "decode")
    assert code == 0
    assert "decode PSK I_MESSAGE" in out and "PSK responder" not in out and "hmac-sha1" in out
    assert main(["speed", "--quick", "no-such-row"]) == 2


# --- the installed entry point ---------------------------------------------------------------------


def test_python_m_mikey_cli_subprocess() -> None:
    """``python -m mikey.cli`` (the console script's module) runs end to end in a fresh process."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
    init = subprocess.run(
        [sys.executable, "-m", "mikey.cli", *initiate_args("--raw")],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )
    assert init.returncode == 0, init.stderr
    dec = subprocess.run(
        [sys.executable, "-m", "mikey.cli", "decode", "--json"],
        input=init.stdout, capture_output=True, text=True, env=env, timeout=60, check=False,
    )
    assert dec.returncode == 0, dec.stderr
    assert [p["type"] for p in json.loads(dec.stdout)["payloads"]] == ["HDR", "T", "RAND", "SP", "KEMAC"]
    bad = subprocess.run(
        [sys.executable, "-m", "mikey", "decode", "0100"], capture_output=True, text=True, env=env, timeout=60,
        check=False,
    )
    assert bad.returncode == 1


def test_speed_rows_use_their_own_baseline() -> None:
    """Each row is compared with the baseline it names, all measured in the same run."""
    from mikey.cli.plugin_base import SpeedCase
    from mikey.cli.speed import run_speed

    cases = [
        SpeedCase("fake modexp", lambda: pow(3, 1 << 200, (1 << 1024) - 105), baseline="modexp1024"),
        SpeedCase("fake sign", lambda: None, baseline="rsa2048-sign"),
    ]
    baselines, rows = run_speed(["fake"], quick=True, cases=cases)
    assert set(baselines) == {"hmac-sha1", "modexp1024", "rsa2048-sign"}
    assert [(r.name, r.baseline) for r in rows] == [("fake modexp", "modexp1024"), ("fake sign", "rsa2048-sign")]
    for r in rows:
        assert r.ratio_to_baseline == pytest.approx(r.us_per_op / baselines[r.baseline])
