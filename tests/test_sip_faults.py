"""Bad input and faults in real SIP calls (issue 12): ``mikey phone`` against scripted sipp peers, through Kamailio.

The callee is a real ``mikey phone`` (MIKEY-PSK, ``mikey respond`` options); the offers come from sipp
(tests/sipp/uac_mikey.xml, uac_body.xml) carrying I_MESSAGEs made by ``mikey initiate`` and then
tampered, replayed, stale, of another method, undecodable, huge or not SDP at all.  Each gives a clean SIP
answer (488 with a Warning, and the MIKEY Error message in key-mgmt where the mode can build one, RFC 4567
§4.1), a ``call`` event with the reason, no keys, and the phone answers the next, valid call.  The caller
is a real ``mikey phone`` against sipp callees that bid down (answer without key-mgmt or without SRTP,
RFC 4567 §4.1.4), refuse the method (488), or never answer: it ends the call cleanly, without keys.
Replays are refused within one responder, and across two responder processes sharing the Redis replay
cache (RFC 3830 §5.4).  Skips without kamailio or sipp; fails instead with CI set.
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sipproxy
from sipproxy import (
    PhoneProcess,
    Sipp,
    SippResult,
    require,
    require_kamailio,
    require_sipp,
    running_kamailio,
    sipp_register,
)

from mikey.cli import main as mikey_main
from mikey.constants import DataType, PayloadType
from mikey.sip.kamailio import Kamailio
from mikey.wire.message import Message

kamailio = sipproxy.kamailio
kamailio_factory = sipproxy.kamailio_factory

PSK = "5eb1f0c4e3a2d19788a6b5c4d3e2f1a0"
OTHER_PSK = "00112233445566778899aabbccddeeff"
REDIS_URL = os.environ.get("MIKEY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(autouse=True)
def _needs_sipp() -> None:
    require_sipp()


@pytest.fixture
def rtp_sink() -> Iterator[int]:
    """A UDP port of ours that the sipp peers put in their SDP, so no media goes to anyone else's port."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def initiate(*args: str, mode: str = "psk", psk: str = PSK) -> bytes:
    """An I_MESSAGE from ``mikey initiate --mode MODE --psk PSK ... --raw`` (run in this process)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = mikey_main(["initiate", "--mode", mode, "--psk", psk, "--raw", *args])
    assert status == 0, out.getvalue()
    return bytes.fromhex(out.getvalue().strip())


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def tamper(data: bytes, payload: PayloadType, *, from_end: int | None = None) -> bytes:
    """*data* with one bit flipped inside its first *payload* (its middle, or *from_end* octets before its end)."""
    message = Message.decode(data)
    index = next(i for i, p in enumerate(message.payloads) if p.TYPE == payload)
    start = message.offsets[index]
    end = message.offsets[index + 1] if index + 1 < len(message.offsets) else len(data)
    position = end - from_end if from_end is not None else (start + end) // 2
    out = bytearray(data)
    out[position] ^= 0x01
    return bytes(out)


def callee_phone(proxy: Kamailio, user: str, *, calls: int, replay_cache: str | None = None,
                 timeout: float = 20.0) -> PhoneProcess:
    args = ["--mode", "psk", "--psk", PSK, "--user", proxy.aor(user), "--proxy", proxy.proxy,
            "--calls", str(calls), "--packets", "5", "--timeout", f"{timeout:g}"]
    if replay_cache is not None:
        args += ["--replay-cache", replay_cache]
    phone = PhoneProcess(args, name=f"callee {user}")
    try:
        phone.ready()
    except BaseException:
        phone.stop()
        raise
    return phone


def offer(proxy: Kamailio, user: str, workdir: Path, rtp_port: int, *, keymgmt: str | None = None,
          body: str | None = None, profile: str | None = None, remote_port: int | None = None) -> SippResult:
    """One sipp INVITE to *user*: an SDP offer with ``a=key-mgmt:mikey <keymgmt>``, the one-line *body*, or
    (with *profile*) an offer without key-mgmt."""
    keys = {"domain": proxy.domain, "caller": "alice", "rtp_port": str(rtp_port)}
    if profile is not None:
        scenario = "uac_nomikey"
        keys["profile"] = profile
    elif body is None:
        scenario = "uac_mikey"
        keys["keymgmt"] = keymgmt or ""
    else:
        scenario = "uac_body"
        keys["body"] = body
    run = Sipp(scenario, workdir, remote=(proxy.host, remote_port or proxy.port), service=user,
               duration_ms=200, keys=keys, timeout=20)
    result = run.wait()
    assert result.returncode == 0, result.describe()
    return result


def error_nos(answer_b64: str) -> list[int]:
    """The Error numbers of the MIKEY Error message (data type 6) in an answer's key-mgmt."""
    message = Message.decode(base64.b64decode(answer_b64))
    assert message.header.data_type == DataType.ERROR
    return [int(p.error_no) for p in message.payloads if p.TYPE == PayloadType.ERR]  # type: ignore[attr-defined]


