"""A conference focus and group-broadcast sender keyed with one group key, and the group's members.

Run as processes (``python -m mikey.sip.focus CONFIG.json``, one JSON event per line on stdout),
registered at the SIP proxy (Kamailio) and calling each other through it:

* **Focus, conference** (RFC 4353 focus, RFC 7667 §3.7 media translator): keys every member
  with the same group key (:class:`~mikey.sip.group.GroupKeyServer`), one call per member, and
  relays SRTP between the members without keys (:class:`~mikey.sip.media.SrtpRelay`): every
  member decrypts every other member's stream with the group key.
* **Focus, group broadcast** (RFC 3830 §8.1 "simple one-to-many"): the focus is the sender; it
  keys every receiver with the group key and the stream's *current* ROC (RFC 3830 §6.1.1), so
  a receiver that joins late decrypts from its first packet.  The stream starts near the SEQ
  wrap with a non-zero ROC; ``stale_roc`` members get the ROC of the stream's start instead,
  and fail authentication (RFC 3711 §3.3.1), which shows why the ROC must be sent.
* **Member**: answers the focus's INVITE (PSK, PK, MIKEY-SAKKE, TICKET: the I_MESSAGE is in the
  offer) or calls the focus (RSA-R group mode, RFC 4738 §3.2: the member's request is in the
  offer, the group key in the answer), then sends a tone (conference) and reports, per sender's
  SSRC, what it received, what failed authentication and the tone it heard.

The signalling is :mod:`mikey.sip.adapter`, the SDP :mod:`mikey.offer_answer` (RFC 4567), the media
:mod:`mikey.sip.media`.  The focus dials out (or answers) the members of the roster it is given;
each member has a fixed SSRC, so every member's CS ID map lists every stream (RFC 3830 §6.1.1).
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..errors import MikeyDecodeError, MikeyError, StateError
from ..offer_answer import make_answer, make_offer, take_answer, take_offer
from ..sdp import make_sdp
from ..session import CryptoSessionBundle
from .adapter import Answered, Bye, CallFailed, Dialog, IncomingCall, ReInvite, SipAgent
from .group import (
    GroupKey,
    GroupKeyServer,
    GroupStream,
    focus_dials_out,
    member_initiator,
    member_responder,
    member_view,
    session_fingerprints,
)
from .media import MediaSession, SrtpRelay, ToneSource

__all__ = [
    "GroupConfig",
    "GroupProcess",
    "FocusError",
    "run_focus",
    "run_member",
    "group_sdp",
    "media_address",
    "sdp_ssrc",
    "main",
]

Emit = Callable[[dict[str, Any]], None]
Address = tuple[str, int]

#: A broadcast goes on for at least this many packets after the last receiver was keyed.
TAIL_PACKETS = 50


class FocusError(MikeyError):
    """A focus or member run that cannot go on (a call failed, no answer in time, bad configuration)."""

    kind = "focus"


@dataclass(frozen=True)
class GroupConfig:
    """What one focus or member process does (JSON: :meth:`to_json` / :meth:`from_json`).

    ``streams`` is the group's roster: one :class:`GroupStream` per sender (the members in a
    conference, the focus in a broadcast).  ``members`` are the URIs the focus keys now,
    ``late`` those it keys after ``late_after`` packets (broadcast), ``stale_roc`` the late ones
    it tells the stream's starting ROC.  A member's ``ssrc`` is its stream's; ``call_delay`` is
    how long a dial-in member waits before calling; ``store_srtp`` a pcap where a member also keeps
    the SRTP as it arrived (what went over the wire from the relay).
    """

    role: str
    case: str
    method: str
    aor: str
    proxy: Address
    focus: str
    creds: Mapping[str, Any] = field(repr=False)
    streams: tuple[GroupStream, ...]
    members: tuple[str, ...] = ()
    late: tuple[str, ...] = ()
    stale_roc: tuple[str, ...] = ()
    late_after: int = 100
    ssrc: int = 0
    packets: int = 150
    tone: float = 440.0
    start_seq: int | None = None
    timeout: float = 20.0
    call_delay: float = 0.0
    bind: str = "127.0.0.1"
    store_srtp: str | None = None

    def __post_init__(self) -> None:
        if self.role not in ("focus", "member"):
            raise FocusError(f"role must be 'focus' or 'member', not {self.role!r}")
        if self.case not in ("conference", "broadcast"):
            raise FocusError(f"case must be 'conference' or 'broadcast', not {self.case!r}")
        if self.role == "member" and not any(s.ssrc == self.ssrc for s in self.streams) and self.case == "conference":
            raise FocusError(f"member {self.aor}'s SSRC {self.ssrc:08x} is not in the roster")

    def to_json(self) -> str:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["streams"] = [{"uri": s.uri, "ssrc": s.ssrc, "roc": s.roc} for s in self.streams]
        d["proxy"] = list(self.proxy)
        d["creds"] = dict(self.creds)
        for name in ("members", "late", "stale_roc"):
            d[name] = list(d[name])
        return json.dumps(d)

    @classmethod
    def from_json(cls, text: str) -> GroupConfig:
        try:
            d = json.loads(text)
            d["streams"] = tuple(GroupStream(s["uri"], int(s["ssrc"]), int(s.get("roc", 0))) for s in d["streams"])
            d["proxy"] = (str(d["proxy"][0]), int(d["proxy"][1]))
            for name in ("members", "late", "stale_roc"):
                d[name] = tuple(d.get(name, ()))
            return cls(**d)
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise FocusError(f"bad group configuration: {exc}") from None


# --- SDP (RFC 4566, RFC 4567 key-mgmt, RFC 5576 a=ssrc) -------------------------------------------------------


def group_sdp(message: bytes | None, *, address: str, port: int, ssrc: int | None, answer: bool) -> str:
    """One PCMU audio stream over SRTP with *message* in ``a=key-mgmt:mikey`` (session level, RFC 4567 §3.1)."""
    body = make_sdp("mikey group", address, (("audio", port, "RTP/SAVP", (0,)),))
    body += "a=rtpmap:0 PCMU/8000\r\n"
    if ssrc:
        body += f"a=ssrc:{ssrc} cname:mikey-group\r\n"
    if answer:
        return make_answer(message, sdp=body)
    if message is None:
        raise StateError("an offer needs a MIKEY message")
    return make_offer(message, sdp=body)


def media_address(sdp: str | None) -> Address:
    """The connection address and port of the first ``m=audio`` line (RFC 4566 §5.7, §5.14)."""
    address, port = "", -1
    for line in (sdp or "").replace("\r\n", "\n").split("\n"):
        if line.startswith("c=") and port < 0:
            parts = line[2:].split()
            if len(parts) == 3:
                address = parts[2].split("/")[0]
        elif line.startswith("m=audio ") and port < 0:
            parts = line[2:].split()
            if len(parts) >= 3 and parts[1].isdigit():
                port = int(parts[1])
    if not address or not 0 < port <= 0xFFFF:
        raise MikeyDecodeError("SDP has no usable audio stream (c= and m=audio)", payload="SDP")
    return address, port


def sdp_ssrc(sdp: str | None) -> int | None:
    """The first ``a=ssrc`` of an SDP body (RFC 5576 §4.1), or None."""
    for line in (sdp or "").replace("\r\n", "\n").split("\n"):
        if line.startswith("a=ssrc:"):
            value = line[7:].split()[0] if line[7:].split() else ""
            if value.isdigit() and 0 < int(value) <= 0xFFFFFFFF:
                return int(value)
    return None


# --- shared helpers -------------------------------------------------------------------------------------------------


def _agent(cfg: GroupConfig, emit: Emit) -> SipAgent:
    agent = SipAgent(cfg.aor, cfg.proxy, bind=(cfg.bind, 0), user_agent="mikey-group")
    status = agent.register(timeout=min(cfg.timeout, 5.0))
    if status != 200:
        agent.close()
        raise FocusError(f"REGISTER of {cfg.aor} answered {status}")
    emit({"event": "ready", "aor": cfg.aor, "contact": agent.contact, "role": cfg.role})
    return agent


def _leave(agent: SipAgent) -> None:
    """Remove this agent's registration (so the proxy forks no later call to a closed socket) and close it."""
    try:
        agent.unregister(timeout=1.0)
    except (MikeyError, OSError):
        pass
    agent.close()


