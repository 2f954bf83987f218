"""``mikey kms ticket-user add|list``: the MIKEY-TICKET parties of a KMS database (RFC 6043; issue 10 §9).

``ticket-user add --data DIR [--db URL] --identity URI (--psk HEX | --psk-file FILE) [--key-id ID]
[--group URI ...] [--no-request] [--no-resolve] [--peer-kms [--url URL]]`` provisions one device's
PSK shared with the KMS (sealed under the at-rest key), with its rights: to request tickets
(REQUEST_INIT, §4.2.1), to resolve them (RESOLVE_INIT, §4.2.3), the groups it may resolve for
(§12.5).  ``--key-id`` is the IDRpsk the device sends (default: none, the identity names the
key).  ``--peer-kms`` makes the party another KMS (§10); with ``--url`` Resolves of that KMS's
tickets are forwarded there.  Works while ``mikey kms serve`` runs on the same database (the
server reads parties per message); the admin route ``POST …/admin/ticket-users`` does the same
over HTTP.  ``ticket-user list`` prints the parties, never their keys.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from ..errors import MikeyError
from .common import UsageError, hex_bytes
from .kms_server import DEFAULT_DATA_DIR, open_store

__all__ = ["register_ticket", "main"]


def _psk(args: argparse.Namespace) -> bytes:
    if (args.psk is None) == (args.psk_file is None):
        raise UsageError("give the PSK with --psk HEX or --psk-file FILE")
    if args.psk is not None:
        return bytes(args.psk)
    try:
        return bytes.fromhex(Path(args.psk_file).read_text(encoding="ascii").strip())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"--psk-file {args.psk_file}: not a readable file of hex digits ({exc})") from None


def run_add(args: argparse.Namespace) -> int:
    if args.url is not None and not args.peer_kms:
        raise UsageError("--url is where Resolves are forwarded to a peer KMS: it goes with --peer-kms")
    psk = _psk(args)
    with open_store(args.data, args.db) as store:
        try:
            added = store.add_ticket_user(
                args.identity.encode("utf-8"), psk, key_id=args.key_id.encode("utf-8") if args.key_id else None,
                groups=tuple(g.encode("utf-8") for g in args.group or ()), may_request=not args.no_request,
                may_resolve=not args.no_resolve, peer_kms=args.peer_kms, url=args.url, actor="cli")
        except MikeyError as exc:
            raise UsageError(str(exc)) from None
    name = args.key_id or args.identity
    if not added:
        print(f"mikey: PSK id {name!r} is already provisioned (nothing changed)", file=sys.stderr)
        return 1
    print(f"added {args.identity} (PSK id {name})", flush=True)
    return 0


def run_list(args: argparse.Namespace) -> int:
    with open_store(args.data, args.db) as store:
        try:
            records = store.ticket_users()
        except MikeyError as exc:
            raise UsageError(str(exc)) from None
    rows = [{"identity": r.identity.decode("utf-8", "replace"),
             "key_id": None if r.key_id == r.identity else r.key_id.decode("utf-8", "replace"),
             "groups": [g.decode("utf-8", "replace") for g in r.groups], "may_request": r.may_request,
             "may_resolve": r.may_resolve, "peer_kms": r.peer_kms, "url": r.url} for r in records]
    print(json.dumps({"ticket_users": rows}, indent=2))
    return 0


def register_ticket(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``ticket-user`` to the ``mikey kms`` sub-commands."""
    u = sub.add_parser("ticket-user", help="manage the MIKEY-TICKET parties (PSKs, rights) of a KMS database")
    usub = u.add_subparsers(dest="ticket_user_command", metavar="COMMAND", required=True)
    a = usub.add_parser("add", help="provision one device's PSK shared with the KMS (works while the server runs)",
                        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add_argument("--data", default=DEFAULT_DATA_DIR, metavar="DIR", help=f"data directory (default {DEFAULT_DATA_DIR})")
    a.add_argument("--db", metavar="URL", help="database URL (default: DIR/kms.sqlite3)")
    a.add_argument("--identity", required=True, metavar="URI", help="the party's identity (its IDRi / IDRr)")
    a.add_argument("--psk", type=hex_bytes, metavar="HEX", help="the PSK (16 to 64 octets; prefer --psk-file)")
    a.add_argument("--psk-file", metavar="FILE", help="a file holding the PSK in hex")
    a.add_argument("--key-id", metavar="ID", help="the IDRpsk the device sends (one per device)")
    a.add_argument("--group", action="append", metavar="URI", help="a group it may resolve tickets for (repeatable)")
    a.add_argument("--no-request", action="store_true", help="it may not request tickets")
    a.add_argument("--no-resolve", action="store_true", help="it may not resolve tickets")
    a.add_argument("--peer-kms", action="store_true", help="the party is another KMS (RFC 6043 §10)")
    a.add_argument("--url", metavar="URL", help="with --peer-kms: forward Resolves of that KMS's tickets here")
    a.set_defaults(func=run_add)
    ls = usub.add_parser("list", help="list the parties (never their keys), JSON")
    ls.add_argument("--data", default=DEFAULT_DATA_DIR, metavar="DIR", help=f"data directory (default {DEFAULT_DATA_DIR})")
    ls.add_argument("--db", metavar="URL", help="database URL (default: DIR/kms.sqlite3)")
    ls.set_defaults(func=run_list)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mikey.cli.kms_ticket ticket-user add …`` (the same as ``mikey kms ticket-user add …``)."""
    parser = argparse.ArgumentParser(prog="mikey kms")
    register_ticket(parser.add_subparsers(dest="kms_command", metavar="COMMAND", required=True))
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except UsageError as exc:
        print(f"mikey kms: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
