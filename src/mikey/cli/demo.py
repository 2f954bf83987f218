"""``mikey demo``: a MIKEY exchange and SRTP media between two processes on loopback.

The parent makes throw-away credentials for the mode, starts a Responder and an
Initiator as separate processes (:mod:`mikey.cli.demo_peer`), and checks what they
report: the I_MESSAGE travels in an SDP offer (RFC 4567 §4.1), the R_MESSAGE (if
the mode has one) in the answer, both ends derive the SRTP keys (RFC 3830 §4.1.3)
and send each other RTP and RTCP through libsrtp.  Success means both ends derived
the same keys for every crypto session and every packet verified.  A mode whose keys
come from a KMS (MIKEY-SAKKE) gets both users' keys over HTTP from a ``mikey kms serve``
process the demo starts and stops (:mod:`mikey.cli.demo_kms`), or from ``--kms URL``.  A mode
whose parties talk to the KMS during the exchange (MIKEY-TICKET: Ticket Request and Resolve,
RFC 6043) gets a ``mikey kms serve`` process too, has both parties' PSKs provisioned there through
the admin route, and its two processes reach it over HTTP.  A mode whose exchange takes more
than one offer/answer says how many (:class:`~mikey.cli.demo_peer.RoundTripDemoPlugin`) and the two
processes loop: MIKEY-IBAKE (RFC 6267) carries I_MESSAGE_1/R_MESSAGE_1 in the offer and answer and
I_MESSAGE_2/R_MESSAGE_2 in a new offer/answer of the session (as a re-INVITE or UPDATE would); its
parties ask a ``mikey kms serve`` process for their K_PRs themselves (REQUEST_KEY_PSK over HTTP), with
the PSKs and public parameters the operator made on the server's data directory
(:class:`KmsOperatorDemoPlugin`).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, Protocol, runtime_checkable

from .._files import write_private_atomic
from ..errors import MikeyError, StateError
from .common import add_json_option
from .demo_kms import DemoKms, KmsDemoPlugin, child_env, fetch_demo_keystores
from .demo_sip import add_sip_arguments, run_sip_demo
from .plugin_base import ModePlugin
from .plugins import MODE_NAMES, load_plugins

__all__ = ["register", "run", "run_demo", "render_report", "main"]

@runtime_checkable
class MikeyKmsDemoPlugin(Protocol):
    """A mode plugin whose parties send MIKEY messages to the KMS server (MIKEY-TICKET)."""

    def demo_credentials_at_kms(self, workdir: Path, kms_url: str, admin_token: str) -> dict[str, Any]:
        """The demo credentials, both parties provisioned at the KMS at *kms_url* with *admin_token*."""
        ...


@runtime_checkable
class KmsOperatorDemoPlugin(Protocol):
    """A mode plugin whose parties ask the KMS server for their keys over MIKEY themselves (MIKEY-IBAKE's
    REQUEST_KEY_PSK, RFC 6267 §4.2.1) with what the KMS operator hands them out of band (PSKs, public
    parameters), made on the server's data directory."""

    def demo_credentials_by_operator(self, workdir: Path, kms_url: str, kms_data: Path) -> dict[str, Any]:
        """The demo credentials for the KMS at *kms_url* whose data directory is *kms_data*."""
        ...


#: What the parties of a KMS-server demo do at the KMS, for the report: (protocol, exchanges, provisioning).
_KMS_USES: tuple[tuple[type, str, str], ...] = (
    (MikeyKmsDemoPlugin, "Ticket Request and Resolve over HTTP", "PSKs provisioned via the admin route"),
    (KmsOperatorDemoPlugin, "each party's key request (REQUEST_KEY_PSK) over HTTP",
     "PSKs and public parameters from the operator"),
)


DEFAULT_PACKETS = 300
DEFAULT_RTCP = 5
DEFAULT_TIMEOUT = 10.0


# --- the parent ----------------------------------------------------------------------------------


