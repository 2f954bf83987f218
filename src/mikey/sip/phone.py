"""A SIP phone that keys SRTP with MIKEY (RFC 4567 key-mgmt in SDP, RFC 3830 exchanges, RFC 3711 media).

:class:`Phone` registers to a proxy (:mod:`mikey.sip.adapter`), places or answers calls, carries
the I_MESSAGE in the INVITE's SDP offer and the R_MESSAGE (or an Error message) in the answer
(:mod:`mikey.offer_answer`), and sends and receives audio over SRTP (:mod:`mikey.sip.media`).

The MIKEY decisions are sans-I/O functions and classes, testable without a network:

* :func:`offer_sdp` / :func:`media_of` build and read the SDP (``RTP/SAVP``, ``a=ssrc``, RFC 5576).
* :class:`CallerKeying` checks an answer (:func:`check_answer`): an answer whose media is not
  ``RTP/SAVP``, or without key-mgmt while the Initiator waits for a response, is bidding down
  (RFC 4567 §4.1, §6: :class:`BiddingDownError`); an Error message in the answer raises the
  peer's :class:`~mikey.errors.PeerError`; a second fork's answer goes to a fork of the
  Initiator (:meth:`mikey.modes.base.Initiator.fork`), so each fork gets the keys its answer gives.
* :class:`CalleeKeying` takes an offer and returns the SIP status, reason, answer body and
  headers: 200 with the R_MESSAGE, or 488 Not Acceptable Here with the MIKEY Error message in
  the answer's key-mgmt when the mode gives one, else a Warning header (RFC 4567 §4.1, RFC 3261
  §21.4.26); a failed exchange never keys.

Credentials come either from a ``--demo-creds`` JSON file (a mode plugin's ``demo_credentials``:
:func:`write_demo_credentials`, :func:`phone_argv` builds a phone's command line for tests and
demos) or from the mode's own ``mikey initiate`` (caller) / ``mikey respond`` (callee) options.
Multi-round exchanges (MIKEY-IBAKE, RFC 6267 §4.2.2) take one INVITE and then one re-INVITE per
further round trip.  Re-keying during a call is a re-INVITE carrying a new exchange for the same
CSB (RFC 3830 §4.5) where the mode lets the CSB ID be chosen.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import MikeyDecodeError, MikeyError, PeerError, StateError
from ..modes.base import State, build_error_message
from ..modes.results import ExchangeResult
from ..offer_answer import make_answer, make_offer, take_answer, take_offer
from ..replay import ReplayCache, ReplayStore
from ..sdp import make_sdp
from ..session import CryptoSessionBundle
from ..wire import TimestampPayload
from .adapter import (
    Acked,
    Answered,
    Bye,
    CallFailed,
    Dialog,
    IncomingCall,
    Provisional,
    ReInvite,
    ServerInvite,
    SipAgent,
    SipError,
)

__all__ = [
    "BiddingDownError",
    "MediaInfo",
    "CallerKeying",
    "CalleeKeying",
    "CalleeAnswer",
    "PhoneConfig",
    "Phone",
    "offer_sdp",
    "media_of",
    "check_answer",
    "write_demo_credentials",
    "phone_argv",
    "SAVP_PROFILES",
    "PhoneProcess",
    "KeyingSides",
    "run_phone",
    "error_of_answer",
    "fingerprints",
]

#: Seconds the caller still waits for another device's answer after refusing one (forking, RFC 3261 §16.7).
FORK_GRACE = 2.0

#: Media profiles that mean SRTP (RFC 3711 §12, RFC 5124).
SAVP_PROFILES = frozenset({"RTP/SAVP", "RTP/SAVPF"})


class BiddingDownError(MikeyError):
    """An answer that drops SRTP or the MIKEY response the offer asked for (RFC 4567 §6 bidding down)."""

    kind = "bidding-down"


# --- SDP ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MediaInfo:
    """What an SDP body says about its first audio stream."""

    address: str
    port: int
    profile: str
    ssrc: int | None


def offer_sdp(message: bytes | None, *, address: str, port: int, ssrc: int, cname: str,
              version: int = 0, session_id: int = 0, answer: bool = False) -> str:
    """An SDP body for one PCMU audio stream over SRTP with *message* in ``a=key-mgmt:mikey``
    (RFC 4567 §3.1, session level) and the sender's SSRC (RFC 5576 ``a=ssrc``)."""
    body = make_sdp("mikey phone", address, (("audio", port, "RTP/SAVP", (0,)),), version=version,
                    session_id=session_id)
    body += f"a=rtpmap:0 PCMU/8000\r\na=ssrc:{ssrc} cname:{cname}\r\n"
    if answer:
        return make_answer(message, sdp=body)
    if message is None:
        raise StateError("an offer needs a MIKEY message")
    return make_offer(message, sdp=body)


