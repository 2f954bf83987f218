"""``mikey initiate``, ``mikey respond``, ``mikey complete``: one key exchange, generic over the mode plugins.

The CLI is stateless: ``initiate`` prints the I_MESSAGE (RFC 3830 §3), ``respond``
takes it and prints the R_MESSAGE (or an Error message, RFC 3830 §5.1.2), and
``complete`` acts as the Initiator that sent the I_MESSAGE receiving the
response.  Each mode plugin (:mod:`mikey.cli.plugin_base`) adds its credential
options; only the selected ``--mode``'s options are added, so modes may share
option names.
"""

from __future__ import annotations

import argparse
import base64
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import MikeyError
from ..replay import ReplayStore
from ..replay_url import open_replay_store
from .common import (
    EXIT_OK,
    EXIT_USAGE,
    PRF_NAMES,
    UsageError,
    add_json_option,
    add_kemac_options,
    emit_json,
    enum_option,
    hex_bytes,
    hex_u32,
    outcome_json,
    read_message,
    rejection,
    result_json,
    result_text,
    unix_seconds,
)
from .plugin_base import ModePlugin

__all__ = ["register", "selected_mode", "COMMANDS", "SHARED_INITIATE_OPTIONS"]

COMMANDS = ("initiate", "respond", "complete")

if TYPE_CHECKING:
    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]


def selected_mode(argv: Sequence[str]) -> str | None:
    """The ``--mode`` value in *argv* (looked up before parsing, to add only that mode's options)."""
    for i, tok in enumerate(argv):
        if tok == "--":
            break
        if tok == "--mode" and i + 1 < len(argv):
            return argv[i + 1]
        if tok.startswith("--mode="):
            return tok.split("=", 1)[1]
    return None


#: ``initiate`` options the core adds for the plugins that use them (:attr:`ModePlugin.initiate_options`).
SHARED_INITIATE_OPTIONS = frozenset({"tgk", "encr", "mac", "verify"})


def _command(
    subparsers: SubParsers, name: str, plugins: dict[str, ModePlugin], plugin: ModePlugin | None, *,
    summary: str, description: str,
) -> argparse.ArgumentParser:
    """One exchange command with the options every mode shares."""
    if plugin is None:
        width = max(len(n) for n in plugins)
        epilog = "modes (add --mode NAME to --help for its options):\n" + "\n".join(
            f"  {n:<{width}}  {p.help}" for n, p in plugins.items())
    else:
        epilog = None
    p = subparsers.add_parser(name, help=summary, description=description, epilog=epilog,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", required=True, choices=list(plugins), metavar="MODE",
                   help="key exchange method: " + ", ".join(plugins))
    p.add_argument("--now", type=unix_seconds, default=None, metavar="UNIX_SECONDS",
                   help="the current time (default: the real clock); fixes T for replaying captured exchanges")
    p.add_argument("--show-keys", action="store_true",
                   help="print secrets (TGK, SRTP keys, and what 'complete' needs: envelope_key, dh_private) "
                   "in text and JSON output; without it only fingerprints are shown")
    add_json_option(p)
    return p


def _mode_options(p: argparse.ArgumentParser, plugin: ModePlugin | None, command: str) -> None:
    if plugin is not None:
        plugin.add_arguments(p.add_argument_group(f"--mode {plugin.name} options", plugin.help), command)


