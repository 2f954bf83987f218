"""A small SIP user agent layer of ours (RFC 3261) over the sippy library's message parser.

The phone (:mod:`mikey.sip.phone`) talks only to :class:`SipAgent`; the SIP library stays behind
this module so it can be swapped.  Parsing and header access use sippy 2.5.0
(``sippy.SipRequest`` / ``sippy.SipResponse``, RFC 3261 §7, §20); the transactions (§17: INVITE
client and server, non-INVITE client, UDP retransmission timers A/B/E/F/G) and dialogs (§12) are
ours, because sippy's transaction manager drops every 2xx after the first final response of an
INVITE (so forked answers, §13.2.2.4, never reach the caller) and runs on a process-wide reactor
that cannot be stopped per agent (see the README section on the SIP library).

Everything the network brings is reported as an event on :attr:`SipAgent.events` (a queue):
:class:`Provisional`, :class:`Answered` (one per 2xx and To tag: every fork gets its own
:class:`Dialog`, ACKed at once; the caller sends BYE to the ones it does not keep),
:class:`CallFailed` (3xx-6xx and timeouts), :class:`IncomingCall`, :class:`ReInvite`,
:class:`Acked`, :class:`Bye`.  Requests are sent to the outbound proxy (the registrar) and inside a
dialog along its route set (§12.2.1.1, loose routing).  One thread per agent receives and runs the
timers; :meth:`SipAgent.close` stops it and closes the socket.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sippy.SipRequest import SipRequest  # type: ignore[import-untyped]
from sippy.SipResponse import SipResponse  # type: ignore[import-untyped]
from sippy.SipURL import SipURL  # type: ignore[import-untyped]

from ..errors import MikeyError

__all__ = [
    "SipError",
    "SipAgent",
    "Dialog",
    "ServerInvite",
    "Event",
    "Provisional",
    "Answered",
    "CallFailed",
    "IncomingCall",
    "ReInvite",
    "Acked",
    "Bye",
    "parse_message",
    "uri_host_port",
]

#: RFC 3261 §17.1.1.1 T1 (round-trip estimate) and the transaction timeout 64*T1 (timers B, F, H).
T1 = 0.5
T2 = 4.0
#: The client-transaction key of a CANCEL: its INVITE's branch behind this prefix (they share the branch).
_CANCEL_KEY = "cancel:"
MAX_MESSAGE = 65535
SDP_TYPE = "application/sdp"


class SipError(MikeyError):
    """A SIP message that cannot be parsed, or a SIP exchange that failed (timeout, refusal)."""

    kind = "sip"


def _token() -> str:
    return os.urandom(6).hex()


def _branch() -> str:
    return "z9hG4bK" + os.urandom(8).hex()  # RFC 3261 §8.1.1.7 magic cookie


# --- parsing (sippy) ---------------------------------------------------------------------------------

_COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact", "l": "content-length",
            "c": "content-type", "k": "supported", "s": "subject", "e": "content-encoding"}


@dataclass
class Message:
    """One parsed SIP message: sippy's object plus the raw header lines and the body as received."""

    sippy: Any
    raw_headers: list[tuple[str, str]]
    body: str
    source: tuple[str, int]

    @property
    def is_request(self) -> bool:
        return isinstance(self.sippy, SipRequest)

    @property
    def method(self) -> str:
        """The request method, or the CSeq method of a response."""
        if self.is_request:
            return str(self.sippy.getMethod())
        return str(self.sippy.getHFBody("cseq").getCSeq()[1])

    @property
    def status(self) -> int:
        return int(self.sippy.getSCode()[0])

    @property
    def reason(self) -> str:
        return str(self.sippy.getSCode()[1])

    @property
    def call_id(self) -> str:
        return str(self.sippy.getHFBody("call-id"))

    @property
    def cseq(self) -> int:
        return int(self.sippy.getHFBody("cseq").getCSeq()[0])

    @property
    def from_tag(self) -> str | None:
        tag = self.sippy.getHFBody("from").getTag()
        return None if tag is None else str(tag)

    @property
    def to_tag(self) -> str | None:
        tag = self.sippy.getHFBody("to").getTag()
        return None if tag is None else str(tag)

    @property
    def from_uri(self) -> str:
        return str(self.sippy.getHFBody("from").getUrl())

    @property
    def to_uri(self) -> str:
        return str(self.sippy.getHFBody("to").getUrl())

    @property
    def branch(self) -> str:
        return str(self.sippy.getHFBody("via").getBranch())

    @property
    def request_uri(self) -> str:
        return str(self.sippy.getRURI())

    def headers(self, name: str) -> list[str]:
        """Every raw value of header *name* (compact forms included), in order, as received."""
        name = name.lower()
        return [v for n, v in self.raw_headers if n == name]

    def header(self, name: str) -> str | None:
        values = self.headers(name)
        return values[0] if values else None

    @property
    def contact(self) -> str | None:
        """The first Contact URI (without the angle brackets and header parameters)."""
        if self.sippy.countHFs("contact") == 0:
            return None
        return str(self.sippy.getHFBody("contact").getUrl())

    @property
    def contacts(self) -> list[str]:
        return [str(c.getUrl()) for c in self.sippy.getHFBodys("contact")]

    @property
    def record_route(self) -> list[str]:
        """The Record-Route entries, one per URI, as received (§12.1.1)."""
        out: list[str] = []
        for value in self.headers("record-route"):
            out.extend(part.strip() for part in _split_commas(value))
        return out

    @property
    def sdp(self) -> str | None:
        ctype = (self.header("content-type") or "").split(";")[0].strip().lower()
        return self.body if self.body and ctype == SDP_TYPE else None


