"""Call-setup latency of MIKEY-keyed SIP calls through Kamailio on loopback (issue 12 "Speed").

Run:  PYTHONPATH=src python benchmarks/bench_sip_setup.py [--calls N] [--method NAME ...] [--packets P]
          [--quick] [--json] [--keep DIR]

Starts Kamailio (:class:`mikey.sip.kamailio.Kamailio`) on 127.0.0.1, captures the loopback
interface with ``dumpcap`` (UDP only; needs the capture privilege), and for each method runs one
callee and one caller process, then places N + 1 rounds of one call per method, the methods
interleaved call by call so that the machine's load falls on all of them alike; round 0 warms
every process up (its first call pays Python's imports and the modes' first-use set-up) and is
shown apart:

* ``psk`` ... ``ibake``: the callee is ``mikey phone --calls N+1`` registered for the method, the
  caller ``mikey phone --call`` (the real command, parsed and run by :mod:`mikey.cli.main`) run
  once per call inside one process of this script, so that it is warm as a phone placing its
  second call is; both with the mode's demo credentials; the I_MESSAGE rides in the INVITE's SDP,
  the R_MESSAGE in the 200 OK (RFC 4567);
* ``none``, the SIP-only baseline, the same call with MIKEY off: two peers of this script
  (``--peer``) on the phone's SIP user agent (:class:`mikey.sip.adapter.SipAgent`), SDP and media
  (:class:`mikey.sip.media.MediaSession`), the SDP without ``a=key-mgmt``, the SRTP keys agreed
  before the call (a PSK exchange done out of band, not timed).

A call's set-up time is *INVITE sent -> SRTP flowing both ways*: from the caller's INVITE leaving
for the proxy (the capture's kernel timestamp) to the later of the two ends' first SRTP packet that
verified (``first_rx_unix`` of each end's media report; the same wall clock).  The Initiator builds
its I_MESSAGE before the INVITE leaves, so that time (measured in-process, below) is added for the
verdict.  MIKEY's crypto cost is timed in this process in the same run, with the same credentials:
the Initiator's create and complete, the Responder's receive (every round of a multi-round
exchange), and both ends' SRTP key derivation (median of max(N, 5) exchanges).

The issue's target: MIKEY adds less than 10 % to the SIP set-up time for PSK, and no more than its
own crypto cost for the public-key methods.  The verdict compares each method's median set-up (plus
the I_MESSAGE) minus the baseline's median with those bounds.  The milliseconds move with the
machine's load; the ratios to the baseline of the same run travel better.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mikey.cli.demo_kms import child_env
from mikey.sip.kamailio import Kamailio, kamailio_available
from mikey.sip.phone import PhoneProcess, media_of, phone_argv, write_demo_credentials

DUMPCAP = shutil.which("dumpcap")
TSHARK = shutil.which("tshark")
METHODS = ("psk", "pk", "dh", "dhhmac", "rsa-r", "sakke", "ticket", "ibake")
BASELINE = "none"
#: The issue's bound for PSK: MIKEY adds less than this share to the SIP-only set-up.
PSK_TARGET = 0.10
FIELDS = ("frame.time_epoch", "udp.srcport", "udp.dstport", "sip.Method", "sip.Status-Code", "sip.CSeq.method",
          "sip.Call-ID")


# --- the capture --------------------------------------------------------------------------------------------


class Capture:
    """``dumpcap`` on the loopback interface (UDP only) into a pcapng file while the calls run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.err_path = path.with_suffix(".dumpcap.txt")
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Capture:
        if DUMPCAP is None or TSHARK is None:
            raise SystemExit("this benchmark times the INVITE on the wire: it needs dumpcap and tshark (Wireshark)")
        with self.err_path.open("wb") as err:
            self.proc = subprocess.Popen([DUMPCAP, "-i", "lo", "-f", "udp", "-q", "-w", str(self.path)],
                                         stdout=subprocess.DEVNULL, stderr=err)
        end = time.monotonic() + 15
        while "Capturing on" not in self.err_path.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > end:
                self.stop()
                raise SystemExit(f"dumpcap did not start: {self.err_path.read_text(errors='replace').strip()}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            time.sleep(0.3)  # the last packets into the file
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def invites(self, proxy_port: int) -> list[tuple[float, float | None]]:
        """Per call, in time order: the time its first INVITE left the caller for the proxy, and the time the
        proxy sent the caller the first 200 OK to it (None if none)."""
        out = subprocess.run(
            [TSHARK or "tshark", "-r", str(self.path), "-d", f"udp.port=={proxy_port},sip",
             "-Y", 'sip.CSeq.method == "INVITE"', "-T", "fields", "-E", "separator=\t", "-E", "occurrence=f",
             *(a for f in FIELDS for a in ("-e", f))],
            capture_output=True, text=True, check=True,
        ).stdout
        invite: dict[str, float] = {}
        ok: dict[str, float] = {}
        for line in out.splitlines():
            f = dict(zip(FIELDS, line.split("\t"), strict=False))
            cid, t = f["sip.Call-ID"], float(f["frame.time_epoch"])
            if f["sip.Method"] == "INVITE" and int(f["udp.dstport"] or 0) == proxy_port:
                invite.setdefault(cid, t)
            elif f["sip.Status-Code"] == "200" and int(f["udp.srcport"] or 0) == proxy_port and cid in invite:
                ok.setdefault(cid, t)
        return sorted((t, ok.get(cid)) for cid, t in invite.items())


# --- one call ------------------------------------------------------------------------------------------------


@dataclass
class CallTiming:
    method: str
    round: int  # 0: the warm-up call of each callee (not counted)
    spawned: float  # the caller process was started (wall clock)
    ended: float
    ok: bool
    problem: str = ""
    setup_ms_phone: float | None = None  # the caller's own figure: before its offer is built -> 200 OK keyed
    caller_media_start: float | None = None  # the caller started its media (just after the keyed 200 OK)
    caller_first_rx: float | None = None
    callee_first_rx: float | None = None
    t_invite: float | None = None
    t_ok: float | None = None  # the 200 OK reached the caller (on the wire)

    @property
    def both_ways(self) -> float | None:
        if self.caller_first_rx is None or self.callee_first_rx is None:
            return None
        return max(self.caller_first_rx, self.callee_first_rx)

    @property
    def setup_ms(self) -> float | None:
        """INVITE sent (on the wire) -> SRTP verified at both ends."""
        if self.t_invite is None or self.both_ways is None:
            return None
        return (self.both_ways - self.t_invite) * 1000.0

    @property
    def sip_ms(self) -> float | None:
        """INVITE sent -> 200 OK at the caller (on the wire): the signalling, with the callee's MIKEY work."""
        return self.after_invite(self.t_ok)

    def after_invite(self, t: float | None) -> float | None:
        return None if t is None or self.t_invite is None else (t - self.t_invite) * 1000.0


def _first_rx(media: dict[str, Any] | None) -> float | None:
    if not media:
        return None
    times = [s["first_rx_unix"] for s in media.get("streams", []) if s.get("first_rx_unix")]
    return min(times) if times else None


@dataclass
class Callee:
    method: str
    aor: str
    process: PhoneProcess
    media: list[dict[str, Any]] = field(default_factory=list)


# --- the baseline peers (MIKEY off) ---------------------------------------------------------------------------


def _plain_sdp(port: int, ssrc: int, cname: str) -> str:
    """The phone's SDP (one PCMU stream, RTP/SAVP, a=ssrc) without a=key-mgmt: keys agreed beforehand."""
    from mikey.sdp import make_sdp

    body = make_sdp("mikey phone", "127.0.0.1", (("audio", port, "RTP/SAVP", (0,)),))
    return body + f"a=rtpmap:0 PCMU/8000\r\na=ssrc:{ssrc} cname:{cname}\r\n"


def _agreed_bundle(entry: dict[str, Any]) -> Any:
    """The SRTP keys of one call, agreed before it: the PSK Responder on the I_MESSAGE made out of band."""
    from mikey.modes.psk import PskResponder
    from mikey.session import CryptoSessionBundle

    outcome = PskResponder(bytes.fromhex(entry["psk"])).receive(bytes.fromhex(entry["imsg"]), entry["now"])
    return CryptoSessionBundle(outcome.result, ignore_rcc=True)


def _emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def _next_event(agent: Any, deadline: float) -> Any:
    try:
        return agent.events.get(timeout=max(0.0, min(0.1, deadline - time.monotonic())))
    except queue.Empty:
        return None


def _baseline_call(agent: Any, entry: dict[str, Any], target: str, packets: int) -> bool:
    """One SIP-only call from *agent* to *target* with the keys of *entry* (agreed before the call)."""
    from mikey.sip.adapter import Answered, CallFailed
    from mikey.sip.media import MediaSession, ToneSource

    bundle = _agreed_bundle(entry)
    media = MediaSession(entry["ssrc_a"])
    started = False
    try:
        t0 = time.monotonic()
        call_id = agent.invite(target, _plain_sdp(media.port, entry["ssrc_a"], agent.aor), timeout=15.0)
        deadline = time.monotonic() + 17.0
        answered: Any = None
        while answered is None and time.monotonic() < deadline:
            ev = _next_event(agent, deadline)
            if isinstance(ev, Answered) and ev.call_id == call_id:
                answered = ev
            elif isinstance(ev, CallFailed) and ev.call_id == call_id:
                break
        if answered is None or answered.sdp is None:
            _emit({"event": "call", "status": 408, "mikey": "off"})
            return False
        setup_ms = round((time.monotonic() - t0) * 1000.0, 3)
        remote = media_of(answered.sdp)
        media.start(bundle, (remote.address, remote.port), source=ToneSource(440.0), packets=packets)
        started = True
        _emit({"event": "call", "status": answered.status, "mikey": "off", "setup_ms": setup_ms})
        media.wait_sent(packets * 0.02 + 10)
        media.wait_received(packets, 10)
        media.wait_idle(0.3, 2.0)
        answered.dialog.bye()
        return True
    finally:
        report = media.stop()
        if started:
            _emit({"event": "media", **report.to_dict()})


def _baseline_callee(agent: Any, entries: list[dict[str, Any]], packets: int, timeout: float) -> bool:
    """Answer one SIP-only call per entry (keys agreed before the calls, derived before registering)."""
    from mikey.sip.adapter import Bye, IncomingCall
    from mikey.sip.media import MediaSession, ToneSource

    bundles = [_agreed_bundle(e) for e in entries]
    ssrc_b = entries[0]["ssrc_b"]
    if agent.register(timeout=5.0) != 200:
        _emit({"event": "error", "error": "REGISTER failed"})
        return False
    _emit({"event": "ready", "aor": agent.aor})
    for bundle in bundles:
        deadline = time.monotonic() + timeout
        invite = None
        while invite is None and time.monotonic() < deadline:
            ev = _next_event(agent, deadline)
            if isinstance(ev, IncomingCall):
                invite = ev.invite
        if invite is None:
            return False
        media = MediaSession(ssrc_b)
        try:
            invite.respond(180, "Ringing")
            invite.respond(200, "OK", _plain_sdp(media.port, ssrc_b, agent.aor))
            remote = media_of(invite.sdp or "")
            media.start(bundle, (remote.address, remote.port), source=ToneSource(440.0), packets=packets)
            _emit({"event": "call", "status": 200, "mikey": "off"})
            end = time.monotonic() + packets * 0.02 + 20
            while time.monotonic() < end:
                ev = _next_event(agent, end)
                if isinstance(ev, Bye) and ev.call_id == invite.call_id:
                    break
        finally:
            report = media.stop()
            _emit({"event": "media", **report.to_dict()})
    return True


def run_peer(args: argparse.Namespace) -> int:
    """``--peer``: a process of this benchmark, JSON event lines like the phone's.

    ``callee``: the SIP-only callee (MIKEY off), answers one call per entry of ``--keys``.
    ``caller``: the SIP-only caller; ``phone-caller``: ``mikey phone --call`` (the real command, its
    ``--phone-argv``) run in this process once per call.  Both callers place one call per ``go`` line
    read from standard input, framed by ``round`` and ``round-done`` events, so that a caller is warm
    after its first call as a phone placing calls is (every ``mikey phone --call`` is a new process).
    """
    from mikey.sip.adapter import SipAgent

    if args.peer == "phone-caller":
        from mikey.cli.main import build_parser

        argv = json.loads(args.phone_argv)
        parsed = build_parser(argv).parse_args(argv)
        for i, line in enumerate(sys.stdin):
            if line.strip() != "go":
                break
            _emit({"event": "round", "i": i})
            ok = parsed.func(parsed) == 0
            _emit({"event": "round-done", "i": i, "ok": ok})
        return 0
    entries = json.loads(Path(args.keys).read_text())
    host, _, port = args.proxy.rpartition(":")
    if args.peer == "callee":
        with SipAgent(args.user, (host, int(port))) as agent:
            ok = _baseline_callee(agent, entries, args.packets, args.timeout)
            agent.unregister()
        _emit({"event": "end", "ok": ok})
        return 0 if ok else 1
    for i, line in enumerate(sys.stdin):
        if line.strip() != "go":
            break
        _emit({"event": "round", "i": i})
        with SipAgent(args.user, (host, int(port))) as agent:
            ok = agent.register(timeout=5.0) == 200 and _baseline_call(agent, entries[i], args.call, args.packets)
            agent.unregister()
        _emit({"event": "end", "ok": ok})
        _emit({"event": "round-done", "i": i, "ok": ok})
    return 0


class Driven:
    """A caller process of this benchmark (``--peer caller|phone-caller``) placing one call per :meth:`call`."""

    def __init__(self, argv: Sequence[str], stderr: Path) -> None:
        self._err = stderr.open("w")
        self.proc = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err,
                                     text=True, env=child_env())
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                self.events.put(obj)
        self.events.put(None)

    def call(self, timeout: float) -> list[dict[str, Any]]:
        """Place one call; its events (empty if the process ended or the call took longer than *timeout*)."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write("go\n")
            self.proc.stdin.flush()
        except OSError:  # the process ended
            return []
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                ev = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if ev is None:
                break
            out.append(ev)
            if ev.get("event") == "round-done":
                return out
        return []

    def close(self) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._err.close()


def baseline_keys(path: Path, calls: int, ssrc_b: int) -> None:
    """Write *calls* out-of-band PSK exchanges (the PSK, the I_MESSAGE, both SSRCs, its time) for the peers."""
    from mikey.modes.psk import PskInitiator
    from mikey.modes.results import CryptoSessionSpec

    psk = secrets.token_bytes(16)
    entries = []
    for _ in range(calls):
        ssrc_a = secrets.randbits(32) | 1
        now = time.time()
        ini = PskInitiator(psk, crypto_sessions=[CryptoSessionSpec(ssrc=ssrc_a), CryptoSessionSpec(ssrc=ssrc_b)])
        entries.append({"psk": psk.hex(), "imsg": ini.create_message(now).hex(), "now": now, "ssrc_a": ssrc_a,
                        "ssrc_b": ssrc_b})
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(entries, f)


def phone_caller_argv(phone: Sequence[str]) -> list[str]:
    """This script as a warm ``mikey phone --call`` caller: *phone* is the phone's argv (from phone_argv)."""
    return [sys.executable, str(Path(__file__).resolve()), "--peer", "phone-caller", "--phone-argv",
            json.dumps(list(phone[3:]))]  # without [python, -m, mikey]