def media_of(sdp: str) -> MediaInfo:
    """The address, port, profile and SSRC of the first ``m=audio`` line (RFC 4566 §5.7, §5.14)."""
    address = ""
    port = -1
    profile = ""
    ssrc: int | None = None
    in_audio = False
    seen_audio = False
    for line in sdp.replace("\r\n", "\n").split("\n"):
        line = line.strip()
        if line.startswith("c=") and (not seen_audio or in_audio):
            parts = line[2:].split()
            if len(parts) == 3:
                address = parts[2].split("/")[0]
        elif line.startswith("m="):
            in_audio = line.startswith("m=audio ") and not seen_audio
            if in_audio:
                seen_audio = True
                parts = line[2:].split()
                if len(parts) < 3 or not parts[1].split("/")[0].isdigit():
                    raise MikeyDecodeError(f"malformed SDP media line {line[:60]!r}", payload="SDP")
                port = int(parts[1].split("/")[0])
                profile = parts[2]
        elif in_audio and line.startswith("a=ssrc:") and ssrc is None:
            value = line[7:].split()[0]
            if value.isdigit() and int(value) <= 0xFFFFFFFF:
                ssrc = int(value)
    if not seen_audio or not address or not 0 <= port <= 0xFFFF:
        raise MikeyDecodeError("SDP has no usable audio stream (c= and m=audio)", payload="SDP")
    return MediaInfo(address, port, profile, ssrc)


def check_answer(sdp: str | None, waits_for_response: bool) -> bytes | None:
    """The MIKEY message of an SDP answer, after the bidding-down checks of RFC 4567 §4.1/§6.

    Raises :class:`BiddingDownError` when there is no answer body, the answer's media is not SRTP,
    or the Initiator waits for a response and the answer has no key-mgmt.
    """
    if not sdp:
        raise BiddingDownError("the answer has no SDP body: SRTP keyed by MIKEY was offered")
    info = media_of(sdp)
    if info.profile not in SAVP_PROFILES:
        raise BiddingDownError(f"the answer's media profile is {info.profile}, not RTP/SAVP: SRTP refused")
    message = take_answer(sdp)
    if message is None and waits_for_response:
        raise BiddingDownError("the answer has no a=key-mgmt:mikey but the Initiator waits for the MIKEY response")
    return message


# --- credentials -------------------------------------------------------------------------------------


def _plugins() -> dict[str, Any]:
    from ..cli.plugins import load_plugins
    return dict(load_plugins())


def write_demo_credentials(mode: str, workdir: Path) -> Path:
    """Make throw-away credentials for *mode* under *workdir* (the plugin's ``demo_credentials``)
    and write them to ``workdir/<mode>-creds.json``; returns that path (for ``--demo-creds``).

    The KMS-backed modes (sakke, ticket, ibake) need what their plugins' demo set-up makes
    (:mod:`mikey.cli.demo_kms`); their ``demo_credentials`` does it where it can.
    """
    plugins = _plugins()
    if mode not in plugins:
        raise StateError(f"unknown mode {mode!r}; known: {', '.join(plugins)}")
    workdir.mkdir(parents=True, exist_ok=True)
    creds = plugins[mode].demo_credentials(workdir)
    path = workdir / f"{mode}-creds.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(creds, f)
    return path


def phone_argv(mode: str, user: str, proxy: tuple[str, int] | str, *, creds: Path | str,
               call: str | None = None, packets: int | None = 100, duration: float | None = None,
               rekey_after: float | None = None, record: Path | str | None = None, tone: float | None = None,
               timeout: float = 15.0, calls: int = 1, extra: Sequence[str] = ()) -> list[str]:
    """The command line of a ``mikey phone`` process (``[sys.executable, "-m", "mikey", "phone", ...]``).

    *user* is the AOR (``sip:bob@mikey.test``), *proxy* ``(host, port)`` or ``"host:port"``, *creds*
    the file of :func:`write_demo_credentials`; with *call* the phone calls that URI, else it answers
    *calls* calls.  JSON event lines are on (``--json``).
    """
    proxy_text = proxy if isinstance(proxy, str) else f"{proxy[0]}:{proxy[1]}"
    argv = [sys.executable, "-m", "mikey", "phone", "--json", "--mode", mode, "--user", user,
            "--proxy", proxy_text, "--demo-creds", str(creds), "--timeout", f"{timeout:g}"]
    if call:
        argv += ["--call", call]
    else:
        argv += ["--calls", str(calls)]
    if packets is not None:
        argv += ["--packets", str(packets)]
    if duration is not None:
        argv += ["--duration", f"{duration:g}"]
    if rekey_after is not None:
        argv += ["--rekey-after", f"{rekey_after:g}"]
    if record is not None:
        argv += ["--record", str(record)]
    if tone is not None:
        argv += ["--tone", f"{tone:g}"]
    return argv + list(extra)


# --- keying (sans-I/O) -----------------------------------------------------------------------------------