def _split_commas(value: str) -> list[str]:
    """A header value split at commas outside <> and quotes (RFC 3261 §7.3.1)."""
    parts, depth, quoted, cur = [], 0, False, ""
    for ch in value:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "<":
            depth += 1
        elif not quoted and ch == ">":
            depth -= 1
        if ch == "," and depth == 0 and not quoted:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return parts


def parse_message(data: bytes, source: tuple[str, int] = ("", 0)) -> Message:
    """Parse one datagram as a SIP message (RFC 3261 §7); raises :class:`SipError` when it is not one."""
    if len(data) > MAX_MESSAGE:
        raise SipError(f"SIP message of {len(data)} octets is too large")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SipError("SIP message is not UTF-8") from None
    head, sep, body = text.partition("\r\n\r\n")
    if not sep:
        head, sep, body = text.partition("\n\n")
    lines = head.replace("\r\n", "\n").split("\n")
    raw: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and raw:
            raw[-1] = (raw[-1][0], raw[-1][1] + " " + line.strip())
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise SipError(f"malformed SIP header line {line[:40]!r}")
        lname = name.strip().lower()
        raw.append((_COMPACT.get(lname, lname), value.strip()))
    length = next((v for n, v in raw if n == "content-length"), None)
    if length is not None:
        try:
            n = int(length)
        except ValueError:
            raise SipError(f"bad Content-Length {length[:20]!r}") from None
        encoded = body.encode("utf-8")
        if n < 0 or n > len(encoded):
            raise SipError(f"Content-Length {n} but {len(encoded)} octets of body")
        body = encoded[:n].decode("utf-8", errors="replace")
    try:
        if lines[0].startswith("SIP/2.0 "):
            obj = SipResponse(buf=head + "\r\n\r\n" + body)
        else:
            obj = SipRequest(buf=head + "\r\n\r\n" + body)
        obj.getHFBody("cseq").getCSeq()
        obj.getHFBody("via").getBranch()
    except Exception as exc:  # sippy raises plain Exceptions of many kinds on malformed input
        raise SipError(f"malformed SIP message: {str(exc)[:80] or type(exc).__name__}") from None
    return Message(obj, raw, body, source)


def uri_host_port(uri: str, default_port: int = 5060) -> tuple[str, int]:
    """The (host, port) a SIP URI points to (RFC 3263 without DNS: numeric hosts on loopback)."""
    text = uri.strip()
    if text.startswith("<"):
        text = text[1:text.index(">")] if ">" in text else text[1:]
    try:
        url = SipURL(text)
    except Exception:
        raise SipError(f"malformed SIP URI {uri[:60]!r}") from None
    return str(url.host), int(url.port or default_port)


def _uri_of(route: str) -> str:
    m = re.search(r"<([^>]*)>", route)
    return str(m.group(1)) if m else route.split(";")[0].strip()


# --- events ----------------------------------------------------------------------------------------


@dataclass
class Event:
    """Something the network brought."""


@dataclass
class Provisional(Event):
    """A 1xx answer to an outgoing INVITE (with the To tag of the fork that sent it, if any)."""

    call_id: str
    status: int
    reason: str
    to_tag: str | None
    sdp: str | None


