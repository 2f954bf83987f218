"""The ``mikey`` command: argument parsing and dispatch to the subcommands.

Subcommands, each added by its module's ``register(subparsers)``: ``decode``
(:mod:`mikey.cli.decode`), ``initiate``, ``respond``, ``complete``
(:mod:`mikey.cli.exchange`, over the mode plugins of :mod:`mikey.cli.plugins`),
``speed``, ``demo``, ``kms``, ``phone`` (:mod:`mikey.cli.phone`) and ``proxy`` (:mod:`mikey.cli.proxy`).  Exit status: 0 success, 1 message rejected,
2 usage error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from . import decode, demo, exchange, keys, kms, phone, proxy, speed, srtp_decrypt
from .common import EXIT_USAGE, UsageError, one_line
from .plugins import load_plugins

__all__ = ["main", "build_parser"]


def _version() -> str:
    try:
        return version("mikey")
    except PackageNotFoundError:  # run from a source tree, not installed
        return "unknown"


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The full parser; the ``--mode`` found in *argv* decides which mode adds its options."""
    parser = argparse.ArgumentParser(
        prog="mikey",
        description="MIKEY (RFC 3830 family): decode messages, run key exchanges, measure speed. "
        "Messages are hex, base64 or 'mikey <base64>', as an argument, @FILE, or on standard input.",
        epilog="exit status: 0 success, 1 message rejected, 2 usage error",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("--json", action="store_true", default=False, help="print one JSON object")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    decode.register(subparsers)
    plugins = load_plugins()
    exchange.register(subparsers, plugins, exchange.selected_mode(argv))
    keys.register(subparsers, plugins, exchange.selected_mode(argv))
    srtp_decrypt.register(subparsers, plugins, exchange.selected_mode(argv))
    speed.register(subparsers)
    demo.register(subparsers)
    kms.register(subparsers)
    phone.register(subparsers, plugins, exchange.selected_mode(argv), argv)
    proxy.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mikey`` with *argv* (default ``sys.argv[1:]``); returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser(args_list)
        args = parser.parse_args(args_list)
        result: int = args.func(args)
        return result
    except SystemExit as e:  # argparse: --help, --version, usage errors
        return e.code if isinstance(e.code, int) else (0 if e.code is None else EXIT_USAGE)
    except UsageError as e:
        print(f"mikey: error: {one_line(str(e))}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130
