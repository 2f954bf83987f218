"""``mikey keys``: SRTP keys recovered from the I_MESSAGEs of a capture, as GStreamer caps, SDES and JSON."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from test_capture import NOW, PSK, A, B, pcap, sip, udp

from mikey.cli.main import main
from mikey.constants import EncrAlg
from mikey.modes.base import CryptoSessionSpec
from mikey.modes.psk import PskInitiator, PskResponder
from mikey.modes.results import ExchangeResult
from mikey.offer_answer import make_answer, make_offer
from mikey.session import CryptoSessionBundle

SSRCS = (0xAAAA0001, 0xBBBB0002)


def exchange() -> tuple[bytes, bytes, ExchangeResult]:
    initiator = PskInitiator(PSK, crypto_sessions=[CryptoSessionSpec(ssrc=s, roc=i) for i, s in enumerate(SSRCS)],
                             v=True)
    i_message = initiator.create_message(NOW)
    outcome = PskResponder(PSK).receive(i_message, NOW)
    assert outcome.response is not None
    return i_message, outcome.response, initiator.receive(outcome.response, NOW)


def capture_file(tmp_path: Path) -> tuple[Path, ExchangeResult]:
    i_msg, r_msg, result = exchange()
    frames = [udp(A, 5060, B, 5060, sip("INVITE sip:bob@example.org SIP/2.0", "c1", make_offer(i_msg))),
              udp(B, 5060, A, 5060, sip("SIP/2.0 200 OK", "c1", make_answer(r_msg)))]
    path = tmp_path / "call.pcap"
    path.write_bytes(pcap(frames, t0=NOW + 5))  # capture time, not today's clock
    return path, result


def test_keys_json_match_the_exchange(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, result = capture_file(tmp_path)
    assert main(["keys", str(path), "--mode", "psk", "--psk", PSK.hex(), "--format", "json", "--show-keys"]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["ok"] is True and obj["failures"] == []
    rows = obj["crypto_sessions"]
    want = CryptoSessionBundle(result).fingerprints()
    assert {r["cs_id"]: r["fingerprint"] for r in rows} == want
    assert [(r["ssrc"], r["roc"], r["source"]) for r in rows] == [("aaaa0001", 0, "packet 1"),
                                                                    ("bbbb0002", 1, "packet 1")]
    cs = result.crypto_sessions[0]
    assert rows[0]["master_key"] == cs.master_key.hex() and rows[0]["master_salt"] == cs.master_salt.hex()
    assert rows[0]["profile"] == "SRTP_PROFILE_AES128_CM_SHA1_80"


def test_keys_gst_and_sdes_forms(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, result = capture_file(tmp_path)
    cs = result.crypto_sessions[0]
    assert main(["keys", str(path), "--mode", "psk", "--psk", PSK.hex(), "--format", "gst", "--show-keys"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first == (f"ssrc=(uint){0xAAAA0001}, srtp-key=(buffer){(cs.master_key + cs.master_salt).hex()}, "
                     "srtp-cipher=(string)aes-128-icm, srtp-auth=(string)hmac-sha1-80, "
                     "srtcp-cipher=(string)aes-128-icm, srtcp-auth=(string)hmac-sha1-80, roc=(uint)0")
    assert main(["keys", str(path), "--mode", "psk", "--psk", PSK.hex(), "--format", "sdes", "--show-keys"]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    suite, inline = line.split(" ")
    assert suite == "AES_CM_128_HMAC_SHA1_80"
    assert base64.b64decode(inline.removeprefix("inline:")) == cs.master_key + cs.master_salt


def test_keys_hidden_without_show_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, result = capture_file(tmp_path)
    assert main(["keys", str(path), "--mode", "psk", "--psk", PSK.hex()]) == 0
    out = capsys.readouterr().out
    cs = result.crypto_sessions[0]
    assert cs.master_key.hex() not in out and cs.fingerprint() in out
    assert main(["keys", str(path), "--mode", "psk", "--psk", PSK.hex(), "--format", "gst"]) == 2


def test_keys_wrong_psk_and_single_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = capture_file(tmp_path)
    assert main(["keys", str(path), "--mode", "psk", "--psk", "00" * 16]) == 1
    assert "packet 1: cannot recover keys: " in capsys.readouterr().out
    i_msg, _, result = exchange()
    assert main(["keys", i_msg.hex(), "--mode", "psk", "--psk", PSK.hex(), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["crypto_sessions"]
    assert {r["cs_id"]: r["fingerprint"] for r in rows} == CryptoSessionBundle(result).fingerprints()


def test_null_kemac_needs_no_credentials(capsys: pytest.CaptureFixture[str]) -> None:
    initiator = PskInitiator(PSK, crypto_sessions=[CryptoSessionSpec(ssrc=SSRCS[0])], encr_alg=int(EncrAlg.NULL),
                             allow_null_security=True)
    i_message = initiator.create_message(NOW)
    assert main(["keys", i_message.hex(), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["crypto_sessions"]
    assert {r["cs_id"]: r["fingerprint"] for r in rows} == CryptoSessionBundle(initiator.result).fingerprints()
    encrypted, _, _ = exchange()
    assert main(["keys", encrypted.hex()]) == 2
    assert "give --mode" in capsys.readouterr().err


def test_without_mode_a_capture_gives_the_clear_keys_and_lists_the_others(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """One NULL-KEMAC exchange and one encrypted one: the clear keys, and the other named as needing --mode."""
    clear = PskInitiator(PSK, crypto_sessions=[CryptoSessionSpec(ssrc=SSRCS[0])], encr_alg=int(EncrAlg.NULL),
                         allow_null_security=True)
    encrypted, _, _ = exchange()
    frames = [udp(A, 5060, B, 5060, sip("INVITE sip:bob@example.org SIP/2.0", "c1", make_offer(encrypted))),
              udp(A, 5060, B, 5060, sip("INVITE sip:carol@example.org SIP/2.0", "c2", make_offer(clear.create_message(NOW))))]
    path = tmp_path / "two.pcap"
    path.write_bytes(pcap(frames, t0=NOW + 1))
    assert main(["keys", str(path), "--json"]) == 1
    obj = json.loads(capsys.readouterr().out)
    assert [(r["source"], r["fingerprint"]) for r in obj["crypto_sessions"]] == [
        ("packet 2", clear.result.crypto_sessions[0].fingerprint())]
    assert [(f["source"], f["error"].split(" and ")[0]) for f in obj["failures"]] == [("packet 1", "give --mode")]


def test_sender_clock_off_keys_taken_at_its_own_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A capture made 10 days after the message's T (a camera without NTP): keys at the message's time, noted."""
    i_msg, r_msg, result = exchange()
    frames = [udp(A, 5060, B, 5060, sip("INVITE sip:bob@example.org SIP/2.0", "c1", make_offer(i_msg))),
              udp(B, 5060, A, 5060, sip("SIP/2.0 200 OK", "c1", make_answer(r_msg)))]
    path = tmp_path / "late.pcap"
    path.write_bytes(pcap(frames, t0=NOW + 864000))
    assert main(["keys", str(path), "--mode", "psk", "--psk", PSK.hex(), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["crypto_sessions"]
    assert {r["cs_id"]: r["fingerprint"] for r in rows} == CryptoSessionBundle(result).fingerprints()
    assert rows[0]["note"].startswith("T is -864000 s from the capture time: keys recovered at the message's own time")
    assert main(["keys", str(path), "--mode", "psk", "--psk", PSK.hex()]) == 0
    assert "  note: T is -864000 s" in capsys.readouterr().out
