"""mikey.sip.adapter: our SIP user agent layer, against real peers (two agents of ours, and Kamailio).

UA to UA directly: INVITE/180/200/ACK, re-INVITE in the dialog, BYE, 488 with a body and a
Warning, an INVITE to nobody times out, a retransmitted INVITE is answered from the transaction
(the application sees it once).  Through Kamailio: REGISTER, a call routed by the location
service with record-routing, and parallel forking to two devices of one AOR where both answer
200: the caller gets both dialogs (different To tags), ACKs both and ends the extra one with BYE
(RFC 3261 §13.2.2.4).  Parsing: malformed and oversized messages raise SipError.
"""

from __future__ import annotations

import queue
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sipproxy

from mikey.errors import MikeyError
from mikey.sip.adapter import (
    Acked,
    Answered,
    Bye,
    CallFailed,
    IncomingCall,
    Provisional,
    ReInvite,
    SipAgent,
    SipError,
    parse_message,
    uri_host_port,
)
from mikey.sip.kamailio import Kamailio

kamailio = sipproxy.kamailio

SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/SAVP 0\r\n"


def next_event(agent: SipAgent, kind: type, timeout: float = 5.0) -> Any:
    """The next event of *kind* on *agent* (others before it are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {kind.__name__} event within {timeout} s")
        try:
            ev = agent.events.get(timeout=left)
        except queue.Empty:
            continue
        if isinstance(ev, kind):
            return ev


@pytest.fixture
def pair() -> Iterator[tuple[SipAgent, SipAgent]]:
    """Bob listening, Alice with Bob as her outbound proxy (UA to UA, no proxy)."""
    bob = SipAgent("sip:bob@mikey.test", ("127.0.0.1", 9))
    alice = SipAgent("sip:alice@mikey.test", (bob.host, bob.port))
    try:
        yield alice, bob
    finally:
        alice.close()
        bob.close()


def test_call_reinvite_bye_ua_to_ua(pair: tuple[SipAgent, SipAgent]) -> None:
    alice, bob = pair
    call_id = alice.invite("sip:bob@mikey.test", SDP + "a=x-offer:1\r\n")
    inc = next_event(bob, IncomingCall)
    assert inc.invite.call_id == call_id
    assert inc.invite.from_uri == "sip:alice@mikey.test"
    assert "a=x-offer:1" in (inc.invite.sdp or "")
    inc.invite.respond(180, "Ringing")
    ring = next_event(alice, Provisional)
    assert (ring.status, ring.call_id) == (180, call_id)
    dialog_b = inc.invite.respond(200, "OK", SDP + "a=x-answer:1\r\n")
    assert dialog_b is not None
    ans = next_event(alice, Answered)
    assert ans.status == 200 and "a=x-answer:1" in (ans.sdp or "")
    assert ans.dialog.remote_tag == dialog_b.local_tag and ans.dialog.local_tag == dialog_b.remote_tag
    next_event(bob, Acked)

    ans.dialog.reinvite(SDP + "a=x-offer:2\r\n")
    re = next_event(bob, ReInvite)
    assert re.invite.dialog is dialog_b and "a=x-offer:2" in (re.invite.sdp or "")
    re.invite.respond(200, "OK", SDP + "a=x-answer:2\r\n")
    ans2 = next_event(alice, Answered)
    assert ans2.dialog is ans.dialog and "a=x-answer:2" in (ans2.sdp or "")
    next_event(bob, Acked)

    assert ans.dialog.bye() == 200
    bye = next_event(bob, Bye)
    assert bye.call_id == call_id
    assert dialog_b.terminated
    assert alice.log == [] and bob.log == []


def test_488_with_body_and_warning(pair: tuple[SipAgent, SipAgent]) -> None:
    alice, bob = pair
    call_id = alice.invite("sip:bob@mikey.test", SDP)
    inc = next_event(bob, IncomingCall)
    inc.invite.respond(488, "Not Acceptable Here", SDP + "a=x-error:1\r\n", headers=['Warning: 399 bob "no"'])
    failed = next_event(alice, CallFailed)
    assert (failed.call_id, failed.status, failed.reason) == (call_id, 488, "Not Acceptable Here")
    assert failed.warning == '399 bob "no"'
    assert "a=x-error:1" in (failed.sdp or "")
    assert not failed.timeout
    # The non-2xx final answer was ACKed: Bob stops retransmitting it (no pending server transaction).
    deadline = time.monotonic() + 3.0
    while bob._client and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not bob._client


def test_invite_to_nobody_times_out() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        with SipAgent("sip:alice@mikey.test", silent.getsockname()) as alice:
            t0 = time.monotonic()
            call_id = alice.invite("sip:bob@mikey.test", SDP, timeout=1.0)
            failed = next_event(alice, CallFailed, timeout=5.0)
            assert (failed.call_id, failed.status, failed.timeout) == (call_id, 408, True)
            # The INVITE was retransmitted (timer A) while nothing answered.
            silent.settimeout(0.2)
            copies = 0
            with pytest.raises(TimeoutError):
                while True:
                    silent.recvfrom(65535)
                    copies += 1
            assert copies >= 2
            assert time.monotonic() - t0 < 5.0


def test_retransmitted_invite_reaches_the_application_once(pair: tuple[SipAgent, SipAgent]) -> None:
    alice, bob = pair
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
        raw.bind(("127.0.0.1", 0))
        port = raw.getsockname()[1]
        invite = (f"INVITE sip:bob@mikey.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKretx1\r\n"
                  "From: <sip:carol@mikey.test>;tag=c1\r\nTo: <sip:bob@mikey.test>\r\nCall-ID: retx@test\r\n"
                  f"CSeq: 1 INVITE\r\nContact: <sip:carol@127.0.0.1:{port}>\r\nContent-Length: 0\r\n\r\n").encode()
        raw.sendto(invite, (bob.host, bob.port))
        inc = next_event(bob, IncomingCall)
        inc.invite.respond(486, "Busy Here")
        raw.settimeout(2.0)
        first = [raw.recvfrom(65535)[0] for _ in range(2)]  # 100 Trying, 486
        assert first[0].startswith(b"SIP/2.0 100 ") and first[1].startswith(b"SIP/2.0 486 ")
        raw.sendto(invite, (bob.host, bob.port))  # the same INVITE again: the last response again
        again = raw.recvfrom(65535)[0]
        assert again.startswith(b"SIP/2.0 486 ")
        with pytest.raises(queue.Empty):
            ev = bob.events.get(timeout=0.5)
            while not isinstance(ev, IncomingCall):
                ev = bob.events.get(timeout=0.5)


def test_register_and_call_through_kamailio(kamailio: Kamailio) -> None:
    proxy = (kamailio.host, kamailio.port)
    with SipAgent("sip:bob@mikey.test", proxy) as bob, SipAgent("sip:alice@mikey.test", proxy) as alice:
        assert bob.register(expires=60) == 200 and bob.registered
        assert alice.register(expires=60) == 200
        alice.invite("sip:bob@mikey.test", SDP)
        inc = next_event(bob, IncomingCall)
        assert inc.invite.msg.record_route, "Kamailio record-routes the dialog"
        inc.invite.respond(200, "OK", SDP)
        ans = next_event(alice, Answered)
        assert ans.dialog.route_set, "the caller's route set comes from Record-Route"
        next_event(bob, Acked)
        ans.dialog.reinvite(SDP)
        next_event(bob, ReInvite).invite.respond(200, "OK", SDP)
        next_event(alice, Answered)
        assert ans.dialog.bye() == 200
        next_event(bob, Bye)
        assert bob.unregister() == 200 and not bob.registered


def test_unknown_user_through_kamailio(kamailio: Kamailio) -> None:
    with SipAgent("sip:alice@mikey.test", (kamailio.host, kamailio.port)) as alice:
        assert alice.register() == 200
        alice.invite("sip:nobody@mikey.test", SDP)
        failed = next_event(alice, CallFailed)
        assert failed.status in (404, 480)


def test_forked_answers_each_reported_extra_ended_with_bye(kamailio: Kamailio) -> None:
    """Two devices of Bob both answer 200: two dialogs, both ACKed; the caller BYEs the second."""
    proxy = (kamailio.host, kamailio.port)
    with SipAgent("sip:bob@mikey.test", proxy) as bob1, SipAgent("sip:bob@mikey.test", proxy) as bob2, \
            SipAgent("sip:alice@mikey.test", proxy) as alice:
        assert bob1.register() == 200 and bob2.register() == 200
        assert alice.register() == 200
        alice.invite("sip:bob@mikey.test", SDP)
        inc1, inc2 = next_event(bob1, IncomingCall), next_event(bob2, IncomingCall)
        assert inc1.invite.call_id == inc2.invite.call_id
        d1 = inc1.invite.respond(200, "OK", SDP + "a=x-device:1\r\n")
        d2 = inc2.invite.respond(200, "OK", SDP + "a=x-device:2\r\n")
        assert d1 is not None and d2 is not None and d1.local_tag != d2.local_tag
        first, second = next_event(alice, Answered), next_event(alice, Answered)
        tags = {first.dialog.remote_tag, second.dialog.remote_tag}
        assert tags == {d1.local_tag, d2.local_tag}
        devices = {("a=x-device:1" in (e.sdp or "")) for e in (first, second)}
        assert devices == {True, False}
        next_event(bob1, Acked)
        next_event(bob2, Acked)
        assert second.dialog.bye() == 200
        extra = bob1 if second.dialog.remote_tag == d1.local_tag else bob2
        kept = bob2 if extra is bob1 else bob1
        next_event(extra, Bye)
        assert first.dialog.bye() == 200
        next_event(kept, Bye)


@pytest.mark.parametrize("data, why", [
    (b"garbage\r\n\r\n", "malformed"),
    (b"INVITE sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nContent-Length: 5\r\n\r\n", "Content-Length"),
    (b"SIP/2.0 200 OK\r\nVia: x\r\nFrom: <sip:a@x>\r\nTo: <sip:b@x>\r\nCall-ID: c\r\nCSeq: x INVITE\r\n\r\n", "malformed"),
    (b"\xff\xfe" * 10, "UTF-8"),
    (b"INVITE sip:b@x SIP/2.0\r\n" + b"X: " + b"a" * 70000 + b"\r\n\r\n", "too large"),
])
def test_bad_messages_raise_sip_error(data: bytes, why: str) -> None:
    with pytest.raises(SipError, match=why) as info:
        parse_message(data)
    assert isinstance(info.value, MikeyError)


def test_parse_keeps_route_values_and_body() -> None:
    msg = parse_message(
        b"SIP/2.0 200 OK\r\nv: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKa;rport=5070\r\n"
        b"Record-Route: <sip:127.0.0.1:5060;lr;r2=on>, <sip:127.0.0.1:5060;lr>\r\n"
        b"From: <sip:alice@mikey.test>;tag=1\r\nTo: <sip:bob@mikey.test>;tag=2\r\nCall-ID: c@h\r\n"
        b"CSeq: 7 INVITE\r\nm: <sip:bob@127.0.0.1:5072>\r\nc: application/sdp\r\nl: 4\r\n\r\nv=0\r\nextra")
    assert (msg.status, msg.cseq, msg.method, msg.to_tag, msg.from_tag) == (200, 7, "INVITE", "2", "1")
    assert msg.record_route == ["<sip:127.0.0.1:5060;lr;r2=on>", "<sip:127.0.0.1:5060;lr>"]
    assert msg.sdp == "v=0\r"  # Content-Length 4 cuts what follows
    assert msg.contact == "sip:bob@127.0.0.1:5072"
    assert uri_host_port("<sip:bob@127.0.0.1:5072;transport=udp>") == ("127.0.0.1", 5072)
    assert uri_host_port("sip:mikey.test") == ("mikey.test", 5060)


def _reply(req: Any, status: int, reason: str, contact: tuple[str, int], *, body: str = "") -> bytes:
    """A response to *req* from a hand-written UAS at *contact* (RFC 3261 §8.2.6): its Via, From, Call-ID, CSeq."""
    lines = [f"SIP/2.0 {status} {reason}", *[f"Via: {v}" for v in req.headers("via")],
             f"From: {req.header('from')}", f"To: {req.header('to')};tag=uas-1", f"Call-ID: {req.call_id}",
             f"CSeq: {req.header('cseq')}", f"Contact: <sip:bob@{contact[0]}:{contact[1]}>"]
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body.encode())}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def _receive(sock: socket.socket, method: str) -> tuple[Any, tuple[str, int]]:
    """The next request *method* that reaches *sock* (retransmissions of others are skipped)."""
    while True:
        data, addr = sock.recvfrom(65535)
        msg = parse_message(data)
        if msg.is_request and msg.method == method:
            return msg, addr


def test_giving_up_on_a_ringing_callee_cancels_and_ends_a_crossing_2xx() -> None:
    """RFC 3261 §9.1: the INVITE times out after a 180, so the caller sends CANCEL (the INVITE's branch, Call-ID
    and CSeq number); a 200 to the INVITE that crosses the CANCEL is ACKed and ended with BYE (§15), and the
    application hears only the 408, never an Answered."""
    uas = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    uas.bind(("127.0.0.1", 0))
    uas.settimeout(5.0)
    here = uas.getsockname()
    alice = SipAgent("sip:alice@mikey.test", here)
    try:
        call_id = alice.invite("sip:bob@mikey.test", SDP, timeout=1.0)
        invite, addr = _receive(uas, "INVITE")
        uas.sendto(_reply(invite, 180, "Ringing", here), addr)
        cancel, _ = _receive(uas, "CANCEL")
        assert (cancel.call_id, cancel.branch, cancel.cseq) == (call_id, invite.branch, invite.cseq)
        assert cancel.request_uri == invite.request_uri and cancel.header("to") == invite.header("to")
        assert cancel.header("cseq") == f"{invite.cseq} CANCEL" and not cancel.body
        uas.sendto(_reply(cancel, 200, "OK", here), addr)
        uas.sendto(_reply(invite, 200, "OK", here, body=SDP), addr)  # the callee answered as the CANCEL flew
        ack, _ = _receive(uas, "ACK")
        assert ack.cseq == invite.cseq and ack.call_id == call_id
        bye, _ = _receive(uas, "BYE")
        assert bye.call_id == call_id and bye.header("to") == f"{invite.header('to')};tag=uas-1"
        uas.sendto(_reply(bye, 200, "OK", here), addr)
        failed = next_event(alice, CallFailed)
        assert (failed.call_id, failed.status, failed.timeout) == (call_id, 408, True)
        time.sleep(0.3)
        left = []
        while not alice.events.empty():
            left.append(alice.events.get_nowait())
        assert not [e for e in left if isinstance(e, Answered)], left
    finally:
        alice.close()
        uas.close()
