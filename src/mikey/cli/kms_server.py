"""``mikey kms serve`` and ``mikey kms user add``: the TS 33.180 KMS server and its user registry (issue 9).

``serve [--data DIR] [--db URL] [--host H] [--port N] [--kms-uri URI] [--tls-cert PEM --tls-key PEM]
[--dev-tokens | --jwks FILE|URL [--jwks-ca PEM] --issuer ISS --audience AUD]``: the first start on an
empty DIR creates the at-rest key (DIR/at_rest.key, 0600, unless $MIKEY_KMS_AT_REST_KEY is set), the
SQLite database DIR/kms.sqlite3 (unless --db names another) and the community; prints ``serving
http://HOST:PORT`` (or https) as its first stdout line once the socket accepts connections.  Plain
HTTP only on loopback.  Without --dev-tokens or --jwks every request is refused (401).
``user add --data DIR [--db URL] URI…`` registers users, also while a server runs.
``fetch --kms URL --token TOKEN --out FILE [--ca PEM] [--integrity-key FILE] [--replace]`` writes the
token's user's keystore JSON, keeping the previous key period already in FILE (rollover).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import socket
import ssl
import sys
from pathlib import Path

from .._files import write_private_atomic
from ..errors import KeyMaterialError, MikeyError
from ..keystore import SakkeKeystore
from ..kms import generate_community
from ..kms.auth import BearerAuth, BearerPolicy, DevIssuer, FileJwks, NoIssuer, UrlJwks
from ..kms.store import AT_REST_KEY_ENV, AtRestKey, KmsStore, create_at_rest_key_file
from .common import UsageError

__all__ = ["register_server", "AT_REST_KEY_FILE", "DEFAULT_DATA_DIR"]

#: The at-rest key file in a KMS data directory (64 hex digits, mode 0600).
AT_REST_KEY_FILE = "at_rest.key"
#: The data directory when --data is not given.
DEFAULT_DATA_DIR = "kms-data"


def _open_store(data: str, db: str | None) -> KmsStore:
    """The store of data directory *data* (created with its at-rest key on first use)."""
    directory = Path(data)
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--data: cannot create {data}: {exc.strerror or exc}") from None
    key_path = directory / AT_REST_KEY_FILE
    try:
        if key_path.exists():
            key = AtRestKey.from_file(key_path)
        elif os.environ.get(AT_REST_KEY_ENV):
            key = AtRestKey.load(None)
        else:
            key = create_at_rest_key_file(key_path)
        return KmsStore(db if db is not None else f"sqlite:///{directory / 'kms.sqlite3'}", key)
    except MikeyError as exc:
        raise UsageError(str(exc)) from None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_url(value: str) -> bool:
    return value.lower().startswith(("http://", "https://"))


def _authenticator(args: argparse.Namespace) -> BearerAuth | NoIssuer:
    """The token verifier the flags ask for (TS 33.180 Annex B; issue 9 §3)."""
    idp_flags = [f for f, v in (("--jwks", args.jwks), ("--issuer", args.issuer), ("--audience", args.audience))
                 if v is not None]
    if (args.jwks_ca is not None or args.jwks_allow_http) and (args.jwks is None or not _is_url(args.jwks)):
        raise UsageError("--jwks-ca and --jwks-allow-http apply to a --jwks URL")
    if args.dev_tokens:
        if idp_flags:
            raise UsageError(f"--dev-tokens and {' '.join(idp_flags)}: choose the development issuer or your "
                             "identity server")
        try:
            return BearerAuth(DevIssuer.load_or_create(args.data).policy())
        except (KeyMaterialError, OSError) as exc:
            raise UsageError(f"--dev-tokens: {exc}") from None
    if not idp_flags:
        print("mikey: warning: no --jwks URL --issuer ISS --audience AUD and no --dev-tokens: every request "
              "is refused (401) until one is given", file=sys.stderr, flush=True)
        return NoIssuer()
    if len(idp_flags) < 3:
        raise UsageError("--jwks, --issuer and --audience go together (your identity server's JWKS, iss and aud)")
    try:
        jwks: FileJwks | UrlJwks = (UrlJwks(args.jwks, ca_file=args.jwks_ca, allow_http=args.jwks_allow_http)
                                    if _is_url(args.jwks) else FileJwks(args.jwks))
        return BearerAuth(BearerPolicy(issuer=args.issuer, audience=args.audience, jwks=jwks))
    except (KeyMaterialError, ValueError) as exc:
        raise UsageError(f"--jwks: {exc}") from None


def _log_to_stderr() -> None:
    """Send the KMS's own log (refused tokens, JWKS refreshes; never a token or secret) to stderr."""
    log = logging.getLogger("mikey")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from ..kms.core import KmsCore
    from ..kms.http import create_app

    tls = args.tls_cert is not None or args.tls_key is not None
    if tls and (args.tls_cert is None or args.tls_key is None):
        raise UsageError("--tls-cert and --tls-key go together")
    if not tls and not _is_loopback(args.host):
        raise UsageError(f"plain HTTP is served on loopback only: give --tls-cert and --tls-key to bind {args.host}")
    _log_to_stderr()
    authenticator = _authenticator(args)
    store = _open_store(args.data, args.db)
    kms_uri = args.kms_uri or "kms.example.org"
    try:
        community = store.get_or_create_community(lambda: generate_community(kms_uri))
        if args.kms_uri is not None and community.public.kms_uri != args.kms_uri:
            raise UsageError(f"--kms-uri: the database holds the community of {community.public.kms_uri!r}")
        core = KmsCore(store, authenticator)
    except MikeyError as exc:
        raise UsageError(str(exc)) from None
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    sock.listen(128)
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(core), log_level="warning", access_log=False, lifespan="off",
        ssl_certfile=args.tls_cert, ssl_keyfile=args.tls_key,
    )
    try:
        config.load()  # reads the TLS certificate and key now, so a bad one fails before the first line
    except (OSError, ValueError) as exc:
        sock.close()
        store.close()
        raise UsageError(f"cannot set up the server: {exc}") from None
    if config.ssl is not None:
        config.ssl.minimum_version = ssl.TLSVersion.TLSv1_2
    server = uvicorn.Server(config)
    shown = f"[{args.host}]" if family == socket.AF_INET6 else args.host
    # The socket already accepts connections (the kernel queues them until uvicorn takes over).
    print(f"serving {'https' if tls else 'http'}://{shown}:{port}", flush=True)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        store.close()
    return 0


