"""``mikey phone``: a SIP phone keyed by MIKEY, for a terminal (two terminals and a proxy are enough).

Usage::

    mikey phone --proxy HOST:PORT --user URI --mode MODE (--demo-creds FILE | MODE OPTIONS)
                [--call URI | --calls N] [--tone HZ | --wav FILE] [--duration S | --packets N]
                [--record FILE.wav] [--rekey-after S] [--timeout S] [--bind ADDR] [--json]

Flags:

``--proxy HOST:PORT``
    the SIP proxy and registrar (Kamailio); requests go there (outbound proxy).
``--user URI``
    this phone's address of record, e.g. ``sip:alice@mikey.test``; registered before anything else.
``--call URI``
    call that URI (Initiator of the MIKEY exchange); without it the phone answers calls (Responder).
``--calls N``
    answer N calls, then exit (default 1); a refused call (488) counts.
``--mode MODE``
    the key exchange: psk pk dh dhhmac rsa-r sakke ticket ibake.
``--demo-creds FILE``
    the JSON of the mode plugin's ``demo_credentials`` (throw-away credentials for both ends;
    :func:`mikey.sip.phone.write_demo_credentials` writes it).  Without it, the mode's own options
    apply: those of ``mikey initiate --mode MODE`` when calling (``--psk``, ``--cert``, ``--key``,
    ``--verify``, ``--tgk``, ``--csb-id`` ...), those of ``mikey respond --mode MODE`` when answering;
    ``mikey phone --mode MODE [--call X] --help`` lists them.
``--replay-cache URL``
    (answering) where the I_MESSAGEs this phone accepted are remembered, so a replayed INVITE is
    refused with 488 (RFC 3830 §5.4): ``memory:`` (default, for the phone's life, across its calls)
    or ``redis://HOST:PORT/DB`` shared by several phones (the ``redis`` extra).
``--tone HZ`` / ``--wav FILE``
    what to send: a sine tone (default 440 Hz) or a WAV file (mono 16-bit; resampled to 8 kHz),
    as G.711 µ-law in 20 ms RTP packets over SRTP.
``--duration S`` / ``--packets N``
    how much to send: S seconds (default 3) or N packets; the caller hangs up (BYE) after it has
    sent its part and received the other's.
``--record FILE.wav``
    write the decoded audio received to a WAV file (listen to it: that is the test for a person).
``--rekey-after S``
    (caller) after S seconds of the call, or halfway through its audio if that comes first, re-key
    with a new MIKEY exchange for the same CSB in a re-INVITE (RFC 3830 §4.5); media goes on under the
    new keys, and the caller hangs up once the other's audio verified under them.
``--timeout S``
    how long to wait for an answer, an incoming call, or a SIP response (default 15).
``--bind ADDR``
    the local address for SIP and media (default 127.0.0.1).
``--json``
    one JSON object per line: ``ready`` (registered), ``progress`` (1xx), ``call`` (per answer or
    refusal: direction, peer, status, mikey keyed/refused, error, error_no, fingerprints), ``fork``
    (a further fork's 2xx ended with BYE), ``rekeyed``, ``media`` (the media report: sent, received,
    lost, auth_failures, level_dbfs ...), ``log``, ``error``, and last ``end`` with ``ok``.

Without ``--json`` the same events are printed as one readable line each, with the received audio
level and tone frequency.  Exit status: 0 when every call went as it should (a refusal by this
phone as callee included), 1 when a call failed or was refused by the peer, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import MikeyError
from ..replay_url import open_replay_store
from .common import PRF_NAMES, UsageError, add_kemac_options, enum_option, hex_bytes, hex_u32
from .plugin_base import ModePlugin

__all__ = ["register", "run", "selected_role"]

if TYPE_CHECKING:
    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]


def selected_role(argv: Sequence[str]) -> str:
    """"initiate" when *argv* places a call (``--call``), else "respond": which mode options apply."""
    return "initiate" if any(a == "--call" or a.startswith("--call=") for a in argv) else "respond"


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _sip_uri(text: str) -> str:
    if not text.startswith(("sip:", "sips:")) or "@" not in text:
        raise argparse.ArgumentTypeError(f"expected a SIP URI like sip:alice@mikey.test, got {text!r}")
    return text


def register(subparsers: SubParsers, plugins: dict[str, ModePlugin], mode: str | None,
             argv: Sequence[str] = ()) -> None:
    """Add ``mikey phone``; the selected *mode*'s initiate (with ``--call``) or respond options too."""
    p = subparsers.add_parser("phone", help="a SIP phone keyed by MIKEY (register, call or answer, SRTP audio)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--proxy", type=_host_port, required=True, metavar="HOST:PORT", help="SIP proxy/registrar")
    p.add_argument("--user", type=_sip_uri, required=True, metavar="URI", help="own address of record")
    p.add_argument("--call", type=_sip_uri, metavar="URI", help="call this URI (else answer calls)")
    p.add_argument("--calls", type=int, default=1, metavar="N", help="answer N calls, then exit (default 1)")
    p.add_argument("--mode", required=True, choices=list(plugins), metavar="MODE",
                   help="key exchange method: " + ", ".join(plugins))
    p.add_argument("--demo-creds", type=Path, metavar="FILE", help="demo credentials JSON (both ends)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--tone", type=_positive, default=440.0, metavar="HZ", help="send a tone (default 440)")
    src.add_argument("--wav", type=Path, metavar="FILE", help="send this WAV file")
    amount = p.add_mutually_exclusive_group()
    amount.add_argument("--duration", type=_positive, default=3.0, metavar="S", help="seconds of audio (default 3)")
    amount.add_argument("--packets", type=int, metavar="N", help="RTP packets to send (20 ms each)")
    p.add_argument("--record", type=Path, metavar="FILE.wav", help="record the decoded audio received")
    p.add_argument("--rekey-after", type=_positive, metavar="S", help="re-key by re-INVITE after S seconds")
    p.add_argument("--timeout", type=_positive, default=15.0, metavar="S", help="SIP waits (default 15)")
    p.add_argument("--bind", default="127.0.0.1", metavar="ADDR", help="local address (default 127.0.0.1)")
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="JSON event lines")
    plugin = plugins.get(mode) if mode is not None else None
    role = selected_role(argv)
    demo_creds = any(a == "--demo-creds" or a.startswith("--demo-creds=") for a in argv)
    if plugin is not None and not demo_creds:
        group = p.add_argument_group(f"--mode {plugin.name} options ({role})", plugin.help)
        if role == "initiate":
            shared = plugin.initiate_options
            if "tgk" in shared:
                group.add_argument("--tgk", type=hex_bytes, metavar="HEX", help="the TGK (default: random)")
            group.add_argument("--csb-id", type=hex_u32, metavar="HEX", help="the CSB ID (default: random)")
            group.add_argument("--rand", type=hex_bytes, metavar="HEX", help="RAND (default: random)")
            add_kemac_options(group, shared)
            group.add_argument("--prf", type=enum_option(PRF_NAMES), default=PRF_NAMES["mikey-1"],
                               metavar="|".join(PRF_NAMES), help="PRF (default mikey-1)")
            if "verify" in shared:
                group.add_argument("--verify", action="store_true", help="set V: ask for a verification message")
        plugin.add_arguments(group, role)
        for action in group._group_actions:
            if action.dest in getattr(plugin, "phone_unused_options", ()):  # a multi-round side stays in memory
                action.required, action.help = False, argparse.SUPPRESS
            elif action.dest == "to" and role == "initiate":  # the called identity: by default the --call URI
                action.required = False
                action.help = f"{action.help or 'the called identity'} (default: the --call URI)"
                p.set_defaults(to_default_list=isinstance(action, argparse._AppendAction))
    if role == "respond":
        p.add_argument("--replay-cache", dest="replay_cache_url", default="memory:", metavar="URL",
                       help="where the accepted I_MESSAGEs of every call are remembered, to refuse a replayed "
                       "INVITE (RFC 3830 §5.4): memory: (default, this phone's life) or redis://HOST:PORT/DB "
                       "(shared by several phones)")
    p.set_defaults(func=run, plugins=plugins, phone_role=role)


