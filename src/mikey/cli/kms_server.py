"""``mikey kms serve`` and ``mikey kms user add``: the TS 33.180 KMS server and its user registry (issue 9).

``serve [--data DIR] [--db URL] [--host H] [--port N] [--workers N] [--threads N] [--kms-uri URI]
[--tls-cert PEM --tls-key PEM] [--dev-tokens | --jwks FILE|URL [--jwks-ca PEM] --issuer ISS --audience AUD]
[--ticket-cert PEM --ticket-key PEM --ticket-ca PEM] [--ibake-cert PEM --ibake-key PEM --ibake-ca PEM]``:
the first start on an empty DIR creates the at-rest key (DIR/at_rest.key, 0600, unless
$MIKEY_KMS_AT_REST_KEY is set), the SQLite database DIR/kms.sqlite3 (unless --db names another)
and the community; prints ``serving http://HOST:PORT`` (or https) as its first stdout line once
the socket accepts connections.  Plain HTTP only on loopback.  Without --dev-tokens or --jwks
every request is refused (401).  ``--workers N`` forks N processes serving the one socket, each
with its own database connections (issue 9 "Speed").
``user add --data DIR [--db URL] URI…`` registers users, also while a server runs.
``fetch --kms URL --token TOKEN --out FILE [--ca PEM] [--integrity-key FILE] [--replace]`` writes the
token's user's keystore JSON, keeping the previous key period already in FILE (rollover).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ipaddress
import json
import logging
import os
import signal
import socket
import ssl
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

from .._files import write_private_atomic
from ..crypto.x509 import CertificateValidator
from ..errors import KeyMaterialError, MikeyError
from ..keystore import Credentials, SakkeKeystore, TrustStore, load_credentials
from ..kms import generate_community
from ..kms.auth import BearerAuth, BearerPolicy, DevIssuer, FileJwks, NoIssuer, UrlJwks
from ..kms.store import AT_REST_KEY_ENV, AtRestKey, KmsStore, create_at_rest_key_file
from .common import UsageError

if TYPE_CHECKING:
    import uvicorn

    from ..kms.core import KmsCore

__all__ = ["register_server", "listening_socket", "open_store", "AT_REST_KEY_FILE", "DEFAULT_DATA_DIR"]

#: The at-rest key file in a KMS data directory (64 hex digits, mode 0600).
AT_REST_KEY_FILE = "at_rest.key"
#: The data directory when --data is not given.
DEFAULT_DATA_DIR = "kms-data"


def open_store(data: str, db: str | None, *, migrate: bool = True) -> KmsStore:
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
        return KmsStore(db if db is not None else f"sqlite:///{directory / 'kms.sqlite3'}", key, migrate=migrate)
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


def listening_socket(host: str, port: int, backlog: int = 128) -> socket.socket:
    """A TCP socket bound to (*host*, *port*) and listening; a :class:`UsageError` if it cannot be.

    Created with protocol ``IPPROTO_TCP`` (not 0): asyncio sets ``TCP_NODELAY`` on a connection
    only when its socket says TCP, and accepted sockets inherit the listening socket's protocol.
    Without it every response on a kept-alive connection waits for the client's delayed ACK
    (Nagle, RFC 1122 §4.2.3.4), some 40 ms on Linux.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def _log_to_stderr() -> None:
    """Send the KMS's own log (refused tokens, JWKS refreshes; never a token or secret) to stderr."""
    log = logging.getLogger("mikey")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


#: Most worker processes and threads per process ``serve`` accepts.
MAX_WORKERS = 64
MAX_THREADS = 64
#: PR_SET_PDEATHSIG (Linux prctl(2)): the signal a process gets when its parent dies.
_PR_SET_PDEATHSIG = 1


def _uvicorn_config(app: object, args: argparse.Namespace) -> uvicorn.Config:
    """The uvicorn configuration, loaded now so a bad TLS certificate or key fails before the first line."""
    import uvicorn

    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="off",  # type: ignore[arg-type]
        ssl_certfile=args.tls_cert, ssl_keyfile=args.tls_key,
    )
    try:
        config.load()
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot set up the server: {exc}") from None
    if config.ssl is not None:
        config.ssl.minimum_version = ssl.TLSVersion.TLSv1_2
    return config


def _ticket_pk(args: argparse.Namespace) -> tuple[list[Credentials], CertificateValidator | None]:
    """``--ticket-cert/--ticket-key/--ticket-ca``: the KMS's RSA credentials for MIKEY-TICKET's PK variants
    (REQUEST_INIT_PK, RESOLVE_INIT_PK; RFC 6043 §4.2.1.3, §4.2.3.3) and the anchors of the parties' certificates."""
    given = [args.ticket_cert is not None, args.ticket_key is not None, bool(args.ticket_ca)]
    if not any(given):
        return [], None
    if not all(given):
        raise UsageError("--ticket-cert, --ticket-key and --ticket-ca go together (MIKEY-TICKET PK variants)")
    try:
        return [load_credentials(args.ticket_key, args.ticket_cert)], TrustStore.load(*args.ticket_ca).validator()
    except (OSError, ValueError, MikeyError) as exc:
        raise UsageError(f"--ticket-cert/--ticket-key/--ticket-ca: {exc}") from None