def assert_clean(phone: PhoneProcess) -> None:
    assert "Traceback" not in phone.stderr, phone.describe()
    assert not phone.stray, phone.describe()


# -- the callee refuses bad offers, and keeps serving ----------------------------------------------

#: name -> (offer maker, where to send it, expected Warning text, expected error_no, the Error payload's
#: numbers); ANY: not checked (an undecodable message has no exchange to answer: an Error message or not)
BadOffer = Callable[[], dict[str, Any]]
ANY: Any = object()

BAD_OFFERS: dict[str, tuple[BadOffer, str, str, Any, Any]] = {
    # a bit of the KEMAC's MAC (its last octets): the MAC check fails, Error no 0 (RFC 3830 §5.2)
    "tampered-mac": (lambda: {"keymgmt": b64(tamper(initiate(), PayloadType.KEMAC, from_end=3))}, "proxy",
                     "authentication", 0, [0]),
    # a bit of the RAND payload: the MAC covers it
    "tampered-rand": (lambda: {"keymgmt": b64(tamper(initiate(), PayloadType.RAND))}, "proxy",
                      "authentication", 0, [0]),
    # the right method with another PSK
    "wrong-key": (lambda: {"keymgmt": b64(initiate(psk=OTHER_PSK))}, "proxy", "authentication", 0, [0]),
    # a timestamp an hour old (RFC 3830 §5.4: outside the allowed clock skew): Error no 1
    "stale-timestamp": (lambda: {"keymgmt": b64(initiate("--now", str(int(time.time()) - 3600)))}, "proxy",
                        "timestamp", 1, [1]),
    # another method (DH-HMAC, RFC 4650) to a PSK phone: 488 with an Error message, Error no 11 (Invalid DT)
    "method-refused": (lambda: {"keymgmt": b64(initiate(mode="dhhmac"))}, "proxy", "DHHMAC", 11, [11]),
    # key-mgmt data that is not base64, and base64 that is not MIKEY
    "not-base64": (lambda: {"keymgmt": "!!not*base64!!"}, "proxy", "base64", None, None),
    "not-mikey": (lambda: {"keymgmt": b64(b"\x01\x00garbage that is no MIKEY message")}, "proxy", "decode",
                  ANY, ANY),
    # an offer without MIKEY (SRTP keyed by nothing), and one without SRTP: the callee does not bid down
    "offer-without-key-mgmt": (lambda: {"profile": "RTP/SAVP"}, "proxy", "key-mgmt", None, None),
    "offer-without-srtp": (lambda: {"profile": "RTP/AVP"}, "proxy", "RTP/AVP", None, None),
    # a body that is no SDP at all
    "malformed-sdp": (lambda: {"body": "this is not an SDP body;\x7f"}, "proxy", "SDP", None, None),
    # 20 kB of key-mgmt through the proxy, and 45 kB straight to the phone (more than the proxy relays)
    "huge-key-mgmt": (lambda: {"keymgmt": b64(os.urandom(20000))}, "proxy", "decode", ANY, ANY),
    "huge-direct": (lambda: {"keymgmt": b64(os.urandom(45000))}, "direct", "decode", ANY, ANY),
}


@pytest.fixture(scope="module")
def shared_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kamailio]:
    require_kamailio()
    with running_kamailio(tmp_path_factory.mktemp("faults-kamailio")) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def responder(shared_proxy: Kamailio) -> Iterator[PhoneProcess]:
    """One callee phone for all the bad offers: that it answers each next valid call shows it keeps serving."""
    phone = callee_phone(shared_proxy, "bob", calls=1000, timeout=300)
    with phone:
        yield phone
        assert phone.proc.poll() is None, phone.describe()  # still serving after every case
        assert_clean(phone)


