"""Kamailio with mikey's configuration really routes calls (issue 12), checked with sipp peers.

sipp callees (tests/sipp/uas_*.xml) register through tests/sipp/register.xml, a sipp caller (uac.xml)
calls through the proxy; the scenarios log what they saw (status codes, Request-URI, Diversion,
Record-Route) and the tests assert on it.  Skips without kamailio or sipp; fails instead with CI set.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import sipproxy
from sipproxy import Sipp, SippResult, require_kamailio, require_sipp, running_kamailio, sipp_register

from mikey.sip.kamailio import Kamailio, KamailioError, sip_options_ping

kamailio = sipproxy.kamailio
kamailio_factory = sipproxy.kamailio_factory


@pytest.fixture(autouse=True)
def _needs_sipp() -> None:
    require_sipp()


def call(proxy: Kamailio, callee: str, workdir: Path, *, caller: str = "alice", hold_ms: int = 100,
         timeout: float = 15.0) -> SippResult:
    """One sipp call from *caller* to *callee* through *proxy*; the caller's result."""
    uac = Sipp("uac", workdir, remote=(proxy.host, proxy.port), service=callee, duration_ms=hold_ms,
               keys={"domain": proxy.domain, "caller": caller}, timeout=timeout)
    return uac.wait()


def callee(proxy: Kamailio, user: str, workdir: Path, scenario: str = "uas_answer", *,
           answer_after_ms: int = 0, timeout: float = 15.0) -> Sipp:
    """A sipp callee running *scenario*, registered as *user* at *proxy*."""
    uas = Sipp(scenario, workdir, service=user, duration_ms=answer_after_ms, timeout=timeout).wait_listening()
    try:
        sipp_register(proxy, user, uas.port, workdir)
    except BaseException:
        uas.stop()
        raise
    return uas


def finished(uas: Sipp) -> SippResult:
    result = uas.wait()
    assert result.returncode == 0, result.describe()
    return result