class _ArgsInitiator:
    """A mode's ``mikey initiate``/``complete`` options as a stepped Initiator (one round trip)."""

    def __init__(self, plugin: Any, args: argparse.Namespace) -> None:
        self.plugin = plugin
        self.args = args
        self.i_message: bytes | None = None
        self.out: Any = None

    def create_message(self, now: float) -> bytes:
        self.out = self.plugin.initiate(self.args, now)
        self.i_message = bytes(self.out.i_message)
        return self.i_message

    def receive(self, answer: bytes | None, now: float) -> tuple[bytes | None, ExchangeResult | None]:
        if self.out is None or self.i_message is None:
            raise StateError("the I_MESSAGE has not been built")
        pending = not self.out.result.crypto_sessions
        if answer is None:
            if pending or getattr(self.args, "verify", False):
                raise StateError("the SDP answer carries no MIKEY response, but the Initiator waits for one")
            return None, self.out.result
        args = argparse.Namespace(**vars(self.args))
        for name, value in self.out.secrets.items():
            if name == "dh_private":
                args.dh_private = int(str(value), 16)
            elif name == "envelope_key":
                args.env_key = bytes.fromhex(str(value))
            elif name == "grant_keys":  # MIKEY-TICKET: what 'complete --grant-keys' takes
                args.grant_keys = bytes.fromhex(str(value))
        return None, self.plugin.complete(args, self.i_message, answer, now)

    @property
    def waits(self) -> bool:
        return self.out is not None and (not self.out.result.crypto_sessions or bool(getattr(self.args, "verify", False)))

    def info(self) -> dict[str, Any]:
        return {}


class _ArgsResponder:
    """A mode's ``mikey respond`` options as a stepped Responder."""

    def __init__(self, plugin: Any, args: argparse.Namespace) -> None:
        self.plugin = plugin
        self.args = args

    def receive(self, offer: bytes, now: float) -> tuple[bytes | None, ExchangeResult | None]:
        self.args.imsg = offer
        outcome = self.plugin.respond(self.args, offer, now)
        return outcome.response, outcome.result

    def info(self) -> dict[str, Any]:
        return {}


def _waits_for_response(side: Any) -> bool:
    """Whether an Initiator waits for the MIKEY response (V set, or the keys need the Responder's part)."""
    if isinstance(side, _ArgsInitiator):
        return side.waits
    inner = getattr(side, "side", side)
    state = getattr(inner, "state", None)
    if state is not None:
        return bool(state == State.WAIT_RESPONSE)
    return True  # a multi-round exchange always waits


def _fork_of(side: Any) -> Any:
    """A fork of a stepped Initiator for another answer to the same I_MESSAGE (RFC 3261 §16.7)."""
    inner = getattr(side, "side", None)
    if inner is not None and hasattr(inner, "fork"):
        return type(side)(inner.fork())
    if hasattr(side, "fork"):
        return side.fork()
    raise StateError(f"{type(side).__name__} cannot take a second answer to one I_MESSAGE")


@dataclass
class KeyingSides:
    """Where a phone's Initiators and Responders come from: demo credentials or CLI options."""

    mode: str
    plugin: Any
    creds: dict[str, Any] | None = None
    args: argparse.Namespace | None = None
    #: Where every Responder of this phone remembers the I_MESSAGEs it accepted, so a replayed INVITE is
    #: refused across calls (RFC 3830 §5.4); None: one in-memory cache for the phone's life.
    replay_store: ReplayStore | None = None

    def __post_init__(self) -> None:
        if self.replay_store is None:
            self.replay_store = ReplayCache()

    def initiator(self, ssrc: int) -> Any:
        if self.creds is not None:
            from ..cli.demo_peer import stepped_initiator
            return stepped_initiator(self.plugin, self.creds, ssrc)
        if self.args is None:
            raise StateError("no credentials: give --demo-creds or the mode's initiate options")
        if hasattr(self.plugin, "phone_initiator"):  # a multi-round mode keeps its side in memory
            return self.plugin.phone_initiator(self.args, ssrc)
        args = argparse.Namespace(**vars(self.args))
        args.ssrc = [ssrc, 0]
        return _ArgsInitiator(self.plugin, args)

    def responder(self, ssrc: int) -> Any:
        if self.creds is not None:
            from ..cli.demo_peer import stepped_responder
            side = stepped_responder(self.plugin, self.creds, ssrc)
            inner = getattr(side, "side", side)
            if hasattr(inner, "replay_cache"):
                inner.replay_cache = self.replay_store
            return side
        if self.args is None:
            raise StateError("no credentials: give --demo-creds or the mode's respond options")
        if hasattr(self.plugin, "phone_responder"):
            return self.plugin.phone_responder(self.args, ssrc, self.replay_store)
        args = argparse.Namespace(**vars(self.args))
        args.ssrc = [ssrc]
        return _ArgsResponder(self.plugin, args)


def _set_csb_id(side: Any, csb_id: int | None) -> None:
    """Ask a fresh Initiator for the CSB ID of the exchange it updates (RFC 3830 §4.5), where it has one."""
    if csb_id is None:
        return
    inner = getattr(side, "side", side)
    if isinstance(inner, _ArgsInitiator):
        inner.args.csb_id = csb_id
    elif hasattr(inner, "csb_id"):
        try:
            inner.csb_id = csb_id
        except AttributeError:
            pass