def _next_event(agent: SipAgent, deadline: float) -> Any:
    wait = deadline - time.monotonic()
    if wait <= 0:
        return None
    try:
        return agent.events.get(timeout=min(wait, 0.05))
    except queue.Empty:
        return None


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


@dataclass
class _Leg:
    """One member's call at the focus."""

    member: str
    call_id: str = ""
    port: int = 0
    initiator: Any = None
    dialog: Dialog | None = None
    keyed: bool = False
    roc: int | None = None


# --- the focus ------------------------------------------------------------------------------------------------


class _Focus:
    def __init__(self, cfg: GroupConfig, emit: Emit) -> None:
        self.cfg = cfg
        self.emit = emit
        self.key = GroupKey.new(cfg.streams)
        self.server = GroupKeyServer(cfg.method, self.key, cfg.creds)
        self.dial_out = focus_dials_out(cfg.method)
        self.legs: dict[str, _Leg] = {}
        self.by_call: dict[str, _Leg] = {}
        self.relay: SrtpRelay | None = None
        self.media: MediaSession | None = None
        self.sender = cfg.streams[0] if cfg.case == "broadcast" else None
        self.ok = True
        self.refused = 0
        self.remotes: list[Address] = []  # the broadcast's receivers
        self.last_keyed_sent = 0
        self.held: list[Any] = []  # dial-in INVITEs waiting for their time (late members, a conference's start)
        self._released = False
        self._agent: SipAgent | None = None
        self._media_started = False

    # keys for one member: the group key, with the stream's current ROC for a broadcast (RFC 3830 §6.1.1)
    def _key_for(self, member: str) -> GroupKey:
        if self.sender is None or self.media is None or not self._media_started or member in self.cfg.stale_roc:
            return self.key  # the stream's starting ROC
        _, roc = self.media.send_position()
        return self.key.with_roc(self.sender.ssrc, roc)

    def _local_port(self) -> int:
        if self.relay is not None:
            return self.relay.add_leg()
        if self.media is None:
            raise StateError("the broadcast sender has no media session")
        return self.media.port

    def _keyed(self, leg: _Leg, remote: Address, key: GroupKey) -> None:
        leg.keyed = True
        if self.relay is not None:
            self.relay.set_remote(leg.port, remote)
        elif self.media is not None:
            self.remotes.append(remote)
            if self._media_started:
                self.media.add_remote(remote)
            else:
                self._start_media()
        roc = key.stream(self.sender.ssrc).roc if self.sender is not None else None
        leg.roc = roc
        self.last_keyed_sent = self.media.report().sent if self.media is not None else 0
        self.emit({"event": "keyed", "member": leg.member, "roc": roc, "csb_id": f"{key.csb_id:08x}"})

    def _start_media(self) -> None:
        media, sender = self.media, self.sender
        if media is None or sender is None or self._media_started:
            return
        # The broadcast begins once every receiver of the start is keyed (or refused); later ones join late.
        initial = [m for m in self.cfg.members if m in self.legs and self.legs[m].keyed]
        if len(initial) + self.refused < len(self.cfg.members):
            return
        bundle = CryptoSessionBundle(self.server.focus_view())
        # It sends until every receiver, late ones included, has had TAIL_PACKETS (and at least cfg.packets).
        media.start(bundle, list(self.remotes), source=ToneSource(self.cfg.tone), packets=None,
                    start_seq=self.cfg.start_seq, roc=sender.roc)
        self._media_started = True
        self.emit({"event": "sending", "ssrc": f"{sender.ssrc:08x}", "start_seq": self.cfg.start_seq,
                   "roc": sender.roc})

    def _dial(self, member: str, now: float) -> None:
        leg = self.legs[member] = _Leg(member, port=self._local_port())
        key = self._key_for(member)
        leg.initiator = self.server.initiator(member, now, key=key)
        leg.roc = key.stream(self.sender.ssrc).roc if self.sender is not None else None
        sdp = group_sdp(leg.initiator.create_message(now), address=self.cfg.bind, port=leg.port,
                        ssrc=self.sender.ssrc if self.sender is not None else None, answer=False)
        if self._agent is None:
            raise StateError("the focus has no SIP agent")
        leg.call_id = self._agent.invite(member, sdp, timeout=self.cfg.timeout)
        self.by_call[leg.call_id] = leg

    def _on_answered(self, ev: Answered) -> None:
        leg = self.by_call.get(ev.call_id)
        if leg is None or leg.keyed:
            if ev.dialog is not None and leg is None:
                ev.dialog.bye()
            return
        leg.dialog = ev.dialog
        try:
            response = take_answer(ev.sdp or "")
            if response is not None:
                result = leg.initiator.receive(response, time.time())
                self.server.note_member_result(result)
            remote = media_address(ev.sdp)
        except MikeyError as exc:
            self._refused({"member": leg.member, "error": _error_text(exc), "error_no": getattr(exc, "err_no", None)})
            ev.dialog.bye()
            return
        key = self.key.with_roc(self.sender.ssrc, leg.roc) if self.sender is not None and leg.roc is not None \
            else self.key
        self._keyed(leg, remote, key)

    def _learn_ssrcs(self, invites: Sequence[Any]) -> None:
        """Roster streams without an SSRC take the one the member's offer names (``a=ssrc``, RFC 5576)."""
        unknown = {s.uri for s in self.key.streams if not s.ssrc}
        for invite in invites:
            if invite.from_uri in unknown:
                ssrc = sdp_ssrc(invite.sdp)
                if ssrc:
                    self.key = self.key.with_ssrc(invite.from_uri, ssrc)
                    self.emit({"event": "learnt-ssrc", "member": invite.from_uri, "ssrc": f"{ssrc:08x}"})

    def _late_due(self) -> bool:
        """Whether the broadcast has sent the packets after which the late members are keyed."""
        return self.media is not None and self._media_started and self.media.report().sent >= self.cfg.late_after

    def _refused(self, event: dict[str, Any]) -> None:
        """A member that could not be keyed: reported, counted, and the broadcast no longer waits for it."""
        self.ok = False
        self.refused += 1
        self.emit({"event": "refused", **event})
        self._start_media()

    def _on_incoming(self, invite: Any) -> None:
        """RSA-R group mode: a member's request in the offer, the group key in the answer (RFC 4738 §3.2).

        INVITEs are held (180 Ringing): a late member's until the stream has sent ``late_after`` packets,
        a conference member's until every member has called, so that all start their media together."""
        member = invite.from_uri
        hold = (member in self.cfg.late and not self._late_due()) or (
            self.relay is not None and not self._released and member in self.cfg.members)
        if hold:
            invite.respond(180, "Ringing")
            self.held.append(invite)
            self._released = self.relay is not None and {i.from_uri for i in self.held} >= set(self.cfg.members)
            return
        if member not in (*self.cfg.members, *self.cfg.late):
            invite.respond(403, "Forbidden")
            self.emit({"event": "refused", "member": member, "error": "not in the group's roster"})
            return
        try:
            i_message = take_offer(invite.sdp or "")
            remote = media_address(invite.sdp)
            key = self._key_for(member)
            outcome = self.server.respond(i_message, time.time(), key=key)
        except MikeyError as exc:
            error_message = getattr(exc, "error_message", None)
            body = group_sdp(error_message, address=self.cfg.bind, port=9, ssrc=None, answer=True) \
                if error_message else None
            invite.respond(488, "Not Acceptable Here", body)
            self._refused({"member": member, "error": _error_text(exc), "error_no": getattr(exc, "err_no", None)})
            return
        leg = self.legs[member] = _Leg(member, call_id=invite.call_id, port=self._local_port())
        self.by_call[invite.call_id] = leg
        leg.dialog = invite.respond(200, "OK", group_sdp(
            outcome.response, address=self.cfg.bind, port=leg.port,
            ssrc=self.sender.ssrc if self.sender is not None else None, answer=True))
        self._keyed(leg, remote, key)

    def run(self) -> bool:
        cfg = self.cfg
        self._agent = agent = _agent(cfg, self.emit)
        deadline = time.monotonic() + cfg.timeout
        try:
            if cfg.case == "conference":
                self.relay = SrtpRelay(cfg.bind)
                self.relay.start()
            elif self.sender is not None:
                self.media = MediaSession(self.sender.ssrc, bind=(cfg.bind, 0))
            if self.dial_out:
                for member in cfg.members:
                    self._dial(member, time.time())
            late = list(cfg.late) if self.dial_out else []  # dial-in late members call when they like
            expected = len(cfg.members) + len(cfg.late)
            while time.monotonic() < deadline:
                if self._late_due() and self.dial_out and late:
                    self._dial(late.pop(0), time.time())
                ready = [i for i in self.held if self._released or self._late_due()]
                if ready and self._released:
                    self._learn_ssrcs(ready)
                for invite in ready:
                    self.held.remove(invite)
                    self._on_incoming(invite)
                ev = _next_event(agent, deadline)
                if isinstance(ev, Answered):
                    self._on_answered(ev)
                elif isinstance(ev, CallFailed) and ev.call_id in self.by_call:
                    failed = self.by_call[ev.call_id]
                    if not failed.keyed:
                        self._refused({"member": failed.member, "status": ev.status, "error": ev.reason})
                elif isinstance(ev, IncomingCall):
                    self._on_incoming(ev.invite)
                elif isinstance(ev, ReInvite):
                    ev.invite.respond(488, "Not Acceptable Here")
                elif isinstance(ev, Bye):
                    ended = self.by_call.get(ev.call_id)
                    if ended is not None and ended.dialog is not None:
                        ended.dialog.terminated = True
                if self._finished(expected, late):
                    break
            else:
                self.ok = False
                self.emit({"event": "error", "error": f"the group did not finish within {cfg.timeout:g} s"})
            return self.ok and all(leg.keyed for leg in self.legs.values())
        finally:
            self._hang_up()
            if self.relay is not None:
                self.emit({"event": "relay", **self.relay.stop()})
            if self.media is not None:
                report = self.media.stop()
                self.emit({"event": "media", **report.to_dict()})
            _leave(agent)

    def _finished(self, expected: int, late: list[str]) -> bool:
        keyed = [leg for leg in self.legs.values() if leg.keyed]
        if late or len(keyed) + self.refused < expected:
            return False
        if self.cfg.case == "broadcast":
            sent = self.media.report().sent if self.media is not None and self._media_started else 0
            return sent >= max(self.cfg.packets, self.last_keyed_sent + TAIL_PACKETS)
        # a conference ends when every member has hung up
        return all(leg.dialog is not None and leg.dialog.terminated for leg in keyed)

    def _hang_up(self) -> None:
        if self.media is not None and self.sender is not None:
            time.sleep(0.3)  # let the last packets reach the receivers before the BYE
        for leg in self.legs.values():
            if leg.dialog is not None and not leg.dialog.terminated:
                try:
                    leg.dialog.bye(timeout=2.0)
                except MikeyError:
                    continue