def _reader(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


class _Child:
    def __init__(self, argv: list[str], stderr_path: Path) -> None:
        self.stderr_path = stderr_path
        self._stderr = stderr_path.open("w")
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=self._stderr, stdin=subprocess.DEVNULL, text=True, env=child_env()
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        stdout = self.proc.stdout
        if stdout is None:  # Popen gives a pipe for stdout=PIPE; None would be a local bug
            raise StateError("the demo peer process has no standard output pipe")
        self.thread = threading.Thread(target=_reader, args=(stdout, self.lines), daemon=True)
        self.thread.start()

    def next_json(self, timeout: float) -> dict[str, Any] | None:
        """The next JSON line the child prints, or None when it ends or stays silent for *timeout*."""
        end = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                return None
            if line is None:
                return None
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                return obj

    def finish(self, timeout: float) -> None:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._stderr.close()

    def stderr_tail(self) -> str:
        try:
            return self.stderr_path.read_text()[-2000:]
        except OSError:
            return ""


def run_demo(
    mode: str = "psk",
    *,
    packets: int = DEFAULT_PACKETS,
    rtcp: int = DEFAULT_RTCP,
    timeout: float = DEFAULT_TIMEOUT,
    kms_url: str | None = None,
    kms_tokens: Sequence[str] = (),
    kms_ca: str | None = None,
) -> dict[str, Any]:
    """Run the demo and return its report (``report["ok"]`` tells success).

    A mode whose keys come from a KMS (MIKEY-SAKKE) fetches both users' keys over HTTP: from
    a ``mikey kms serve`` process the demo starts and stops, or, with *kms_url*, from that
    running KMS with *kms_tokens* (the Initiator's, then the Responder's bearer token).
    """
    plugins = load_plugins()
    if mode not in plugins:
        raise ValueError(f"no demo for mode {mode!r}; modes: {', '.join(plugins)}")
    plugin = plugins[mode]
    if kms_url is not None and isinstance(plugin, MikeyKmsDemoPlugin | KmsOperatorDemoPlugin):
        raise ValueError(f"--kms: the {mode} demo provisions its parties at a KMS it starts itself")
    if kms_url is not None and not isinstance(plugin, KmsDemoPlugin):
        raise ValueError(f"--kms: the {mode} demo takes no keys from a KMS")
    if kms_url is not None and len(kms_tokens) != 2:
        raise ValueError("--kms needs two tokens: --initiator-token and --responder-token")
    report: dict[str, Any] = {"ok": False, "mode": mode, "packets": packets, "rtcp_packets": rtcp, "problems": []}
    timings: dict[str, float] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mikey-demo-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        if isinstance(plugin, KmsDemoPlugin):
            server = DemoKms(work / "kms", timeout=max(timeout * 6, 60.0)) if kms_url is None else None
            try:
                creds = _kms_credentials(plugin, work, report, timings, server, kms_url, kms_tokens, kms_ca)
                if creds is None:
                    return _finish(report, timings, started, {})
                return _exchange(plugin, mode, work, creds, report, timings, started, packets, rtcp, timeout)
            finally:
                if server is not None:
                    server.stop()
                    report["kms"]["server_stopped"] = server.stopped
        if isinstance(plugin, MikeyKmsDemoPlugin | KmsOperatorDemoPlugin):
            server = DemoKms(work / "kms", timeout=max(timeout * 6, 60.0))
            try:
                creds = _mikey_kms_credentials(plugin, work, report, timings, server)
                if creds is None:
                    return _finish(report, timings, started, {})
                return _exchange(plugin, mode, work, creds, report, timings, started, packets, rtcp, timeout)
            finally:
                server.stop()
                report["kms"]["server_stopped"] = server.stopped
        creds = plugin.demo_credentials(work)
        timings["credentials"] = _ms_since(t0)
        return _exchange(plugin, mode, work, creds, report, timings, started, packets, rtcp, timeout)


def _ms_since(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000.0, 3)


def _kms_credentials(
    plugin: KmsDemoPlugin,
    work: Path,
    report: dict[str, Any],
    timings: dict[str, float],
    server: DemoKms | None,
    kms_url: str | None,
    tokens: Sequence[str],
    ca: str | None,
) -> dict[str, Any] | None:
    """Both users' keys from the KMS over HTTP (issue 9 §5); None, with the reason in the report, if not."""
    t_all = time.perf_counter()
    users = plugin.demo_kms_users()
    kms: dict[str, Any] = {"url": kms_url, "started_by_demo": server is not None}
    report["kms"] = kms
    try:
        if server is not None:
            t0 = time.perf_counter()
            kms["url"] = kms_url = server.start()
            timings["kms_start"] = _ms_since(t0)
            t0 = time.perf_counter()
            server.add_users(users)
            tokens = [server.dev_token(uri) for uri in users]
            timings["kms_users"] = _ms_since(t0)
            kms["users"] = list(users)
        if kms_url is None:  # neither started nor given: a local bug
            raise StateError("no KMS URL")
        t0 = time.perf_counter()
        fetched = fetch_demo_keystores(kms_url, tokens, ca=ca)
        timings["kms_fetch"] = _ms_since(t0)
    except MikeyError as exc:
        report["problems"].append(f"KMS: {exc}")
        return None
    kms["users"] = [f.keystore.uri for f in fetched]
    kms["key_periods"] = {role: f.period_numbers for role, f in zip(("initiator", "responder"), fetched, strict=True)}
    creds = plugin.demo_credentials_from_kms(work, fetched)
    timings["credentials"] = _ms_since(t_all)
    return creds


def _mikey_kms_credentials(plugin: MikeyKmsDemoPlugin | KmsOperatorDemoPlugin, work: Path, report: dict[str, Any],
                           timings: dict[str, float], server: DemoKms) -> dict[str, Any] | None:
    """A KMS server started, both parties provisioned for it; None, with the reason in the report, if not."""
    from ..kms.auth import DevIssuer

    t_all = time.perf_counter()
    kms: dict[str, Any] = {"url": None, "started_by_demo": True}
    report["kms"] = kms
    try:
        t0 = time.perf_counter()
        kms["url"] = url = server.start()
        timings["kms_start"] = _ms_since(t0)
        t0 = time.perf_counter()
        if isinstance(plugin, MikeyKmsDemoPlugin):
            token = DevIssuer.load_or_create(server.data).issue("demo-admin", admin=True, ttl=600, now=time.time())
            creds = plugin.demo_credentials_at_kms(work, url, token)
        else:
            creds = plugin.demo_credentials_by_operator(work, url, server.data)
        timings["kms_users"] = _ms_since(t0)
    except MikeyError as exc:
        report["problems"].append(f"KMS: {exc}")
        return None
    kms["users"] = [creds[name]["uri"] for name in ("alice", "bob") if name in creds]
    kms["mikey"] = True
    kms["exchanges"], kms["provisioning"] = next((uses, how) for proto, uses, how in _KMS_USES
                                                 if isinstance(plugin, proto))
    timings["credentials"] = _ms_since(t_all)
    return creds


def _exchange(
    plugin: ModePlugin,
    mode: str,
    work: Path,
    creds: dict[str, Any],
    report: dict[str, Any],
    timings: dict[str, float],
    started: float,
    packets: int,
    rtcp: int,
    timeout: float,
) -> dict[str, Any]:
    """Start the Responder and the Initiator processes and collect their reports."""
    creds_file = work / "credentials.json"
    write_private_atomic(creds_file, json.dumps(creds).encode())  # may hold a PSK
    report["description"] = plugin.demo_description(creds)
    ssrc_i, ssrc_r = (int.from_bytes(os.urandom(4), "big") | 1 for _ in range(2))
    if ssrc_r == ssrc_i:
        ssrc_r ^= 0x10000
    common = [
        "--mode", mode, "--creds", str(creds_file), "--packets", str(packets), "--rtcp", str(rtcp),
        "--timeout", str(timeout),
    ]
    base = [sys.executable, "-m", "mikey.cli.demo_peer"]
    responder = _Child(
        [*base, "--role", "responder", "--ssrc", f"{ssrc_r:08x}", "--peer-ssrc", f"{ssrc_i:08x}", *common],
        work / "responder.err",
    )
    children = [responder]
    try:
        ready = responder.next_json(timeout * 3)  # allow for interpreter start-up
        if ready is None or "port" not in ready:
            report["problems"].append("responder did not start: " + responder.stderr_tail().strip())
            return _finish(report, timings, started, {})
        initiator = _Child(
            [
                *base, "--role", "initiator", "--ssrc", f"{ssrc_i:08x}", "--peer-ssrc", f"{ssrc_r:08x}",
                "--peer-port", str(ready["port"]), *common,
            ],
            work / "initiator.err",
        )
        children.append(initiator)
        # Each child gives up after `timeout` s of silence; the signalling, start-up and media bound the rest.
        limit = timeout * 6 + packets * 0.01
        sides = {"initiator": initiator.next_json(limit), "responder": responder.next_json(limit)}
    finally:
        for child in children:
            child.finish(timeout)
    for name, child in (("initiator", children[-1]), ("responder", responder)):
        if sides.get(name) is None:
            report["problems"].append(f"{name} gave no report: " + child.stderr_tail().strip())
    return _finish(report, timings, started, {k: v for k, v in sides.items() if v is not None})


def _finish(
    report: dict[str, Any], timings: dict[str, float], started: float, sides: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    problems: list[str] = report["problems"]
    report.update(sides)
    for name, side in sides.items():
        if not side.get("ok"):
            err = side.get("error") or {}
            problems.append(f"{name} failed: {err.get('kind', '?')}: {err.get('message', '')}")
    if len(sides) == 2 and all(s.get("ok") for s in sides.values()):
        ini, res = sides["initiator"], sides["responder"]
        if ini.get("csb_id") != res.get("csb_id"):
            problems.append(f"CSB IDs differ: {ini.get('csb_id')} / {res.get('csb_id')}")
        if ini.get("fingerprints") != res.get("fingerprints"):
            problems.append("the two ends derived different SRTP keys")
        for name, side in sides.items():
            for kind, want in (("rtp", report["packets"]), ("rtcp", report["rtcp_packets"])):
                if side.get(f"{kind}_verified") != want:
                    problems.append(f"{name} verified {side.get(f'{kind}_verified')} of {want} {kind.upper()} packets")
            if side.get("payload_mismatch") or side.get("rejected"):
                problems.append(f"{name}: {side.get('rejected')} rejected, {side.get('payload_mismatch')} corrupted")
        if ini.get("key_period_no") != res.get("key_period_no"):
            problems.append(f"key periods differ: {ini.get('key_period_no')} / {res.get('key_period_no')}")
        report["csb_id"] = ini.get("csb_id")
        report["fingerprints"] = ini.get("fingerprints")
        report["srtp_profile"] = ini.get("srtp_profile")
    timings["total"] = round((time.perf_counter() - started) * 1000.0, 3)
    report["timings_ms"] = timings
    report["ok"] = not problems and len(sides) == 2
    return report


# --- output ---------------------------------------------------------------------------------------


def render_report(report: dict[str, Any]) -> list[str]:
    """The human-readable report."""
    lines = [f"mikey demo — mode {report['mode']}: {report.get('description', '')}"]
    ini, res = report.get("initiator", {}), report.get("responder", {})
    kms = report.get("kms")
    if kms and kms.get("url") and kms.get("mikey"):
        lines.append(f"  KMS               {kms['url']} (started by the demo, stopped after it): "
                     f"{kms.get('exchanges', '')}")
        lines.append(f"    parties         {', '.join(kms.get('users', []))} ({kms.get('provisioning', '')})")
        for role, side in (("initiator", ini), ("responder", res)):
            if side.get("key_periods"):
                lines.append(f"    {role:<10}      K_PRs for ID || date: {', '.join(side['key_periods'])}")
    elif kms and kms.get("url"):
        how = "started by the demo, stopped after it" if kms.get("started_by_demo") else "already running"
        lines.append(f"  keys              fetched over HTTP from the KMS at {kms['url']} ({how})")
        for role, uri in zip(("initiator", "responder"), kms.get("users", []), strict=False):
            periods = ", ".join(str(n) for n in kms.get("key_periods", {}).get(role, []))
            lines.append(f"    {role:<10}      {uri}: key periods {periods}")
    if report.get("csb_id"):
        auth = "yes" if ini.get("authenticated") and res.get("authenticated") else (
            f"initiator {'yes' if ini.get('authenticated') else 'no'}, "
            f"responder {'yes' if res.get('authenticated') else 'no'}"
        )
        lines.append(f"  CSB ID            {report['csb_id']}  (peer authenticated: {auth})")
        lines.append(f"  SRTP profile      {report.get('srtp_profile')}")
        lines += _message_lines(ini)
        if ini.get("key_period_no") is not None:
            lines.append(f"  key period        {ini['key_period_no']} (the period of the I_MESSAGE timestamp)")
        for cs in ini.get("crypto_sessions", []):
            who = "initiator → responder" if cs["cs_id"] == ini.get("send_cs") else "responder → initiator"
            if ini.get("send_cs") == ini.get("recv_cs"):
                who = "both directions"
            lines.append(f"  CS {cs['cs_id']}  SSRC {cs['ssrc'] or '-':8}  keys fingerprint {cs['fingerprint']}  ({who})")
    for name, side in (("initiator", ini), ("responder", res)):
        if not side:
            continue
        if side.get("ok"):
            lines.append(
                f"  {name:<10} protected {side['rtp_protected']} RTP + {side['rtcp_protected']} RTCP; "
                f"verified {side['rtp_verified']} RTP + {side['rtcp_verified']} RTCP from the peer; "
                f"tampered copy rejected: {'yes' if side.get('tampered_rejected') else 'no'}"
            )
        steps = ", ".join(f"{k.replace('_', ' ')} {v:.2f}" for k, v in side.get("timings_ms", {}).items())
        lines.append(f"  {name:<10} steps (ms): {steps}")
    total = report.get("timings_ms", {})
    kms_steps = "".join(f", {k.replace('_', ' ')} {total[k]:.0f} ms" for k in ("kms_start", "kms_users", "kms_fetch")
                        if k in total)
    lines.append(f"  parent     credentials {total.get('credentials', 0):.2f} ms{kms_steps}, "
                 f"total {total.get('total', 0):.0f} ms")
    if report["ok"]:
        lines.append("OK: both ends derived identical SRTP keys and every SRTP/SRTCP packet verified.")
    else:
        lines.append("FAILED:")
        lines += [f"  - {p}" for p in report["problems"]]
    return lines


def _message_lines(ini: dict[str, Any]) -> list[str]:
    """The MIKEY messages' sizes: one line per offer/answer round trip (the Initiator's view)."""
    if not ini.get("round_trips"):
        sizes = f"I_MESSAGE {ini.get('i_message_len')} octets"
        sizes += f", R_MESSAGE {ini.get('r_message_len')} octets" if ini.get("r_message_len") else ", no R_MESSAGE"
        return [f"  messages          {sizes} (in SDP a=key-mgmt)"]
    lines = []
    pairs = zip(ini.get("i_message_lens", []), ini.get("r_message_lens", []), strict=False)
    for n, (sent, got) in enumerate(pairs, 1):
        what = "offer" if n == 1 else "new offer (re-INVITE/UPDATE)"
        answer = f"R_MESSAGE_{n} {got} octets" if got else "no R_MESSAGE"
        lines.append(f"  round trip {n}      {what}: I_MESSAGE_{n} {sent} octets, answer: {answer}")
    return lines


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "demo",
        help="run a key exchange and SRTP media between two local processes",
        description="Start an Initiator and a Responder as two processes on 127.0.0.1, run the MIKEY exchange "
        "through SDP offer/answer (a=key-mgmt), derive SRTP keys and exchange SRTP/SRTCP packets. With --sip: "
        "start Kamailio and run MIKEY's six use cases for every method through real SIP calls.",
    )
    _add_arguments(p)
    p.set_defaults(func=run)


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mode", default="psk", choices=MODE_NAMES, metavar="MODE",
                   help="key exchange method (default psk): " + ", ".join(MODE_NAMES))
    p.add_argument("--packets", type=int, default=DEFAULT_PACKETS, metavar="N",
                   help=f"RTP packets each way (default {DEFAULT_PACKETS})")
    p.add_argument("--rtcp", type=int, default=DEFAULT_RTCP, metavar="N",
                   help=f"RTCP packets each way (default {DEFAULT_RTCP})")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                   help=f"seconds to wait for the peer (default {DEFAULT_TIMEOUT:g})")
    k = p.add_argument_group("keys from a running KMS (--mode sakke; default: the demo starts its own KMS)")
    k.add_argument("--kms", metavar="URL", help="the KMS base URL (http(s)://host:port) to fetch both users' keys from")
    k.add_argument("--initiator-token", metavar="TOKEN", help="the Initiator's bearer token at --kms")
    k.add_argument("--responder-token", metavar="TOKEN", help="the Responder's bearer token at --kms")
    k.add_argument("--ca", metavar="PEM", help="CA certificates trusted for an https:// --kms")
    add_sip_arguments(p)
    add_json_option(p)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "sip", False):
        return run_sip_demo(args)
    as_json = bool(getattr(args, "json", False))
    if args.packets < 1 or args.rtcp < 0 or args.timeout <= 0:
        print("mikey demo: --packets must be at least 1, --rtcp not negative, --timeout positive", file=sys.stderr)
        return 2
    tokens = [t for t in (args.initiator_token, args.responder_token) if t]
    if (args.kms is None) != (not tokens) or (args.kms is not None and len(tokens) != 2):
        print("mikey demo: --kms goes with --initiator-token and --responder-token", file=sys.stderr)
        return 2
    try:
        report = run_demo(args.mode, packets=args.packets, rtcp=args.rtcp, timeout=args.timeout,
                          kms_url=args.kms, kms_tokens=tokens, kms_ca=args.ca)
    except ValueError as exc:
        print(f"mikey demo: {exc}", file=sys.stderr)
        return 2
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        print("\n".join(render_report(report)))
    return 0 if report["ok"] else 1


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mikey.cli.demo`` (the same as ``mikey demo``)."""
    p = argparse.ArgumentParser(prog="mikey demo", description=__doc__)
    _add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