class CallerKeying:
    """The caller's side of one MIKEY exchange in an INVITE (and its forks)."""

    def __init__(self, sides: KeyingSides, ssrc: int, *, csb_id: int | None = None) -> None:
        self.sides = sides
        self.ssrc = ssrc
        self.side = sides.initiator(ssrc)
        _set_csb_id(self.side, csb_id)
        self.i_message: bytes | None = None
        self.answers = 0

    def offer(self, now: float) -> bytes:
        self.i_message = bytes(self.side.create_message(now))
        return self.i_message

    def take(self, sdp: str | None, now: float) -> tuple[bytes | None, ExchangeResult | None]:
        """One answer: (the next offer's message or None, the keys or None). Raises on bidding down,
        a peer Error message, or a response that does not verify."""
        side = self.side if self.answers == 0 else _fork_of(self.side)
        self.answers += 1
        message = check_answer(sdp, _waits_for_response(side))
        next_message, result = side.receive(message, now)
        return (None if next_message is None else bytes(next_message)), result

    def next_round(self, sdp: str | None, now: float) -> tuple[bytes | None, ExchangeResult | None]:
        """A later round of a multi-round exchange (the answer to a re-INVITE) on the same side."""
        message = check_answer(sdp, True)
        next_message, result = self.side.receive(message, now)
        return (None if next_message is None else bytes(next_message)), result


@dataclass
class CalleeAnswer:
    """What the callee sends: status, reason, SDP body (or None), extra headers, and the keys if any."""

    status: int
    reason: str
    sdp: str | None
    headers: list[str] = field(default_factory=list)
    result: ExchangeResult | None = None
    error: str | None = None
    error_no: int | None = None
    done: bool = False


class CalleeKeying:
    """The callee's side: one Responder per exchange (kept across the rounds of a multi-round one)."""

    def __init__(self, sides: KeyingSides, ssrc: int, *, address: str, port: int, cname: str) -> None:
        self.sides = sides
        self.ssrc = ssrc
        self.address = address
        self.port = port
        self.cname = cname
        self.side: Any = None
        self.version = 0
        #: A multi-round exchange is under way: the next offer in the dialog continues it.
        self.pending = False

    def answer(self, offer: str | None, now: float, *, continuing: bool = False) -> CalleeAnswer:
        """The answer to *offer* (a new exchange, or the next round when *continuing*)."""
        if not offer:
            return self._refuse("the offer has no SDP body (late offer not supported)", None, None)
        try:
            info = media_of(offer)
            if info.profile not in SAVP_PROFILES:
                return self._refuse(f"the offer's media is {info.profile}, not RTP/SAVP", None, None)
            i_message = take_offer(offer)
        except MikeyError as exc:
            return self._refuse(exc.message, None, None)
        if self.side is None or not continuing:
            self.side = self.sides.responder(self.ssrc)
        try:
            response, result = self.side.receive(i_message, now)
        except MikeyError as exc:
            self.side = None
            err_no = int(exc.err_no) if exc.err_no is not None else None
            error_message = exc.error_message
            if error_message is None and err_no is not None:
                # The mode gives no Error message here (e.g. a data type it does not take): send an
                # unauthenticated one with its Error no (RFC 3830 §5.1.2), for the same CSB.
                csb_id = int.from_bytes(i_message[4:8], "big") if len(i_message) >= 8 else 0
                error_message = build_error_message(csb_id, [err_no], TimestampPayload.ntp_utc(now))
            return self._refuse(f"{exc.kind}: {exc.message}", error_message, err_no)
        self.version += 1
        body = offer_sdp(None if response is None else bytes(response), address=self.address, port=self.port,
                         ssrc=self.ssrc, cname=self.cname, version=self.version, answer=True)
        return CalleeAnswer(200, "OK", body, result=result, done=result is not None)

    def _refuse(self, why: str, error_message: bytes | None, err_no: int | None) -> CalleeAnswer:
        """488 Not Acceptable Here with the MIKEY Error message in key-mgmt (RFC 4567 §4.1) or a Warning."""
        headers = [f'Warning: 399 mikey-phone "{_quoted(why)}"']
        body = None
        if error_message is not None:
            body = offer_sdp(error_message, address=self.address, port=0, ssrc=self.ssrc, cname=self.cname,
                             answer=True)
        return CalleeAnswer(488, "Not Acceptable Here", body, headers, error=why, error_no=err_no)


def _quoted(text: str) -> str:
    return " ".join(text.replace("\\", "/").replace('"', "'").split())[:200]


def error_of_answer(sdp: str | None, side: CallerKeying, now: float) -> tuple[str | None, int | None]:
    """The MIKEY Error carried by a 488's SDP (RFC 4567 §4.1): (text, first Error no), if any."""
    if not sdp:
        return None, None
    try:
        message = take_answer(sdp)
    except MikeyError:
        return None, None
    if message is None:
        return None, None
    try:
        _fork_of(side.side).receive(message, now) if side.answers else side.side.receive(message, now)
    except PeerError as exc:
        return exc.message, (exc.err_nos[0] if exc.err_nos else None)
    except MikeyError as exc:
        return f"{exc.kind}: {exc.message}", None
    return "the 488 answer carried a MIKEY message that is not an Error message", None


