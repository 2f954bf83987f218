"""mikey.sip.phone and ``mikey phone``: MIKEY keying in SIP calls.

Sans-I/O: the SDP the phone offers and reads, the bidding-down checks of an answer (RFC 4567 §4.1,
§6), the callee's 488 with the MIKEY Error message for a method it does not run, a fork's answer
taken by a fork of the Initiator.  Through Kamailio with two ``mikey phone`` processes: the
one-to-one use case for every method (keyed, same keys both ends, media verified both ways,
re-keyed by re-INVITE with media verifying under the new keys), a callee running another method
answers 488 with an Error no and nobody keys, a callee of ours that answers without key-mgmt
(bidding down) is refused and sent BYE, and the text output a person reads.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sipproxy

from mikey.cli.plugins import load_plugins
from mikey.errors import PeerError
from mikey.offer_answer import take_answer
from mikey.sip.adapter import Answered, Bye, CallFailed, IncomingCall, SipAgent
from mikey.sip.kamailio import Kamailio
from mikey.sip.phone import (
    BiddingDownError,
    CalleeKeying,
    CallerKeying,
    KeyingSides,
    PhoneProcess,
    check_answer,
    error_of_answer,
    fingerprints,
    media_of,
    offer_sdp,
    phone_argv,
    write_demo_credentials,
)
from mikey.sip.usecases import Outcome, UseCaseEnv
from mikey.sip.usecases.one_to_one import observe, run_call

kamailio = sipproxy.kamailio

METHODS = ["psk", "pk", "dh", "dhhmac", "rsa-r", "sakke", "ticket", "ibake"]
PLUGINS = load_plugins()


def sides(mode: str, tmp_path: Path) -> KeyingSides:
    creds = json.loads(write_demo_credentials(mode, tmp_path / mode).read_text())
    return KeyingSides(mode, PLUGINS[mode], creds=creds)


# --- sans-I/O -------------------------------------------------------------------------------------


def test_offer_sdp_carries_key_mgmt_ssrc_and_savp() -> None:
    sdp = offer_sdp(b"\x01\x02\x03", address="127.0.0.1", port=40000, ssrc=0xDEADBEEF, cname="sip:a@x")
    assert take_answer(sdp) == b"\x01\x02\x03"
    info = media_of(sdp)
    assert (info.address, info.port, info.profile, info.ssrc) == ("127.0.0.1", 40000, "RTP/SAVP", 0xDEADBEEF)


@pytest.mark.parametrize("sdp, waits, why", [
    (None, False, "no SDP body"),
    ("v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\n", False, "not RTP/SAVP"),
    ("v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 4000 RTP/SAVP 0\r\n", True, "no a=key-mgmt"),
])
def test_check_answer_refuses_bidding_down(sdp: str | None, waits: bool, why: str) -> None:
    with pytest.raises(BiddingDownError, match=why):
        check_answer(sdp, waits)


def test_check_answer_accepts_no_response_when_none_is_expected() -> None:
    assert check_answer("v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 4000 RTP/SAVP 0\r\n", False) is None


def test_callee_of_another_method_answers_488_with_error_message(tmp_path: Path) -> None:
    caller = CallerKeying(sides("dh", tmp_path), 0x1111)
    offer = offer_sdp(caller.offer(time.time()), address="127.0.0.1", port=4000, ssrc=0x1111, cname="a")
    callee = CalleeKeying(sides("psk", tmp_path), 0x2222, address="127.0.0.1", port=5000, cname="b")
    answer = callee.answer(offer, time.time())
    assert (answer.status, answer.reason, answer.result) == (488, "Not Acceptable Here", None)
    assert answer.error_no == 11 and "DH_INIT" in (answer.error or "")
    assert answer.headers and answer.headers[0].startswith("Warning: 399 ")
    assert take_answer(answer.sdp or "") is not None  # the Error message rides in key-mgmt
    error, error_no = error_of_answer(answer.sdp, caller, time.time())
    assert error_no == 11 and error and "Error message" in error


def test_tampered_offer_refused_never_keyed(tmp_path: Path) -> None:
    s = sides("psk", tmp_path)
    caller = CallerKeying(s, 0x1111)
    i_message = bytearray(caller.offer(time.time()))
    i_message[-1] ^= 0x01  # the MAC no longer verifies
    offer = offer_sdp(bytes(i_message), address="127.0.0.1", port=4000, ssrc=0x1111, cname="a")
    answer = CalleeKeying(s, 0x2222, address="127.0.0.1", port=5000, cname="b").answer(offer, time.time())
    assert answer.status == 488 and answer.result is None
    assert answer.error and "authentication" in answer.error.lower() or answer.error_no is not None


def test_offer_without_key_mgmt_or_plain_rtp_refused(tmp_path: Path) -> None:
    callee = CalleeKeying(sides("psk", tmp_path), 0x2222, address="127.0.0.1", port=5000, cname="b")
    plain = "v=0\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
    assert callee.answer(plain, time.time()).status == 488
    savp = plain.replace("RTP/AVP", "RTP/SAVP")
    refused = callee.answer(savp, time.time())
    assert refused.status == 488 and "key-mgmt" in (refused.error or "")
    assert callee.answer(None, time.time()).status == 488


@pytest.mark.parametrize("mode, own_keys", [("dh", True), ("psk", False)])
def test_second_fork_answer_taken_by_a_fork(tmp_path: Path, mode: str, own_keys: bool) -> None:
    """Two devices answer one INVITE: DH gives each fork its own keys, PSK the same key (RFC 3261 §16.7)."""
    s = sides(mode, tmp_path)
    caller = CallerKeying(s, 0x1111)
    offer = offer_sdp(caller.offer(time.time()), address="127.0.0.1", port=4000, ssrc=0x1111, cname="a")
    prints = []
    for ssrc in (0x2222, 0x3333):
        device = KeyingSides(mode, s.plugin, creds=s.creds)  # each device its own phone and replay cache
        answer = CalleeKeying(device, ssrc, address="127.0.0.1", port=5000, cname="b").answer(offer, time.time())
        assert answer.status == 200 and answer.result is not None
        _, result = caller.take(answer.sdp, time.time())
        assert result is not None
        assert fingerprints(result)[1] == fingerprints(answer.result)[1]
        prints.append(fingerprints(result)[1])
    assert (prints[0] != prints[1]) is own_keys


def test_peer_error_in_answer_raises(tmp_path: Path) -> None:
    s = sides("dh", tmp_path)
    caller = CallerKeying(s, 0x1111)
    caller.offer(time.time())
    from mikey.modes.base import build_error_message
    from mikey.wire import TimestampPayload
    err = build_error_message(1, [7], TimestampPayload.ntp_utc(time.time()))
    with pytest.raises(PeerError):
        caller.take(offer_sdp(err, address="127.0.0.1", port=5000, ssrc=2, cname="b", answer=True), time.time())


# --- phones through Kamailio ------------------------------------------------------------------------------


def env_of(proxy: Kamailio, tmp_path: Path) -> UseCaseEnv:
    return UseCaseEnv(proxy.host, proxy.port, proxy.domain, tmp_path, timeout=15.0)


@pytest.mark.parametrize("method", METHODS)
def test_one_to_one_every_method(kamailio: Kamailio, tmp_path: Path, method: str) -> None:
    run = run_call(env_of(kamailio, tmp_path), method, packets=100, rekey_after=0.5)
    obs = observe("one-to-one", method, run, rekey=True)
    assert obs.outcome == Outcome.KEYED, (obs.detail, run.caller[-3:], run.callee[-3:])
    assert obs.media_ok
    out, inn = run.caller_event("call"), run.callee_event("call")
    assert out and inn and out["status"] == 200 and out["fingerprints"] == inn["fingerprints"]
    for events in (run.caller, run.callee):
        media = next(e for e in events if e["event"] == "media")
        assert media["received"] >= 80 and media["auth_failures"] == 0
        assert media["streams"][0]["key_switches"] == 1
        assert media["tone_hz"] == pytest.approx(440.0, abs=20.0)
    wav = tmp_path / f"one-to-one-{method}" / "bob.wav"
    assert wav.stat().st_size > 44 + 80 * 160 * 2  # 16-bit mono samples of at least 80 packets


def test_callee_of_another_method_refuses_with_488(kamailio: Kamailio, tmp_path: Path) -> None:
    env = env_of(kamailio, tmp_path)
    dh = write_demo_credentials("dh", tmp_path / "dh")
    psk = write_demo_credentials("psk", tmp_path / "psk")
    proxy = (kamailio.host, kamailio.port)
    bob = PhoneProcess(phone_argv("psk", "sip:bob@mikey.test", proxy, creds=psk, timeout=env.timeout),
                       stderr=tmp_path / "bob.err")
    try:
        assert bob.wait_for("ready", env.timeout)
        alice = subprocess.run(phone_argv("dh", "sip:alice@mikey.test", proxy, creds=dh, call="sip:bob@mikey.test",
                                          timeout=env.timeout), capture_output=True, text=True, timeout=60)
        bob_events = bob.finish(env.timeout)
    finally:
        bob.finish(0.0)
    events = [json.loads(line) for line in alice.stdout.splitlines()]
    call = next(e for e in events if e["event"] == "call")
    assert alice.returncode == 1
    assert (call["status"], call["mikey"], call["error_no"], call["fingerprints"]) == (488, "refused", 11, {})
    refused = next(e for e in bob_events if e["event"] == "call")
    assert (refused["status"], refused["mikey"], refused["error_no"]) == (488, "refused", 11)
    assert not [e for e in events + bob_events if e["event"] == "media"]  # nobody keyed, no media


def test_answer_without_key_mgmt_refused_as_bidding_down(kamailio: Kamailio, tmp_path: Path) -> None:
    """A callee (our SIP agent, a real peer) that answers with plain SDP: the phone refuses and hangs up."""
    creds = write_demo_credentials("psk", tmp_path / "psk")
    proxy = (kamailio.host, kamailio.port)
    with SipAgent("sip:bob@mikey.test", proxy) as bob:
        assert bob.register() == 200
        alice = PhoneProcess(phone_argv("psk", "sip:alice@mikey.test", proxy, creds=creds,
                                        call="sip:bob@mikey.test", timeout=10.0), stderr=tmp_path / "alice.err")
        try:
            deadline = time.monotonic() + 15.0
            inc = None
            while inc is None and time.monotonic() < deadline:
                ev = bob.events.get(timeout=15.0)
                inc = ev if isinstance(ev, IncomingCall) else None
            assert inc is not None
            assert take_answer(inc.invite.sdp or "") is not None  # the offer did carry MIKEY
            stripped = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4002 RTP/SAVP 0\r\n"
            inc.invite.respond(200, "OK", stripped)
            bye = None
            while bye is None and time.monotonic() < deadline:
                ev = bob.events.get(timeout=15.0)
                bye = ev if isinstance(ev, Bye) else None
            assert bye is not None, "the caller ends the dialog it refused"
            events = alice.finish(15.0)
        finally:
            alice.finish(0.0)
    call = next(e for e in events if e["event"] == "call")
    assert call["mikey"] == "refused" and "bidding-down" in call["error"]
    assert events[-1] == {"event": "end", "ok": False}
    assert not [e for e in events if e["event"] == "media"]


def test_text_output_for_a_person(kamailio: Kamailio, tmp_path: Path) -> None:
    creds = write_demo_credentials("psk", tmp_path / "psk")
    proxy = f"{kamailio.host}:{kamailio.port}"
    base = [sys.executable, "-m", "mikey", "phone", "--mode", "psk", "--proxy", proxy, "--demo-creds", str(creds),
            "--packets", "25", "--timeout", "10"]
    bob = subprocess.Popen(base + ["--user", "sip:bob@mikey.test", "--record", str(tmp_path / "heard.wav")],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert bob.stdout is not None
        first = bob.stdout.readline()
        assert first.startswith("registered sip:bob@mikey.test at sip:bob@127.0.0.1:")
        alice = subprocess.run(base + ["--user", "sip:alice@mikey.test", "--call", "sip:bob@mikey.test",
                                       "--tone", "1000"], capture_output=True, text=True, timeout=60)
        out, _ = bob.communicate(timeout=30)
    finally:
        if bob.poll() is None:
            bob.kill()
            bob.wait()
    assert alice.returncode == 0, alice.stderr
    assert "SRTP keyed by MIKEY-PSK" in alice.stdout
    assert "call <- sip:alice@mikey.test: 200, SRTP keyed by MIKEY-PSK" in out
    media = next(line for line in out.splitlines() if line.startswith("media:"))
    assert "auth failures 0" in media and "tone 1000 Hz" in media
    assert (tmp_path / "heard.wav").stat().st_size > 44
    assert out.rstrip().endswith("done") and bob.returncode == 0


def test_usage_errors() -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "mikey", "phone", *args], capture_output=True, text=True,
                              timeout=30)

    assert run("--mode", "psk", "--proxy", "nohost", "--user", "sip:a@x").returncode == 2
    assert run("--mode", "psk", "--proxy", "127.0.0.1:5060", "--user", "alice").returncode == 2
    missing = run("--mode", "psk", "--proxy", "127.0.0.1:5060", "--user", "sip:a@x")
    assert missing.returncode == 2 and "--psk" in missing.stderr  # the respond options of the mode apply
    helptext = run("--mode", "dh", "--call", "sip:b@x", "--help")
    assert helptext.returncode == 0 and "--dh-group" in helptext.stdout and "--rekey-after" in helptext.stdout


@pytest.mark.parametrize("method, own_keys", [("dh", True), ("psk", False)])
def test_forked_call_every_answer_reported(kamailio: Kamailio, tmp_path: Path, method: str, own_keys: bool) -> None:
    """Bob on two devices, both answer: Alice keeps one dialog and reports the other fork's keys, then BYE."""
    creds = write_demo_credentials(method, tmp_path / method)
    proxy = (kamailio.host, kamailio.port)
    devices = [PhoneProcess(phone_argv(method, "sip:bob@mikey.test", proxy, creds=creds, packets=30, timeout=10.0),
                            stderr=tmp_path / f"bob{n}.err") for n in (1, 2)]
    try:
        assert all(d.wait_for("ready", 10.0) for d in devices)
        alice = PhoneProcess(phone_argv(method, "sip:alice@mikey.test", proxy, creds=creds, call="sip:bob@mikey.test",
                                        packets=30, timeout=10.0), stderr=tmp_path / "alice.err")
        try:
            events = alice.finish(40.0)
        finally:
            alice.finish(0.0)
        device_events = [d.finish(15.0) for d in devices]
    finally:
        for d in devices:
            d.finish(0.0)
    call = next(e for e in events if e["event"] == "call")
    forks = [e for e in events if e["event"] == "fork"]
    assert call["mikey"] == "keyed" and len(forks) == 1, events
    fork = forks[0]
    assert fork["action"] == "bye" and fork["mikey"] == "keyed" and fork["to_tag"] != call["to_tag"]
    answered = [next(e for e in d if e["event"] == "call") for d in device_events]
    by_print = sorted(a["fingerprints"]["1"] for a in answered)
    assert sorted([call["fingerprints"]["1"], fork["fingerprints"]["1"]]) == by_print
    assert (call["fingerprints"]["1"] != fork["fingerprints"]["1"]) is own_keys
    assert events[-1] == {"event": "end", "ok": True}