def run_user_add(args: argparse.Namespace) -> int:
    with _open_store(args.data, args.db) as store:
        for uri in args.uris:
            try:
                added = store.add_user(uri)
            except MikeyError as exc:
                raise UsageError(f"{uri!r}: {exc}") from None
            print(f"{'added' if added else 'already registered'} {uri}")
    sys.stdout.flush()
    return 0


def _integrity_key(path: str | None) -> bytes | None:
    """The client's InK from *path* (hex digits; TS 33.180 Annex D), or None."""
    if path is None:
        return None
    try:
        text = Path(path).read_text(encoding="ascii").strip()
        key = bytes.fromhex(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"--integrity-key {path}: not a readable file of hex digits ({exc})") from None
    if not 16 <= len(key) <= 64:
        raise UsageError(f"--integrity-key {path}: the key must be 16 to 64 octets, not {len(key)}")
    return key


def _with_previous(out: str, fetched: SakkeKeystore, keep_from: int | None) -> tuple[SakkeKeystore, str]:
    """*fetched* merged with the key sets already in *out* for the same user and community.

    A fetch after a period boundary returns N+1 (and N+2); keeping N from the earlier file lets
    messages timestamped just before the boundary still verify (RFC 6509 §3.3).  Periods before
    *keep_from* are dropped.  Another user's file, or keys of a rotated community, are replaced.
    """
    try:
        previous = SakkeKeystore.load_json(Path(out).read_bytes())
    except FileNotFoundError:
        return fetched, ""
    except (OSError, MikeyError, ValueError):
        return fetched, " (replaced an unreadable file)"
    if previous.uri != fetched.uri or previous.kms != fetched.kms:
        return fetched, " (replaced the keys of another user or community)"
    merged = previous.merged(fetched)
    return (merged if keep_from is None else merged.pruned(keep_from)), ""