class _Printer:
    """Event lines: JSON, or one readable line each."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def __call__(self, event: dict[str, Any]) -> None:
        line = json.dumps(event) if self.as_json else _text(event)
        if line:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()


def _text(e: dict[str, Any]) -> str:
    kind = e.get("event")
    if kind == "ready":
        return f"registered {e['aor']} at {e['contact']}"
    if kind == "progress":
        return f"{e['status']} {e['reason']}"
    if kind == "call":
        arrow = "->" if e["direction"] == "out" else "<-"
        if e["mikey"] == "keyed":
            prints = ", ".join(f"CS {k} {v}" for k, v in e["fingerprints"].items())
            return f"call {arrow} {e['peer']}: {e['status']}, SRTP keyed by MIKEY-{e['mode'].upper()} ({prints})"
        err = f" Error no {e['error_no']}" if e.get("error_no") is not None else ""
        return f"call {arrow} {e['peer']}: {e['status']}, MIKEY refused{err}: {e.get('error')}"
    if kind == "fork":
        return f"another device answered too ({e['status']}, tag {e['to_tag']}): sent BYE"
    if kind == "rekeyed":
        if e.get("ok"):
            return "re-keyed by re-INVITE: " + ", ".join(f"CS {k} {v}" for k, v in e["fingerprints"].items())
        return f"re-keying failed: {e.get('error')}"
    if kind == "media":
        level = e.get("level_dbfs")
        freq = e.get("tone_hz")
        heard = f", level {level:.1f} dBFS" if isinstance(level, int | float) else ", silence"
        heard += f", tone {freq:.0f} Hz" if isinstance(freq, int | float) else ""
        return (f"media: sent {e.get('sent')}, received {e.get('received')}, lost {e.get('lost')}, "
                f"auth failures {e.get('auth_failures')}{heard}")
    if kind == "end":
        return "done" if e["ok"] else "failed"
    if kind in ("error", "log"):
        return f"{kind}: {e.get('error') or e.get('message')}"
    return json.dumps(e)


def _credentials(args: argparse.Namespace, plugin: ModePlugin) -> Any:
    from ..sip.phone import KeyingSides

    store = None
    if args.phone_role == "respond":
        try:
            store = open_replay_store(args.replay_cache_url)
        except (ValueError, ImportError) as exc:
            raise UsageError(f"--replay-cache: {exc}") from None
        args.replay_store = store
    if args.demo_creds is not None:
        try:
            creds = json.loads(args.demo_creds.read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"--demo-creds {args.demo_creds}: {exc}") from None
        if not isinstance(creds, dict):
            raise UsageError(f"--demo-creds {args.demo_creds}: not a JSON object")
        return KeyingSides(plugin.name, plugin, creds=creds, replay_store=store)
    args.now = None
    args.show_keys = False
    if hasattr(args, "to_default_list") and not args.to and args.call:
        args.to = [args.call] if args.to_default_list else args.call
    return KeyingSides(plugin.name, plugin, args=args, replay_store=store)


def run(args: argparse.Namespace) -> int:
    """Run the phone; exit 0 when every call went as it should."""
    from ..sip.phone import Phone, PhoneConfig

    plugins: dict[str, ModePlugin] = args.plugins
    plugin = plugins[args.mode]
    if args.calls < 1:
        raise UsageError("--calls must be at least 1")
    if args.packets is not None and args.packets < 1:
        raise UsageError("--packets must be at least 1")
    if args.wav is not None and not args.wav.is_file():
        raise UsageError(f"--wav {args.wav}: no such file")
    try:
        sides = _credentials(args, plugin)
    except MikeyError as exc:
        raise UsageError(f"credentials: {exc}") from None
    config = PhoneConfig(
        aor=args.user, proxy=args.proxy, sides=sides, call=args.call, calls=args.calls, packets=args.packets,
        duration=args.duration, tone=args.tone, wav=args.wav, record=args.record, rekey_after=args.rekey_after,
        timeout=args.timeout, bind=args.bind,
    )
    ok = Phone(config, _Printer(bool(getattr(args, "json", False)))).run()
    return 0 if ok else 1