def _ibake_pk(args: argparse.Namespace) -> tuple[list[Credentials], CertificateValidator | None]:
    """``--ibake-cert/--ibake-key/--ibake-ca``: the KMS's RSA credentials for MIKEY-IBAKE's REQUEST_KEY_PKE
    (RFC 6267 §4.2.1.1.2: PKE encrypted to them) and the anchors of the users' certificates (SIGN, CERT).
    They may name the same files as ``--ticket-*``."""
    given = [args.ibake_cert is not None, args.ibake_key is not None, bool(args.ibake_ca)]
    if not any(given):
        return [], None
    if not all(given):
        raise UsageError("--ibake-cert, --ibake-key and --ibake-ca go together (MIKEY-IBAKE REQUEST_KEY_PKE)")
    try:
        return [load_credentials(args.ibake_key, args.ibake_cert)], TrustStore.load(*args.ibake_ca).validator()
    except (OSError, ValueError, MikeyError) as exc:
        raise UsageError(f"--ibake-cert/--ibake-key/--ibake-ca: {exc}") from None


def _core(store: KmsStore, authenticator: BearerAuth | NoIssuer, args: argparse.Namespace) -> KmsCore:
    from ..kms.core import KmsCore, MikeyKmsRole
    from ..kms.ibake_role import IbakeKmsRole
    from ..kms.ticket_role import TicketKmsRole

    credentials, validator = _ticket_pk(args)
    ibake_credentials, ibake_validator = _ibake_pk(args)
    try:
        uri = store.public_keys().kms_uri
        roles: list[MikeyKmsRole] = [
            TicketKmsRole.on_store(store, uri.encode("utf-8"), pk_credentials=credentials, validator=validator),
            # RFC 6267 key requests: the ticket-users' PSKs; REQUEST_KEY_PKE with --ibake-cert/--ibake-key/--ibake-ca
            IbakeKmsRole(store, uri.encode("utf-8"), pk_credentials=ibake_credentials, validator=ibake_validator),
        ]
        return KmsCore(store, authenticator, mikey_roles=roles)
    except MikeyError as exc:
        raise UsageError(str(exc)) from None


def _serve_app(args: argparse.Namespace, core: KmsCore, sock: socket.socket, announce: str | None) -> None:
    """Serve *core* over *sock* until a signal stops uvicorn; prints *announce* first."""
    import uvicorn

    from ..kms.http import create_app

    server = uvicorn.Server(_uvicorn_config(create_app(core, threads=args.threads), args))
    if announce is not None:
        # The socket already accepts connections (the kernel queues them until uvicorn takes over).
        print(announce, flush=True)
    server.run(sockets=[sock])


def _check_tls(args: argparse.Namespace) -> None:
    """Load the TLS certificate and key once, so a bad one fails before the socket and any worker."""
    if args.tls_cert is None:
        return
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(args.tls_cert, args.tls_key)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot set up the server: {exc}") from None


