"""A voicemail box for MIKEY calls: delayed delivery (RFC 3830 §2.1; deferred delivery, RFC 6267 §3.3).

The callee is offline; the proxy sends the call to the mailbox.  The mailbox keeps the caller's
I_MESSAGE and the SRTP it receives *without being able to decrypt either*; later the callee opens
the I_MESSAGE with its own credentials and decrypts the recording (``mikey srtp-decrypt``).

What the mailbox does with an I_MESSAGE depends on whether the caller needs an answer only the
callee could give (:func:`decide`):

* stored, answered without MIKEY (RFC 4567 §4.1: a mode without response): MIKEY-SAKKE (the SSV is
  encapsulated to the callee's identity, RFC 6509 §2.2), PSK and PK without V (the TGK travels in the
  KEMAC under the caller/callee PSK or the callee's public key, RFC 3830 §3.1, §3.2), TICKET without
  a TRANSFER_RESP (V = F = 0; the callee resolves the ticket at the KMS later, RFC 6043 §4.2.2.1);
* completed by the mailbox with its own identity, media keyed from the ESK the callee opens later:
  IBAKE with ESK (RFC 6267 §4.2.2.1, §6.1.2; :class:`~mikey.modes.ibake.IbakeResponder` ``mailbox=True``);
* refused with a MIKEY Error in a 488 (the caller learns at once that the call cannot be kept): DH,
  DH-HMAC and RSA-R (each needs the callee's own contribution: DHr, or the TGK it picks), PSK/PK/TICKET
  with V (a verification only the callee can compute), IBAKE without ESK.

Arrival time: the callee checks the stored I_MESSAGE's T against the time the mailbox received it
(the deposit's ``arrival``), not against the retrieval time, which is days outside the clock skew
(RFC 3830 §5.4).  A mailbox that lies about it can at most replay an old message of the same caller
(still authenticated by the caller's MAC or signature); it cannot change who sent it or read it.

A deposit is a directory: ``i_message.mikey`` (the first stored message), ``messages/NN.mikey`` (every
MIKEY message of the exchange, for IBAKE's two I_MESSAGEs), ``media.pcap`` (the SRTP as received)
and ``deposit.json`` (caller, callee, arrival, data type, CSB ID).
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..constants import DataType, ErrorNo
from ..errors import MikeyError, MikeyProtocolError, StateError
from ..modes.base import build_error_message
from ..modes.ibake import IbakeCredentials, IbakeResponder
from ..wire import EskPayload, Message, TimestampPayload

__all__ = ["Decision", "Deposit", "Mailbox", "MailboxCall", "VoicemailAgent", "decide", "error_message_for", "load_deposits", "main",
           "summary"]

#: Data types the mailbox stores without answering, when the header's V flag asks for no response.
_STORED_WITHOUT_V = frozenset({DataType.PSK_INIT, DataType.PK_INIT, DataType.TRANSFER_INIT})
#: Data types that need the callee's own answer: the mailbox cannot keep them.
_NEED_CALLEE: dict[int, str] = {
    DataType.DH_INIT: "DH needs the callee's DHr (RFC 3830 §3.3)",
    DataType.DHHMAC_INIT: "DH-HMAC needs the callee's DHr (RFC 4650 §3)",
    DataType.RSA_R_INIT: "RSA-R needs the callee to pick and send the TGK (RFC 4738 §3.6)",
}


@dataclass(frozen=True)
class Decision:
    """What the mailbox does with an I_MESSAGE: ``store`` (then ``exchange`` says whether it takes part
    in the exchange, as for IBAKE), or refuse with ``error_no`` (a 488 carrying the Error message)."""

    store: bool
    reason: str
    error_no: int | None = None
    exchange: bool = False


def decide(i_message: bytes, *, ibake: bool = False) -> Decision:
    """The mailbox's decision for *i_message* (see the module docstring); *ibake*: the mailbox holds
    IBAKE credentials of its own.  Raises :class:`~mikey.errors.MikeyDecodeError` for bytes that are
    not a MIKEY message."""
    msg = Message.decode(i_message)
    dt = int(msg.data_type)
    name = getattr(msg.data_type, "name", str(dt))
    if dt == DataType.SAKKE:
        return Decision(True, "MIKEY-SAKKE: the SSV is encapsulated to the callee's identity (RFC 6509 §2.2)")
    if dt in _STORED_WITHOUT_V:
        if msg.header.v:
            return Decision(False, f"{name} asks for a verification (V) only the callee can compute",
                            ErrorNo.UNSPECIFIED)
        return Decision(True, f"{name} without V: the key travels in the I_MESSAGE for the callee")
    if dt in _NEED_CALLEE:
        return Decision(False, _NEED_CALLEE[dt], ErrorNo.INVALID_DT)
    if dt == DataType.IBAKE_I_MESSAGE_1:
        if msg.find(EskPayload) is None:
            return Decision(False, "IBAKE without ESK: only the callee can key the media (RFC 6267 §3.3)",
                            ErrorNo.UNSPECIFIED)
        if not ibake:
            return Decision(False, "this mailbox holds no IBAKE identity to complete the exchange with",
                            ErrorNo.INVALID_ID)
        return Decision(True, "IBAKE with ESK: the mailbox completes the exchange, the ESK keys the media "
                        "(RFC 6267 §6.1.2)", exchange=True)
    return Decision(False, f"data type {name} is not an I_MESSAGE a mailbox takes", ErrorNo.INVALID_DT)


def error_message_for(i_message: bytes, error_no: int, now: float) -> bytes:
    """An unauthenticated Error message (RFC 3830 §5.1.2) answering *i_message* with *error_no*."""
    csb_id = int.from_bytes(i_message[4:8], "big") if len(i_message) >= 8 else 0
    return build_error_message(csb_id, [error_no], TimestampPayload.ntp_utc(now))


@dataclass(frozen=True)
class Deposit:
    """One kept call: where it is, who called whom, when it arrived, and the MIKEY messages kept."""

    directory: Path
    caller: str
    callee: str
    arrival: float
    data_type: int
    csb_id: int
    messages: tuple[bytes, ...] = field(repr=False)

    @property
    def i_message(self) -> bytes:
        return self.messages[0]

    @property
    def media(self) -> Path:
        return self.directory / "media.pcap"

    @classmethod
    def load(cls, directory: Path) -> Deposit:
        meta = json.loads((directory / "deposit.json").read_text(encoding="utf-8"))
        names = sorted((directory / "messages").glob("*.mikey"))
        return cls(directory, str(meta["caller"]), str(meta["callee"]), float(meta["arrival"]),
                   int(meta["data_type"]), int(meta["csb_id"]), tuple(p.read_bytes() for p in names))


class MailboxCall:
    """One call being kept: its decision, the answer to send, and (IBAKE) the exchange in progress."""

    def __init__(self, box: Mailbox, directory: Path, caller: str, callee: str, arrival: float,
                 i_message: bytes, decision: Decision) -> None:
        self.box = box
        self.directory = directory
        self.caller = caller
        self.callee = callee
        self.arrival = arrival
        self.decision = decision
        self.messages: list[bytes] = [i_message]
        self.responder: IbakeResponder | None = None
        self.answer: bytes | None = None

    def __repr__(self) -> str:
        return f"MailboxCall({self.caller!r} -> {self.callee!r}, store={self.decision.store})"

    def take(self, message: bytes, now: float) -> bytes | None:
        """A further MIKEY message of the exchange (IBAKE I_MESSAGE_2): kept, and the answer returned."""
        if self.responder is None:
            raise StateError("this call's exchange takes no further message")
        step = self.responder.receive(message, now)
        self.messages.append(bytes(message))
        self._write()
        return step.response

    def _write(self) -> None:
        msgs = self.directory / "messages"
        msgs.mkdir(parents=True, exist_ok=True)
        for n, m in enumerate(self.messages):
            (msgs / f"{n:02d}.mikey").write_bytes(m)
        (self.directory / "i_message.mikey").write_bytes(self.messages[0])
        first = Message.decode(self.messages[0])
        meta = {"caller": self.caller, "callee": self.callee, "arrival": self.arrival,
                "data_type": int(first.data_type), "csb_id": first.csb_id, "reason": self.decision.reason}
        (self.directory / "deposit.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

    def deposit(self) -> Deposit:
        return Deposit.load(self.directory)


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class Mailbox:
    """The voicemail store under *root*: takes offered I_MESSAGEs (:meth:`offer`), lists deposits.

    ``ibake`` (credentials holding K_PR for ``identity``) lets it complete IBAKE exchanges that carry
    an ESK (RFC 6267 §3.3).  Thread-safe: calls may arrive at once.
    """

    def __init__(self, root: Path, *, identity: str | None = None, ibake: IbakeCredentials | None = None) -> None:
        if ibake is not None and identity is None:
            raise ValueError("an IBAKE mailbox needs its identity")
        self.root = root
        self.identity = identity
        self.ibake = ibake
        self._lock = threading.Lock()
        self._count = 0

    def __repr__(self) -> str:
        return f"Mailbox({str(self.root)!r}, identity={self.identity!r})"

    def offer(self, caller: str, callee: str, i_message: bytes, now: float) -> tuple[MailboxCall, bytes | None]:
        """Take the I_MESSAGE of a call for *callee*: returns the call and the MIKEY message to answer
        with (None: no key-mgmt in the answer; an Error message: answer 488).

        Raises :class:`~mikey.errors.MikeyError` only for bytes that are no MIKEY message (its
        ``error_message`` is then None; answer 488 without one).
        """
        decision = decide(i_message, ibake=self.ibake is not None)
        with self._lock:
            self._count += 1
            name = f"{int(now * 1000):d}-{os.getpid()}-{self._count:03d}-{_UNSAFE.sub('_', callee)[:64]}"
        call = MailboxCall(self, self.root / name, caller, callee, now, bytes(i_message), decision)
        if not decision.store:
            return call, error_message_for(i_message, int(decision.error_no or ErrorNo.UNSPECIFIED), now)
        answer: bytes | None = None
        if decision.exchange and self.ibake is not None and self.identity is not None:
            call.responder = IbakeResponder(self.ibake, self.identity.encode("utf-8"), mailbox=True)
            try:
                answer = call.responder.receive(i_message, now).response
            except MikeyProtocolError as exc:
                call.decision = Decision(False, f"IBAKE refused: {exc}", exc.err_no or ErrorNo.UNSPECIFIED)
                return call, exc.error_message or error_message_for(i_message, int(call.decision.error_no or 12), now)
            except MikeyError as exc:
                call.decision = Decision(False, f"IBAKE refused: {exc}", ErrorNo.UNSPECIFIED)
                return call, exc.error_message or error_message_for(i_message, ErrorNo.UNSPECIFIED, now)
        call.directory.mkdir(parents=True, exist_ok=True)
        call._write()
        call.answer = answer
        return call, answer

    def deposits(self, callee: str | None = None) -> list[Deposit]:
        return load_deposits(self.root, callee)


def load_deposits(root: Path, callee: str | None = None) -> list[Deposit]:
    """The deposits under *root* (for *callee* only, when given), oldest first."""
    out: list[Deposit] = []
    if not root.is_dir():
        return out
    for meta in sorted(root.glob("*/deposit.json")):
        d = Deposit.load(meta.parent)
        if callee is None or d.callee == callee:
            out.append(d)
    return sorted(out, key=lambda d: d.arrival)


def summary(deposit: Deposit) -> dict[str, Any]:
    """What a listing shows of a deposit (no key material: the mailbox has none)."""
    return {"caller": deposit.caller, "callee": deposit.callee, "arrival": deposit.arrival,
            "data_type": deposit.data_type, "csb_id": f"{deposit.csb_id:08x}", "messages": len(deposit.messages),
            "media": str(deposit.media) if deposit.media.exists() else None}


# --- the voicemail user agent (I/O: SIP through the proxy, SRTP into the deposit's pcap) -------------------


class VoicemailAgent:
    """The mailbox as a SIP user agent registered at *proxy* as *aor*: answers every INVITE per
    :func:`decide` (200 with the answer's SDP, or 488 carrying the MIKEY Error, RFC 4567 §4.1), keeps
    the SRTP of each kept call undecrypted (:class:`~mikey.sip.media.MediaSession` ``store_srtp``)
    until the caller's BYE, and reports each call to *report* (a JSON-able dict).

    An IBAKE exchange the mailbox completes takes its I_MESSAGE_2 in a re-INVITE of the same dialog.
    With *hang_up_after* seconds, the mailbox ends a call (BYE) once the caller's media has been
    silent that long after its first packet (the message is over); None waits for the caller's BYE.
    """

    def __init__(self, mailbox: Mailbox, aor: str, proxy: tuple[str, int], *,
                 report: Callable[[dict[str, Any]], None] | None = None, hang_up_after: float | None = 1.0) -> None:
        from .adapter import SipAgent

        self.mailbox = mailbox
        self.aor = aor
        self.agent = SipAgent(aor, proxy, user_agent="mikey-voicemail")
        self.report = report or (lambda event: None)
        self.hang_up_after = hang_up_after
        self._calls: dict[str, tuple[MailboxCall, Any]] = {}
        self._dialogs: dict[str, Any] = {}
        self._progress: dict[str, tuple[int, float]] = {}

    def __repr__(self) -> str:
        return f"VoicemailAgent({self.aor!r})"

    def register(self) -> int:
        """REGISTER at the proxy; reports ``ready`` (2xx) or ``error``; returns the final status."""
        status = self.agent.register()
        if 200 <= status < 300:
            self.report({"event": "ready", "aor": self.aor, "contact": self.agent.contact, "status": status})
        else:
            self.report({"event": "error", "error": f"REGISTER answered {status}", "status": status})
        return status

    def run(self, stop: threading.Event, clock: Callable[[], float]) -> None:
        """Answer calls until *stop* is set (every kept call's media is stopped on the way out)."""
        import queue
        import time

        from . import adapter

        try:
            while not stop.is_set():
                self._hang_up_idle(time.monotonic())
                try:
                    event = self.agent.events.get(timeout=0.1)
                except queue.Empty:
                    continue
                if isinstance(event, adapter.IncomingCall):
                    self._on_invite(event.invite, clock())
                elif isinstance(event, adapter.ReInvite):
                    self._on_reinvite(event.invite, clock())
                elif isinstance(event, adapter.Bye):
                    self._finish(event.call_id)
        finally:
            for call_id in list(self._calls):
                self._finish(call_id)
            self.agent.close()

    def _on_invite(self, invite: Any, now: float) -> None:
        from ..offer_answer import make_answer, take_offer
        from .media import MediaSession

        caller, callee = _bare_uri(invite.from_uri), _bare_uri(invite.to_uri)
        try:
            i_message = take_offer(invite.sdp or "")
            call, answer = self.mailbox.offer(caller, callee, i_message, now)
        except MikeyError as exc:
            invite.respond(488, "Not Acceptable Here")
            self.report({"event": "call", "direction": "in", "peer": caller, "callee": callee, "status": 488,
                         "stored": False, "error": exc.message, "error_no": None})
            return
        if not call.decision.store:
            invite.respond(488, "Not Acceptable Here", make_answer(answer, port=9))
            self.report({"event": "call", "direction": "in", "peer": caller, "callee": callee, "status": 488,
                         "stored": False, "error": call.decision.reason, "error_no": call.decision.error_no})
            return
        media = MediaSession(int.from_bytes(os.urandom(4), "big") | 1)
        media.start(None, None, store_srtp=call.directory / "media.pcap")
        dialog = invite.respond(200, "OK", make_answer(answer, port=media.port))
        self._calls[invite.call_id] = (call, media)
        self._dialogs[invite.call_id] = dialog
        self.report({"event": "call", "direction": "in", "peer": caller, "callee": callee, "status": 200,
                     "stored": True, "reason": call.decision.reason, "deposit": str(call.directory)})

    def _on_reinvite(self, invite: Any, now: float) -> None:
        from ..offer_answer import make_answer, take_offer

        kept = self._calls.get(invite.call_id)
        if kept is None:
            invite.respond(488, "Not Acceptable Here")
            return
        call, media = kept
        try:
            answer = call.take(take_offer(invite.sdp or ""), now)
        except MikeyError as exc:
            invite.respond(488, "Not Acceptable Here",
                           make_answer(exc.error_message, port=media.port) if exc.error_message else None)
            self.report({"event": "rekey", "status": 488, "error": exc.message})
            return
        invite.respond(200, "OK", make_answer(answer, port=media.port))
        self.report({"event": "rekey", "status": 200, "messages": len(call.messages)})

    def _hang_up_idle(self, now: float) -> None:
        """BYE to calls whose media stopped *hang_up_after* seconds ago (after at least one packet)."""
        if self.hang_up_after is None:
            return
        for call_id, (_, media) in list(self._calls.items()):
            stored = int(media.report().stored_packets)
            last, since = self._progress.get(call_id, (0, now))
            if stored != last:
                self._progress[call_id] = (stored, now)
            elif stored > 0 and now - since >= self.hang_up_after:
                dialog = self._dialogs.get(call_id)
                if dialog is not None and not dialog.terminated:
                    dialog.bye()
                self._finish(call_id)

    def _finish(self, call_id: str) -> None:
        self._dialogs.pop(call_id, None)
        self._progress.pop(call_id, None)
        kept = self._calls.pop(call_id, None)
        if kept is None:
            return
        call, media = kept
        report = media.stop()
        self.report({"event": "deposit", "caller": call.caller, "callee": call.callee, "deposit": str(call.directory),
                     "messages": len(call.messages), "stored_packets": report.stored_packets,
                     "decrypted": report.received, "media": report.stored_srtp})


def _bare_uri(value: str) -> str:
    """``sip:user@host`` of a From/To URI (parameters and brackets dropped)."""
    uri = value.strip().strip("<>").split(";", 1)[0]
    return uri.split(">", 1)[0]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mikey.sip.voicemail --proxy HOST:PORT --aor sip:vm@domain --dir DIR [--ibake-keys FILE]``:
    run the mailbox until SIGTERM/SIGINT, one JSON object per line on stdout.  Exit status 0 after a
    clean stop, 1 when the REGISTER failed, 2 for a usage error (bad options or keys file)."""
    import argparse
    import signal
    import sys
    import time

    parser = argparse.ArgumentParser(prog="python -m mikey.sip.voicemail", description=main.__doc__)
    parser.add_argument("--proxy", required=True, help="the outbound proxy and registrar, HOST:PORT")
    parser.add_argument("--aor", required=True, help="the mailbox's address of record")
    parser.add_argument("--dir", required=True, type=Path, help="where deposits are kept")
    parser.add_argument("--ibake-keys", help="the mailbox's MIKEY-IBAKE keys file (to complete IBAKE with ESK)")
    parser.add_argument("--ibake-identity", help="the mailbox's IBAKE identity (default: the keys file's URI)")
    parser.add_argument("--hang-up-after", type=float, default=1.0, metavar="S",
                        help="end a call once the caller's media has been silent S seconds (default 1; 0: never)")
    args = parser.parse_args(argv)
    host, _, port = str(args.proxy).rpartition(":")
    if not host or not port.isdigit():
        parser.error("--proxy must be HOST:PORT")
    lock = threading.Lock()

    def emit(event: dict[str, Any]) -> None:
        with lock:
            sys.stdout.write(json.dumps(event) + "\n")
            sys.stdout.flush()

    ibake: IbakeCredentials | None = None
    identity: str | None = None
    if args.ibake_keys:
        from ..cli.common import UsageError
        from ..cli.ibake_files import load_user_keys

        try:
            keys = load_user_keys(args.ibake_keys)
        except UsageError as exc:
            emit({"event": "error", "error": str(exc)})
            emit({"event": "end", "ok": False})
            return 2
        ibake, identity = keys.credentials, args.ibake_identity or keys.uri
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    agent = VoicemailAgent(Mailbox(args.dir, identity=identity, ibake=ibake), args.aor, (host, int(port)),
                           report=emit, hang_up_after=args.hang_up_after or None)
    ok = True
    try:
        if agent.register() >= 300:
            ok = False
            return 1
        agent.run(stop, time.time)
    except MikeyError as exc:
        ok = False
        emit({"event": "error", "error": exc.message})
        return 1
    finally:
        emit({"event": "end", "ok": ok})
    return 0


if __name__ == "__main__":  # pragma: no cover - the process entry point
    raise SystemExit(main())