@pytest.mark.parametrize("case", list(BAD_OFFERS))
def test_callee_refuses_a_bad_offer_and_keeps_serving(case: str, shared_proxy: Kamailio, responder: PhoneProcess,
                                                      tmp_path: Path, rtp_sink: int) -> None:
    make, route, warning, err_no, payload_errors = BAD_OFFERS[case]
    seen = len(responder.events)
    remote = responder.contact_port() if route == "direct" else None
    bad = offer(shared_proxy, "bob", tmp_path, rtp_sink, remote_port=remote, **make())
    assert bad.value("status") == "488", bad.describe()
    assert "mikey-phone" in bad.value("warning") and warning in bad.value("warning"), bad.describe()
    refused = responder.wait_event("call", after=seen)
    assert refused["status"] == 488 and refused["mikey"] == "refused" and refused["fingerprints"] == {}, refused
    assert refused["error"], refused
    if err_no is not ANY:
        assert refused["error_no"] == err_no, refused
    if payload_errors is None:
        assert bad.value("answer_keymgmt") == ""
    elif payload_errors is not ANY:
        assert error_nos(bad.value("answer_keymgmt")) == payload_errors
    # the same phone answers the next, valid call
    seen = len(responder.events)
    good = offer(shared_proxy, "bob", tmp_path, rtp_sink, keymgmt=b64(initiate()))
    assert good.value("status") == "200", good.describe()
    keyed = responder.wait_event("call", after=seen)
    assert keyed["status"] == 200 and keyed["mikey"] == "keyed" and keyed["fingerprints"], keyed
    assert responder.proc.poll() is None, responder.describe()
    assert_clean(responder)


def test_proxy_refuses_an_oversized_offer_and_the_phone_keeps_serving(shared_proxy: Kamailio,
                                                                      responder: PhoneProcess, tmp_path: Path,
                                                                      rtp_sink: int) -> None:
    seen = len(responder.events)
    huge = offer(shared_proxy, "bob", tmp_path, rtp_sink, keymgmt=b64(os.urandom(30000)))
    assert huge.value("status") == "513"  # Kamailio's max message size: the phone never sees it
    good = offer(shared_proxy, "bob", tmp_path, rtp_sink, keymgmt=b64(initiate()))
    assert good.value("status") == "200", good.describe()
    keyed = responder.wait_event("call", after=seen)
    assert keyed["status"] == 200 and keyed["mikey"] == "keyed"
    assert [e["mikey"] for e in responder.events[seen:] if e["event"] == "call"] == ["keyed"]


# -- replays ---------------------------------------------------------------------------------------


def test_replayed_invite_refused(shared_proxy: Kamailio, responder: PhoneProcess, tmp_path: Path,
                                 rtp_sink: int) -> None:
    i_message = b64(initiate())
    seen = len(responder.events)
    first = offer(shared_proxy, "bob", tmp_path, rtp_sink, keymgmt=i_message)
    keyed = responder.wait_event("call", after=seen)
    seen = len(responder.events)
    again = offer(shared_proxy, "bob", tmp_path, rtp_sink, keymgmt=i_message)  # a new INVITE, the same MIKEY
    replayed = responder.wait_event("call", after=seen)
    assert first.value("status") == "200"
    assert again.value("status") == "488" and "replay" in again.value("warning")
    assert keyed["mikey"] == "keyed" and keyed["fingerprints"]
    assert replayed["mikey"] == "refused" and replayed["fingerprints"] == {} and "replay" in replayed["error"]


def _redis_or_skip() -> Any:
    try:
        import redis
    except ImportError:
        require(False, "the redis package (extra 'redis')")
        raise
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        require(False, f"Redis at {REDIS_URL} ({exc})")
    return client


@pytest.mark.parametrize("cache", ["memory", "redis"])
def test_replay_across_two_responder_processes(cache: str, kamailio: Kamailio, tmp_path: Path,
                                               rtp_sink: int) -> None:
    """The same I_MESSAGE to two responder processes: each has its own memory: cache (both key), or they
    share the Redis replay cache (the second refuses it, RFC 3830 §5.4)."""
    prefix = f"mikey:test:sipfaults:{os.getpid()}:{time.monotonic_ns()}:"
    client = _redis_or_skip() if cache == "redis" else None
    url = "memory:" if client is None else f"{REDIS_URL}?prefix={prefix}"
    try:
        first = callee_phone(kamailio, "bob1", calls=1, replay_cache=url)
        with first:
            second = callee_phone(kamailio, "bob2", calls=1, replay_cache=url)
            with second:
                i_message = b64(initiate())
                one = offer(kamailio, "bob1", tmp_path, rtp_sink, keymgmt=i_message)
                two = offer(kamailio, "bob2", tmp_path, rtp_sink, keymgmt=i_message)
                assert first.wait() == 0 and second.wait() == 0
        assert one.value("status") == "200"
        assert first.of("call")[0]["mikey"] == "keyed"
        if client is None:
            assert two.value("status") == "200"  # separate caches: the replay gets through
            assert second.of("call")[0]["mikey"] == "keyed"
        else:
            assert two.value("status") == "488" and "replay" in two.value("warning")
            refused = second.of("call")[0]
            assert refused["mikey"] == "refused" and refused["fingerprints"] == {} and "replay" in refused["error"]
        assert_clean(first)
        assert_clean(second)
    finally:
        if client is not None:
            for key in client.scan_iter(match=prefix + "*"):
                client.delete(key)
            client.close()