def fingerprints(result: ExchangeResult) -> tuple[CryptoSessionBundle, dict[str, str]]:
    bundle = CryptoSessionBundle(result, ignore_rcc=True)
    return bundle, {str(k): v for k, v in bundle.fingerprints().items()}


# --- the phone ---------------------------------------------------------------------------------------------


@dataclass
class PhoneConfig:
    """What ``mikey phone`` was asked to do (see :mod:`mikey.cli.phone` for the flags)."""

    aor: str
    proxy: tuple[str, int]
    sides: KeyingSides
    call: str | None = None
    calls: int = 1
    packets: int | None = None
    duration: float = 3.0
    tone: float = 440.0
    wav: Path | None = None
    record: Path | None = None
    rekey_after: float | None = None
    timeout: float = 15.0
    bind: str = "127.0.0.1"
    no_answer: bool = False


Emit = Callable[[dict[str, Any]], None]


def _media_module() -> Any:
    from . import media
    return media


class Phone:
    """One ``mikey phone`` run: register, then call (``config.call``) or answer ``config.calls`` calls."""

    def __init__(self, config: PhoneConfig, emit: Emit) -> None:
        self.config = config
        self.emit = emit
        self.ok = True
        self.agent: SipAgent | None = None
        self._keying: CallerKeying | None = None
        self.ssrc = int.from_bytes(os.urandom(4), "big") | 1

    # -- helpers -------------------------------------------------------------------------------------

    def _events(self, until: float) -> Any:
        agent = self.agent
        if agent is None:
            raise StateError("the phone has no SIP agent")
        wait = until - time.monotonic()
        if wait <= 0:
            return None
        try:
            return agent.events.get(timeout=min(wait, 0.1))
        except queue.Empty:
            return None

    def _source(self) -> Any:
        media = _media_module()
        if self.config.wav is not None:
            return media.WavSource(self.config.wav)
        return media.ToneSource(self.config.tone)

    def _packets(self) -> int:
        if self.config.packets is not None:
            return self.config.packets
        return max(1, int(self.config.duration * 50))

    def _call_event(self, direction: str, peer: str, status: int, *, keyed: bool, error: str | None = None,
                    error_no: int | None = None, prints: dict[str, str] | None = None, **extra: Any) -> None:
        event: dict[str, Any] = {"event": "call", "direction": direction, "peer": peer, "status": status,
                                 "mikey": "keyed" if keyed else "refused", "error": error, "error_no": error_no,
                                 "fingerprints": prints or {}, "mode": self.config.sides.mode}
        event.update(extra)
        self.emit(event)

    # -- run ------------------------------------------------------------------------------------------------

    def run(self) -> bool:
        cfg = self.config
        try:
            self.agent = SipAgent(cfg.aor, cfg.proxy, bind=(cfg.bind, 0))
        except OSError as exc:
            self.emit({"event": "error", "error": f"cannot open the SIP socket: {exc}"})
            self.emit({"event": "end", "ok": False})
            return False
        try:
            status = self.agent.register(timeout=min(cfg.timeout, 5.0))
            if status != 200:
                self.emit({"event": "error", "error": f"REGISTER answered {status}"})
                self.ok = False
                return False
            self.emit({"event": "ready", "aor": cfg.aor, "contact": self.agent.contact})
            if cfg.call:
                self.ok = self._place_call(cfg.call) and self.ok
            else:
                for _ in range(cfg.calls):
                    if not self._answer_one():
                        self.ok = False
                        break
            return self.ok
        except MikeyError as exc:
            self.emit({"event": "error", "error": f"{exc.kind}: {exc.message}"})
            self.ok = False
            return False
        finally:
            try:
                self.agent.unregister()
            finally:
                self.agent.close()
                for line in self.agent.log:
                    self.emit({"event": "log", "message": line})
            self.emit({"event": "end", "ok": self.ok})

    # -- caller ------------------------------------------------------------------------------------------------

    def _place_call(self, target: str) -> bool:
        cfg = self.config
        agent = self.agent
        if agent is None:
            return False
        media = _media_module().MediaSession(self.ssrc, bind=(cfg.bind, 0))
        started = False
        try:
            keying = CallerKeying(cfg.sides, self.ssrc)
            self._keying = keying
            t0 = time.monotonic()
            offer = offer_sdp(keying.offer(time.time()), address=cfg.bind, port=media.port, ssrc=self.ssrc,
                              cname=cfg.aor)
            call_id = agent.invite(target, offer, timeout=cfg.timeout)
            deadline = time.monotonic() + cfg.timeout + 2.0
            kept: Dialog | None = None
            result: ExchangeResult | None = None
            answer_sdp: str | None = None
            refused_at: float | None = None
            while kept is None:
                ev = self._events(deadline)
                if ev is None:
                    if refused_at is not None and time.monotonic() - refused_at > FORK_GRACE:
                        return False  # the answer was refused (reported) and no other device answered
                    if time.monotonic() >= deadline:
                        self._call_event("out", target, 408, keyed=False, error="no answer")
                        return False
                    continue
                if isinstance(ev, Provisional) and ev.call_id == call_id:
                    self.emit({"event": "progress", "status": ev.status, "reason": ev.reason, "to_tag": ev.to_tag})
                elif isinstance(ev, CallFailed) and ev.call_id == call_id:
                    error, error_no = error_of_answer(ev.sdp, keying, time.time())
                    self._call_event("out", target, ev.status, keyed=False,
                                     error=error or ev.warning or ev.reason, error_no=error_no,
                                     contacts=ev.contacts)
                    return False
                elif isinstance(ev, Answered) and ev.call_id == call_id:
                    kept, result, answer_sdp = self._caller_answer(keying, ev, target, t0, media.port)
                    if kept is None:
                        refused_at = time.monotonic()
            if result is None or answer_sdp is None:
                return False
            bundle, prints = fingerprints(result)
            remote = media_of(answer_sdp)
            media.start(bundle, (remote.address, remote.port), source=self._source(), packets=self._packets(),
                        record=cfg.record)
            started = True
            return self._in_call(kept, media, keying, bundle, caller=True, call_id=call_id, target=target)
        finally:
            report = media.stop()
            if started:
                self.emit({"event": "media", **report.to_dict()})

    def _caller_answer(self, keying: CallerKeying, ev: Answered, target: str, t0: float,
                       port: int) -> tuple[Dialog | None, ExchangeResult | None, str | None]:
        """One 2xx (of possibly several forks): key it; returns (dialog, keys, answer SDP) when kept."""
        now = time.time()
        try:
            next_message, result = keying.take(ev.sdp, now)
            answer_sdp = ev.sdp
            rounds = 1
            while result is None and next_message is not None:  # multi-round exchange: re-INVITE
                rounds += 1
                reoffer = offer_sdp(next_message, address=self.config.bind, port=port, ssrc=self.ssrc,
                                    cname=self.config.aor, version=rounds - 1)
                ans = self._reinvite(ev.dialog, reoffer)
                if ans is None:
                    raise StateError("no answer to the re-INVITE of the exchange's next round")
                answer_sdp = ans
                next_message, result = keying.next_round(ans, time.time())
            if result is None:
                raise StateError("the exchange ended without keys")
        except MikeyError as exc:
            err_no = exc.err_nos[0] if isinstance(exc, PeerError) and exc.err_nos else (
                int(exc.err_no) if exc.err_no is not None else None)
            self._call_event("out", target, ev.status, keyed=False, error=f"{exc.kind}: {exc.message}",
                             error_no=err_no, to_tag=ev.dialog.remote_tag)
            ev.dialog.bye()
            return None, None, None
        setup_ms = round((time.monotonic() - t0) * 1000.0, 3)
        _, prints = fingerprints(result)
        self._call_event("out", target, ev.status, keyed=True, prints=prints, to_tag=ev.dialog.remote_tag,
                         csb_id=f"{result.csb_id:08x}", setup_ms=setup_ms, rounds=rounds)
        return ev.dialog, result, answer_sdp

    def _reinvite(self, dialog: Dialog, sdp: str) -> str | None:
        """Send a re-INVITE and wait for its 2xx; other events meanwhile are handled or dropped."""
        dialog.reinvite(sdp, timeout=self.config.timeout)
        deadline = time.monotonic() + self.config.timeout + 2.0
        while True:
            ev = self._events(deadline)
            if ev is None:
                if time.monotonic() >= deadline:
                    return None
                continue
            if isinstance(ev, Answered) and ev.dialog is dialog:
                return ev.sdp
            if isinstance(ev, CallFailed) and ev.call_id == dialog.call_id:
                raise SipError(f"the re-INVITE was answered {ev.status} {ev.reason}")
            if isinstance(ev, Answered):  # another fork's late 2xx to the first INVITE
                self._extra_fork(ev)

    def _extra_fork(self, ev: Answered) -> None:
        """A further 2xx of another fork after a dialog was kept: its answer goes to a fork of the
        Initiator (what that device would have keyed is reported), then BYE (RFC 3261 §13.2.2.4)."""
        event: dict[str, Any] = {"event": "fork", "status": ev.status, "to_tag": ev.dialog.remote_tag,
                                 "action": "bye", "mikey": None, "fingerprints": {}, "error": None}
        keying = self._keying
        if keying is not None and ev.call_id == ev.dialog.call_id:
            try:
                next_message, result = keying.take(ev.sdp, time.time())
            except MikeyError as exc:
                event.update(mikey="refused", error=f"{exc.kind}: {exc.message}")
            else:
                if result is not None:
                    event.update(mikey="keyed", fingerprints=fingerprints(result)[1])
                else:  # a multi-round exchange: not continued with a device that is hung up on
                    event.update(mikey="not-continued")
        self.emit(event)
        ev.dialog.bye()

    # -- the call ------------------------------------------------------------------------------------------------

    def _in_call(self, dialog: Dialog, media: Any, keying: Any, bundle: CryptoSessionBundle, *, caller: bool,
                 call_id: str, target: str) -> bool:
        """Media flowing; the caller re-keys after ``rekey_after`` s (or halfway through its audio, if that
        comes first, so that media goes on under the new keys) and hangs up when it has sent its audio and
        received the other's (after a re-key: some of it under the new keys), or after ``timeout`` more."""
        cfg = self.config
        packets = self._packets()
        started = time.monotonic()
        rekey_pending = caller and cfg.rekey_after is not None
        switched_needed = False
        hard_end = started + packets * 0.02 + cfg.timeout + 5.0
        ok = True
        while True:
            now = time.monotonic()
            if rekey_pending and (now - started >= (cfg.rekey_after or 0.0) or media.sent >= packets // 2):
                rekey_pending = False
                rekeyed = self._caller_rekey(dialog, media, bundle)
                switched_needed = rekeyed
                ok = rekeyed and ok
            if caller and not rekey_pending and media.wait_sent(0):
                done = media.wait_received(packets, 0) and (not switched_needed or _switched(media))
                if done or now > hard_end - cfg.timeout:
                    media.wait_idle(0.3, 2.0)
                    dialog.bye()
                    return ok
            ev = self._events(now + 0.1)
            if ev is None:
                if now > hard_end:
                    self.emit({"event": "error", "error": "the call did not end in time"})
                    if not dialog.terminated:
                        dialog.bye()
                    return False
                continue
            if isinstance(ev, Bye) and ev.call_id == call_id:
                return ok
            if isinstance(ev, Answered) and caller:
                self._extra_fork(ev)
            elif isinstance(ev, ReInvite) and ev.invite.call_id == call_id and not caller:
                ok = self._callee_rekey(ev.invite, media, keying) and ok
            elif isinstance(ev, Acked) and ev.call_id == call_id and not caller:
                media.switch_sender()
            elif isinstance(ev, IncomingCall):
                ev.invite.respond(486, "Busy Here")

    def _caller_rekey(self, dialog: Dialog, media: Any, bundle: CryptoSessionBundle) -> bool:
        """Re-INVITE with a new MIKEY exchange for the same CSB (RFC 3830 §4.5) and switch the media keys."""
        try:
            keying = CallerKeying(self.config.sides, self.ssrc, csb_id=bundle.csb_id)
            offer = offer_sdp(keying.offer(time.time()), address=self.config.bind, port=media.port,
                              ssrc=self.ssrc, cname=self.config.aor, version=1)
            answer = self._reinvite(dialog, offer)
            if answer is None:
                raise StateError("no answer to the re-keying re-INVITE")
            next_message, result = keying.take(answer, time.time())
            rounds = 1
            while result is None and next_message is not None:
                rounds += 1
                answer = self._reinvite(dialog, offer_sdp(next_message, address=self.config.bind, port=media.port,
                                                          ssrc=self.ssrc, cname=self.config.aor, version=rounds))
                if answer is None:
                    raise StateError("no answer to the re-keying re-INVITE's next round")
                next_message, result = keying.next_round(answer, time.time())
            if result is None:
                raise StateError("the re-keying exchange ended without keys")
        except MikeyError as exc:
            self.emit({"event": "rekeyed", "ok": False, "error": f"{exc.kind}: {exc.message}"})
            return False
        new_bundle, prints = fingerprints(result)
        media.rekey(new_bundle)
        self.emit({"event": "rekeyed", "ok": True, "fingerprints": prints, "csb_id": f"{result.csb_id:08x}",
                   "same_csb": result.csb_id == bundle.csb_id})
        return True

    def _callee_rekey(self, invite: ServerInvite, media: Any, keying: CalleeKeying) -> bool:
        continuing = keying.side is not None and keying.pending
        answer = keying.answer(invite.sdp, time.time(), continuing=continuing)
        if answer.status != 200:
            invite.respond(answer.status, answer.reason, answer.sdp, headers=answer.headers)
            self.emit({"event": "rekeyed", "ok": False, "error": answer.error, "error_no": answer.error_no})
            return False
        if answer.result is None:
            keying.pending = True
            invite.respond(answer.status, answer.reason, answer.sdp, headers=answer.headers)
            return True
        keying.pending = False
        new_bundle, prints = fingerprints(answer.result)
        # Receive under the new keys before the answer leaves (the caller switches on it); send under
        # them when the ACK says the caller has them.
        media.rekey(new_bundle, send=False)
        invite.respond(answer.status, answer.reason, answer.sdp, headers=answer.headers)
        self.emit({"event": "rekeyed", "ok": True, "fingerprints": prints, "csb_id": f"{answer.result.csb_id:08x}"})
        return True

    # -- callee ---------------------------------------------------------------------------------------------------

    def _answer_one(self) -> bool:
        cfg = self.config
        deadline = time.monotonic() + cfg.timeout
        while True:
            ev = self._events(deadline)
            if ev is None:
                if time.monotonic() >= deadline:
                    self.emit({"event": "error", "error": f"no call within {cfg.timeout:g} s"})
                    return False
                continue
            if isinstance(ev, IncomingCall):
                return self._take_call(ev.invite)
            if isinstance(ev, ReInvite):
                ev.invite.respond(481, "Call/Transaction Does Not Exist")

    def _take_call(self, invite: ServerInvite) -> bool:
        cfg = self.config
        media = _media_module().MediaSession(self.ssrc, bind=(cfg.bind, 0))
        started = False
        try:
            invite.respond(180, "Ringing")
            keying = CalleeKeying(cfg.sides, self.ssrc, address=cfg.bind, port=media.port, cname=cfg.aor)
            answer = keying.answer(invite.sdp, time.time())
            peer = invite.from_uri
            if answer.status != 200:
                invite.respond(answer.status, answer.reason, answer.sdp, headers=answer.headers)
                self._call_event("in", peer, answer.status, keyed=False, error=answer.error, error_no=answer.error_no)
                return True  # a refusal is a correct outcome of this phone
            dialog = invite.respond(200, "OK", answer.sdp)
            if dialog is None:
                return False
            if answer.result is None:  # a multi-round exchange: the keys come with the next re-INVITE
                keying.pending = True
                result = self._callee_rounds(invite.call_id, keying)
                if result is None:
                    self._call_event("in", peer, 200, keyed=False, error="the exchange's later rounds failed")
                    if not dialog.terminated:
                        dialog.bye()
                    return False
            else:
                result = answer.result
            keying.pending = False
            bundle, prints = fingerprints(result)
            self._call_event("in", peer, 200, keyed=True, prints=prints, csb_id=f"{result.csb_id:08x}")
            remote = media_of(invite.sdp or "")
            media.start(bundle, (remote.address, remote.port), source=self._source(), packets=self._packets(),
                        record=cfg.record)
            started = True
            return self._in_call(dialog, media, keying, bundle, caller=False, call_id=invite.call_id, target=peer)
        finally:
            report = media.stop()
            if started:
                self.emit({"event": "media", **report.to_dict()})

    def _callee_rounds(self, call_id: str, keying: CalleeKeying) -> ExchangeResult | None:
        deadline = time.monotonic() + self.config.timeout
        while True:
            ev = self._events(deadline)
            if ev is None:
                if time.monotonic() >= deadline:
                    return None
                continue
            if isinstance(ev, ReInvite) and ev.invite.call_id == call_id:
                answer = keying.answer(ev.invite.sdp, time.time(), continuing=True)
                ev.invite.respond(answer.status, answer.reason, answer.sdp, headers=answer.headers)
                if answer.status != 200:
                    return None
                if answer.result is not None:
                    return answer.result
            elif isinstance(ev, Bye) and ev.call_id == call_id:
                return None


def _switched(media: Any) -> bool:
    """Whether a stream received has verified a packet under the keys of the last re-key."""
    return any(stream.key_switches >= 1 for stream in media.report().streams)


def run_phone(config: PhoneConfig, emit: Emit) -> bool:
    """Run a phone to the end; True when every call went as it should."""
    return Phone(config, emit).run()



# --- running phones as processes (use cases, tests, demos) --------------------------------------------------


class PhoneProcess:
    """A ``mikey phone --json`` child process whose event lines are collected as they come.

    ``PhoneProcess(argv, stderr=path)`` starts it (argv from :func:`phone_argv`);
    :meth:`wait_for` waits for an event (e.g. ``"ready"``); :meth:`finish` waits for the end
    (killing it after *timeout*) and returns every event.  Always call :meth:`finish` (or use
    ``with``): the process is never left running.
    """

    def __init__(self, argv: Sequence[str], *, stderr: Path | None = None) -> None:
        import subprocess

        from ..cli.demo_kms import child_env

        self._subprocess = subprocess
        self.argv = list(argv)
        self.events: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._stderr_path = stderr
        self._stderr = stderr.open("w") if stderr is not None else subprocess.DEVNULL
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=self._stderr,
                                     stdin=subprocess.DEVNULL, text=True, env=child_env())
        self._reader = threading.Thread(target=self._read, name="phone-reader", daemon=True)
        self._reader.start()

    def __enter__(self) -> PhoneProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish(timeout=0.0)

    def _read(self) -> None:
        stream = self.proc.stdout
        if stream is None:
            return
        for line in stream:
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                with self._cond:
                    self.events.append(obj)
                    self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_for(self, name: str, timeout: float) -> dict[str, Any] | None:
        """The first event called *name* (waiting up to *timeout* s); None if the process ended or time ran out."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = next((e for e in self.events if e.get("event") == name), None)
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    return None
                self._cond.wait(min(left, 0.1))

    def finish(self, timeout: float) -> list[dict[str, Any]]:
        """Wait up to *timeout* s for the process to end (then kill it); every event it printed."""
        try:
            self.proc.wait(timeout=max(timeout, 0.01))
        except self._subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=2.0)
        if self._stderr_path is not None and not isinstance(self._stderr, int):
            self._stderr.close()
        with self._cond:
            return list(self.events)

    def named(self, name: str) -> list[dict[str, Any]]:
        with self._cond:
            return [e for e in self.events if e.get("event") == name]

    def stderr_tail(self) -> str:
        if self._stderr_path is None:
            return ""
        try:
            return self._stderr_path.read_text()[-2000:]
        except OSError:
            return ""
