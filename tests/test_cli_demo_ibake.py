"""``mikey demo --mode ibake``: a KMS server, an Initiator and a Responder as three processes; the four
MIKEY-IBAKE messages (RFC 6267 §4.2.2) in two SDP offer/answer round trips; SRTP both ways.

Also the demo's round-trip interface (``demo_peer.RoundTripDemoPlugin``) in-process, and the Responder
process driven over UDP by the test: a repeated offer gets the same answer (no message is processed
twice), a changed I_MESSAGE_2 gets an Error message in the answer.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from mikey.cli.demo import render_report
from mikey.cli.demo_peer import RoundTripDemoPlugin, round_trips, stepped_initiator, stepped_responder
from mikey.cli.plugins import MODE_NAMES, load_plugins
from mikey.constants import DataType
from mikey.offer_answer import make_answer, make_offer, take_answer, take_offer
from mikey.sdp import make_sdp
from mikey.session import CryptoSessionBundle
from mikey.wire import ErrorPayload, Message

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def test_ibake_demo_kms_two_round_trips_and_srtp(capsys: pytest.CaptureFixture[str]) -> None:
    from mikey.cli.main import main

    assert main(["demo", "--mode", "ibake", "--packets", "20", "--rtcp", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["problems"] == [], report["problems"]
    kms = report["kms"]
    assert kms["started_by_demo"] is True and kms["server_stopped"] is True and kms["mikey"] is True
    assert kms["url"].startswith("http://127.0.0.1:")
    assert kms["users"] == ["sip:alice@demo.example", "sip:bob@demo.example"]
    assert "REQUEST_KEY_PSK" in kms["exchanges"]
    ini, res = report["initiator"], report["responder"]
    # Both ends derived the same keys for both crypto sessions, and both are authenticated
    # (the Initiator by R_MESSAGE_2's V, the Responder by the echoes in I_MESSAGE_2).
    assert ini["fingerprints"] == res["fingerprints"] == report["fingerprints"] and len(ini["fingerprints"]) == 2
    assert ini["csb_id"] == res["csb_id"] == report["csb_id"]
    assert ini["authenticated"] is True and res["authenticated"] is True
    # Four messages in two round trips, the same sizes seen from both ends.
    assert ini["round_trips"] == res["round_trips"] == 2
    assert ini["i_message_lens"] == res["i_message_lens"] and len(ini["i_message_lens"]) == 2
    assert ini["r_message_lens"] == res["r_message_lens"] and len(ini["r_message_lens"]) == 2
    assert all(n > 100 for n in ini["i_message_lens"] + ini["r_message_lens"][:1])  # each carries a BF ciphertext
    assert ini["r_message_lens"][1] < 200  # R_MESSAGE_2: V, no IBAKE payload (ECCPTi was echoed in R_MESSAGE_1)
    assert {"setup", "build_i_message", "offer_answer", "process_answer", "offer_answer_2",
            "process_answer_2", "srtp_setup", "media"} <= set(ini["timings_ms"])
    assert {"setup", "process_i_message", "process_i_message_2", "media"} <= set(res["timings_ms"])
    # Each party asked the KMS server for its own K_PRs: the current key period and the next one.
    month = time.strftime("%Y-%m", time.gmtime())
    for side, uri in ((ini, "sip:alice@demo.example"), (res, "sip:bob@demo.example")):
        assert side["keys_from"] == "kms" and side["kms_url"] == kms["url"]
        assert side["key_request"] == "REQUEST_KEY_PSK" and side["key_request_len"] > 0
        assert len(side["key_periods"]) == 2 and side["key_periods"][0] in (uri + month, uri + _previous(month))
        assert side["rtp_protected"] == side["rtp_verified"] == 20
        assert side["rtcp_protected"] == side["rtcp_verified"] == 2
        assert side["rejected"] == side["payload_mismatch"] == 0 and side["tampered_rejected"] == 1
        assert "psk" not in json.dumps(side).replace("REQUEST_KEY_PSK", "")
    assert {"kms_start", "kms_users", "credentials", "total"} <= set(report["timings_ms"])
    with pytest.raises(urllib.error.URLError):  # the server the demo started is gone
        urllib.request.urlopen(kms["url"] + "/keymanagement/mikey/v1", data=b"", timeout=5)
    text = "\n".join(render_report(report))
    assert "round trip 2      new offer (re-INVITE/UPDATE): I_MESSAGE_2" in text
    assert f"R_MESSAGE_2 {ini['r_message_lens'][1]} octets" in text
    assert "each party's key request (REQUEST_KEY_PSK) over HTTP" in text
    assert "K_PRs for ID || date: sip:bob@demo.example" in text and "(RFC 5091, p 1024 bits)" in text
    assert text.endswith("every SRTP/SRTCP packet verified.")


def test_ibake_demo_starts_its_own_kms(capsys: pytest.CaptureFixture[str]) -> None:
    from mikey.cli.main import main

    assert main(["demo", "--mode", "ibake", "--kms", "http://127.0.0.1:9", "--initiator-token", "a",
                 "--responder-token", "b"]) == 2
    assert "provisions its parties at a KMS it starts itself" in capsys.readouterr().err


def _previous(month: str) -> str:
    """The month before YYYY-MM (the demo may straddle a month boundary)."""
    year, mon = int(month[:4]), int(month[5:])
    return f"{year - 1}-12" if mon == 1 else f"{year}-{mon - 1:02d}"


def test_round_trips_come_from_the_plugin_registry() -> None:
    plugins = load_plugins()
    assert {name for name, p in plugins.items() if isinstance(p, RoundTripDemoPlugin)} == {"ibake"}
    assert {name: round_trips(p) for name, p in plugins.items()} == {m: 2 if m == "ibake" else 1 for m in MODE_NAMES}


def _loop(plugin_name: str, tmp: Path) -> tuple[Any, Any, list[tuple[int, int | None]]]:
    """Drive the stepped sides as the peers do, in-process: the results and each round trip's sizes."""
    plugin = load_plugins()[plugin_name]
    tmp.mkdir()
    creds = plugin.demo_credentials(tmp)
    ini, res = stepped_initiator(plugin, creds, 0x1111), stepped_responder(plugin, creds, 0x2222)
    now = time.time()
    message: bytes | None = ini.create_message(now)
    sizes: list[tuple[int, int | None]] = []
    r_result = i_result = None
    for _ in range(round_trips(plugin)):
        assert message is not None
        answer, r_result = res.receive(message, now)
        sizes.append((len(message), len(answer) if answer is not None else None))
        message, i_result = ini.receive(answer, now)
    assert message is None
    return i_result, r_result, sizes


