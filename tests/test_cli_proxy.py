"""``mikey proxy``: the three-terminal call a person makes (proxy, callee, caller), as processes.

The proxy is started as ``mikey proxy`` would be by hand (on a free port, with demo credentials
written for one mode), two ``mikey phone`` processes register and call through it (one with the
mode's own options, as the README shows, one with the written credentials), and SIGINT stops it
with Kamailio gone.  Usage errors exit 2 without starting anything.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sipproxy

from mikey.cli.main import main
from mikey.sip.kamailio import free_udp_port, sip_options_ping
from mikey.sip.phone import PhoneProcess

MIKEY = [sys.executable, "-m", "mikey"]
PSK = "5f" * 16


def _start_proxy(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[str], int, list[str]]:
    port = free_udp_port()
    proc = subprocess.Popen([*MIKEY, "proxy", "--port", str(port), "--dir", str(tmp_path / "lab"), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if line.startswith("serving "):
            return proc, port, lines
    proc.kill()
    pytest.fail(f"mikey proxy did not start: {lines} {proc.stderr.read() if proc.stderr else ''}")


def _stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("mikey proxy did not stop on SIGINT")
    return proc.returncode, out


def test_proxy_phones_call_through_it_and_sigint_stops_it(tmp_path: Path) -> None:
    sipproxy.require_kamailio()
    proxy, port, lines = _start_proxy(tmp_path, "--demo-creds", "dh")
    try:
        assert lines[-1] == f"serving sip:127.0.0.1:{port} (domain mikey.test; log {tmp_path}/lab/kamailio/kamailio.log)"
        creds = tmp_path / "lab" / "creds" / "dh-creds.json"
        assert lines[0] == f"demo credentials (dh): {creds}"
        assert oct(creds.stat().st_mode & 0o777) == "0o600" and set(json.loads(creds.read_text())) >= {"alice", "bob"}
        assert sip_options_ping("127.0.0.1", port) == 200
        target = f"127.0.0.1:{port}"
        # the README's two terminals: PSK with the mode's own options
        common = ["--json", "--mode", "psk", "--psk", PSK, "--packets", "20", "--proxy", target, "--timeout", "10"]
        with PhoneProcess([*MIKEY, "phone", *common, "--user", "sip:bob@mikey.test"],
                          stderr=tmp_path / "bob.err") as bob:
            assert bob.wait_for("ready", 10.0), bob.stderr_tail()
            alice = subprocess.run([*MIKEY, "phone", *common, "--user", "sip:alice@mikey.test",
                                    "--call", "sip:bob@mikey.test"], capture_output=True, text=True, timeout=60)
            bob_events = bob.finish(15.0)
        assert alice.returncode == 0, alice.stderr
        alice_events = [json.loads(line) for line in alice.stdout.splitlines()]
        out = next(e for e in alice_events if e["event"] == "call")
        inn = next(e for e in bob_events if e["event"] == "call")
        assert out["mikey"] == inn["mikey"] == "keyed" and out["fingerprints"] == inn["fingerprints"]
        for events in (alice_events, bob_events):
            media = next(e for e in events if e["event"] == "media")
            assert media["received"] == 20 and media["auth_failures"] == 0
        # and DH with the credentials the proxy wrote
        dh = ["--json", "--mode", "dh", "--demo-creds", str(creds), "--packets", "10", "--proxy", target,
              "--timeout", "10"]
        with PhoneProcess([*MIKEY, "phone", *dh, "--user", "sip:bob@mikey.test"], stderr=tmp_path / "b2.err") as bob:
            assert bob.wait_for("ready", 10.0), bob.stderr_tail()
            alice = subprocess.run([*MIKEY, "phone", *dh, "--user", "sip:alice@mikey.test",
                                    "--call", "sip:bob@mikey.test"], capture_output=True, text=True, timeout=60)
            bob_events = bob.finish(15.0)
        assert alice.returncode == 0, alice.stderr
        assert next(e for e in bob_events if e["event"] == "call")["mikey"] == "keyed"
    finally:
        code, out = _stop(proxy)
    assert code == 0 and out.strip().endswith("mikey proxy: stopped")
    assert sip_options_ping("127.0.0.1", port, timeout=0.3) is None  # Kamailio is gone with it


def test_proxy_usage_errors_start_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["proxy", "--port", "70000"]) == 2
    assert "--port" in capsys.readouterr().err
    assert main(["proxy", "--demo-creds", "psk"]) == 2
    assert "--demo-creds needs --dir" in capsys.readouterr().err
    assert main(["proxy", "--redirect", "bob"]) == 2
    assert "FROM=TO" in capsys.readouterr().err
    sipproxy.require_kamailio()
    assert main(["proxy", "--domain", "not a domain", "--dir", str(tmp_path)]) == 2
    assert "not a plain host name" in capsys.readouterr().err
    assert not (tmp_path / "kamailio" / "kamailio.pid").exists()