def _die_with_parent(parent: int) -> None:
    """Have this worker get SIGTERM when the ``serve`` process dies, even by ``kill -9``.

    Linux: ``prctl(PR_SET_PDEATHSIG)``; elsewhere a thread watches the parent process id.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) == 0
        except (OSError, AttributeError):
            armed = False
        if armed:
            if os.getppid() != parent:  # the parent died before prctl took effect
                os._exit(0)
            return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="mikey-kms-parent-watch", daemon=True).start()


def _run_worker(args: argparse.Namespace, authenticator: BearerAuth | NoIssuer, sock: socket.socket,
                parent: int) -> int:
    """One forked worker: its own store (no connection crosses the fork) and core on the shared socket."""
    _die_with_parent(parent)
    try:
        store = open_store(args.data, args.db, migrate=False)
        try:
            _serve_app(args, _core(store, authenticator, args), sock, None)
        finally:
            store.close()
    except UsageError as exc:
        print(f"mikey: error: worker {os.getpid()}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    except BaseException:
        traceback.print_exc()
        return 1
    return 0


def _supervise(args: argparse.Namespace, authenticator: BearerAuth | NoIssuer, sock: socket.socket,
               announce: str) -> int:
    """Fork ``--workers`` processes serving *sock*; forward SIGTERM/SIGINT to them; return when all ended.

    A worker that ends while no signal asked for it ends the others too (exit status 1), so a
    service manager restarts the whole server.
    """
    stop_signals = (signal.SIGTERM, signal.SIGINT)
    parent = os.getpid()
    alive: set[int] = set()
    stopping = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(alive):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    sys.stdout.flush()
    sys.stderr.flush()
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)  # no handler runs between the forks
    try:
        for _ in range(args.workers):
            pid = os.fork()
            if pid == 0:  # the worker
                code = 1
                try:
                    signal.signal(signal.SIGTERM, signal.SIG_DFL)
                    signal.signal(signal.SIGINT, signal.default_int_handler)
                    signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)
                    code = _run_worker(args, authenticator, sock, parent)
                finally:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os._exit(code)
            alive.add(pid)
        for signum in stop_signals:
            signal.signal(signum, forward)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)
    print(announce, flush=True)
    status = 0
    while alive:
        try:
            pid, wait_status = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        alive.discard(pid)
        if not stopping:
            code = os.waitstatus_to_exitcode(wait_status)
            how = f"with status {code}" if code >= 0 else f"on signal {signal.Signals(-code).name}"
            print(f"mikey: KMS worker {pid} ended {how}; stopping the other workers", file=sys.stderr, flush=True)
            stopping, status = True, 1
            for other in list(alive):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(other, signal.SIGTERM)
    sock.close()
    return status


def run_serve(args: argparse.Namespace) -> int:
    tls = args.tls_cert is not None or args.tls_key is not None
    if tls and (args.tls_cert is None or args.tls_key is None):
        raise UsageError("--tls-cert and --tls-key go together")
    if not tls and not _is_loopback(args.host):
        raise UsageError(f"plain HTTP is served on loopback only: give --tls-cert and --tls-key to bind {args.host}")
    if not 1 <= args.workers <= MAX_WORKERS:
        raise UsageError(f"--workers must be 1 to {MAX_WORKERS}")
    if not 1 <= args.threads <= MAX_THREADS:
        raise UsageError(f"--threads must be 1 to {MAX_THREADS}")
    if args.workers > 1 and not hasattr(os, "fork"):
        raise UsageError("--workers above 1 needs os.fork (POSIX)")
    _log_to_stderr()
    authenticator = _authenticator(args)
    store = open_store(args.data, args.db)
    kms_uri = args.kms_uri or "kms.example.org"
    try:
        try:
            community = store.get_or_create_community(lambda: generate_community(kms_uri))
        except MikeyError as exc:
            raise UsageError(str(exc)) from None
        if args.kms_uri is not None and community.public.kms_uri != args.kms_uri:
            raise UsageError(f"--kms-uri: the database holds the community of {community.public.kms_uri!r}")
        core = _core(store, authenticator, args)  # also creates what every worker then reads from the database
        _check_tls(args)
        sock = listening_socket(args.host, args.port)
    except BaseException:
        store.close()
        raise
    port = sock.getsockname()[1]
    shown = f"[{args.host}]" if sock.family == socket.AF_INET6 else args.host
    announce = f"serving {'https' if tls else 'http'}://{shown}:{port}"
    if args.workers > 1:
        store.close()  # each worker opens its own: a connection pool must not cross a fork
        return _supervise(args, authenticator, sock, announce)
    try:
        _serve_app(args, core, sock, announce)
    finally:
        sock.close()
        store.close()
    return 0


def run_user_add(args: argparse.Namespace) -> int:
    with open_store(args.data, args.db) as store:
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
    s.add_argument("--workers", type=int, default=1, metavar="N",
                   help="worker processes sharing the socket, each with its own database connections "
                   "(default 1; one process uses at most one core)")
    s.add_argument("--threads", type=int, default=4, metavar="N",
                   help="threads per process running requests (database, key generation; default 4)")
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
    s.add_argument("--ticket-cert", metavar="PEM", help="the KMS's certificate for MIKEY-TICKET's PK variants "
                   "(REQUEST_INIT_PK, RESOLVE_INIT_PK); with --ticket-key and --ticket-ca")
    s.add_argument("--ticket-key", metavar="PEM", help="the KMS's RSA private key for MIKEY-TICKET's PK variants")
    s.add_argument("--ticket-ca", metavar="PEM", action="append",
                   help="trust anchors of the parties' certificates (MIKEY-TICKET PK variants; repeatable)")
    s.add_argument("--ibake-cert", metavar="PEM", help="the KMS's certificate for MIKEY-IBAKE's REQUEST_KEY_PKE "
                   "(RFC 6267 §4.2.1.1.2); with --ibake-key and --ibake-ca (may be the --ticket-* files)")
    s.add_argument("--ibake-key", metavar="PEM", help="the KMS's RSA private key for MIKEY-IBAKE's REQUEST_KEY_PKE")
    s.add_argument("--ibake-ca", metavar="PEM", action="append",
                   help="trust anchors of the users' certificates (MIKEY-IBAKE REQUEST_KEY_PKE; repeatable)")
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