def test_stepped_sides_in_process(tmp_path: Path) -> None:
    """MIKEY-IBAKE through the round-trip interface (file-based KMS), and a one-round mode through the adapters."""
    i_result, r_result, sizes = _loop("ibake", tmp_path / "ibake")
    assert len(sizes) == 2 and all(s[1] for s in sizes)
    assert i_result is not None and r_result is not None and i_result.tgk == r_result.tgk and len(i_result.tgk) == 32
    assert i_result.extras["confirmed"] is True and i_result.authenticated and r_result.authenticated
    a, b = CryptoSessionBundle(i_result, ignore_rcc=True), CryptoSessionBundle(r_result, ignore_rcc=True)
    assert a.fingerprints() == b.fingerprints() and len(a.fingerprints()) == 2
    i_result, r_result, sizes = _loop("psk", tmp_path / "psk")
    assert len(sizes) == 1 and i_result is not None and r_result is not None and i_result.tgk == r_result.tgk
    plugin = load_plugins()["ibake"]
    with pytest.raises(Exception, match="two offer/answer round trips"):
        plugin.demo_initiator({}, 1)


def _offer(message: bytes, n: int, port: int) -> bytes:
    body = make_sdp("mikey", "127.0.0.1", (("audio", port, "RTP/SAVP", (0,)),), session_id=7, version=n)
    return make_offer(message, sdp=body).encode()


class _ResponderProcess:
    """``python -m mikey.cli.demo_peer --role responder --mode ibake`` with the file-based demo credentials."""

    def __init__(self, tmp: Path) -> None:
        plugin = load_plugins()["ibake"]
        self.creds = plugin.demo_credentials(tmp)
        creds_file = tmp / "creds.json"
        creds_file.write_text(json.dumps(self.creds))
        self.initiator = stepped_initiator(plugin, self.creds, 0x1111)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mikey.cli.demo_peer", "--role", "responder", "--mode", "ibake", "--creds",
             str(creds_file), "--ssrc", "2222", "--peer-ssrc", "1111", "--packets", "1", "--rtcp", "0",
             "--timeout", "2"], stdout=subprocess.PIPE, text=True, env=_env())
        assert self.proc.stdout is not None
        self.port = json.loads(self.proc.stdout.readline())["port"]
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(15)

    def ask(self, offer: bytes) -> bytes:
        self.sock.sendto(offer, ("127.0.0.1", self.port))
        while True:
            data, _ = self.sock.recvfrom(65535)
            if data.startswith(b"v=0"):  # after the last answer the Responder starts sending SRTP
                return data

    def report(self) -> dict[str, Any]:
        out, _ = self.proc.communicate(timeout=60)
        last: dict[str, Any] = json.loads(out.splitlines()[-1])
        return last

    def close(self) -> None:
        self.sock.close()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def test_responder_answers_a_repeated_offer_again_without_processing_it(tmp_path: Path) -> None:
    peer = _ResponderProcess(tmp_path)
    try:
        port = peer.sock.getsockname()[1]
        now = time.time()
        offer1 = _offer(peer.initiator.create_message(now), 0, port)
        answer1 = peer.ask(offer1)
        assert peer.ask(offer1) == answer1  # UDP lost the answer: the same bytes again, I_MESSAGE_1 not re-taken
        r1 = take_answer(answer1.decode())
        assert r1 is not None and Message.decode(r1).data_type == DataType.IBAKE_R_MESSAGE_1
        i2, result = peer.initiator.receive(r1, now)
        assert i2 is not None and result is None
        offer2 = _offer(i2, 1, port)
        answer2 = peer.ask(offer2)
        assert peer.ask(offer2) == answer2 and peer.ask(offer1) == answer1
        r2 = take_answer(answer2.decode())
        assert r2 is not None and Message.decode(r2).data_type == DataType.IBAKE_R_MESSAGE_2
        done, keys = peer.initiator.receive(r2, now)
        assert done is None and keys is not None and keys.authenticated
        report = peer.report()  # the test sends no media: the Responder gives up after --timeout
        assert report["ok"] is False and "packets" in report["error"]["message"]
        assert report["i_message_lens"] == [len(take_answer(o.decode()) or b"") for o in (offer1, offer2)]
        assert report["r_message_lens"] == [len(r1), len(r2)]
    finally:
        peer.close()