def _call_with_options(kamailio: Kamailio, tmp_path: Path, mode: str, bob_opts: list[str],
                       alice_opts: list[str]) -> tuple[int, list[dict[str, object]], list[dict[str, object]]]:
    base = [sys.executable, "-m", "mikey", "phone", "--json", "--mode", mode, "--packets", "25", "--timeout", "10",
            "--proxy", f"{kamailio.host}:{kamailio.port}"]
    bob = PhoneProcess(base + ["--user", "sip:bob@mikey.test", *bob_opts], stderr=tmp_path / "bob.err")
    try:
        assert bob.wait_for("ready", 10.0), bob.stderr_tail()
        alice = subprocess.run(base + ["--user", "sip:alice@mikey.test", "--call", "sip:bob@mikey.test", *alice_opts],
                               capture_output=True, text=True, timeout=60)
        bob_events = bob.finish(15.0)
    finally:
        bob.finish(0.0)
    return alice.returncode, [json.loads(line) for line in alice.stdout.splitlines()], bob_events


def test_wrong_psk_refused_with_488_and_error_no_0(kamailio: Kamailio, tmp_path: Path) -> None:
    rc, alice, bob = _call_with_options(kamailio, tmp_path, "psk", ["--psk", "11" * 16], ["--psk", "22" * 16, "--verify"])
    assert rc == 1
    out = next(e for e in alice if e["event"] == "call")
    inn = next(e for e in bob if e["event"] == "call")
    assert (out["status"], out["mikey"], out["error_no"]) == (488, "refused", 0)
    assert inn["mikey"] == "refused" and "MAC" in str(inn["error"])
    assert not [e for e in alice + bob if e["event"] == "media"]


