"""Call forking through Kamailio: Bob is registered on two devices; Kamailio forks Alice's INVITE to both
in parallel (RFC 3261 §16.6); both answer 200 OK with their own R_MESSAGE (RFC 4567 §4.1).

Alice keys each answer (:meth:`mikey.modes.base.Initiator.fork` for the second), keeps the first
dialog, sends BYE to the other (§13.2.2.4) and exchanges SRTP with the device she kept.  Per method
the test shows whether each device got its own keys (the other device cannot read Alice's media) or
the same key (it can: the forking security note of the README).  The mode-level fork tests are in
tests/test_modes_fork.py.
"""

from __future__ import annotations

import queue
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sipproxy import kamailio_factory  # noqa: F401
from test_modes_fork import DEVICE_SSRCS, ONE_SHOT, SSRC_A

from mikey.errors import MikeyError
from mikey.modes.results import ExchangeResult
from mikey.offer_answer import make_answer, make_offer, take_answer, take_offer
from mikey.session import CryptoSessionBundle
from mikey.sip.usecases import Outcome

#: The methods whose one I_MESSAGE every device answers in the 200 OK (TICKET and IBAKE: tests/test_modes_fork.py).
EXPECTED = {"psk": Outcome.SAME_KEY, "pk": Outcome.SAME_KEY, "sakke": Outcome.SAME_KEY,
            "dh": Outcome.OWN_KEYS, "dhhmac": Outcome.OWN_KEYS, "rsa-r": Outcome.OWN_KEYS}