def run_focus(cfg: GroupConfig, emit: Emit) -> bool:
    """Run the focus to the end (every member keyed, the media done); True when all went as it should."""
    return _Focus(cfg, emit).run()


# --- a member ------------------------------------------------------------------------------------------------


def run_member(cfg: GroupConfig, emit: Emit) -> bool:
    """Run one member: keyed by the focus, media for the group, then the report of every sender's stream."""
    # Credentials loaded (and a TICKET member's KMS database opened) before registering, so that every
    # member answers the focus at once: the members' streams then start together.
    dial_out = focus_dials_out(cfg.method)
    responder = member_responder(cfg.method, cfg.creds, cfg.aor, own_ssrc=cfg.ssrc or None) if dial_out else None
    request = None if dial_out else member_initiator(cfg.method, cfg.creds, cfg.aor)
    agent = _agent(cfg, emit)
    media = MediaSession(cfg.ssrc or int.from_bytes(os.urandom(4), "big") | 1, bind=(cfg.bind, 0))
    deadline = time.monotonic() + cfg.timeout
    dialog: Dialog | None = None
    call_id = ""
    ok = False
    try:
        result = None
        remote: Address | None = None
        if responder is not None:
            while result is None:
                ev = _next_event(agent, deadline)
                if ev is None and time.monotonic() >= deadline:
                    raise FocusError(f"no call from the focus within {cfg.timeout:g} s")
                if not isinstance(ev, IncomingCall):
                    continue
                invite = ev.invite
                try:
                    outcome = responder.receive(take_offer(invite.sdp or ""), time.time())
                    remote = media_address(invite.sdp)
                except MikeyError as exc:
                    error_message = getattr(exc, "error_message", None)
                    body = group_sdp(error_message, address=cfg.bind, port=media.port, ssrc=None, answer=True) \
                        if error_message else None
                    invite.respond(488, "Not Acceptable Here", body)
                    emit({"event": "call", "direction": "in", "peer": invite.from_uri, "status": 488,
                          "mikey": "refused", "error": _error_text(exc), "error_no": getattr(exc, "err_no", None)})
                    return False
                result = outcome.result
                call_id = invite.call_id
                dialog = invite.respond(200, "OK", group_sdp(outcome.response, address=cfg.bind, port=media.port,
                                                             ssrc=cfg.ssrc or None, answer=True))
        elif request is not None:
            time.sleep(cfg.call_delay)
            call_id = agent.invite(cfg.focus, group_sdp(request.create_message(time.time()), address=cfg.bind,
                                                        port=media.port, ssrc=cfg.ssrc or None, answer=False),
                                   timeout=cfg.timeout)
            while result is None:
                ev = _next_event(agent, deadline)
                if ev is None and time.monotonic() >= deadline:
                    raise FocusError(f"no answer from the focus within {cfg.timeout:g} s")
                if isinstance(ev, CallFailed) and ev.call_id == call_id:
                    emit({"event": "call", "direction": "out", "peer": cfg.focus, "status": ev.status,
                          "mikey": "refused", "error": ev.reason, "error_no": None})
                    return False
                if isinstance(ev, Answered) and ev.call_id == call_id:
                    dialog = ev.dialog
                    response = take_answer(ev.sdp or "")
                    if response is None:
                        raise FocusError("the focus answered without the RSA-R R_MESSAGE")
                    result = request.receive(response, time.time())
                    remote = media_address(ev.sdp)
        if result is None:
            raise StateError("the member was not keyed")
        view = member_view(cfg.method, result, cfg.streams)
        emit({"event": "call", "direction": "in" if dial_out else "out", "peer": cfg.focus,
              "status": 200, "mikey": "keyed", "error": None, "error_no": None, "csb_id": f"{view.csb_id:08x}",
              "fingerprints": {f"{k:08x}": v for k, v in session_fingerprints(view).items()},
              "rocs": {f"{cs.ssrc or 0:08x}": cs.roc for cs in view.crypto_sessions}})
        sending = cfg.case == "conference"
        media.start(CryptoSessionBundle(view), remote if sending else None,
                    source=ToneSource(cfg.tone) if sending else None, packets=cfg.packets if sending else None,
                    store_srtp=Path(cfg.store_srtp) if cfg.store_srtp else None)
        ok = _member_call(cfg, agent, media, call_id, deadline, sending)
        if dialog is not None and sending and not dialog.terminated:
            dialog.bye(timeout=2.0)
        return ok
    except MikeyError as exc:
        emit({"event": "error", "error": _error_text(exc)})
        return False
    finally:
        report = media.stop()
        emit({"event": "media", **report.to_dict()})
        _leave(agent)


