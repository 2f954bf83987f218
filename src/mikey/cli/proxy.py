"""``mikey proxy``: Kamailio with mikey's configuration in the foreground, for ``mikey phone`` calls.

The third terminal of a hand-made call: it renders the project's Kamailio configuration
(:class:`mikey.sip.kamailio.Kamailio`: registrar and location in memory, parallel forking, divert by
302 (RFC 3261 §21.3.3) or retargeting (§16.5), a voicemail route), starts Kamailio on ``--host``:``--port``
(UDP), prints ``serving sip:HOST:PORT`` and runs until Ctrl-C or SIGTERM, then stops it.
``--demo-creds MODE`` (repeatable, or ``all``) first writes throw-away credentials of those modes for
both phones (``mikey phone --demo-creds FILE``).  No authentication: a proxy for a lab or loopback only.
Exit status: 0 after a clean stop, 1 when Kamailio is missing, fails to start or dies, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from ..errors import MikeyError
from ..sip.kamailio import DivertMode, Kamailio, kamailio_available
from .plugins import MODE_NAMES

__all__ = ["register", "run", "main"]


def _mapping(text: str) -> tuple[str, str]:
    source, sep, target = text.partition("=")
    if not sep or not source or not target:
        raise argparse.ArgumentTypeError(f"{text!r} is not FROM=TO (e.g. bob=carol)")
    return source, target


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", metavar="ADDR", help="IPv4 address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=5060, metavar="N", help="UDP port (default 5060; 0: a free one)")
    p.add_argument("--domain", default="mikey.test", metavar="NAME", help="the SIP domain (default mikey.test)")
    p.add_argument("--voicemail", metavar="AOR",
                   help="the voicemail UA's AOR: calls to users without a contact or that do not answer go there")
    p.add_argument("--no-answer-timeout", type=float, default=30.0, metavar="S",
                   help="seconds a callee may ring before the call goes to --voicemail (default 30)")
    p.add_argument("--redirect", type=_mapping, action="append", default=[], metavar="FROM=TO",
                   help="divert calls to FROM with '302 Moved Temporarily' to TO (repeatable)")
    p.add_argument("--retarget", type=_mapping, action="append", default=[], metavar="FROM=TO",
                   help="retarget calls to FROM to TO inside the proxy, with a Diversion header (repeatable)")
    p.add_argument("--dir", type=Path, metavar="DIR",
                   help="keep the rendered configuration, Kamailio's log and the demo credentials in DIR "
                   "(default: a temporary directory, removed at the end)")
    p.add_argument("--demo-creds", action="append", default=[], metavar="MODE",
                   choices=[*MODE_NAMES, "all"],
                   help="write throw-away credentials of MODE for both phones into DIR first (repeatable; "
                   "'all' for every mode): " + ", ".join(MODE_NAMES))


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "proxy",
        help="run Kamailio with mikey's configuration (the SIP proxy for mikey phone)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_arguments(p)
    p.set_defaults(func=run)


def _serve(kamailio: Kamailio, stop: threading.Event) -> bool:
    """Wait until *stop* is set (True) or Kamailio dies (False, with its log's end on stderr)."""
    while not stop.wait(0.2):
        if not kamailio.running:
            print(f"mikey proxy: kamailio exited; its log ends:\n{kamailio.log_tail(20)}", file=sys.stderr)
            return False
    return True


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        print("mikey proxy: --port must be between 0 and 65535", file=sys.stderr)
        return 2
    if args.demo_creds and args.dir is None:
        print("mikey proxy: --demo-creds needs --dir (where the phones read the credentials)", file=sys.stderr)
        return 2
    if not kamailio_available():
        print("mikey proxy: kamailio is not installed (Debian/Ubuntu: apt-get install kamailio)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="mikey-proxy-") as tmp:
        workdir = args.dir if args.dir is not None else Path(tmp)
        modes = list(MODE_NAMES) if "all" in args.demo_creds else list(dict.fromkeys(args.demo_creds))
        divert_modes: dict[str, DivertMode] = {source: "302" for source, _ in args.redirect}
        divert_modes.update({source: "retarget" for source, _ in args.retarget})
        try:
            kamailio = Kamailio(
                workdir / "kamailio", domain=args.domain, host=args.host, port=args.port,
                voicemail=args.voicemail, no_answer_timeout=args.no_answer_timeout,
                divert=dict(args.redirect + args.retarget), divert_modes=divert_modes,
            )
        except MikeyError as exc:
            print(f"mikey proxy: {exc}", file=sys.stderr)
            return 2
        try:
            if modes:
                from ..sip.phone import write_demo_credentials  # the sip extra (sippy); see main's imports

            for mode in modes:
                path = write_demo_credentials(mode, workdir / "creds")
                print(f"demo credentials ({mode}): {path}", flush=True)
        except (MikeyError, OSError, ImportError) as exc:
            print(f"mikey proxy: demo credentials: {exc}", file=sys.stderr)
            return 1
        stop = threading.Event()

        def _on_signal(signum: int, frame: FrameType | None) -> None:
            stop.set()

        previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            try:
                kamailio.start()
            except MikeyError as exc:
                print(f"mikey proxy: {exc}", file=sys.stderr)
                return 1
            print(f"serving sip:{kamailio.proxy} (domain {kamailio.domain}; log {kamailio.log_path})", flush=True)
            print(f"phones: mikey phone --proxy {kamailio.proxy} --user sip:NAME@{kamailio.domain} ...", flush=True)
            clean = _serve(kamailio, stop)
        finally:
            kamailio.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if clean:
            print("mikey proxy: stopped", flush=True)
        return 0 if clean else 1


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mikey.cli.proxy`` (the same as ``mikey proxy``)."""
    p = argparse.ArgumentParser(prog="mikey proxy", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