def register(subparsers: SubParsers, plugins: dict[str, ModePlugin], mode: str | None) -> None:
    """Add the three exchange commands; *mode*'s plugin (if known) adds its own options to each."""
    plugin = plugins.get(mode) if mode is not None else None

    p = _command(subparsers, "initiate", plugins, plugin, summary="build an I_MESSAGE", description=(
        "Act as the Initiator: print the I_MESSAGE and the fingerprints of the keys it\n"
        "carries (the keys themselves with --show-keys)."))
    shared = SHARED_INITIATE_OPTIONS if plugin is None else plugin.initiate_options
    if "tgk" in shared:
        p.add_argument("--tgk", type=hex_bytes, metavar="HEX", help="the TGK to transport (default: random)")
    p.add_argument("--csb-id", type=hex_u32, metavar="HEX", help="the CSB ID (default: random)")
    p.add_argument("--rand", type=hex_bytes, metavar="HEX", help="the RAND value (default: 16 random octets)")
    p.add_argument("--ssrc", type=hex_u32, action="append", metavar="HEX",
                   help="SSRC of a crypto session (repeat for several; 0 = Responder fills it in)")
    add_kemac_options(p, shared)
    p.add_argument("--prf", type=enum_option(PRF_NAMES), default=PRF_NAMES["mikey-1"],
                   metavar="|".join(PRF_NAMES), help="PRF (default mikey-1)")
    if "verify" in shared:
        p.add_argument("--verify", action="store_true", help="set V: ask the Responder for a verification message")
    p.add_argument("--raw", action="store_true", help="print only the I_MESSAGE (hex), e.g. for a pipe")
    _mode_options(p, plugin, "initiate")
    p.set_defaults(func=run_initiate, plugins=plugins)

    p = _command(subparsers, "respond", plugins, plugin, summary="answer an I_MESSAGE", description=(
        "Act as the Responder: check the I_MESSAGE, print the R_MESSAGE (if any) and the\n"
        "fingerprints of the keys (the keys themselves with --show-keys)."))
    p.add_argument("--imsg", metavar="MSG", help="the I_MESSAGE (hex, base64, 'mikey <b64>', @FILE; default stdin)")
    p.add_argument("--ssrc", type=hex_u32, action="append", metavar="HEX",
                   help="own SSRC filling the Initiator's SSRC-0 placeholders (repeatable)")
    p.add_argument("--raw", action="store_true", help="print only the R_MESSAGE (hex)")
    p.add_argument("--replay-cache", dest="replay_cache_url", default="memory:", metavar="URL",
                   help="where accepted I_MESSAGEs are remembered, to refuse replays (RFC 3830 §5.4): memory: "
                   "(default, this run only) or redis://HOST:PORT/DB[?prefix=P] shared by clustered Responders "
                   "(needs the redis extra); a malformed URL exits 2, an unreachable or unsafe Redis refuses "
                   "the message (exit 1)")
    _mode_options(p, plugin, "respond")
    p.set_defaults(func=run_respond, plugins=plugins)

    p = _command(subparsers, "complete", plugins, plugin, summary="check the response to an I_MESSAGE", description=(
        "Act as the Initiator that sent --imsg and received --rmsg: check the response,\n"
        "print the fingerprints of the keys (the keys themselves with --show-keys)."))
    p.add_argument("--imsg", required=True, metavar="MSG", help="the I_MESSAGE this side sent ('-' = stdin)")
    p.add_argument("--rmsg", metavar="MSG", help="the response received ('-' = stdin; absent when V was not set)")
    _mode_options(p, plugin, "complete")
    p.set_defaults(func=run_complete, plugins=plugins)


def _prepare(args: argparse.Namespace) -> tuple[ModePlugin, float, bool]:
    plugins: dict[str, ModePlugin] = args.plugins
    plugin = plugins[args.mode]
    if getattr(args, "ssrc", None) is None and hasattr(args, "ssrc"):
        args.ssrc = []
    now = args.now if args.now is not None else time.time()
    return plugin, now, bool(getattr(args, "json", False))


def _refused_option(exc: ValueError) -> UsageError:
    """A value the mode's constructor refuses (e.g. a DH exponent out of range) is a usage error."""
    return UsageError(str(exc) or type(exc).__name__)