def test_changed_i_message_2_gets_an_error_message_in_the_answer(tmp_path: Path) -> None:
    peer = _ResponderProcess(tmp_path)
    try:
        port = peer.sock.getsockname()[1]
        now = time.time()
        r1 = take_answer(peer.ask(_offer(peer.initiator.create_message(now), 0, port)).decode())
        assert r1 is not None
        i2, _ = peer.initiator.receive(r1, now)
        assert i2 is not None
        changed = i2[:-40] + bytes([i2[-40] ^ 0x01]) + i2[-39:]  # inside the IBAKE payload's ciphertext
        error = take_answer(peer.ask(_offer(changed, 1, port)).decode())
        assert error is not None
        msg = Message.decode(error)
        assert msg.data_type == DataType.ERROR and [e.error_no for e in msg.find_all(ErrorPayload)] == [0]
        report = peer.report()
        assert report["ok"] is False and report["error"]["kind"] == "authentication"
        assert "rtp_verified" not in report
    finally:
        peer.close()


def test_initiator_ignores_a_repeated_earlier_answer_and_reoffers_in_the_same_session(tmp_path: Path) -> None:
    """The test answers as the Responder: a stale copy of the first answer arriving while the Initiator waits
    for the second is not taken for it; the second offer is a new version of the same SDP session."""
    plugin = load_plugins()["ibake"]
    creds = plugin.demo_credentials(tmp_path)
    creds_file = tmp_path / "creds.json"
    creds_file.write_text(json.dumps(creds))
    responder = stepped_responder(plugin, creds, 0x2222)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(15)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mikey.cli.demo_peer", "--role", "initiator", "--mode", "ibake", "--creds",
         str(creds_file), "--ssrc", "1111", "--peer-ssrc", "2222", "--peer-port", str(sock.getsockname()[1]),
         "--packets", "1", "--rtcp", "0", "--timeout", "2"], stdout=subprocess.PIPE, text=True, env=_env())
    try:
        def offer() -> tuple[str, tuple[str, int]]:
            while True:
                data, addr = sock.recvfrom(65535)
                if data.startswith(b"v=0"):
                    return data.decode(), addr

        sdp1, addr = offer()
        r1, _ = responder.receive(take_offer(sdp1), time.time())
        answer1 = make_answer(r1).encode()
        sock.sendto(answer1, addr)
        sdp2, _ = offer()
        while sdp2 == sdp1:  # a retransmission of the first offer
            sdp2, _ = offer()
        o1, o2 = (next(ln for ln in s.splitlines() if ln.startswith("o=")).split() for s in (sdp1, sdp2))
        assert o1[1] == o2[1] and (o1[2], o2[2]) == ("0", "1")  # same session id, version 1
        sock.sendto(answer1, addr)  # stale: must not be taken as the answer to the second offer
        r2, keys = responder.receive(take_offer(sdp2), time.time())
        assert r2 is not None and keys is not None
        sock.sendto(make_answer(r2).encode(), addr)
        out, _ = proc.communicate(timeout=60)
        report = json.loads(out.splitlines()[-1])
        assert "packets" in report["error"]["message"], report  # it reached the media (the test sends none)
        assert report["r_message_lens"] == [len(r1 or b""), len(r2)]
        assert report["authenticated"] is True
        assert report["fingerprints"] == {str(k): v for k, v in CryptoSessionBundle(keys, ignore_rcc=True)
                                          .fingerprints().items()}
    finally:
        sock.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
