"""``mikey kms init`` / ``mikey kms issue`` / ``mikey kms token``: a MIKEY-SAKKE KMS for labs and demos.

``init --out DIR [--kms-uri URI]`` writes DIR/community.json (KMS secrets: a new
0600 file renamed into place, never through a symbolic link) and DIR/kms_init.xml (the 3GPP KmsInit response with the public keys).
``issue --community FILE --uri URI --out FILE [--period-no N | --now UNIX]`` writes the
user's key file (the JSON ``--keys`` reads) and, with ``--xml FILE``, a KmsKeyProv
response (TS 33.180 Annex D; plaintext key material, unsigned).
``token --data DIR --user URI [--admin] [--ttl SECONDS]`` prints one bearer token of the
development issuer whose signing key is in DIR (created, 0600, on first use; its public JWKS
is written beside it for ``serve --dev-tokens``).
``rotate --data DIR [--db URL]`` makes a new generation of the served community's master keys
the active one (as the admin route ``POST …/admin/rotate`` does; audited as ``cli``).
``trust add|list|remove``: the other KMSs certcache tells clients to trust (:mod:`mikey.cli.kms_trust`).
``ibake-init`` / ``ibake-issue``: a file-based MIKEY-IBAKE KMS (RFC 6267; :mod:`mikey.cli.kms_ibake`).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from .._files import write_private_atomic
from ..constants import SakkeIDScheme
from ..errors import KeyMaterialError, MikeyError
from ..kms import (
    KmsCommunity,
    generate_community,
    issue_user_keys,
    kms_init_xml,
    kms_key_prov_xml,
    user_key_document,
)
from ..kms.auth import MAX_DEV_TTL, DevIssuer
from ..kms.store import AtRestKey, KmsStore, database_url
from .common import UsageError, add_json_option, emit_json, unix_seconds
from .kms_ibake import register_ibake
from .kms_server import AT_REST_KEY_FILE, register_server
from .kms_ticket import register_ticket
from .kms_trust import register_trust

__all__ = ["register"]


def _write_private(path: Path, data: bytes) -> None:
    """A secret file: new 0600 file renamed into place, never through a symbolic link."""
    try:
        write_private_atomic(path, data)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def _write_public(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def run_init(args: argparse.Namespace) -> int:
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {out}: {exc.strerror or exc}") from None
    scheme = SakkeIDScheme.TEL_URI_MONTHLY if args.id_scheme == "rfc6509" else SakkeIDScheme.UID_3GPP
    try:
        community = generate_community(
            args.kms_uri, key_period=args.key_period, key_period_offset=args.key_period_offset, id_scheme=scheme
        )
    except (MikeyError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    _write_private(out / "community.json", json.dumps(community.to_dict(), indent=2).encode())
    # A published KmsInit has no requesting user: address it to the KMS (no empty UserUri).
    _write_public(out / "kms_init.xml", kms_init_xml(community, args.kms_uri, now=time.time()))
    info: dict[str, Any] = {
        "ok": True,
        "community": str(out / "community.json"),
        "kms_init_xml": str(out / "kms_init.xml"),
        "kms_uri": args.kms_uri,
        "kpak": community.public.kpak.hex(),
    }
    _report(args, info)
    return 0


def run_issue(args: argparse.Namespace) -> int:
    try:
        community = KmsCommunity.load(args.community)
    except KeyMaterialError as exc:
        raise UsageError(f"--community: {exc.message}") from None
    now = args.now if args.now is not None else time.time()
    try:
        keys = issue_user_keys(community, args.uri, period_no=args.period_no, now=now, month=args.month)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    _write_private(Path(args.out), json.dumps(user_key_document(community, keys), indent=2).encode())
    info: dict[str, Any] = {
        "ok": True,
        "keys": args.out,
        "uri": args.uri,
        "uid": keys.identifier.hex(),
        "period_no": keys.period_no,
    }
    if args.xml:
        _write_private(Path(args.xml), kms_key_prov_xml(community, keys, now=now))
        info["kms_key_prov_xml"] = args.xml
    _report(args, info)
    return 0


def run_token(args: argparse.Namespace) -> int:
    try:
        issuer = DevIssuer.load_or_create(args.data)
    except KeyMaterialError as exc:
        raise UsageError(f"--data: {exc.message}") from None
    except OSError as exc:
        raise UsageError(f"--data: cannot use {args.data}: {exc.strerror or exc}") from None
    now = time.time()
    try:
        token = issuer.issue(args.user, admin=args.admin, ttl=args.ttl, now=now)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if getattr(args, "json", False):
        emit_json({"ok": True, "token": token, "user": args.user, "admin": args.admin,
                   "expires": int(now) + args.ttl, "kid": issuer.kid})
    else:
        print(token)
    return 0


def run_rotate(args: argparse.Namespace) -> int:
    """A new community generation in the KMS database of DIR (or --db), now the active one."""
    directory = Path(args.data)
    key_path = directory / AT_REST_KEY_FILE
    try:
        key = AtRestKey.from_file(key_path) if key_path.exists() else AtRestKey.load(None)
        with KmsStore(database_url(args.db, data_dir=directory), key) as store:
            if not store.has_community():
                raise UsageError(f"--data: the KMS database of {args.data} holds no community yet (start 'serve')")
            old = store.public_keys()
            new = generate_community(old.kms_uri, key_period=old.key_period,
                                     key_period_offset=old.key_period_offset, id_scheme=old.id_scheme)
            generation = store.rotate_community(new, actor="cli")
    except MikeyError as exc:
        raise UsageError(str(exc)) from None
    _report(args, {"ok": True, "generation": generation, "kms_uri": new.public.kms_uri,
                   "kpak": new.public.kpak.hex(), "z": new.public.z.hex()})
    return 0


def _ttl(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of seconds: {text!r}") from None
    if not 0 < value <= MAX_DEV_TTL:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_DEV_TTL} seconds")
    return value


def _report(args: argparse.Namespace, info: dict[str, Any]) -> None:
    if getattr(args, "json", False):
        emit_json(info)
        return
    for k, v in info.items():
        if k != "ok":
            print(f"{k + ':':18} {v}")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "kms", help="the MIKEY-SAKKE Key Management Server (3GPP TS 33.180) and its client",
        description="The MIKEY-SAKKE KMS (RFC 6507, RFC 6508, 3GPP TS 33.180 Annex D). Server: 'serve' "
        "(HTTP(S), SQLite or PostgreSQL), 'user add', 'token' (development tokens), 'rotate', 'trust' "
        "(external KMS certificates). Client: 'fetch' "
        "writes the keystore 'initiate/respond --mode sakke --keys' reads. Files only, no server: 'init' "
        "creates a community, 'issue' a user's key file; MIKEY-IBAKE: 'ibake-init', 'ibake-issue'.",
    )
    sub = p.add_subparsers(dest="kms_command", metavar="COMMAND", required=True)
    i = sub.add_parser("init", help="create a KMS community (KSAK/KPAK, z/Z)",
                       description="Create a KMS community: DIR/community.json (the KMS secrets, mode 0600) and "
                       "DIR/kms_init.xml (the 3GPP KmsInit response with the public keys).")
    i.add_argument("--out", required=True, metavar="DIR", help="directory for community.json and kms_init.xml")
    i.add_argument("--kms-uri", default="kms.example.org", metavar="URI", help="the KMS URI (default kms.example.org)")
    i.add_argument("--key-period", type=int, default=2_592_000, metavar="SECONDS",
                   help="user key period (default 2592000, 30 days)")
    i.add_argument("--key-period-offset", type=int, default=0, metavar="SECONDS",
                   help="key period offset (default 0)")
    i.add_argument("--id-scheme", choices=["3gpp", "rfc6509"], default="3gpp",
                   help="identifiers: 3GPP MIKEY-SAKKE UID (default) or RFC 6509 tel URI + month")
    add_json_option(i)
    i.set_defaults(func=run_init)
    s = sub.add_parser("issue", help="issue a user's SSK, PVT and RSK for a key period",
                       description="Issue a user's key file (SSK, PVT, RSK for one key period) for "
                       "'--mode sakke --keys FILE', and optionally a KmsKeyProv response (TS 33.180 Annex D).")
    s.add_argument("--community", required=True, metavar="FILE", help="community.json from 'kms init'")
    s.add_argument("--uri", required=True, metavar="URI", help="the user's URI")
    s.add_argument("--out", required=True, metavar="FILE", help="the user key file to write (mode 0600)")
    s.add_argument("--period-no", type=int, metavar="N", help="key period number (default: the current one)")
    s.add_argument("--month", metavar="YYYY-MM", help="the month (RFC 6509 identifiers)")
    s.add_argument("--now", type=unix_seconds, metavar="UNIX_SECONDS",
                   help="the time choosing the period (default: the real clock)")
    s.add_argument("--xml", metavar="FILE", help="also write a 3GPP KmsKeyProv response (plaintext key material)")
    add_json_option(s)
    s.set_defaults(func=run_issue)
    t = sub.add_parser("token", help="print a bearer token of the development issuer",
                       description="Print one OAuth 2.0 bearer token (an ES256 JWT, RFC 6750) of the development "
                       "issuer whose signing key is DIR/dev_token_key.pem (created, mode 0600, on first use; "
                       "DIR/dev_token_jwks.json holds its public key for 'serve --dev-tokens'). For labs and tests.")
    t.add_argument("--data", required=True, metavar="DIR", help="the KMS data directory")
    t.add_argument("--user", required=True, metavar="URI", help="the user's MC identity (the token's mcptt_id)")
    t.add_argument("--admin", action="store_true", help="also grant the admin scope (register users, rotate keys)")
    t.add_argument("--ttl", type=_ttl, default=3600, metavar="SECONDS", help="lifetime (default 3600)")
    add_json_option(t)
    t.set_defaults(func=run_token)
    r = sub.add_parser("rotate", help="rotate the served community's master keys (a new generation)",
                       description="Make a new generation of the community's master keys (KSAK/KPAK, z/Z; same KMS "
                       "URI and key periods) the active one in the KMS database: running servers serve it from "
                       "their next request; key sets of older generations stay stored for audit.")
    r.add_argument("--data", required=True, metavar="DIR", help="the KMS data directory (at-rest key, SQLite file)")
    r.add_argument("--db", metavar="URL", help="database URL (default: DIR/kms.sqlite3)")
    add_json_option(r)
    r.set_defaults(func=run_rotate)
    register_server(sub)
    register_ticket(sub)
    register_trust(sub)
    register_ibake(sub)