def run_fetch(args: argparse.Namespace) -> int:
    from ..kms.client import fetch_keystore

    ink = _integrity_key(args.integrity_key)
    try:
        store = fetch_keystore(args.kms, args.token, ca=args.ca, integrity_key=ink)
    except MikeyError as exc:
        print(f"mikey: {exc}", file=sys.stderr)
        return 1
    note = ""
    if not args.replace:
        fetched_periods = store.period_numbers
        keep_from = fetched_periods[0] - 1 if fetched_periods else None
        store, note = _with_previous(args.out, store, keep_from)
    try:
        write_private_atomic(args.out, json.dumps(store.to_dict(), indent=2).encode())
    except OSError as exc:
        raise UsageError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    periods = ", ".join(str(k.period_no) for k in store.key_sets)
    print(f"wrote {args.out}: {store.uri} (key periods {periods}){note}")
    return 0


def register_server(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``serve`` and ``user`` to the ``mikey kms`` sub-commands."""
    s = sub.add_parser("serve", help="serve the 3GPP TS 33.180 KMS interface over HTTP(S)",
                       description="Serve init, keyprov and certcache (3GPP TS 33.180 Annex D). The first start "
                       "on an empty --data DIR creates the community (encrypted at rest) and the database.")
    s.add_argument("--data", default=DEFAULT_DATA_DIR, metavar="DIR", help=f"data directory (default {DEFAULT_DATA_DIR})")
    s.add_argument("--db", metavar="URL", help="database URL (default: DIR/kms.sqlite3; postgresql://… to share)")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=8443, metavar="N", help="port (default 8443; 0 picks a free one)")
    s.add_argument("--kms-uri", metavar="URI", help="the KMS URI of a new community (default kms.example.org)")
    s.add_argument("--tls-cert", metavar="PEM", help="server certificate chain (HTTPS)")
    s.add_argument("--tls-key", metavar="PEM", help="server private key (HTTPS)")
    s.add_argument("--dev-tokens", action="store_true",
                   help="accept tokens of the development issuer whose key is in DIR ('mikey kms token')")
    s.add_argument("--jwks", metavar="FILE|URL",
                   help="JWKS of the identity server whose tokens are accepted: a file, or its jwks_uri "
                   "(https://; cached, refreshed when a token names an unknown key)")
    s.add_argument("--jwks-ca", metavar="PEM", help="CA certificates trusted for an https --jwks URL "
                   "(default: the system's)")
    s.add_argument("--jwks-allow-http", action="store_true",
                   help="allow a plain http:// --jwks URL on a non-loopback host (a trusted network only)")
    s.add_argument("--issuer", metavar="ISS", help="the identity server's issuer (iss)")
    s.add_argument("--audience", metavar="AUD", help="the audience (aud) tokens must name")
    s.set_defaults(func=run_serve)
    u = sub.add_parser("user", help="manage the users of a KMS database")
    usub = u.add_subparsers(dest="user_command", metavar="COMMAND", required=True)
    a = usub.add_parser("add", help="register users (works while the server runs)")
    a.add_argument("--data", default=DEFAULT_DATA_DIR, metavar="DIR", help=f"data directory (default {DEFAULT_DATA_DIR})")
    a.add_argument("--db", metavar="URL", help="database URL (default: DIR/kms.sqlite3)")
    a.add_argument("uris", nargs="+", metavar="URI", help="user URIs (MC IDs)")
    a.set_defaults(func=run_user_add)
    f = sub.add_parser("fetch", help="fetch the token's user's keys from a KMS server",
                       description="POST init and keyprov (TS 33.180 Annex D) with the bearer token and write the "
                       "keystore JSON that 'initiate/respond --mode sakke --keys FILE' reads (mode 0600).")
    f.add_argument("--kms", required=True, metavar="URL", help="the KMS base URL (http(s)://host:port)")
    f.add_argument("--token", required=True, metavar="TOKEN", help="the bearer token (names the user)")
    f.add_argument("--out", required=True, metavar="FILE", help="the keystore JSON to write")
    f.add_argument("--ca", metavar="PEM", help="CA certificates trusted for HTTPS (default: the system's)")
    f.add_argument("--integrity-key", metavar="FILE",
                   help="file holding the client's InK in hex: requests are signed and the responses must be "
                   "SignedKmsResponse under it (TS 33.180 Annex D)")
    f.add_argument("--replace", action="store_true",
                   help="overwrite FILE; by default the previous key period already in FILE is kept (rollover)")
    f.set_defaults(func=run_fetch)