def run_initiate(args: argparse.Namespace) -> int:
    plugin, now, as_json = _prepare(args)
    try:
        out = plugin.initiate(args, now)
    except ValueError as exc:
        raise _refused_option(exc) from None
    except MikeyError as exc:
        # Nothing was received: the options asked for a message that cannot be built.
        return rejection(exc, as_json=as_json, label="cannot build the I_MESSAGE", status=EXIT_USAGE)
    show = bool(args.show_keys)
    if as_json:
        secrets = out.secrets if show else {}
        emit_json(result_json(out.result, show_keys=show, i_message=out.i_message.hex(), **out.extra, **secrets))
        return EXIT_OK
    if args.raw:
        print(out.i_message.hex())
        return EXIT_OK
    lines = _message_lines("I_MESSAGE", out.i_message)
    lines += result_text(out.result, show_keys=show)
    lines += [f"{k}: {_extra_text(v)}" for k, v in out.extra.items()]
    if show:
        lines += [f"{k}: {_extra_text(v)}" for k, v in out.secrets.items()]
    elif out.secrets:
        lines.append(f"not shown:      {', '.join(out.secrets)} (secret; 'complete' needs it: use --show-keys)")
    print("\n".join(lines))
    return EXIT_OK


def _open_replay_store(url: str) -> ReplayStore:
    """``--replay-cache URL`` opened and connected (:func:`mikey.replay_url.open_replay_store`).

    A malformed URL, an unknown scheme or a missing redis package is a usage error; a Redis
    that cannot be reached or is unsafe raises :class:`~mikey.errors.ReplayStoreError`."""
    try:
        return open_replay_store(url)
    except (ValueError, ImportError) as exc:
        raise UsageError(f"--replay-cache: {exc}") from None


def run_respond(args: argparse.Namespace) -> int:
    plugin, now, as_json = _prepare(args)
    try:
        i_message = read_message(args.imsg)
    except MikeyError as exc:
        return rejection(exc, as_json=as_json, message_key="r_message")
    args.imsg = i_message
    try:
        args.replay_store = _open_replay_store(args.replay_cache_url)
    except MikeyError as exc:  # unreachable, or set up so that replays could get through: fail closed
        return rejection(exc, as_json=as_json, message_key="r_message", label="cannot use the replay cache")
    try:
        outcome = plugin.respond(args, i_message, now)
    except ValueError as exc:
        raise _refused_option(exc) from None
    except MikeyError as exc:
        return rejection(exc, as_json=as_json, message_key="r_message")
    finally:
        close = getattr(args.replay_store, "close", None)
        if close is not None:
            close()
    if as_json:
        emit_json(outcome_json(outcome, show_keys=bool(args.show_keys)))
        return EXIT_OK
    if args.raw:
        if outcome.response is not None:
            print(outcome.response.hex())
        return EXIT_OK
    if outcome.response is not None:
        lines = _message_lines("R_MESSAGE", outcome.response)
    else:
        lines = ["R_MESSAGE:      none (the Initiator did not ask for verification)"]
    lines += result_text(outcome.result, show_keys=args.show_keys)
    print("\n".join(lines))
    return EXIT_OK


def run_complete(args: argparse.Namespace) -> int:
    plugin, now, as_json = _prepare(args)
    if args.imsg == "-" and args.rmsg == "-":
        raise UsageError("only one of --imsg and --rmsg can be read from standard input")
    try:
        i_message = read_message(args.imsg)
        r_message = read_message(args.rmsg) if args.rmsg is not None else None
    except MikeyError as exc:
        return rejection(exc, as_json=as_json)
    args.imsg, args.rmsg = i_message, r_message
    try:
        result = plugin.complete(args, i_message, r_message, now)
    except ValueError as exc:
        raise _refused_option(exc) from None
    except MikeyError as exc:
        return rejection(exc, as_json=as_json)
    if as_json:
        emit_json(result_json(result, show_keys=bool(args.show_keys)))
        return EXIT_OK
    print("\n".join(result_text(result, show_keys=args.show_keys)))
    return EXIT_OK


def _message_lines(label: str, data: bytes) -> list[str]:
    return [
        f"{label + ':':<15} {data.hex()}",
        f"{'SDP:':<15} a=key-mgmt:mikey {base64.b64encode(data).decode()}",
    ]


def _extra_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.hex()
    return str(value)

