"""``mikey demo``: two real processes, SDP offer/answer over UDP on loopback, SRTP both ways."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from mikey.cli.demo import render_report, run_demo
from mikey.cli.demo_kms import DemoKms, DemoKmsError
from mikey.cli.plugins import MODE_NAMES

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _check_side(side: dict[str, Any], packets: int, rtcp: int) -> None:
    assert side["ok"] is True
    assert side["rtp_protected"] == side["rtp_verified"] == packets
    assert side["rtcp_protected"] == side["rtcp_verified"] == rtcp
    assert side["rejected"] == side["payload_mismatch"] == 0
    assert side["tampered_rejected"] == 1
    assert set(side["timings_ms"]) >= {"srtp_setup", "media"}
    assert side["srtp_profile"] in ("AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32", "AEAD_AES_128_GCM",
                                    "AEAD_AES_256_GCM")


def test_psk_demo_end_to_end() -> None:
    report = run_demo("psk", packets=40, rtcp=3)
    assert report["ok"] is True, report["problems"]
    assert report["problems"] == []
    ini, res = report["initiator"], report["responder"]
    assert ini["role"] == "initiator" and res["role"] == "responder"
    assert ini["mode"] == res["mode"] == report["mode"] == "psk"
    assert ini["csb_id"] == res["csb_id"] == report["csb_id"] and len(report["csb_id"]) == 8
    assert ini["fingerprints"] == res["fingerprints"] == report["fingerprints"] and report["fingerprints"]
    assert ini["authenticated"] and res["authenticated"]  # PSK demo sets V: both ends authenticated
    assert ini["i_message_len"] == res["i_message_len"] > 0
    assert ini["ssrc"] != res["ssrc"]
    assert {"build_i_message", "offer_answer", "process_answer"} <= set(ini["timings_ms"])
    assert "process_i_message" in res["timings_ms"]
    assert set(report["timings_ms"]) == {"credentials", "total"}
    for side in (ini, res):
        _check_side(side, 40, 3)
    text = "\n".join(render_report(report))
    assert text.endswith("every SRTP/SRTCP packet verified.") and report["csb_id"] in text


@pytest.mark.parametrize("mode", [m for m in MODE_NAMES if m not in ("psk", "sakke", "ticket", "ibake")])
def test_other_modes_demo(mode: str) -> None:
    report = run_demo(mode, packets=10, rtcp=2)
    assert report["ok"] is True, report["problems"]
    assert report["initiator"]["fingerprints"] == report["responder"]["fingerprints"]
    for side in (report["initiator"], report["responder"]):
        _check_side(side, 10, 2)


def test_ticket_demo_runs_a_kms_server_and_both_parties_use_it_over_http() -> None:
    """MIKEY-TICKET (RFC 6043): a ``mikey kms serve`` process, PSKs provisioned through its admin route,
    the Initiator's Ticket Request and the Responder's Resolve over HTTP, SRTP both ways."""
    report = run_demo("ticket", packets=20, rtcp=2)
    assert report["ok"] is True, report["problems"]
    kms = report["kms"]
    assert kms["started_by_demo"] is True and kms["server_stopped"] is True and kms["mikey"] is True
    assert kms["url"].startswith("http://127.0.0.1:")
    assert kms["users"] == ["sip:alice@demo.example", "sip:bob@demo.example"]
    assert {"kms_start", "kms_users", "credentials", "total"} <= set(report["timings_ms"])
    ini, res = report["initiator"], report["responder"]
    assert ini["fingerprints"] == res["fingerprints"] and len(ini["fingerprints"]) == 2
    assert ini["authenticated"] and res["authenticated"]  # TRANSFER_RESP verified; TRANSFER_INIT by MPKi
    assert ini["r_message_len"] and ini["i_message_len"] > ini["r_message_len"]  # the TICKET rides in the offer
    for side in (ini, res):
        _check_side(side, 20, 2)
    text = "\n".join(render_report(report))
    assert "Ticket Request and Resolve over HTTP" in text and kms["url"] in text


def test_unknown_mode() -> None:
    with pytest.raises(ValueError, match="no demo"):
        run_demo("no-such-mode")


def test_module_entry_point_text() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mikey.cli.demo", "--packets", "12", "--rtcp", "2"],
        capture_output=True, text=True, timeout=120, env=_env(),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "protected 12 RTP + 2 RTCP; verified 12 RTP + 2 RTCP from the peer" in proc.stdout
    assert proc.stdout.rstrip().endswith("OK: both ends derived identical SRTP keys and every SRTP/SRTCP packet verified.")


def test_through_cli_main(capsys: pytest.CaptureFixture[str]) -> None:
    from mikey.cli.main import main

    assert main(["demo", "--packets", "8", "--rtcp", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["mode"] == "psk" and report["packets"] == 8
    assert report["responder"]["rtcp_verified"] == report["initiator"]["rtcp_verified"] == 1
    assert main(["demo", "--mode", "no-such-mode"]) == 2
    assert main(["demo", "--packets", "0"]) == 2


def test_wrong_key_fails_cleanly(tmp_path: Path) -> None:
    """Peers with different PSKs: the Responder rejects the I_MESSAGE, the Initiator gets the Error message."""
    good, bad = tmp_path / "a.json", tmp_path / "b.json"
    good.write_text(json.dumps({"psk": "11" * 16}))
    bad.write_text(json.dumps({"psk": "22" * 16}))
    base = [sys.executable, "-m", "mikey.cli.demo_peer", "--mode", "psk", "--packets", "5", "--timeout", "3"]
    responder = subprocess.Popen(
        [*base, "--role", "responder", "--creds", str(good), "--ssrc", "2", "--peer-ssrc", "1"],
        stdout=subprocess.PIPE, text=True, env=_env(),
    )
    try:
        assert responder.stdout is not None
        port = json.loads(responder.stdout.readline())["port"]
        initiator = subprocess.run(
            [*base, "--role", "initiator", "--creds", str(bad), "--ssrc", "1", "--peer-ssrc", "2",
             "--peer-port", str(port)],
            capture_output=True, text=True, timeout=60, env=_env(),
        )
        rest, _ = responder.communicate(timeout=60)
    finally:
        if responder.poll() is None:
            responder.kill()
            responder.wait()
    ini, res = json.loads(initiator.stdout.splitlines()[-1]), json.loads(rest.splitlines()[-1])
    assert initiator.returncode == responder.returncode == 1
    assert ini["ok"] is False and res["ok"] is False
    assert res["error"]["kind"] == "authentication"
    assert ini["error"]["kind"] in ("peer-error", "authentication")
    assert "rtp_verified" not in ini and "rtp_verified" not in res


# --- MIKEY-SAKKE: both users' keys from a KMS server over HTTP (issue 9 §5) ------------------------


def _check_sakke_kms_report(report: dict[str, Any], packets: int, rtcp: int) -> None:
    assert report["ok"] is True, report["problems"]
    kms = report["kms"]
    assert kms["url"].startswith("http://127.0.0.1:")
    assert report["initiator"]["key_period_no"] == report["responder"]["key_period_no"]
    n = report["initiator"]["key_period_no"]
    # Both hold the message's period and the next one (keyprov/<URI>/<NTP time>), or the
    # previous and this one if the period changed between the fetch and the exchange.
    for role in ("initiator", "responder"):
        periods = kms["key_periods"][role]
        assert len(periods) == 2 and periods[1] == periods[0] + 1 and n in periods, periods
    assert report["initiator"]["fingerprints"] == report["responder"]["fingerprints"]
    for side in (report["initiator"], report["responder"]):
        _check_side(side, packets, rtcp)
    assert report["responder"]["authenticated"] is True  # the ECCSI signature verified
    assert report["description"].endswith(f"keys from the KMS at {kms['url']}")


def test_sakke_demo_starts_a_kms_and_fetches_the_keys_over_http(capsys: pytest.CaptureFixture[str]) -> None:
    """``mikey demo --mode sakke``: serve, user add, dev tokens, fetch over HTTP, exchange + SRTP, stop."""
    from mikey.cli.main import main

    assert main(["demo", "--mode", "sakke", "--packets", "10", "--rtcp", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    _check_sakke_kms_report(report, 10, 2)
    kms = report["kms"]
    assert kms["started_by_demo"] is True and kms["server_stopped"] is True
    assert kms["users"] == ["sip:alice@demo.example", "sip:bob@demo.example"]
    assert {"credentials", "kms_start", "kms_users", "kms_fetch", "total"} <= set(report["timings_ms"])
    # The server the demo started is gone.
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(kms["url"] + "/keymanagement/identity/v1/init", data=b"", timeout=5)
    text = "\n".join(render_report(report))
    assert f"fetched over HTTP from the KMS at {kms['url']} (started by the demo, stopped after it)" in text
    assert "sip:bob@demo.example: key periods " in text
    assert f"key period        {report['initiator']['key_period_no']} " in text
    assert text.endswith("every SRTP/SRTCP packet verified.")
    assert "eyJ" not in json.dumps(report)  # no bearer token (a JWT) in the report


def test_sakke_demo_with_a_running_kms(tmp_path: Path) -> None:
    """``--kms URL`` + the users' tokens: the demo fetches from that server and leaves it running."""
    carol, dave = "sip:carol@kms.example", "sip:dave@kms.example"
    with DemoKms(tmp_path / "kms") as server:
        assert server.url is not None
        server.add_users([carol, dave])
        tokens = [server.dev_token(carol), server.dev_token(dave)]
        report = run_demo("sakke", packets=6, rtcp=1, kms_url=server.url, kms_tokens=tokens)
        _check_sakke_kms_report(report, 6, 1)
        assert report["kms"]["started_by_demo"] is False and "server_stopped" not in report["kms"]
        assert report["kms"]["users"] == [carol, dave]
        assert "(already running)" in "\n".join(render_report(report))
        assert server.proc is not None and server.proc.poll() is None
        # A token the KMS refuses: no exchange, the reason in the report.
        bad = run_demo("sakke", packets=6, rtcp=1, kms_url=server.url, kms_tokens=[tokens[0], "not.a.token"])
        assert bad["ok"] is False and "initiator" not in bad
        assert len(bad["problems"]) == 1 and bad["problems"][0].startswith("KMS: ") and "401" in bad["problems"][0]
    assert server.stopped and server.returncode is not None


def test_demo_kms_options_are_checked(capsys: pytest.CaptureFixture[str]) -> None:
    from mikey.cli.main import main

    assert main(["demo", "--mode", "sakke", "--kms", "http://127.0.0.1:9"]) == 2
    assert "--initiator-token and --responder-token" in capsys.readouterr().err
    assert main(["demo", "--initiator-token", "a", "--responder-token", "b"]) == 2
    assert main(["demo", "--kms", "http://127.0.0.1:9", "--initiator-token", "a", "--responder-token", "b"]) == 2
    assert "takes no keys from a KMS" in capsys.readouterr().err
    with pytest.raises(ValueError, match="two tokens"):
        run_demo("sakke", kms_url="http://127.0.0.1:9", kms_tokens=["a"])


def test_demo_kms_that_cannot_start_fails_cleanly(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    server = DemoKms(blocker / "kms", timeout=60)
    with pytest.raises(DemoKmsError, match="did not start"):
        server.start()
    assert server.stopped