# -- the caller facing a bad callee ------------------------------------------------------------------


def caller_phone(proxy: Kamailio, target: str, *extra: str, timeout: float = 4.0) -> PhoneProcess:
    return PhoneProcess(["--mode", "psk", "--psk", PSK, "--user", proxy.aor("alice"), "--proxy", proxy.proxy,
                         "--call", proxy.aor(target), "--packets", "5", "--timeout", f"{timeout:g}", *extra],
                        name="caller")


def scripted_callee(proxy: Kamailio, scenario: str, workdir: Path, rtp_port: int, **keys: str) -> Sipp:
    uas = Sipp(scenario, workdir / scenario, service="bob", timeout=30,
               keys={"rtp_port": str(rtp_port), **keys}).wait_listening()
    try:
        sipp_register(proxy, "bob", uas.port, workdir)
    except BaseException:
        uas.stop()
        raise
    return uas


def assert_unkeyed_failure(phone: PhoneProcess) -> list[dict[str, Any]]:
    calls = phone.of("call")
    assert calls and all(c["mikey"] == "refused" and c["fingerprints"] == {} for c in calls), phone.describe()
    assert not phone.of("rekeyed")
    assert all(m.get("sent", 0) == 0 for m in phone.of("media")), phone.describe()
    assert phone.wait_event("end")["ok"] is False
    assert_clean(phone)
    return calls


@pytest.mark.parametrize("profile, extra", [("RTP/SAVP", ["--verify"]), ("RTP/AVP", [])],
                         ids=["no-key-mgmt", "no-srtp"])
def test_caller_refuses_bidding_down(profile: str, extra: list[str], kamailio: Kamailio, tmp_path: Path,
                                     rtp_sink: int) -> None:
    """An answer that drops a=key-mgmt while the Initiator waits for the response (V set), or drops SRTP:
    the caller keys nothing and ends the call with BYE (RFC 4567 §4.1.4)."""
    uas = scripted_callee(kamailio, "uas_no_keymgmt", tmp_path, rtp_sink, profile=profile)
    with uas:
        phone = caller_phone(kamailio, "bob", *extra)
        with phone:
            assert phone.wait(30) == 1, phone.describe()
        seen = uas.wait(10)
    assert seen.returncode == 0 and "bye" in seen.logs, seen.describe()  # ACKed, then BYE
    assert seen.value("offer_keymgmt")  # the offer did carry MIKEY
    first = assert_unkeyed_failure(phone)[0]
    assert first["status"] == 200 and "bidding-down" in first["error"]


def test_caller_handles_488_from_the_callee(kamailio: Kamailio, tmp_path: Path, rtp_sink: int) -> None:
    uas = scripted_callee(kamailio, "uas_refuse", tmp_path, rtp_sink)
    with uas:
        phone = caller_phone(kamailio, "bob")
        with phone:
            assert phone.wait(30) == 1, phone.describe()
        seen = uas.wait(10)
    assert seen.returncode == 0 and "acked" in seen.logs, seen.describe()
    first = assert_unkeyed_failure(phone)[0]
    assert first["status"] == 488 and "not supported" in first["error"]


@pytest.mark.parametrize("scenario", ["uas_silent", "uas_ring"])
def test_caller_times_out_when_the_peer_never_answers(scenario: str, kamailio: Kamailio, tmp_path: Path,
                                                      rtp_sink: int) -> None:
    """A callee that sends nothing, or rings forever: the caller gives up after its --timeout, no hang.

    The ringing callee is CANCELled by the caller (RFC 3261 §9.1) when it gives up, long before the
    proxy's own no-answer timer (30 s): the scenario gets the CANCEL, answers 200 and 487, and ends.
    """
    uas = scripted_callee(kamailio, scenario, tmp_path, rtp_sink)
    with uas:
        phone = caller_phone(kamailio, "bob", timeout=2.0)
        with phone:
            assert phone.wait(30) == 1, phone.describe()
        if scenario == "uas_silent":
            uas.stop()
        seen = uas.wait(10)
    assert seen.logs and seen.logs[0].startswith(("invite", "ruri=")), seen.describe()
    if scenario == "uas_ring":
        assert "cancelled" in seen.logs and seen.returncode == 0, seen.describe()
    first = assert_unkeyed_failure(phone)[0]
    assert first["status"] == 408