def test_replayed_offer_refused_across_calls(tmp_path: Path) -> None:
    """One phone's Responders share its replay cache: the same I_MESSAGE in a second call is refused."""
    s = sides("psk", tmp_path)
    offer = offer_sdp(CallerKeying(s, 0x1111).offer(time.time()), address="127.0.0.1", port=4000, ssrc=0x1111,
                      cname="a")
    first = CalleeKeying(s, 0x2222, address="127.0.0.1", port=5000, cname="b").answer(offer, time.time())
    again = CalleeKeying(s, 0x2222, address="127.0.0.1", port=5000, cname="b").answer(offer, time.time())
    assert first.status == 200 and first.result is not None
    assert again.status == 488 and again.result is None and "replay" in (again.error or "").lower()


def test_replayed_invite_refused_by_the_phone(kamailio: Kamailio, tmp_path: Path) -> None:
    """A real INVITE whose SDP repeats an I_MESSAGE the phone already keyed is answered 488, no keys."""
    creds = write_demo_credentials("psk", tmp_path / "psk")
    s = KeyingSides("psk", PLUGINS["psk"], creds=json.loads(creds.read_text()))
    proxy = (kamailio.host, kamailio.port)
    bob = PhoneProcess(phone_argv("psk", "sip:bob@mikey.test", proxy, creds=creds, packets=10, timeout=10.0,
                                  calls=2), stderr=tmp_path / "bob.err")
    try:
        assert bob.wait_for("ready", 10.0)
        with SipAgent("sip:mallory@mikey.test", proxy) as mallory:
            assert mallory.register() == 200
            offer = offer_sdp(CallerKeying(s, 0x1111).offer(time.time()), address="127.0.0.1", port=4000,
                              ssrc=0x1111, cname="sip:mallory@mikey.test")
            statuses = []
            for _ in range(2):
                mallory.invite("sip:bob@mikey.test", offer, timeout=10.0)
                deadline = time.monotonic() + 15.0
                while time.monotonic() < deadline:
                    ev = mallory.events.get(timeout=15.0)
                    if isinstance(ev, Answered):
                        statuses.append(ev.status)
                        ev.dialog.bye()
                        break
                    if isinstance(ev, CallFailed):
                        statuses.append(ev.status)
                        break
        events = bob.finish(15.0)
    finally:
        bob.finish(0.0)
    assert statuses == [200, 488]
    calls = [e for e in events if e["event"] == "call"]
    assert [c["mikey"] for c in calls] == ["keyed", "refused"]
    assert "replay" in calls[1]["error"].lower()