@pytest.fixture
def start_proxy(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """``start_proxy(**options)``: a Kamailio (tests/sipproxy.py: skipped without it, failed under CI)."""
    factory: Callable[..., Any] = request.getfixturevalue("kamailio_factory")
    return factory


def media_port(sdp: str) -> int:
    found = re.search(r"^m=audio (\d+)", sdp, re.M)
    assert found is not None, sdp
    return int(found.group(1))


@dataclass
class Device:
    """One of Bob's phones: registers as Bob, answers the INVITE with its own Responder in a 183
    (early answer with the R_MESSAGE, RFC 3261 §13.3.1.1); device 0 then picks up (200 OK, the same
    answer) and plays a tone, device 1 keeps ringing until Kamailio cancels it (RFC 3261 §16.7)."""

    index: int
    method: str
    agent: Any
    result: ExchangeResult | None = None
    error: str | None = None
    media: Any = None
    early: threading.Event = field(default_factory=threading.Event)
    pick_up: threading.Event = field(default_factory=threading.Event)
    cancelled: threading.Event = field(default_factory=threading.Event)
    bye: threading.Event = field(default_factory=threading.Event)

    def serve(self, stop: threading.Event) -> None:
        from mikey.sip.adapter import Bye, CallFailed, IncomingCall
        from mikey.sip.media import MediaSession, ToneSource

        pending: tuple[Any, str] | None = None
        while not stop.is_set():
            if pending is not None and self.pick_up.is_set():
                inv, answer = pending
                pending = None
                inv.respond(200, "OK", answer)
                self.media.start(CryptoSessionBundle(self.result), ("127.0.0.1", media_port(inv.sdp or "")),
                                 source=ToneSource(500), packets=20, pace=0.005)
            try:
                event = self.agent.events.get(timeout=0.02)
            except queue.Empty:
                continue
            if isinstance(event, IncomingCall):
                inv = event.invite
                try:
                    outcome = ONE_SHOT[self.method][1](self.index).receive(take_offer(inv.sdp or ""), time_now())
                except MikeyError as exc:
                    self.error = exc.message
                    inv.respond(488, "Not Acceptable Here", make_answer(exc.error_message, port=9))
                    continue
                self.result = outcome.result
                self.media = MediaSession(DEVICE_SSRCS[self.index])
                answer = make_answer(outcome.response, port=self.media.port)
                inv.respond(183, "Session Progress", answer)
                self.early.set()
                pending = (inv, answer)
            elif isinstance(event, CallFailed) and event.status == 487:
                self.cancelled.set()
            elif isinstance(event, Bye):
                self.bye.set()


def time_now() -> float:
    """The certificates of tests/pki.py are valid around 2024-06-01: the exchange runs at that time."""
    from test_modes_fork import T0

    return T0


def test_expected_covers_the_one_shot_methods() -> None:
    assert set(EXPECTED) == set(ONE_SHOT)


@pytest.mark.parametrize("method", list(EXPECTED))
def test_forked_call_keys_the_answering_device_and_shows_own_or_same_keys(
        method: str, tmp_path: Path, start_proxy: Callable[..., Any]) -> None:
    from mikey.sip.adapter import Answered, CallFailed, Provisional, SipAgent
    from mikey.sip.media import MediaSession, ToneSource

    proxy = start_proxy()
    stop = threading.Event()
    agents: list[Any] = []
    threads: list[threading.Thread] = []
    devices: list[Device] = []
    own: Any = None
    try:
        for d in (0, 1):
            agent = SipAgent(proxy.aor("bob"), (proxy.host, proxy.port))
            agents.append(agent)
            assert agent.register() == 200
            devices.append(Device(d, method, agent))
        assert len(proxy.wait_contacts(proxy.aor("bob"), 2)) == 2
        for dev in devices:
            threads.append(threading.Thread(target=dev.serve, args=(stop,), daemon=True))
            threads[-1].start()
        alice = SipAgent(proxy.aor("alice"), (proxy.host, proxy.port))
        agents.append(alice)
        ini = ONE_SHOT[method][0]()
        own = MediaSession(SSRC_A)
        alice.invite(proxy.aor("bob"), make_offer(ini.create_message(time_now()), port=own.port))
        # every device's early answer: one leg of the Initiator per To tag, keyed by its R_MESSAGE
        legs: dict[str, ExchangeResult] = {}
        ports: dict[str, int] = {}
        answered: Any = None
        deadline = time.monotonic() + 15
        while answered is None and time.monotonic() < deadline:
            try:
                event = alice.events.get(timeout=0.05)
            except queue.Empty:
                continue
            assert not isinstance(event, CallFailed), event
            if isinstance(event, Provisional) and event.sdp and event.to_tag and event.to_tag not in legs:
                r_message = take_answer(event.sdp)
                if r_message is None:  # SAKKE: no response, the I_MESSAGE's keys are every device's
                    legs[event.to_tag] = ini.result
                else:
                    legs[event.to_tag] = (ini if not legs else ini.fork()).receive(r_message, time_now())
                ports[event.to_tag] = media_port(event.sdp)
                if len(legs) == 2:
                    devices[0].pick_up.set()  # Bob picks up on device 0
            elif isinstance(event, Answered):
                answered = event
        assert answered is not None and len(legs) == 2, legs
        assert devices[1].cancelled.wait(5), "Kamailio cancels the device that did not answer"
        # Alice ends with the keys of the device that answered: the 200 OK's To tag picks the leg
        kept = legs[answered.dialog.remote_tag]
        assert ports[answered.dialog.remote_tag] == devices[0].media.port
        assert devices[0].result is not None and devices[1].result is not None
        assert kept.crypto_sessions[0].master_key == devices[0].result.crypto_sessions[0].master_key
        own.start(CryptoSessionBundle(kept), ("127.0.0.1", media_port(answered.sdp or "")),
                  source=ToneSource(1000), packets=20, pace=0.005)
        assert own.wait_sent(10) and devices[0].media.wait_sent(10)
        assert own.wait_received(20, 10) and devices[0].media.wait_received(20, 10)
        mine, theirs = own.stop(), devices[0].media.stop()
        stream = mine.stream(DEVICE_SSRCS[0])
        assert stream is not None and stream.received >= 20 and mine.auth_failures == 0
        assert theirs.received >= 20 and theirs.auth_failures == 0
        assert 990 < (theirs.tone_hz or 0) < 1010  # Bob hears Alice's 1 kHz tone
        assert answered.dialog.bye() == 200 and devices[0].bye.wait(5)
        # own keys or the same key: can the device Alice did not talk to read her media?
        same = devices[0].result.crypto_sessions[0].master_key == devices[1].result.crypto_sessions[0].master_key
        assert (Outcome.SAME_KEY if same else Outcome.OWN_KEYS) == EXPECTED[method]
        packet = CryptoSessionBundle(kept).sender(kept.crypto_sessions[0].cs_id, ssrc=SSRC_A).protect(
            bytes([0x80, 0, 0, 1]) + bytes(4) + SSRC_A.to_bytes(4, "big") + b"\xff" * 160)
        eavesdropper = CryptoSessionBundle(devices[1].result).receiver(
            devices[1].result.crypto_sessions[0].cs_id, ssrc=SSRC_A)
        if same:
            assert eavesdropper.unprotect(packet)[12:] == b"\xff" * 160
        else:
            with pytest.raises(MikeyError):
                eavesdropper.unprotect(packet)
    finally:
        stop.set()
        for t in threads:
            t.join(5)
        for dev in devices:
            if dev.media is not None:
                dev.media.stop()
        if own is not None:
            own.stop()
        for agent in agents:
            agent.close()


# --- the use case with real phones: mikey phone processes through Kamailio (mikey.sip.usecases.forking) -----


#: Every method through phones: TICKET with key forking (I) and IBAKE (the other device never completes) too.
PHONE_EXPECTED = {**EXPECTED, "ticket": Outcome.OWN_KEYS, "ibake": Outcome.OWN_KEYS}


@pytest.mark.parametrize("method", list(PHONE_EXPECTED))
def test_use_case_with_phones(method: str, tmp_path: Path, start_proxy: Callable[..., Any]) -> None:
    from mikey.sip.usecases import USE_CASES, UseCaseEnv
    from mikey.sip.usecases.forking import CASE, fork_call, observe

    proxy = start_proxy()
    env = UseCaseEnv(proxy.host, proxy.port, proxy.domain, tmp_path / "case", timeout=8.0)
    alice, devices, detail = fork_call(env, method, packets=20)
    cell = observe(method, alice, devices, detail)
    assert cell.outcome == PHONE_EXPECTED[method], cell.detail
    assert cell.media_ok and cell.case == CASE == "call-forking" and USE_CASES[CASE].__module__.endswith("forking")
    # Alice's keys are those of the device she kept, and only that device got her media
    kept = cell.data["kept_device"] - 1
    mine = next(e for e in alice if e["event"] == "call")
    theirs = next(e for e in devices[kept] if e["event"] == "call")
    assert mine["fingerprints"] == theirs["fingerprints"] and mine["mikey"] == theirs["mikey"] == "keyed"
    media = next(e for e in devices[kept] if e["event"] == "media")
    assert media["received"] >= 20 and media["auth_failures"] == 0
    # Alice's phone and the device she kept ended (the other one, cancelled or sent BYE, is stopped by fork_call)
    assert any(e["event"] == "end" and e["ok"] for e in alice)
    assert any(e["event"] == "end" for e in devices[kept])