def raw_request(proxy: Kamailio, message: str, timeout: float = 3.0) -> str:
    """Send *message* (LPORT replaced by our port) over UDP to *proxy*; the first line of the answer."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(timeout)
        sock.sendto(message.replace("LPORT", str(sock.getsockname()[1])).encode(), (proxy.host, proxy.port))
        return sock.recv(65535).decode("utf-8", "replace").split("\r\n")[0]


def invite(n: int, *, user: str = "bob", cseq: str = "1 INVITE", body: str = "v=0\r\n",
           content_length: int | None = None) -> str:
    length = len(body.encode()) if content_length is None else content_length
    return (f"INVITE sip:{user}@mikey.test SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:LPORT;branch=z9hG4bK-raw{n}-{os.getpid()};rport\r\n"
            "Max-Forwards: 70\r\nFrom: <sip:alice@mikey.test>;tag=raw1\r\n"
            f"To: <sip:{user}@mikey.test>\r\nCall-ID: raw{n}-{os.getpid()}@127.0.0.1\r\nCSeq: {cseq}\r\n"
            "Contact: <sip:alice@127.0.0.1:LPORT>\r\n"
            f"Content-Type: application/sdp\r\nContent-Length: {length}\r\n\r\n{body}")


# -- the proxy itself ------------------------------------------------------------------------------


def test_answers_options_and_stops_cleanly(tmp_path: Path) -> None:
    require_kamailio()
    proxy = Kamailio(tmp_path / "k")
    with proxy:
        assert proxy.running and proxy.host == "127.0.0.1" and proxy.port > 0
        assert sip_options_ping(proxy.host, proxy.port) == 200
        assert proxy.ctl_path is not None and proxy.ctl_path.exists()
        assert "#!define FR_INV_TIMER_MS 30000" in proxy.cfg_path.read_text()
    assert not proxy.running
    assert sip_options_ping(proxy.host, proxy.port, timeout=0.3) is None
    assert "Thank you for flying kamailio" in proxy.log_path.read_text()


def test_two_instances_side_by_side(tmp_path: Path) -> None:
    require_kamailio()
    with running_kamailio(tmp_path / "a") as a, running_kamailio(tmp_path / "b", domain="other.test") as b:
        assert a.port != b.port
        assert sip_options_ping(a.host, a.port) == 200 and sip_options_ping(b.host, b.port) == 200
        assert a.ctl_path != b.ctl_path


def test_port_in_use_fails_with_log_tail(tmp_path: Path) -> None:
    require_kamailio()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        proxy = Kamailio(tmp_path / "k", port=taken.getsockname()[1], start_timeout=5)
        with pytest.raises(KamailioError, match="(?s)kamailio exited with status.*bind"):
            proxy.start()
        assert not proxy.running


def test_an_unstopped_kamailio_dies_with_its_interpreter(tmp_path: Path) -> None:
    require_kamailio()
    code = ("import sys; from pathlib import Path; from mikey.sip.kamailio import Kamailio; "
            "k = Kamailio(Path(sys.argv[1])); k.start(); print(k._proc.pid, flush=True)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "k")], capture_output=True, text=True,
                         timeout=60, check=True)
    pid = int(out.stdout.split()[0])
    deadline = time.monotonic() + 10
    while _process_group_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _process_group_alive(pid)


def _process_group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_long_workdir_gets_a_short_control_socket(tmp_path: Path) -> None:
    require_kamailio()
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    with running_kamailio(deep) as proxy:
        assert proxy.ctl_path is not None and len(str(proxy.ctl_path)) <= 100 and proxy.ctl_path.exists()
        short_dir = proxy.ctl_path.parent
        assert proxy.contacts("nobody") == []  # the control socket answers
        assert proxy.log_path.parent == deep
    assert not short_dir.exists()


@pytest.mark.parametrize("options", [
    {"divert": {"bob": "carol\"; exit;"}},
    {"voicemail": "vm@bad domain"},
    {"domain": "mikey.test\n#!define X"},
    {"divert_mode": "proxy"},
    {"max_message_size": 10},
    {"divert": {"bob": "carol"}, "divert_modes": {"dave": "302"}},
    {"divert": {"bob": "carol"}, "divert_modes": {"bob": "forward"}},
    {"host": "::1"},
    {"host": "127.0.0.1 -l udp:0.0.0.0"},
])
def test_bad_options_refused(tmp_path: Path, options: dict[str, object]) -> None:
    with pytest.raises(KamailioError):
        Kamailio(tmp_path, **options)  # type: ignore[arg-type]


def test_rendered_configuration(tmp_path: Path) -> None:
    proxy = Kamailio(tmp_path, voicemail="sip:vm@mikey.test", divert={"bob": "carol"}, divert_mode="retarget",
                     users=["alice"], no_answer_timeout=2.5)
    cfg = proxy.render()
    assert '#!define VM_AOR "sip:vm@mikey.test"' in cfg and "#!define WITH_VOICEMAIL" in cfg
    assert "#!define FR_INV_TIMER_MS 2500" in cfg
    assert '$sht(retarget=>bob) = "sip:carol@mikey.test";' in cfg and '$sht(redirect=>bob)' not in cfg
    assert sorted(proxy.users or []) == ["alice", "bob", "carol", "vm"]
    assert proxy.divert == {"sip:bob@mikey.test": "sip:carol@mikey.test"}


# -- calls -----------------------------------------------------------------------------------------


def test_call_through_the_proxy(kamailio: Kamailio, tmp_path: Path) -> None:
    bob = callee(kamailio, "bob", tmp_path)
    try:
        assert kamailio.contacts("bob") == [f"sip:bob@127.0.0.1:{bob.port}"]
        result = call(kamailio, "bob", tmp_path)
        assert result.returncode == 0, result.describe()
        assert result.value("status") == "200"
        seen = finished(bob)
    finally:
        bob.stop()
    assert seen.value("ruri") == f"sip:bob@127.0.0.1:{bob.port}"  # the proxy looked the contact up
    assert f"127.0.0.1:{kamailio.port};lr" in seen.value("record_route")  # and stays on the path


def test_parallel_forking_to_every_contact(kamailio: Kamailio, tmp_path: Path) -> None:
    ringing = callee(kamailio, "bob", tmp_path / "d1", "uas_ring")
    answering = callee(kamailio, "bob", tmp_path / "d2", answer_after_ms=300)
    try:
        assert len(kamailio.wait_contacts("bob", 2)) == 2
        result = call(kamailio, "bob", tmp_path)
        assert result.returncode == 0, result.describe()
        assert result.value("status") == "200"
        answered = finished(answering)
        rang = finished(ringing)
    finally:
        ringing.stop()
        answering.stop()
    # both devices got the INVITE at once; the one that did not answer was cancelled
    assert answered.value("ruri") == f"sip:bob@127.0.0.1:{answering.port}"
    assert rang.value("ruri") == f"sip:bob@127.0.0.1:{ringing.port}"
    assert "cancelled" in rang.logs


def test_unknown_user_404(kamailio_factory: Callable[..., Kamailio], tmp_path: Path) -> None:
    proxy = kamailio_factory(users=["alice", "bob"])
    result = call(proxy, "nobody", tmp_path)
    assert result.returncode == 0, result.describe()
    assert result.value("status") == "404"
    offline = call(proxy, "bob", tmp_path)  # known, but not registered
    assert offline.value("status") == "480"


def test_unregistered_user_404_by_default(kamailio: Kamailio, tmp_path: Path) -> None:
    assert call(kamailio, "nobody", tmp_path).value("status") == "404"


def test_divert_302(kamailio_factory: Callable[..., Kamailio], tmp_path: Path) -> None:
    proxy = kamailio_factory(divert={"bob": "carol"}, divert_mode="302")
    result = call(proxy, "bob", tmp_path)
    assert result.returncode == 0, result.describe()
    assert result.value("status") == "302"
    assert "<sip:carol@mikey.test>" in result.value("contact")


def test_divert_retarget(kamailio_factory: Callable[..., Kamailio], tmp_path: Path) -> None:
    proxy = kamailio_factory(divert={"bob": "carol"}, divert_mode="retarget")
    carol = callee(proxy, "carol", tmp_path)
    try:
        result = call(proxy, "bob", tmp_path)
        assert result.returncode == 0, result.describe()
        assert result.value("status") == "200"
        assert "<sip:bob@mikey.test>" in result.value("to")  # the caller still sees its callee
        seen = finished(carol)
    finally:
        carol.stop()
    assert seen.value("ruri") == f"sip:carol@127.0.0.1:{carol.port}"
    diversion = seen.value("diversion")
    assert "sip:bob@mikey.test" in diversion and "reason=unconditional" in diversion


def test_divert_flavours_per_aor(kamailio_factory: Callable[..., Kamailio], tmp_path: Path) -> None:
    proxy = kamailio_factory(divert={"bob": "carol", "dave": "sip:carol@mikey.test"}, divert_mode="retarget",
                             divert_modes={"sip:bob@mikey.test": "302"})
    assert proxy.divert_modes == {"sip:bob@mikey.test": "302", "sip:dave@mikey.test": "retarget"}
    redirected = call(proxy, "bob", tmp_path)
    assert redirected.value("status") == "302" and "<sip:carol@mikey.test>" in redirected.value("contact")
    carol = callee(proxy, "carol", tmp_path)
    try:
        retargeted = call(proxy, "dave", tmp_path)
        assert retargeted.value("status") == "200", retargeted.describe()
        seen = finished(carol)
    finally:
        carol.stop()
    assert "sip:dave@mikey.test" in seen.value("diversion")


def test_voicemail_for_an_unregistered_callee(kamailio_factory: Callable[..., Kamailio], tmp_path: Path) -> None:
    proxy = kamailio_factory(voicemail="vm", users=["alice", "dave"])
    vm = callee(proxy, "vm", tmp_path)
    try:
        result = call(proxy, "dave", tmp_path)
        assert result.returncode == 0, result.describe()
        assert result.value("status") == "200"
        seen = finished(vm)
    finally:
        vm.stop()
    assert seen.value("ruri") == f"sip:vm@127.0.0.1:{vm.port}"
    assert "<sip:dave@mikey.test>" in seen.value("to")  # the mailbox is the original callee's
    diversion = seen.value("diversion")
    assert "sip:dave@mikey.test" in diversion and "reason=unavailable" in diversion
    # unknown users still get 404 when voicemail is on
    assert call(proxy, "nobody", tmp_path).value("status") == "404"


def test_voicemail_when_the_callee_does_not_answer(kamailio_factory: Callable[..., Kamailio], tmp_path: Path) -> None:
    proxy = kamailio_factory(voicemail="vm", no_answer_timeout=1.0)
    vm = callee(proxy, "vm", tmp_path / "vm")
    carol = callee(proxy, "carol", tmp_path / "carol", "uas_ring")
    try:
        result = call(proxy, "carol", tmp_path)
        assert result.returncode == 0, result.describe()
        assert result.value("status") == "200"
        rang = finished(carol)
        seen = finished(vm)
    finally:
        vm.stop()
        carol.stop()
    assert "cancelled" in rang.logs
    diversion = seen.value("diversion")
    assert "reason=no-answer" in diversion
    assert "<sip:carol@mikey.test>" in seen.value("to")


def test_voicemail_not_registered_480(kamailio_factory: Callable[..., Kamailio], tmp_path: Path) -> None:
    proxy = kamailio_factory(voicemail="vm")
    assert call(proxy, "dave", tmp_path).value("status") == "480"


# -- bad requests ----------------------------------------------------------------------------------


def test_oversized_request_513(kamailio_factory: Callable[..., Kamailio]) -> None:
    proxy = kamailio_factory(max_message_size=4096)
    body = "v=0\r\n" + "a=x-pad:" + "A" * 6000 + "\r\n"
    assert raw_request(proxy, invite(1, body=body)) == "SIP/2.0 513 Message Too Large"
    assert "too large" in proxy.log_tail()
    assert sip_options_ping(proxy.host, proxy.port) == 200  # still serving


def test_malformed_requests_400(kamailio: Kamailio) -> None:
    assert raw_request(kamailio, invite(2, cseq="abc INVITE")).startswith("SIP/2.0 400 ")
    assert raw_request(kamailio, invite(3, content_length=300)).startswith("SIP/2.0 400 ")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:  # not SIP at all: dropped
        sock.sendto(b"\x00garbage\r\n\r\n", (kamailio.host, kamailio.port))
    assert sip_options_ping(kamailio.host, kamailio.port) == 200
    assert kamailio.running