def peer_argv(role: str, user: str, proxy: str, keys: Path, *, packets: int, call: str | None = None,
              timeout: float = 120.0) -> list[str]:
    argv = [sys.executable, str(Path(__file__).resolve()), "--peer", role, "--user", user, "--proxy", proxy,
            "--keys", str(keys), "--packets", str(packets), "--timeout", f"{timeout:g}"]
    return argv + (["--call", call] if call else [])


# --- MIKEY's own cost, in this process ---------------------------------------------------------------------


def mikey_cost(method: str, creds_file: Path, runs: int) -> dict[str, float]:
    """Median ms over *runs* exchanges with the phones' demo credentials: making each side from the
    credentials (the phone does it for every call), the Initiator's create (before the INVITE), the
    Responder's receive and the Initiator's complete (every round), and both ends' SRTP key derivation
    from the result (RFC 3830 §4.1.3; the phones' CryptoSessionBundle)."""
    from mikey.cli.demo_peer import stepped_initiator, stepped_responder
    from mikey.cli.plugins import load_plugins

    plugin = load_plugins()[method]
    creds = json.loads(creds_file.read_text())
    from mikey.session import CryptoSessionBundle

    create, respond, complete, keys, load_i, load_r = [], [], [], [], [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        ini = stepped_initiator(plugin, creds, secrets.randbits(32) | 1)
        t1 = time.perf_counter()
        res = stepped_responder(plugin, creds, secrets.randbits(32) | 1)
        t2 = time.perf_counter()
        load_i.append((t1 - t0) * 1000.0)
        load_r.append((t2 - t1) * 1000.0)
        t0 = time.perf_counter()
        message: bytes | None = ini.create_message(time.time())
        t_create = time.perf_counter() - t0
        t_respond = t_complete = 0.0
        result = None
        while message is not None and result is None:
            t0 = time.perf_counter()
            answer, _ = res.receive(message, time.time())
            t_respond += time.perf_counter() - t0
            t0 = time.perf_counter()
            message, result = ini.receive(answer, time.time())
            t_complete += time.perf_counter() - t0
        if result is None:
            raise SystemExit(f"{method}: the in-process exchange gave no keys")
        t0 = time.perf_counter()
        CryptoSessionBundle(result, ignore_rcc=True).fingerprints()
        keys.append((time.perf_counter() - t0) * 2000.0)  # each end derives its SRTP keys
        create.append(t_create * 1000.0)
        respond.append(t_respond * 1000.0)
        complete.append(t_complete * 1000.0)
    out = {"load_initiator_ms": statistics.median(load_i), "load_responder_ms": statistics.median(load_r),
           "initiate_ms": statistics.median(create), "respond_ms": statistics.median(respond),
           "complete_ms": statistics.median(complete), "srtp_keys_ms": statistics.median(keys)}
    out["crypto_ms"] = out["initiate_ms"] + out["respond_ms"] + out["complete_ms"] + out["srtp_keys_ms"]
    out["total_ms"] = out["crypto_ms"] + out["load_initiator_ms"] + out["load_responder_ms"]
    return out


# --- the run ----------------------------------------------------------------------------------------------------


def run_bench(methods: Sequence[str], calls: int, packets: int, work: Path) -> dict[str, Any]:
    """Kamailio, the capture, one callee and one caller process per method; then *calls* + 1 rounds of one
    call per method (round 0 warms callers and callees up and is not counted); then MIKEY's cost in this
    process."""
    names = [BASELINE, *methods]
    rounds = calls + 1
    timings: list[CallTiming] = []
    with Kamailio(work / "kamailio") as proxy, Capture(work / "calls.pcapng") as capture:
        proxy_text = f"{proxy.host}:{proxy.port}"
        callees: dict[str, Callee] = {}
        callers: dict[str, Driven] = {}
        try:
            for name in names:
                callee, caller = f"sip:bob-{name}@{proxy.domain}", f"sip:alice-{name}@{proxy.domain}"
                d = work / name
                d.mkdir()
                if name == BASELINE:
                    keys = d / "keys.json"
                    baseline_keys(keys, rounds, secrets.randbits(32) | 1)
                    argv = peer_argv("callee", callee, proxy_text, keys, packets=packets)
                    caller_argv = peer_argv("caller", caller, proxy_text, keys, packets=packets, call=callee)
                else:
                    creds = write_demo_credentials(name, d)
                    argv = phone_argv(name, callee, (proxy.host, proxy.port), creds=creds, calls=rounds,
                                      packets=packets, timeout=120.0)
                    caller_argv = phone_caller_argv(phone_argv(name, caller, (proxy.host, proxy.port), creds=creds,
                                                               call=callee, packets=packets, timeout=15.0))
                callees[name] = Callee(name, callee, PhoneProcess(argv, stderr=d / "callee.stderr"))
                callers[name] = Driven(caller_argv, d / "caller.stderr")
            for c in callees.values():
                if c.process.wait_for("ready", 60.0) is None:
                    raise SystemExit(f"{c.method}: the callee did not register: {c.process.stderr_tail()[-400:]}")
            for i in range(rounds):
                for name in names:
                    timings.append(_one_call(name, i, callers[name], packets))
                    t = timings[-1]
                    print(f"  round {i}/{calls} {name:<7} {'ok' if t.ok else 'FAILED ' + t.problem}",
                          file=sys.stderr, flush=True)
        finally:
            for driven in callers.values():
                driven.close()
            for c in callees.values():
                events = c.process.finish(30.0)
                c.media = [e for e in events if e.get("event") == "media"]
        capture.stop()
        invites = capture.invites(proxy.port)
    # Calls run one at a time: a callee's media report and an INVITE on the wire belong to the call whose
    # caller was placing it then.
    for t in timings:
        t.callee_first_rx = next((_first_rx(m) for m in callees[t.method].media
                                  if t.spawned <= (m.get("started_unix") or 0.0) <= t.ended), None)
        inside = [(ts, ok) for ts, ok in invites if t.spawned <= ts <= t.ended]
        t.t_invite, t.t_ok = inside[0] if len(inside) == 1 else (None, None)
        if len(inside) != 1 and t.ok:
            t.ok, t.problem = False, f"{len(inside)} INVITEs on the wire during the call"
    costs = {name: mikey_cost(name, work / name / f"{name}-creds.json", max(calls, 5)) for name in methods}
    return summarise(names, timings, costs, calls, packets)


def _one_call(name: str, i: int, caller: Driven, packets: int) -> CallTiming:
    """One call placed by *caller*, run to its end."""
    spawned = time.time()
    events = caller.call(60.0 + packets * 0.02)
    ended = time.time()
    call = next((e for e in events if e.get("event") == "call"), None)
    media = next((e for e in events if e.get("event") == "media"), None)
    end = next((e for e in events if e.get("event") == "end"), None)
    t = CallTiming(name, i, spawned, ended, ok=bool(end and end.get("ok")) and call is not None)
    if call is not None:
        t.setup_ms_phone = call.get("setup_ms")
        if call.get("mikey") == "refused":
            t.ok, t.problem = False, f"refused: {call.get('error')}"
    if media is not None:
        t.caller_media_start = media.get("started_unix")
        t.caller_first_rx = _first_rx(media)
    if not t.ok and not t.problem:
        t.problem = "no events" if not events else f"events: {[e.get('event') for e in events]}"
    return t


def _stats(values: Sequence[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarise(names: Sequence[str], timings: Sequence[CallTiming], costs: dict[str, dict[str, float]],
              calls: int, packets: int) -> dict[str, Any]:
    rows: dict[str, dict[str, Any]] = {}
    for name in names:
        mine = [t for t in timings if t.method == name and t.round > 0]
        done = [t for t in mine if t.ok and t.setup_ms is not None]
        first = next((t for t in timings if t.method == name and t.round == 0), None)
        rows[name] = {
            "calls": len(mine),
            "ok": len(done),
            "setup_ms": _stats([t.setup_ms for t in done if t.setup_ms is not None]),
            "sip_ms": _stats([t.sip_ms for t in done if t.sip_ms is not None]),
            "caller_ms": _stats([t.setup_ms_phone for t in done if t.setup_ms_phone is not None]),
            "first_call_setup_ms": first.setup_ms if first is not None and first.ok else None,
            "problems": sorted({t.problem for t in mine if not t.ok}),
        }
        if name in costs:
            rows[name]["mikey"] = costs[name]
    base = rows[BASELINE]["setup_ms"]
    for name in names[1:]:
        row = rows[name]
        cost = row.get("mikey")
        if row["setup_ms"] is None or base is None or cost is None:
            row["verdict"] = "no data"
            continue
        total = row["setup_ms"]["median"] + cost["initiate_ms"] + cost["load_initiator_ms"]
        added = total - base["median"]
        row["with_imessage_ms"] = total
        row["added_ms"] = added
        row["added_share"] = added / base["median"]
        row["mikey_share"] = cost["total_ms"] / total
        if name == "psk":
            row["target"] = f"adds < {PSK_TARGET:.0%} to the SIP-only set-up"
            row["met"] = added < PSK_TARGET * base["median"]
        else:
            row["target"] = "adds no more than its own cost (MIKEY)"
            row["met"] = added <= cost["total_ms"]
        row["verdict"] = "met" if row["met"] else "missed"
    per_call = [
        {"method": t.method, "round": t.round, "ok": t.ok, "setup_ms": t.setup_ms, "sip_ms": t.sip_ms,
         "caller_rx_ms": t.after_invite(t.caller_first_rx), "callee_rx_ms": t.after_invite(t.callee_first_rx),
         "setup_ms_phone": t.setup_ms_phone, "problem": t.problem}
        for t in timings
    ]
    return {"calls_per_method": calls, "packets": packets, "baseline": BASELINE, "rows": rows, "calls": per_call,
            "cpu_count": os.cpu_count(), "load_avg": os.getloadavg()}


def render(report: dict[str, Any]) -> list[str]:
    rows = report["rows"]

    def fmt(v: float | None, spec: str = ".1f") -> str:
        return "-" if v is None else format(v, spec)

    def med(s: dict[str, float] | None) -> str:
        return "-" if s is None else f"{s['median']:.1f} ({s['min']:.0f}-{s['max']:.0f})"

    lines = [
        f"SIP call set-up through Kamailio on loopback, median (min-max) of {report['calls_per_method']} calls per "
        f"method after one warm-up call each, methods interleaved; load average "
        + ", ".join(f"{x:.1f}" for x in report["load_avg"]) + f" on {report['cpu_count']} cores.",
        "set-up: the INVITE leaves the caller (on the wire) -> SRTP verified at both ends;",
        "+I_MSG: the same plus what the caller does before the INVITE (its Initiator from the credentials, the "
        "I_MESSAGE);",
        "MIKEY: one exchange in this process = load (both sides from the credentials, as the phone does per call) "
        "+ crypto (Initiator create / Responder / Initiator complete / SRTP keys of both ends);",
        "added: +I_MSG minus the SIP-only set-up (as a share of it); share: MIKEY / +I_MSG.",
        "",
        f"{'method':<7} {'set-up ms':>18} {'+I_MSG':>7} {'MIKEY':>7} {'load':>6} {'crypto':>6} "
        f"{'(i / r / c / keys)':>25} {'added':>6} {'added':>6} {'share':>6}  verdict",
    ]
    for name, row in rows.items():
        m = row.get("mikey")
        irc = " / ".join(fmt(m[k], ".2f") for k in ("initiate_ms", "respond_ms", "complete_ms", "srtp_keys_ms")) \
            if m else ""
        if name == BASELINE:
            lines.append(f"{'none':<7} {med(row['setup_ms']):>18} {'':>7} {'':>7} {'':>6} {'':>6} {'':>25} "
                         f"{'':>6} {'':>6} {'':>6}  SIP-only baseline (MIKEY off)")
            continue
        share = fmt(100 * row["added_share"], ".0f") + "%" if "added_share" in row else "-"
        mshare = fmt(100 * row["mikey_share"], ".0f") + "%" if "mikey_share" in row else "-"
        verdict = row["verdict"] + (f": {row['target']}" if "target" in row else "")
        load = m["load_initiator_ms"] + m["load_responder_ms"] if m else None
        lines.append(f"{name:<7} {med(row['setup_ms']):>18} {fmt(row.get('with_imessage_ms')):>7} "
                     f"{fmt(m['total_ms'] if m else None):>7} {fmt(load):>6} {fmt(m['crypto_ms'] if m else None):>6} "
                     f"{irc:>25} {fmt(row.get('added_ms')):>6} {share:>6} {mshare:>6}  {verdict}")
    firsts = ", ".join(f"{n} {fmt(r['first_call_setup_ms'], '.0f')}" for n, r in rows.items())
    lines += ["", f"warm-up call (each callee's first), set-up ms: {firsts}"]
    sips = ", ".join(f"{n} {med(r['sip_ms'])}" for n, r in rows.items())
    lines += [f"INVITE -> 200 OK at the caller (on the wire), ms: {sips}"]
    callers = ", ".join(f"{n} {med(r['caller_ms'])}" for n, r in rows.items())
    lines += [f"the caller's own figure (offer built -> 200 OK keyed), ms: {callers}"]
    problems = [(n, p) for n, r in rows.items() for p in r["problems"]]
    if problems:
        lines += ["", "failed calls:"] + [f"  {n}: {p}" for n, p in problems]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=10, help="calls per method (default 10)")
    p.add_argument("--method", action="append", choices=METHODS, default=[], help="a method (repeatable; default all)")
    p.add_argument("--packets", type=int, default=10, help="RTP packets each way per call (default 10)")
    p.add_argument("--quick", action="store_true", help="3 calls per method")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--keep", type=Path, help="work in this directory and keep it (logs, capture)")
    p.add_argument("--peer", choices=("caller", "callee", "phone-caller"), help=argparse.SUPPRESS)
    p.add_argument("--user", help=argparse.SUPPRESS)
    p.add_argument("--proxy", help=argparse.SUPPRESS)
    p.add_argument("--call", help=argparse.SUPPRESS)
    p.add_argument("--keys", help=argparse.SUPPRESS)
    p.add_argument("--timeout", type=float, default=120.0, help=argparse.SUPPRESS)
    p.add_argument("--phone-argv", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.peer:
        return run_peer(args)
    if not kamailio_available():
        raise SystemExit("kamailio is not installed")
    calls = 3 if args.quick else args.calls
    methods = [m for m in METHODS if m in args.method] or list(METHODS)
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        report = run_bench(methods, calls, args.packets, args.keep)
    else:
        with tempfile.TemporaryDirectory(prefix="bench-sip-") as tmp:
            report = run_bench(methods, calls, args.packets, Path(tmp))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print("\n".join(render(report)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