def _option_sets(mode: str, creds: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(callee, caller) options of ``mikey respond`` / ``mikey initiate`` for *mode*, from its demo credentials."""
    if mode == "dhhmac":  # IDr is required in the I_MESSAGE (RFC 4650 §3); the callee checks it is its own
        bob = ["--psk", creds["psk"], "--id-r", "sip:bob@mikey.test"]
        return bob, [*bob, "--id-i", "sip:alice@mikey.test"]
    if mode in ("pk", "dh", "rsa-r"):
        a, b = creds["alice"], creds["bob"]
        callee = ["--cert", b["cert"], "--key", b["key"], "--ca", creds["ca"]]
        caller = ["--cert", a["cert"], "--key", a["key"], "--ca", creds["ca"]]
        return callee, caller + (["--peer-cert", b["cert"]] if mode == "pk" else [])
    return ["--keys", creds["bob"]["keys"]], ["--keys", creds["alice"]["keys"], "--to", creds["bob"]["uri"]]


def _assert_keyed_call(rc: int, alice: list[dict[str, Any]], bob: list[dict[str, Any]]) -> dict[str, Any]:
    """Both phones keyed with the same keys, Bob verified Alice's 25 packets; Alice's call event."""
    assert rc == 0, alice
    out = next(e for e in alice if e["event"] == "call")
    inn = next(e for e in bob if e["event"] == "call")
    assert out["mikey"] == inn["mikey"] == "keyed" and out["fingerprints"] == inn["fingerprints"]
    media = next(e for e in bob if e["event"] == "media")
    assert media["received"] == 25 and media["auth_failures"] == 0
    return out


@pytest.mark.parametrize("mode", ["pk", "dh", "dhhmac", "rsa-r", "sakke"])
def test_other_methods_with_mode_options(mode: str, kamailio: Kamailio, tmp_path: Path) -> None:
    """What the README promises: every method runs in ``mikey phone`` with its own ``initiate``/``respond`` options
    (the caller ``mikey initiate``'s, the callee ``mikey respond``'s) instead of demo credentials."""
    creds = json.loads(write_demo_credentials(mode, tmp_path / "creds").read_text())
    callee, caller = _option_sets(mode, creds)
    _assert_keyed_call(*_call_with_options(kamailio, tmp_path, mode, callee, caller))


def test_ticket_with_mode_options_and_a_kms_server(kamailio: Kamailio, tmp_path: Path) -> None:
    """TICKET with its ``initiate``/``respond`` options: both phones talk to a real ``mikey kms serve`` over HTTP
    (the Ticket Request from the caller, the Resolve from the callee; RFC 6043)."""
    import os

    from mikey.cli.demo_kms import DemoKms
    from mikey.cli.mode_ticket import provision_ticket_user
    from mikey.kms.auth import DevIssuer

    psk_a, psk_b = os.urandom(16), os.urandom(16)
    with DemoKms(tmp_path / "kms") as server:
        assert server.url is not None
        token = DevIssuer.load_or_create(tmp_path / "kms").issue("admin", admin=True, now=time.time())
        provision_ticket_user(server.url, token, "sip:alice@mikey.test", psk_a, key_id="alice-phone")
        provision_ticket_user(server.url, token, "sip:bob@mikey.test", psk_b, key_id="bob-phone")
        callee = ["--kms", server.url, "--psk", psk_b.hex(), "--psk-id", "bob-phone", "--id-r", "sip:bob@mikey.test"]
        caller = ["--kms", server.url, "--psk", psk_a.hex(), "--psk-id", "alice-phone", "--id-i",
                  "sip:alice@mikey.test"]  # no --to: the called identity is the --call URI
        _assert_keyed_call(*_call_with_options(kamailio, tmp_path, "ticket", callee, caller))


def test_ibake_with_mode_options_two_rounds_and_from_check(kamailio: Kamailio, tmp_path: Path) -> None:
    """IBAKE from key files (``mikey kms ibake-issue``) and its ``initiate``/``respond`` options, no --state: the
    phone keeps each side in memory across the INVITE and the re-INVITE; ``--from`` refuses anyone else (Error 7)."""
    from mikey.cli.main import main as mikey_main

    kms = tmp_path / "ibake-kms"
    assert mikey_main(["kms", "ibake-init", "--out", str(kms)]) == 0
    keys = {}
    for name in ("alice", "bob"):
        keys[name] = tmp_path / f"{name}.ibake.json"
        assert mikey_main(["kms", "ibake-issue", "--community", str(kms), "--uri", f"sip:{name}@mikey.test",
                           "--out", str(keys[name])]) == 0
    caller = ["--keys", str(keys["alice"])]  # no --to: the called identity is the --call URI
    out = _assert_keyed_call(*_call_with_options(kamailio, tmp_path, "ibake", ["--keys", str(keys["bob"])], caller))
    assert out["rounds"] == 2
    rc, alice, bob = _call_with_options(kamailio, tmp_path, "ibake",
                                        ["--keys", str(keys["bob"]), "--from", "sip:carol@mikey.test"], caller)
    assert rc == 1
    out = next(e for e in alice if e["event"] == "call")
    assert (out["status"], out["mikey"], out["error_no"]) == (488, "refused", 7)
    assert not [e for e in alice + bob if e["event"] == "media"]