def _member_call(cfg: GroupConfig, agent: SipAgent, media: MediaSession, call_id: str, deadline: float,
                 sending: bool) -> bool:
    """In the call: a conference member sends its packets and hangs up when the others are quiet; a
    broadcast receiver listens until the sender's BYE."""
    while time.monotonic() < deadline:
        if sending and media.wait_sent(0) and media.wait_idle(quiet=0.8, timeout=max(0.1, deadline - time.monotonic())):
            return True
        ev = _next_event(agent, deadline)
        if isinstance(ev, Bye) and ev.call_id == call_id:
            return True
        if isinstance(ev, ReInvite):
            ev.invite.respond(488, "Not Acceptable Here")
    return False


# --- processes -----------------------------------------------------------------------------------------------


class GroupProcess:
    """A focus or member child process (``python -m mikey.sip.focus CONFIG``) and the JSON events it printed.

    :meth:`wait_for` waits for an event; :meth:`stop` ends the process (terminate, then kill) and
    returns every event.  Always stopped by the use cases (``try``/``finally``).
    """

    def __init__(self, config: GroupConfig, workdir: Path, name: str) -> None:
        from ..cli.demo_kms import child_env

        self.name = name
        path = workdir / f"{name}.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # holds credentials
        with os.fdopen(fd, "w") as f:
            f.write(config.to_json())
        self.events: list[dict[str, Any]] = []
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._stderr = open(workdir / f"{name}.stderr", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "mikey.sip.focus", str(path)], stdout=subprocess.PIPE,
                                     stderr=self._stderr, env=child_env(), stdin=subprocess.DEVNULL)
        self.stderr_path = workdir / f"{name}.stderr"
        stdout = self.proc.stdout
        if stdout is None:  # pragma: no cover - PIPE always gives one
            raise StateError("no stdout pipe")
        self._reader = threading.Thread(target=self._read, args=(stdout,), name=f"group-{name}", daemon=True)
        self._reader.start()

    def __repr__(self) -> str:
        return f"GroupProcess({self.name!r}, pid={self.proc.pid})"

    def _read(self, stdout: IO[bytes]) -> None:
        for raw in stdout:
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            if isinstance(event, dict):
                self._queue.put(event)
        self._queue.put(None)

    def _drain(self, timeout: float) -> bool:
        """Move one event (waiting up to *timeout*) into :attr:`events`; False at the end of output."""
        try:
            event = self._queue.get(timeout=timeout)
        except queue.Empty:
            return True
        if event is None:
            self._queue.put(None)
            return False
        self.events.append(event)
        return True

    def wait_for(self, name: str, timeout: float) -> dict[str, Any] | None:
        """The first event called *name* (waiting up to *timeout* s), or None."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if event.get("event") == name:
                    return event
            left = deadline - time.monotonic()
            if left <= 0 or not self._drain(min(left, 0.1)):
                return next((e for e in self.events if e.get("event") == name), None)

    def wait_end(self, timeout: float) -> bool:
        """Wait until the process printed its ``end`` event and exited; False on timeout."""
        if self.wait_for("end", timeout) is None:
            return False
        try:
            self.proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            return False
        return True

    def stop(self) -> list[dict[str, Any]]:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5.0)
        self._reader.join(timeout=5.0)
        while self._drain(0):
            pass
        self._stderr.close()
        return self.events

    def stderr_tail(self, n: int = 800) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def event(self, name: str) -> dict[str, Any] | None:
        return next((e for e in self.events if e.get("event") == name), None)

    def all(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == name]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mikey.sip.focus CONFIG.json``: run the focus or member that file describes; exit 0 when ok."""
    args = list(sys.argv[1:] if argv is None else argv)

    def emit(event: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(event, default=str) + "\n")
        sys.stdout.flush()

    if len(args) != 1:
        sys.stderr.write("usage: python -m mikey.sip.focus CONFIG.json\n")
        return 2
    ok = False
    try:
        cfg = GroupConfig.from_json(Path(args[0]).read_text())
        ok = run_focus(cfg, emit) if cfg.role == "focus" else run_member(cfg, emit)
    except (MikeyError, OSError) as exc:
        emit({"event": "error", "error": _error_text(exc)})
    emit({"event": "end", "ok": ok})
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