@dataclass
class Answered(Event):
    """A 2xx answer to an outgoing INVITE, already ACKed (RFC 3261 §13.2.2.4): one per fork (To tag)."""

    call_id: str
    status: int
    dialog: Dialog
    sdp: str | None


@dataclass
class CallFailed(Event):
    """A 3xx-6xx final answer to an INVITE (ACKed, §17.1.1.3) or a timeout (status 408, ``timeout``)."""

    call_id: str
    status: int
    reason: str
    sdp: str | None = None
    contacts: list[str] = field(default_factory=list)
    warning: str | None = None
    timeout: bool = False
    in_dialog: bool = False


@dataclass
class IncomingCall(Event):
    """A new INVITE: answer it with :meth:`ServerInvite.respond`."""

    invite: ServerInvite


@dataclass
class ReInvite(Event):
    """An INVITE inside an existing dialog (RFC 3261 §14.2): a new offer, e.g. a MIKEY update."""

    invite: ServerInvite


@dataclass
class Acked(Event):
    """The ACK for a 2xx this agent sent (§13.3.1.4); carries an SDP body when the offer was late."""

    call_id: str
    sdp: str | None


@dataclass
class Bye(Event):
    """The peer ended the dialog (answered 200 already)."""

    call_id: str
    remote_tag: str | None


# --- dialogs and transactions ---------------------------------------------------------------------------


@dataclass
class Dialog:
    """One dialog (RFC 3261 §12): Call-ID, local/remote tags and URIs, remote target, route set, CSeq."""

    agent: SipAgent
    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: str
    remote_uri: str
    remote_target: str
    route_set: list[str]
    local_cseq: int
    caller: bool
    terminated: bool = False

    @property
    def id(self) -> tuple[str, str, str]:
        return (self.call_id, self.local_tag, self.remote_tag)

    def next_hop(self) -> tuple[str, int]:
        """Where in-dialog requests go: the first route (loose routing, §16.12), else the remote target."""
        return uri_host_port(_uri_of(self.route_set[0]) if self.route_set else self.remote_target)

    def reinvite(self, sdp: str, timeout: float = 10.0) -> None:
        """Send a re-INVITE with *sdp* (§14.1); the answer comes as :class:`Answered`/:class:`CallFailed`
        with this dialog's Call-ID (``in_dialog``)."""
        self.agent._send_invite_in_dialog(self, sdp, timeout)

    def bye(self, timeout: float = 5.0) -> int:
        """End the dialog (§15.1.1); returns the BYE's final status (408 on timeout)."""
        self.terminated = True
        return self.agent._bye(self, timeout)


@dataclass
class _ClientTxn:
    branch: str
    method: str
    data: bytes
    dest: tuple[str, int]
    started: float
    timeout: float
    interval: float
    next_send: float
    on_response: Callable[[Message], None]
    on_timeout: Callable[[], None]
    got_provisional: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    final: Message | None = None


class ServerInvite:
    """An incoming INVITE (initial or re-INVITE) waiting for this agent's answer (§13.3.1)."""

    def __init__(self, agent: SipAgent, msg: Message, dialog: Dialog | None) -> None:
        self.agent = agent
        self.msg = msg
        self.dialog = dialog
        self.local_tag = dialog.local_tag if dialog else _token()
        self.final_status: int | None = None
        self._last: bytes | None = None
        self._acked = threading.Event()

    @property
    def call_id(self) -> str:
        return self.msg.call_id

    @property
    def from_uri(self) -> str:
        return self.msg.from_uri

    @property
    def to_uri(self) -> str:
        return self.msg.to_uri

    @property
    def sdp(self) -> str | None:
        return self.msg.sdp

    def respond(self, status: int, reason: str, sdp: str | None = None, *,
                headers: Sequence[str] = ()) -> Dialog | None:
        """Send a response; a 2xx makes (or keeps) the dialog and is retransmitted until the ACK
        (§13.3.1.4).  Returns the dialog for a 2xx."""
        return self.agent._respond_invite(self, status, reason, sdp, headers)


