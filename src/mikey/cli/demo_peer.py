"""One end of ``mikey demo``, run as its own process (``python -m mikey.cli.demo_peer``).

The two ends talk UDP on the loopback interface.  The Initiator sends an SDP offer
whose ``a=key-mgmt:mikey`` carries the I_MESSAGE (RFC 4567 §4.1); the Responder
answers with an SDP answer carrying the R_MESSAGE, if the mode has one.  A mode whose
exchange takes more round trips (MIKEY-IBAKE: I_MESSAGE_1/R_MESSAGE_1, then
I_MESSAGE_2/R_MESSAGE_2, RFC 6267 §4.2.2) says how many (:class:`RoundTripDemoPlugin`):
the Initiator then sends a new offer of the same session (o= version + 1, as a
re-INVITE or UPDATE does, RFC 3264 §8) with each next message, and both ends loop.
Both then key SRTP/SRTCP from their own view of the exchange and send each other RTP
and RTCP on the same socket (demultiplexed as RFC 5761 §4 does).  Each end prints one
JSON report line on standard output; the Responder first prints ``{"port": N}``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import struct
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple, Protocol, runtime_checkable

from ..errors import AuthenticationError, MikeyError, StateError
from ..modes.base import State
from ..modes.results import ExchangeResult
from ..offer_answer import make_answer, make_offer, take_answer, take_offer
from ..sdp import make_sdp
from ..session import CryptoSessionBundle
from ..srtp import SrtpContext, srtp_profile
from .plugin_base import DemoInitiator, DemoResponder, ModePlugin
from .plugins import load_plugins

__all__ = ["main", "rtp_packet", "rtcp_packet", "PROFILE_NAMES", "DemoStep", "SteppedInitiator", "SteppedResponder",
           "RoundTripDemoPlugin", "round_trips", "stepped_initiator", "stepped_responder"]

#: Packets one end may send ahead of what it has received, so neither floods the other's socket buffer.
WINDOW = 32
RTP_PAYLOAD_LEN = 160

#: pylibsrtp profile number -> SRTP protection profile name (RFC 5764 §4.1.2, RFC 7714 §14.2).
PROFILE_NAMES = {
    1: "AES_CM_128_HMAC_SHA1_80",
    2: "AES_CM_128_HMAC_SHA1_32",
    7: "AEAD_AES_128_GCM",
    8: "AEAD_AES_256_GCM",
}


# --- how a mode's exchange maps onto offer/answer round trips -------------------------------------


class DemoStep(NamedTuple):
    """What one received MIKEY message gives a demo side: the message to carry next (the Initiator's
    next offer, the Responder's answer; None: nothing) and the keys once the side has them (else None)."""

    message: bytes | None
    result: ExchangeResult | None


class SteppedInitiator(Protocol):
    """The demo's Initiator, one offer/answer round trip at a time."""

    def create_message(self, now: float) -> bytes:
        """The MIKEY message of the first offer."""
        ...

    def receive(self, answer: bytes | None, now: float) -> tuple[bytes | None, ExchangeResult | None]:
        """The MIKEY message of an answer (None: the answer carried none) -> a :class:`DemoStep`."""
        ...

    def info(self) -> dict[str, Any]:
        """Public facts for the side's report (e.g. where its keys came from); never a secret."""
        ...


class SteppedResponder(Protocol):
    """The demo's Responder, one offer at a time."""

    def receive(self, offer: bytes, now: float) -> tuple[bytes | None, ExchangeResult | None]:
        """The MIKEY message of an offer -> a :class:`DemoStep` (its message goes in the answer)."""
        ...

    def info(self) -> dict[str, Any]:
        ...


@runtime_checkable
class RoundTripDemoPlugin(Protocol):
    """A mode plugin whose exchange takes more than one offer/answer (MIKEY-IBAKE: two, RFC 6267 §4.2.2).

    The Initiator's side gives the message of each next offer until the last answer, after which
    both sides have the keys.  Other modes take one round trip through ``demo_initiator`` and
    ``demo_responder`` (:func:`stepped_initiator` adapts them).
    """

    #: The offer/answer round trips of one exchange.
    demo_round_trips: int

    def demo_stepped_initiator(self, creds: dict[str, Any], ssrc: int) -> SteppedInitiator: ...

    def demo_stepped_responder(self, creds: dict[str, Any], ssrc: int) -> SteppedResponder: ...


class _OneRoundInitiator:
    """A mode's single-message Initiator as a :class:`SteppedInitiator`."""

    def __init__(self, side: DemoInitiator) -> None:
        self.side = side

    def create_message(self, now: float) -> bytes:
        return self.side.create_message(now)

    def receive(self, answer: bytes | None, now: float) -> DemoStep:
        if answer is not None:
            return DemoStep(None, self.side.receive(answer, now))
        if getattr(self.side, "state", None) == State.WAIT_RESPONSE:
            raise StateError("the SDP answer carries no MIKEY response, but the Initiator waits for one")
        return DemoStep(None, self.side.result)

    def info(self) -> dict[str, Any]:
        return {}


class _OneRoundResponder:
    """A mode's single-message Responder as a :class:`SteppedResponder`."""

    def __init__(self, side: DemoResponder) -> None:
        self.side = side

    def receive(self, offer: bytes, now: float) -> DemoStep:
        outcome = self.side.receive(offer, now)
        return DemoStep(outcome.response, outcome.result)

    def info(self) -> dict[str, Any]:
        return {}


def round_trips(plugin: ModePlugin) -> int:
    """How many offer/answer round trips the mode's exchange takes in the demo."""
    return int(plugin.demo_round_trips) if isinstance(plugin, RoundTripDemoPlugin) else 1


def stepped_initiator(plugin: ModePlugin, creds: dict[str, Any], ssrc: int) -> SteppedInitiator:
    if isinstance(plugin, RoundTripDemoPlugin):
        return plugin.demo_stepped_initiator(creds, ssrc)
    return _OneRoundInitiator(plugin.demo_initiator(creds, ssrc))


def stepped_responder(plugin: ModePlugin, creds: dict[str, Any], ssrc: int) -> SteppedResponder:
    if isinstance(plugin, RoundTripDemoPlugin):
        return plugin.demo_stepped_responder(creds, ssrc)
    return _OneRoundResponder(plugin.demo_responder(creds, ssrc))


def _suffix(n: int) -> str:
    """The timing-name suffix of round trip *n* (0-based): none for the first, ``_2`` for the second..."""
    return "" if n == 0 else f"_{n + 1}"


# --- media -----------------------------------------------------------------------------------------


def rtp_payload(ssrc: int, seq: int) -> bytes:
    seed = hashlib.sha256(struct.pack("!II", ssrc, seq)).digest()
    return (seed * (RTP_PAYLOAD_LEN // len(seed) + 1))[:RTP_PAYLOAD_LEN]


def rtp_packet(ssrc: int, seq: int) -> bytes:
    """An RTP packet (RFC 3550 §5.1), PT 0, whose payload is a function of SSRC and sequence number."""
    return struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, (seq * RTP_PAYLOAD_LEN) & 0xFFFFFFFF, ssrc) + rtp_payload(
        ssrc, seq
    )


def rtcp_packet(ssrc: int, n: int, sent: int) -> bytes:
    """An RTCP sender report without report blocks (RFC 3550 §6.4.1); NTP seconds field = report number."""
    return struct.pack(
        "!BBHIIIIII", 0x80, 200, 6, ssrc, n, 0xC0FFEE, (sent * RTP_PAYLOAD_LEN) & 0xFFFFFFFF, sent,
        sent * RTP_PAYLOAD_LEN,
    )


def _is_rtcp(data: bytes) -> bool:
    return len(data) > 1 and 192 <= data[1] <= 223  # RFC 5761 §4


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


class _Peer:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.role: str = args.role
        self.plugin = load_plugins()[args.mode]
        self.creds: dict[str, Any] = json.loads(Path(args.creds).read_text())
        self.ssrc: int = args.ssrc
        self.peer_ssrc: int = args.peer_ssrc
        self.timeout: float = args.timeout
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(self.timeout)
        self.peer: tuple[str, int] | None = ("127.0.0.1", args.peer_port) if args.peer_port else None
        self.timings: dict[str, float] = {}
        self.report: dict[str, Any] = {"role": self.role, "mode": args.mode, "ok": False, "ssrc": f"{self.ssrc:08x}"}
        self.pending_media: list[bytes] = []
        #: The offers the Responder answered, with the answers (a retransmitted offer gets the same one).
        self.answers: dict[bytes, bytes] = {}
        self.round_trips = round_trips(self.plugin)
        self.session_id = int.from_bytes(os.urandom(4), "big")
        if self.round_trips > 1:
            self.report["round_trips"] = self.round_trips

    # -- signalling ------------------------------------------------------------------------------

    def _recv(self) -> tuple[bytes, tuple[str, int]]:
        try:
            data, addr = self.sock.recvfrom(65535)
        except TimeoutError:
            raise TimeoutError(f"{self.role}: nothing received for {self.timeout:g} s") from None
        return data, addr

    def _peer_address(self) -> tuple[str, int]:
        """The other end's address: given to the Initiator, learnt by the Responder from the offer."""
        if self.peer is None:
            raise StateError(f"{self.role}: the other end's address is not known yet")
        return self.peer

    def _offer(self, message: bytes, n: int) -> bytes:
        """The SDP offer of round trip *n*: later ones are new offers of the same session (o= version n)."""
        port = self.sock.getsockname()[1]
        body = make_sdp("mikey", "127.0.0.1", (("audio", port, "RTP/SAVP", (0,)),), session_id=self.session_id,
                        version=n)
        return make_offer(message, sdp=body).encode("utf-8")

    def _offer_answer(self, offer: bytes, peer: tuple[str, int], earlier: list[bytes]) -> bytes:
        """Send *offer* until an SDP answer other than the *earlier* ones comes back (UDP may lose either)."""
        self.sock.sendto(offer, peer)
        deadline = time.monotonic() + self.timeout
        self.sock.settimeout(0.5)
        try:
            while True:
                try:
                    data, _ = self.sock.recvfrom(65535)
                except TimeoutError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"initiator: no SDP answer within {self.timeout:g} s") from None
                    self.sock.sendto(offer, peer)  # the offer may have been lost: same bytes again
                    continue
                if not data.startswith(b"v=0"):
                    self.pending_media.append(data)  # media overtook a retransmitted answer
                elif data not in earlier:  # not a repeated answer to an earlier offer
                    return data
        finally:
            self.sock.settimeout(self.timeout)

    def run_initiator(self) -> ExchangeResult:
        peer = self._peer_address()
        t0 = time.perf_counter()
        initiator = stepped_initiator(self.plugin, self.creds, self.ssrc)
        self.timings["setup"] = _ms(time.perf_counter() - t0)
        self.report.update(initiator.info())
        t0 = time.perf_counter()
        message: bytes | None = initiator.create_message(time.time())
        self.timings["build_i_message"] = _ms(time.perf_counter() - t0)
        answers: list[bytes] = []
        sent: list[int] = []
        got: list[int | None] = []
        result: ExchangeResult | None = None
        for n in range(self.round_trips):
            if message is None:
                raise StateError(f"the Initiator has no MIKEY message for offer {n + 1} of {self.round_trips}")
            sent.append(len(message))
            t0 = time.perf_counter()
            answer = self._offer_answer(self._offer(message, n), peer, answers)
            self.timings["offer_answer" + _suffix(n)] = _ms(time.perf_counter() - t0)
            answers.append(answer)
            r_message = take_answer(answer.decode("utf-8"))
            got.append(len(r_message) if r_message is not None else None)
            self._message_sizes(sent, got)
            t0 = time.perf_counter()
            message, result = initiator.receive(r_message, time.time())
            self.timings["process_answer" + _suffix(n)] = _ms(time.perf_counter() - t0)
        if result is None or message is not None:
            raise StateError(f"the Initiator has no keys after {self.round_trips} offer/answer round trips")
        return result

    def _message_sizes(self, sent: list[int], got: list[int | None]) -> None:
        """``i_message_len``/``r_message_len`` of the first round trip; every one's when there are more."""
        self.report["i_message_len"] = sent[0]
        self.report["r_message_len"] = got[0] if got else None
        if self.round_trips > 1:
            self.report["i_message_lens"] = list(sent)
            self.report["r_message_lens"] = list(got)

    def _next_offer(self) -> tuple[bytes, tuple[str, int]]:
        """The next new SDP offer; a repeated one is answered again as before (no MIKEY message twice: replay)."""
        while True:
            data, addr = self._recv()
            if not data.startswith(b"v=0"):
                continue
            if data in self.answers:
                self.sock.sendto(self.answers[data], addr)
                continue
            return data, addr

    def run_responder(self) -> ExchangeResult:
        t0 = time.perf_counter()
        responder = stepped_responder(self.plugin, self.creds, self.ssrc)
        self.timings["setup"] = _ms(time.perf_counter() - t0)
        self.report.update(responder.info())
        sent: list[int] = []
        got: list[int | None] = []
        result: ExchangeResult | None = None
        for n in range(self.round_trips):
            data, addr = self._next_offer()
            self.peer = addr
            t0 = time.perf_counter()
            i_message = take_offer(data.decode("utf-8"))
            sent.append(len(i_message))
            try:
                r_message, result = responder.receive(i_message, time.time())
            except MikeyError as exc:
                if exc.error_message is not None:  # tell the Initiator, as RFC 3830 §5.1.2 asks
                    self.sock.sendto(make_answer(exc.error_message).encode("utf-8"), addr)
                raise
            self.timings["process_i_message" + _suffix(n)] = _ms(time.perf_counter() - t0)
            answer = make_answer(r_message, port=self.sock.getsockname()[1]).encode("utf-8")
            self.answers[data] = answer
            self.sock.sendto(answer, addr)
            got.append(len(r_message) if r_message is not None else None)
            self._message_sizes(sent, got)
        if result is None:
            raise StateError(f"the Responder has no keys after {self.round_trips} offer/answer round trips")
        return result

    # -- media -------------------------------------------------------------------------------------

    def media(self, result: ExchangeResult) -> None:
        peer = self._peer_address()
        packets, n_rtcp = self.args.packets, self.args.rtcp
        t0 = time.perf_counter()
        bundle = CryptoSessionBundle(result, ignore_rcc=True)
        send_cs, recv_cs = bundle.stream_pair(self.ssrc, self.peer_ssrc)
        sender = bundle.sender(send_cs, ssrc=self.ssrc)
        receiver = bundle.receiver(recv_cs, ssrc=self.peer_ssrc)
        self.timings["srtp_setup"] = _ms(time.perf_counter() - t0)
        self.report.update(
            csb_id=f"{result.csb_id:08x}",
            authenticated=result.authenticated,
            crypto_sessions=[cs.to_dict(secrets=False) for cs in bundle.crypto_sessions],
            fingerprints={str(k): v for k, v in bundle.fingerprints().items()},
            send_cs=send_cs,
            recv_cs=recv_cs,
            srtp_profile=PROFILE_NAMES.get(srtp_profile(sender.params, ignore_rcc=True), "?"),
            description=self.plugin.demo_description(self.creds),
        )
        if "key_period_no" in result.extras:  # MIKEY-SAKKE: the key period of the message's T
            self.report["key_period_no"] = result.extras["key_period_no"]
        # What this end sends: RTP 0..N-1 with an RTCP SR after every N/K of them.
        plan: list[bytes] = []
        step = max(1, packets // max(1, n_rtcp))
        sr = 0
        for seq in range(packets):
            plan.append(rtp_packet(self.ssrc, seq))
            if (seq + 1) % step == 0 and sr < n_rtcp:
                plan.append(rtcp_packet(self.ssrc, sr, seq + 1))
                sr += 1
        while sr < n_rtcp:
            plan.append(rtcp_packet(self.ssrc, sr, packets))
            sr += 1
        counts = {k: 0 for k in (
            "rtp_protected", "rtcp_protected", "rtp_verified", "rtcp_verified", "rejected", "payload_mismatch",
            "tampered_rejected",
        )}
        expected = packets + n_rtcp
        received = 0
        sent = 0
        backlog = list(self.pending_media)
        t0 = time.perf_counter()
        deadline = time.monotonic() + self.timeout
        while sent < len(plan) or received < expected:
            if sent < len(plan) and sent < received + WINDOW:
                packet = plan[sent]
                if _is_rtcp(packet):
                    wire = sender.protect_rtcp(packet)
                    counts["rtcp_protected"] += 1
                else:
                    wire = sender.protect(packet)
                    counts["rtp_protected"] += 1
                self.sock.sendto(wire, peer)
                sent += 1
                self.sock.settimeout(0)
            else:
                self.sock.settimeout(max(0.0, deadline - time.monotonic()) or 0.001)
            try:
                data = backlog.pop(0) if backlog else self.sock.recvfrom(65535)[0]
            except (BlockingIOError, InterruptedError):
                continue
            except TimeoutError:
                if time.monotonic() >= deadline:
                    raise TimeoutError(
                        f"{self.role}: got {received} of {expected} packets; nothing for {self.timeout:g} s"
                    ) from None
                continue
            deadline = time.monotonic() + self.timeout
            if data.startswith(b"v=0"):
                self._signalling_again(data)
                continue
            received += 1
            self._verify(receiver, data, counts, first=received == 1)
        self.timings["media"] = _ms(time.perf_counter() - t0)
        self.report.update(counts)
        self.report["rtp_expected"] = packets
        self.report["rtcp_expected"] = n_rtcp

    def _signalling_again(self, data: bytes) -> None:
        """A retransmitted offer gets the same answer; the I_MESSAGE is not processed twice (replay)."""
        answer = self.answers.get(data)
        if self.role == "responder" and answer is not None and self.peer:
            self.sock.sendto(answer, self.peer)

    def _verify(self, receiver: SrtpContext, data: bytes, counts: dict[str, int], *, first: bool) -> None:
        rtcp = _is_rtcp(data)
        if first:
            # Show that a packet changed on the way is refused (one flipped bit in the last octet).
            tampered = data[:-1] + bytes([data[-1] ^ 0x01])
            try:
                receiver.unprotect_rtcp(tampered) if rtcp else receiver.unprotect(tampered)
            except AuthenticationError:
                counts["tampered_rejected"] += 1
        try:
            plain = receiver.unprotect_rtcp(data) if rtcp else receiver.unprotect(data)
        except AuthenticationError:
            counts["rejected"] += 1
            return
        if rtcp:
            counts["rtcp_verified"] += 1
            ssrc, n = struct.unpack_from("!II", plain, 4)
            sent = struct.unpack_from("!I", plain, 20)[0]
            ok = ssrc == self.peer_ssrc and plain == rtcp_packet(self.peer_ssrc, n, sent)
        else:
            counts["rtp_verified"] += 1
            seq, ssrc = struct.unpack_from("!H", plain, 2)[0], struct.unpack_from("!I", plain, 8)[0]
            ok = ssrc == self.peer_ssrc and plain == rtp_packet(self.peer_ssrc, seq)
        if not ok:
            counts["payload_mismatch"] += 1

    def run(self) -> int:
        try:
            if self.role == "responder":
                _emit({"port": self.sock.getsockname()[1]})
                result = self.run_responder()
            else:
                result = self.run_initiator()
            self.media(result)
            self.report["ok"] = True
        except Exception as exc:  # the parent must always get a report
            self.report["error"] = {"kind": getattr(exc, "kind", type(exc).__name__), "message": str(exc)}
            if not isinstance(exc, MikeyError | OSError):
                traceback.print_exc()
        finally:
            self.sock.close()
        self.report["timings_ms"] = self.timings
        _emit(self.report)
        return 0 if self.report["ok"] else 1


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m mikey.cli.demo_peer", description=__doc__)
    p.add_argument("--role", choices=("initiator", "responder"), required=True)
    p.add_argument("--mode", default="psk")
    p.add_argument("--creds", required=True, help="JSON file with the demo credentials")
    p.add_argument("--ssrc", type=lambda s: int(s, 16), required=True, help="own SSRC (hex)")
    p.add_argument("--peer-ssrc", type=lambda s: int(s, 16), required=True, help="the other end's SSRC (hex)")
    p.add_argument("--peer-port", type=int, default=0, help="the Responder's UDP port (Initiator only)")
    p.add_argument("--packets", type=int, default=300)
    p.add_argument("--rtcp", type=int, default=5)
    p.add_argument("--timeout", type=float, default=10.0)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.role == "initiator" and not args.peer_port:
        _parser().error("--peer-port is required for the initiator")
    return _Peer(args).run()


if __name__ == "__main__":
    sys.exit(main())