class SipAgent:
    """A SIP user agent on one UDP socket: REGISTER, INVITE (with forks), re-INVITE, BYE, timers.

    *aor* is the address of record (``sip:alice@mikey.test``); *proxy* the outbound proxy and
    registrar.  :meth:`close` stops the receive thread and closes the socket (also as a context manager).
    """

    def __init__(self, aor: str, proxy: tuple[str, int], *, bind: tuple[str, int] = ("127.0.0.1", 0),
                 user_agent: str = "mikey-phone") -> None:
        self.aor = aor
        self.proxy = proxy
        self.user_agent = user_agent
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(bind)
        name = self.sock.getsockname()
        self.host: str = str(name[0])
        self.port: int = int(name[1])
        user = aor.split(":", 1)[-1].split("@", 1)[0]
        self.contact = f"sip:{user}@{self.host}:{self.port}"
        self.events: queue.Queue[Event] = queue.Queue()
        self.log: list[str] = []
        self._lock = threading.RLock()
        self._client: dict[str, _ClientTxn] = {}
        self._server: dict[tuple[str, str], ServerInvite] = {}
        self._server_other: dict[tuple[str, str], bytes] = {}
        self._dialogs: dict[tuple[str, str, str], Dialog] = {}
        self._invites: dict[str, dict[str, Any]] = {}
        self._cseq = 0
        self._stop = threading.Event()
        self._reg_expires = 0
        self._reg_next = 0.0
        self._reg_call_id = _token() + "@" + self.host
        self._reg_tag = _token()
        self.registered = False
        self._thread = threading.Thread(target=self._run, name=f"sip-{user}", daemon=True)
        self._thread.start()

    def __enter__(self) -> SipAgent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the receive thread and close the socket (pending transactions are abandoned)."""
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=2.0)
        with contextlib.suppress(OSError):
            self.sock.close()

    # -- sending ---------------------------------------------------------------------------------------

    def _next_cseq(self) -> int:
        with self._lock:
            self._cseq += 1
            return self._cseq

    def _send(self, data: bytes, dest: tuple[str, int]) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendto(data, dest)

    def _via(self, branch: str) -> str:
        return f"SIP/2.0/UDP {self.host}:{self.port};branch={branch};rport"

    @staticmethod
    def _build(start: str, headers: Sequence[str], body: str | None, content_type: str = SDP_TYPE) -> bytes:
        lines = [start, *headers]
        payload = (body or "").encode("utf-8")
        if body:
            lines.append(f"Content-Type: {content_type}")
        lines.append(f"Content-Length: {len(payload)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + payload

    def _request(self, method: str, ruri: str, *, to: str, from_: str, call_id: str, cseq: int,
                 branch: str, routes: Sequence[str] = (), body: str | None = None,
                 extra: Sequence[str] = ()) -> bytes:
        headers = [f"Via: {self._via(branch)}", "Max-Forwards: 70"]
        headers += [f"Route: {r}" for r in routes]
        headers += [f"From: {from_}", f"To: {to}", f"Call-ID: {call_id}", f"CSeq: {cseq} {method}"]
        if method in ("INVITE", "REGISTER"):
            headers.append(f"Contact: <{self.contact}>")
        headers.append(f"User-Agent: {self.user_agent}")
        headers += list(extra)
        return self._build(f"{method} {ruri} SIP/2.0", headers, body)

    def _start_client(self, branch: str, method: str, data: bytes, dest: tuple[str, int], timeout: float,
                      on_response: Callable[[Message], None], on_timeout: Callable[[], None]) -> _ClientTxn:
        now = time.monotonic()
        txn = _ClientTxn(branch, method, data, dest, now, timeout, T1, now + T1, on_response, on_timeout)
        with self._lock:
            self._client[branch] = txn
        self._send(data, dest)
        return txn

    # -- REGISTER (RFC 3261 §10) ----------------------------------------------------------------------

    def register(self, expires: int = 300, timeout: float = 5.0) -> int:
        """REGISTER this agent's contact for its AOR at the proxy; refreshed at half the granted time.

        Returns the final status (200 on success, 408 on timeout).  *expires* 0 removes the binding.
        """
        status = self._register_once(expires, timeout)
        with self._lock:
            self.registered = status == 200 and expires > 0
            self._reg_expires = expires if self.registered else 0
            self._reg_next = time.monotonic() + max(1.0, expires / 2)
        return status

    def _register_once(self, expires: int, timeout: float) -> int:
        branch = _branch()
        domain = self.aor.split("@", 1)[-1]
        data = self._request("REGISTER", f"sip:{domain}", to=f"<{self.aor}>", from_=f"<{self.aor}>;tag={self._reg_tag}",
                             call_id=self._reg_call_id, cseq=self._next_cseq(), branch=branch,
                             extra=[f"Expires: {expires}"])
        txn = self._start_client(branch, "REGISTER", data, self.proxy, timeout, lambda m: None, lambda: None)
        txn.done.wait(timeout + 1.0)
        return txn.final.status if txn.final is not None else 408

    def unregister(self, timeout: float = 2.0) -> int:
        """Remove the binding (REGISTER with Expires 0)."""
        with self._lock:
            was = self.registered
            self.registered = False
        return self._register_once(0, timeout) if was else 200

    # -- INVITE client (§13.2, §17.1.1) -----------------------------------------------------------------

    def invite(self, target: str, sdp: str, *, timeout: float = 15.0, extra: Sequence[str] = ()) -> str:
        """Send an INVITE with *sdp* to *target* through the proxy; returns the Call-ID.

        Answers come as events: :class:`Provisional` per 1xx, :class:`Answered` per 2xx (a new dialog
        per To tag, each ACKed), :class:`CallFailed` for 3xx-6xx or no final answer in *timeout*.
        """
        call_id = _token() + "@" + self.host
        local_tag = _token()
        self._send_invite(target, sdp, call_id=call_id, local_tag=local_tag, to=f"<{target}>",
                          ruri=target, routes=(), dest=self.proxy, timeout=timeout, dialog=None, extra=extra)
        return call_id

    def _send_invite_in_dialog(self, dialog: Dialog, sdp: str, timeout: float) -> None:
        self._send_invite(dialog.remote_uri, sdp, call_id=dialog.call_id, local_tag=dialog.local_tag,
                          to=f"<{dialog.remote_uri}>;tag={dialog.remote_tag}", ruri=dialog.remote_target,
                          routes=dialog.route_set, dest=dialog.next_hop(), timeout=timeout, dialog=dialog,
                          cseq=self._dialog_cseq(dialog))

    def _dialog_cseq(self, dialog: Dialog) -> int:
        with self._lock:
            dialog.local_cseq += 1
            return dialog.local_cseq

    def _send_invite(self, target: str, sdp: str, *, call_id: str, local_tag: str, to: str, ruri: str,
                     routes: Sequence[str], dest: tuple[str, int], timeout: float, dialog: Dialog | None,
                     cseq: int | None = None, extra: Sequence[str] = ()) -> None:
        branch = _branch()
        cseq = self._next_cseq() if cseq is None else cseq
        from_ = f"<{self.aor}>;tag={local_tag}"
        data = self._request("INVITE", ruri, to=to, from_=from_, call_id=call_id, cseq=cseq, branch=branch,
                             routes=routes, body=sdp, extra=extra)
        state: dict[str, Any] = {"cseq": cseq, "local_tag": local_tag, "target": target, "dialog": dialog,
                                 "ruri": ruri, "to": to, "routes": list(routes), "dest": dest, "forks": set(),
                                 "branch": branch}
        with self._lock:
            self._invites[branch] = state

        def on_response(msg: Message) -> None:
            self._invite_response(state, msg)

        def on_timeout() -> None:
            if dialog is None and state.get("provisional"):
                self._cancel(state, call_id)  # the callee rings: stop it (§9.1) before reporting
            self.events.put(CallFailed(call_id, 408, "Request Timeout", timeout=True, in_dialog=dialog is not None))

        self._start_client(branch, "INVITE", data, dest, timeout, on_response, on_timeout)

    def _invite_response(self, state: dict[str, Any], msg: Message) -> None:
        status = msg.status
        in_dialog = state["dialog"] is not None
        if status < 200:
            state["provisional"] = True
            if status > 100:
                self.events.put(Provisional(msg.call_id, status, msg.reason, msg.to_tag, msg.sdp))
            return
        if status >= 300:
            # ACK for a non-2xx final answer: same branch, same destination (§17.1.1.3).
            ack = self._build(f"ACK {state['ruri']} SIP/2.0", [
                f"Via: {self._via(state['branch'])}", "Max-Forwards: 70",
                *[f"Route: {r}" for r in state["routes"]],
                f"From: <{self.aor}>;tag={state['local_tag']}", f"To: {msg.header('to')}",
                f"Call-ID: {msg.call_id}", f"CSeq: {state['cseq']} ACK"], None)
            self._send(ack, state["dest"])
            if state.get("failed_reported"):
                return
            state["failed_reported"] = True
            self.events.put(CallFailed(msg.call_id, status, msg.reason, msg.sdp, msg.contacts,
                                       msg.header("warning"), in_dialog=in_dialog))
            return
        tag = msg.to_tag or ""
        dialog: Dialog | None = state["dialog"]
        if dialog is None:
            with self._lock:
                dialog = self._dialogs.get((msg.call_id, state["local_tag"], tag))
            if dialog is None:
                # A new dialog per To tag (§12.1.2): route set = Record-Route reversed.
                dialog = Dialog(self, msg.call_id, state["local_tag"], tag, self.aor, state["target"],
                                msg.contact or state["target"], list(reversed(msg.record_route)), state["cseq"],
                                caller=True)
                with self._lock:
                    self._dialogs[dialog.id] = dialog
        self._send_ack(dialog, state["cseq"])
        if state.get("cancelled"):
            # a 2xx that crossed our CANCEL: the call was given up, so end it at once (§9.1, §15)
            if tag not in state["forks"]:
                state["forks"].add(tag)
                threading.Thread(target=self._bye, args=(dialog, 5.0), daemon=True).start()
            return
        if tag in state["forks"]:
            return  # a retransmitted 2xx: ACKed again, reported once
        state["forks"].add(tag)
        self.events.put(Answered(msg.call_id, status, dialog, msg.sdp))

    def _cancel(self, state: dict[str, Any], call_id: str) -> None:
        """CANCEL the pending initial INVITE of *state* (RFC 3261 §9.1): its Request-URI, Call-ID, From, To,
        CSeq number, Route set and Via branch.  The INVITE's 487 (or a 2xx that crossed the CANCEL) is
        still taken for 64*T1 and ACKed (a 2xx also gets a BYE); neither is reported again."""
        data = self._request("CANCEL", state["ruri"], to=state["to"], from_=f"<{self.aor}>;tag={state['local_tag']}",
                             call_id=call_id, cseq=state["cseq"], branch=state["branch"], routes=state["routes"])
        state["cancelled"] = state["failed_reported"] = True
        now = time.monotonic()
        late = _ClientTxn(state["branch"], "INVITE", b"", state["dest"], now, 64 * T1, T1, float("inf"),
                          lambda msg: self._invite_response(state, msg), lambda: None)
        with self._lock:
            self._client[state["branch"]] = late
        self._start_client(_CANCEL_KEY + state["branch"], "CANCEL", data, state["dest"], 64 * T1,
                           lambda msg: None, lambda: None)

    def _send_ack(self, dialog: Dialog, cseq: int, sdp: str | None = None) -> None:
        """The ACK for a 2xx: its own transaction along the dialog's route set (§13.2.2.4)."""
        data = self._request("ACK", dialog.remote_target, to=f"<{dialog.remote_uri}>;tag={dialog.remote_tag}",
                             from_=f"<{dialog.local_uri}>;tag={dialog.local_tag}", call_id=dialog.call_id,
                             cseq=cseq, branch=_branch(), routes=dialog.route_set, body=sdp)
        self._send(data, dialog.next_hop())

    # -- BYE ----------------------------------------------------------------------------------------------

    def _bye(self, dialog: Dialog, timeout: float) -> int:
        branch = _branch()
        data = self._request("BYE", dialog.remote_target, to=f"<{dialog.remote_uri}>;tag={dialog.remote_tag}",
                             from_=f"<{dialog.local_uri}>;tag={dialog.local_tag}", call_id=dialog.call_id,
                             cseq=self._dialog_cseq(dialog), branch=branch, routes=dialog.route_set)
        txn = self._start_client(branch, "BYE", data, dialog.next_hop(), timeout, lambda m: None, lambda: None)
        txn.done.wait(timeout + 1.0)
        with self._lock:
            self._dialogs.pop(dialog.id, None)
        return txn.final.status if txn.final is not None else 408

    # -- server side (§17.2, §13.3) -------------------------------------------------------------------------

    def _response_bytes(self, msg: Message, status: int, reason: str, to_tag: str | None, *,
                        sdp: str | None = None, headers: Sequence[str] = (), contact: bool = False) -> bytes:
        lines = [f"Via: {v}" for v in msg.headers("via")]
        lines += [f"Record-Route: {r}" for r in msg.headers("record-route")] if 100 < status < 300 else []
        lines.append(f"From: {msg.header('from')}")
        to = msg.header("to") or ""
        if to_tag and ";tag=" not in to.replace(" ", "").lower():
            to += f";tag={to_tag}"
        lines += [f"To: {to}", f"Call-ID: {msg.call_id}", f"CSeq: {msg.header('cseq')}"]
        if contact:
            lines.append(f"Contact: <{self.contact}>")
        lines.append(f"Server: {self.user_agent}")
        lines += list(headers)
        return self._build(f"SIP/2.0 {status} {reason}", lines, sdp)

    def _reply_to(self, msg: Message) -> tuple[str, int]:
        """Where a response goes: the top Via's received/rport, else its sent-by (§18.2.2, RFC 3581)."""
        via = msg.headers("via")[0] if msg.headers("via") else ""
        sent_by = via.split(None, 1)[-1].split(";")[0]
        host, _, port = sent_by.partition(":")
        params = dict(p.partition("=")[::2] for p in via.split(";")[1:])
        host = params.get("received") or host or msg.source[0]
        rport = params.get("rport")
        port_n = int(rport) if rport else (int(port) if port else 5060)
        if rport == "" and msg.source[1]:
            port_n = msg.source[1]
        return host.strip(), port_n

    def _respond_invite(self, inv: ServerInvite, status: int, reason: str, sdp: str | None,
                        headers: Sequence[str]) -> Dialog | None:
        msg = inv.msg
        data = self._response_bytes(msg, status, reason, inv.local_tag if status > 100 else None, sdp=sdp,
                                    headers=headers, contact=100 < status < 300)
        dest = self._reply_to(msg)
        if status < 200:
            inv._last = data
            self._send(data, dest)
            return None
        dialog = inv.dialog
        with self._lock:
            # Everything the ACK's arrival looks at is in place before the answer leaves.
            inv._last = data
            inv.final_status = status
            if 200 <= status < 300 and dialog is None:
                dialog = Dialog(self, msg.call_id, inv.local_tag, msg.from_tag or "", msg.to_uri, msg.from_uri,
                                msg.contact or msg.from_uri, list(msg.record_route), 0, caller=False)
                self._dialogs[dialog.id] = dialog
                inv.dialog = dialog
            # Retransmit the final answer until the ACK (timers G/H, §13.3.1.4, §17.2.1).
            now = time.monotonic()
            txn = _ClientTxn(f"srv:{msg.branch}", "INVITE-RESPONSE", data, dest, now, 64 * T1, T1, now + T1,
                             lambda m: None, lambda: None)
            self._client[txn.branch] = txn
        self._send(data, dest)
        return dialog if 200 <= status < 300 else None

    def _incoming_request(self, msg: Message) -> None:
        method = msg.method
        key = (msg.branch, method if method != "ACK" else "INVITE")
        if method == "ACK":
            self._incoming_ack(msg)
            return
        with self._lock:
            existing = self._server.get(key)
            cached = self._server_other.get(key)
        if existing is not None:  # a retransmitted INVITE: the last response again (§17.2.1)
            if existing._last is not None:
                self._send(existing._last, self._reply_to(msg))
            return
        if cached is not None:
            self._send(cached, self._reply_to(msg))
            return
        if method == "INVITE":
            self._incoming_invite(msg, key)
        elif method == "BYE":
            self._incoming_bye(msg, key)
        elif method in ("OPTIONS", "CANCEL"):
            self._reply_other(msg, key, 200, "OK")
            if method == "CANCEL":
                self._cancelled(msg)
        else:
            self._reply_other(msg, key, 405, "Method Not Allowed", ["Allow: INVITE, ACK, BYE, CANCEL, OPTIONS"])

    def _reply_other(self, msg: Message, key: tuple[str, str], status: int, reason: str,
                     headers: Sequence[str] = ()) -> None:
        data = self._response_bytes(msg, status, reason, msg.to_tag or _token(), headers=headers)
        with self._lock:
            self._server_other[key] = data
        self._send(data, self._reply_to(msg))

    def _find_dialog(self, msg: Message) -> Dialog | None:
        with self._lock:
            return self._dialogs.get((msg.call_id, msg.to_tag or "", msg.from_tag or ""))

    def _incoming_invite(self, msg: Message, key: tuple[str, str]) -> None:
        dialog = self._find_dialog(msg) if msg.to_tag else None
        if msg.to_tag and dialog is None:
            self._reply_other(msg, key, 481, "Call/Transaction Does Not Exist")
            return
        inv = ServerInvite(self, msg, dialog)
        with self._lock:
            self._server[key] = inv
        if dialog is not None:
            if msg.contact:
                dialog.remote_target = msg.contact  # target refresh (§12.2.2)
            self.events.put(ReInvite(inv))
        else:
            inv.respond(100, "Trying")
            self.events.put(IncomingCall(inv))

    def _incoming_ack(self, msg: Message) -> None:
        with self._lock:
            inv = next((i for i in self._server.values()
                        if i.msg.call_id == msg.call_id and i.msg.cseq == msg.cseq and i.final_status is not None
                        and not i._acked.is_set()), None)
            if inv is None:
                return
            inv._acked.set()
            self._client.pop(f"srv:{inv.msg.branch}", None)
        if inv.final_status is not None and 200 <= inv.final_status < 300:
            self.events.put(Acked(msg.call_id, msg.sdp))

    def _incoming_bye(self, msg: Message, key: tuple[str, str]) -> None:
        dialog = self._find_dialog(msg)
        if dialog is None:
            self._reply_other(msg, key, 481, "Call/Transaction Does Not Exist")
            return
        dialog.terminated = True
        self._reply_other(msg, key, 200, "OK")
        with self._lock:
            self._dialogs.pop(dialog.id, None)
        self.events.put(Bye(msg.call_id, msg.from_tag))

    def _cancelled(self, msg: Message) -> None:
        with self._lock:
            inv = self._server.get((msg.branch, "INVITE"))
        if inv is not None and inv.final_status is None:
            inv.respond(487, "Request Terminated")
            self.events.put(CallFailed(msg.call_id, 487, "Request Terminated"))

    # -- receive loop and timers ------------------------------------------------------------------------------

    def _incoming_response(self, msg: Message) -> None:
        # A CANCEL shares its INVITE's branch (§9.1); the CSeq method tells their responses apart (§17.1.3).
        key = _CANCEL_KEY + msg.branch if msg.method == "CANCEL" else msg.branch
        with self._lock:
            txn = self._client.get(key)
        if txn is None:
            return
        if msg.status < 200:
            txn.got_provisional = True
            if txn.method == "INVITE":
                txn.next_send = float("inf")  # no retransmission after a provisional (§17.1.1.2)
            txn.on_response(msg)
            return
        if txn.method == "INVITE":
            # Keep the INVITE client transaction for further 2xx of other forks (§13.2.2.4, 64*T1).
            if txn.final is None:
                txn.final = msg
                txn.next_send = float("inf")
                txn.timeout = (time.monotonic() - txn.started) + 64 * T1 if msg.status < 300 else \
                    (time.monotonic() - txn.started) + 8 * T1
                txn.done.set()
            txn.on_response(msg)
            return
        with self._lock:
            self._client.pop(key, None)
        txn.final = msg
        txn.done.set()
        txn.on_response(msg)

    def _timers(self) -> None:
        now = time.monotonic()
        fired: list[_ClientTxn] = []
        with self._lock:
            for branch, txn in list(self._client.items()):
                if now - txn.started >= txn.timeout:
                    del self._client[branch]
                    if txn.final is None and not branch.startswith("srv:"):
                        fired.append(txn)
                    continue
                if now >= txn.next_send:
                    self._send(txn.data, txn.dest)
                    cap = T2 if (txn.method != "INVITE" or branch.startswith("srv:")) else float("inf")
                    txn.interval = min(txn.interval * 2, cap)
                    txn.next_send = now + txn.interval
            refresh = self.registered and now >= self._reg_next
            if refresh:
                self._reg_next = now + max(1.0, self._reg_expires / 2)
        for txn in fired:
            txn.done.set()
            txn.on_timeout()
        if refresh:
            threading.Thread(target=self._register_once, args=(self._reg_expires, 5.0), daemon=True).start()

    def _run(self) -> None:
        self.sock.settimeout(0.05)
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(MAX_MESSAGE + 1)
            except TimeoutError:
                data = b""
                addr = ("", 0)
            except OSError:
                if self._stop.is_set():
                    return
                continue
            if data and data.strip():
                try:
                    msg = parse_message(data, (str(addr[0]), int(addr[1])))
                except SipError as exc:
                    self.log.append(f"dropped a malformed SIP message from {addr[0]}:{addr[1]}: {exc}")
                else:
                    try:
                        if msg.is_request:
                            self._incoming_request(msg)
                        else:
                            self._incoming_response(msg)
                    except (SipError, ValueError, IndexError, KeyError) as exc:
                        self.log.append(f"failed on a SIP {msg.method} from {addr[0]}:{addr[1]}: {exc}")
            self._timers()
