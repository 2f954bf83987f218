"""``mikey kms ibake-init`` / ``mikey kms ibake-issue``: a file-based MIKEY-IBAKE KMS (RFC 6267 §4.2.1).

``ibake-init --out DIR [--kms-id ID] [--key-period YYYY-MM] [--security 2048]`` runs Boneh-Franklin
setup (RFC 5091 §5.1.2) and writes DIR/ibake_kms.json (the master secret, 0600, renamed into place,
never through a symbolic link) and DIR/ibake_params.json (the public parameters).

``ibake-issue --community DIR --uri URI [--uri URI ...] --out FILE [--now UNIX] [--periods N] [--psk HEX]``
gives the user its K_PRs (for every ``--uri``: a forked device holds its own and the shared identity's) through the real key request exchange: the user side
(:class:`~mikey.modes.ibake_keys.IbakeKeyRequest`) sends REQUEST_KEY_PSK to the KMS role
(:class:`~mikey.modes.ibake_keys.IbakeKms`) run in-process on the file's master secret, and writes
what REQUEST_KEY_RESP delivered (each K_PR checked against the parameters) to FILE (0600): the key
period containing ``--now`` and the ``N - 1`` following ones.  The PSK authenticating the exchange is
``--psk`` (the user's PSK with the KMS) or a one-time random one.

The KMS server (``mikey kms serve``) answers the same key request on ``POST /keymanagement/mikey/v1``
(:class:`~mikey.kms.ibake_role.IbakeKmsRole`; its master secret is made on first use and kept sealed
in the database; a user's PSK is its ``mikey kms ticket-user add`` PSK: one PSK per party for both
MIKEY-TICKET and MIKEY-IBAKE key requests):

``ibake-params --data DIR [--db URL] --out FILE`` writes the server's public parameters (the
ibake_params.json format; the master is made if there is none yet).  REQUEST_KEY_RESP does not carry
them (RFC 6267 §4.2.1.3), and the user needs them to check its K_PRs: the operator hands this public
file out with the PSK.

``ibake-fetch --kms URL --uri URI (--psk-file FILE [--psk-id ID] | --cert PEM --key PEM --kms-cert PEM)
--params FILE --out FILE [--now UNIX]`` is the user side over HTTP: REQUEST_KEY_PSK, or REQUEST_KEY_PKE
(§4.2.1.1.2: the envelope key encrypted to ``--kms-cert``, named by a CHASH (SHA-256), the request signed
with the user's certificate, which the server trusts with ``serve --ibake-ca``), to the server; each K_PR
of REQUEST_KEY_RESP checked against ``--params``; the key file of ``--mode ibake --keys`` written (0600).
A refusal (wrong PSK or signature: Error no 0; a user the KMS does not serve: 7; an untrusted
certificate or another KMS certificate: 8) or an unreachable KMS is one line on stderr, exit status 1,
nothing written.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from ..constants import EncrAlg, HashFunc
from ..crypto import ibe
from ..errors import MikeyError
from ..keystore import load_certificates, load_credentials
from ..modes.ibake_keys import IbakeKeyRequest, IbakeKeyResult, IbakeKms, IbakePkSigner
from .common import UsageError, add_json_option, emit_json, hex_bytes, one_line, unix_seconds
from .ibake_files import (
    KMS_FILE,
    PARAMS_FILE,
    IbakeKmsFile,
    kms_document,
    load_kms,
    load_params,
    params_document,
    user_key_document,
    write_private,
    write_public,
)

__all__ = ["register_ibake", "fetch_ibake_keys"]

_SECURITY = (1024, 2048, 3072)


def run_ibake_init(args: argparse.Namespace) -> int:
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {out}: {exc.strerror or exc}") from None
    params, master = ibe.bf_setup(args.security)
    kms = IbakeKmsFile(master, args.kms_id, ibe.KeyPeriod(args.key_period))
    write_private(out / KMS_FILE, kms_document(kms))
    write_public(out / PARAMS_FILE, params_document(kms))
    _report(args, {"ok": True, "kms": str(out / KMS_FILE), "params": str(out / PARAMS_FILE), "kms_id": kms.kms_id,
                   "key_period": kms.key_period.value, "security": args.security,
                   "p_bits": int(params.p).bit_length(), "q_bits": int(params.q).bit_length()})
    return 0


def run_ibake_issue(args: argparse.Namespace) -> int:
    kms = load_kms(args.community)
    now = args.now if args.now is not None else time.time()
    uris = [u.encode("utf-8") for u in args.uri]
    psk = bytes(args.psk) if args.psk is not None else os.urandom(32)
    # The operator running this command decides what the user gets: every --uri (own identity first).
    role = IbakeKms(kms.master, {uris[0]: psk}, identity=kms.kms_id.encode("utf-8"), key_period=kms.key_period,
                    periods=args.periods, encr_alg=EncrAlg.AES_CM_128, authorize=lambda user, identity: True)
    request = IbakeKeyRequest(psk, uris, kms.kms_id.encode("utf-8"), kms.params, key_period=kms.key_period,
                              psk_id=uris[0] if len(uris) > 1 else None)
    try:
        req = request.create_message(now)
        resp = role.handle(req, now)
        if resp is None:  # pragma: no cover - the role always answers a request
            raise UsageError("the KMS role sent no answer")
        result = request.receive(resp, now)
    except MikeyError as exc:
        raise UsageError(f"the key request failed: {exc.kind}: {exc.message}") from None
    write_private(args.out, user_key_document(args.uri[0], kms.kms_id, kms.key_period, kms.params, result.keys))
    _report(args, {"ok": True, "keys": args.out, "uri": args.uri[0], "kms_id": kms.kms_id,
                   "periods": [k.period_identity.decode("utf-8", "replace") for k in result.keys],
                   "valid_from": min(k.valid_from for k in result.keys).isoformat(),
                   "valid_to": max(k.valid_to for k in result.keys).isoformat(),
                   "request_key_psk_len": len(req), "request_key_resp_len": len(resp)})
    return 0


def run_ibake_params(args: argparse.Namespace) -> int:
    from ..kms.ibake_role import ibake_master
    from .kms_server import open_store

    with open_store(args.data, args.db) as store:
        try:
            master, period = ibake_master(store)
            kms_id = store.public_keys().kms_uri
        except MikeyError as exc:
            raise UsageError(str(exc)) from None
    write_public(args.out, params_document(IbakeKmsFile(master, kms_id, period)))
    _report(args, {"ok": True, "params": args.out, "kms_id": kms_id, "key_period": period.value,
                   "p_bits": int(master.params.p).bit_length(), "q_bits": int(master.params.q).bit_length()})
    return 0


def fetch_ibake_keys(kms_url: str, request: IbakeKeyRequest, now: float, *,
                     ca: str | None = None) -> tuple[IbakeKeyResult, int, int]:
    """One key request over HTTP (RFC 6267 §4.2.1): *request*'s REQUEST_KEY_PSK or REQUEST_KEY_PKE to the KMS
    server's MIKEY route, its REQUEST_KEY_RESP opened and each K_PR checked against the parameters.

    Returns the result and the request's and response's lengths; a refusal (the KMS's Error message) or an
    unreachable KMS raises a :class:`~mikey.errors.MikeyError`.
    """
    from ..kms.mikey_client import post_mikey

    req = request.create_message(now)
    resp = post_mikey(kms_url, req, ca=ca)
    return request.receive(resp, now), len(req), len(resp)


def _psk_from_file(path: str) -> bytes:
    try:
        psk = bytes.fromhex(Path(path).read_text(encoding="ascii").strip())
    except (OSError, UnicodeDecodeError, ValueError):
        raise UsageError(f"--psk-file {path}: not a readable file of hex digits") from None
    if not psk:
        raise UsageError(f"--psk-file {path}: empty")
    return psk


def _pk_signer(args: argparse.Namespace) -> IbakePkSigner | None:
    """``--cert/--key/--kms-cert``: REQUEST_KEY_PKE's signer and the KMS certificate (§4.2.1.1.2), or None (PSK)."""
    given = {"--cert": args.cert, "--key": args.key, "--kms-cert": args.kms_cert}
    if not any(v is not None for v in given.values()):
        if args.psk_file is None:
            raise UsageError("give --psk-file (REQUEST_KEY_PSK) or --cert, --key and --kms-cert (REQUEST_KEY_PKE)")
        return None
    if any(v is None for v in given.values()):
        raise UsageError("--cert, --key and --kms-cert go together (REQUEST_KEY_PKE)")
    if args.psk_file is not None or args.psk_id is not None:
        raise UsageError("choose --psk-file/--psk-id (REQUEST_KEY_PSK) or --cert/--key/--kms-cert (REQUEST_KEY_PKE)")
    try:
        own = load_credentials(args.key, args.cert)
        kms_cert = load_certificates(args.kms_cert)[0]
    except (OSError, ValueError, MikeyError) as exc:
        raise UsageError(f"--cert/--key/--kms-cert: {exc}") from None
    # CHASH names the KMS certificate used, so a KMS holding another refuses (Error no 8) instead of answering
    # with keys nobody can open (PKCS#1 v1.5 decryption rejects implicitly).
    return IbakePkSigner(own, kms_cert, chash=HashFunc.SHA_256)


def run_ibake_fetch(args: argparse.Namespace) -> int:
    params, kms_id, period = load_params(args.params)
    pk = _pk_signer(args)
    psk = _psk_from_file(args.psk_file) if pk is None else None
    now = args.now if args.now is not None else time.time()
    request = IbakeKeyRequest(psk, [args.uri.encode("utf-8")], kms_id.encode("utf-8"), params, key_period=period,
                              psk_id=args.psk_id.encode("utf-8") if args.psk_id else None, pk=pk)
    try:
        result, req_len, resp_len = fetch_ibake_keys(args.kms, request, now, ca=args.ca)
    except MikeyError as exc:
        print(f"mikey: error: {one_line(f'the key request failed: {exc.kind}: {exc.message}')}", file=sys.stderr)
        return 1
    write_private(args.out, user_key_document(args.uri, kms_id, period, params, result.keys))
    kind = "request_key_pke_len" if pk is not None else "request_key_psk_len"
    _report(args, {"ok": True, "keys": args.out, "uri": args.uri, "kms_id": kms_id,
                   "periods": [k.period_identity.decode("utf-8", "replace") for k in result.keys],
                   kind: req_len, "request_key_resp_len": resp_len})
    return 0


def _report(args: argparse.Namespace, info: dict[str, Any]) -> None:
    if getattr(args, "json", False):
        emit_json(info)
        return
    for k, v in info.items():
        if k != "ok":
            print(f"{k + ':':22} {v}")


def _periods(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= 24:
        raise argparse.ArgumentTypeError("must be between 1 and 24")
    return value


def register_ibake(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``ibake-init``, ``ibake-issue``, ``ibake-params`` and ``ibake-fetch`` to ``mikey kms``."""
    i = sub.add_parser("ibake-init", help="create a file-based MIKEY-IBAKE KMS (Boneh-Franklin setup)",
                       description="Boneh-Franklin setup (RFC 5091 §5.1.2) for MIKEY-IBAKE (RFC 6267): "
                       f"DIR/{KMS_FILE} (the master secret, mode 0600) and DIR/{PARAMS_FILE} (public parameters).")
    i.add_argument("--out", required=True, metavar="DIR", help=f"directory for {KMS_FILE} and {PARAMS_FILE}")
    i.add_argument("--kms-id", default="kms.example.org", metavar="ID",
                   help="the KMS identity (IDRkms data, default kms.example.org)")
    i.add_argument("--key-period", choices=[p.value for p in ibe.KeyPeriod], default=ibe.KeyPeriod.MONTH.value,
                   help="date granularity of K_PUB = H1(ID || date) (default YYYY-MM)")
    i.add_argument("--security", type=int, choices=_SECURITY, default=2048,
                   help="RFC 5091 security parameter n (default 2048: p 1024 bits, q 224, SHA-224)")
    add_json_option(i)
    i.set_defaults(func=run_ibake_init)
    s = sub.add_parser("ibake-issue", help="give a user its MIKEY-IBAKE K_PRs (REQUEST_KEY_PSK in-process)",
                       description="Write a user's key file for '--mode ibake --keys FILE' (mode 0600). The K_PRs "
                       "come through the RFC 6267 §4.2.1 key request: REQUEST_KEY_PSK from the user side to the KMS "
                       "role run in this process on the master secret, REQUEST_KEY_RESP (KEMAC AES-CM-128, V) back, "
                       "each K_PR checked against the public parameters. The PSK is --psk or a one-time random key.")
    s.add_argument("--community", required=True, metavar="DIR",
                   help=f"the directory of 'kms ibake-init' (or its {KMS_FILE})")
    s.add_argument("--uri", required=True, action="append", metavar="URI",
                   help="the user's identity (IDR ID data); repeat for more identities of the same user, e.g. a "
                   "forked device's own and the shared one (RFC 6267 §7.3): the first is the key file's own")
    s.add_argument("--out", required=True, metavar="FILE", help="the user key file to write (mode 0600)")
    s.add_argument("--now", type=unix_seconds, metavar="UNIX_SECONDS",
                   help="the time choosing the first key period (default: the real clock)")
    s.add_argument("--periods", type=_periods, default=2, metavar="N",
                   help="key periods to issue: the current one and N-1 following (default 2)")
    s.add_argument("--psk", type=hex_bytes, metavar="HEX",
                   help="the user's PSK with the KMS for REQUEST_KEY_PSK (default: a one-time random key)")
    add_json_option(s)
    s.set_defaults(func=run_ibake_issue)
    from .kms_server import DEFAULT_DATA_DIR

    pp = sub.add_parser("ibake-params", help="write the KMS server's MIKEY-IBAKE public parameters",
                        description="Write the Boneh-Franklin public parameters of the KMS database (made on first "
                        "use, like the server does) as an ibake_params.json for 'kms ibake-fetch --params'.")
    pp.add_argument("--data", default=DEFAULT_DATA_DIR, metavar="DIR", help="the KMS data directory")
    pp.add_argument("--db", metavar="URL", help="the KMS database URL (default: SQLite in --data)")
    pp.add_argument("--out", required=True, metavar="FILE", help="the public parameters file to write")
    add_json_option(pp)
    pp.set_defaults(func=run_ibake_params)
    f = sub.add_parser("ibake-fetch", help="get a user's MIKEY-IBAKE K_PRs from a KMS server (REQUEST_KEY_PSK/PKE)",
                       description="REQUEST_KEY_PSK or REQUEST_KEY_PKE (RFC 6267 §4.2.1) to the KMS server's MIKEY "
                       "route; the K_PRs of REQUEST_KEY_RESP, checked against --params, go to the key file of "
                       "'--mode ibake --keys' (mode 0600). PSK: the user's 'kms ticket-user add' PSK. PKE: the "
                       "envelope key encrypted to the KMS certificate, the request signed with the user's "
                       "certificate (its subjectAltName binds --uri; the server trusts it with --ibake-ca).")
    f.add_argument("--kms", required=True, metavar="URL", help="the KMS server (http(s)://host:port)")
    f.add_argument("--uri", required=True, metavar="URI", help="the user's identity (IDRi)")
    f.add_argument("--psk-file", metavar="FILE", help="REQUEST_KEY_PSK: the user's PSK with the KMS (hex)")
    f.add_argument("--psk-id", metavar="ID", help="the PSK id (IDRpsk) when the user has several")
    f.add_argument("--cert", metavar="PEM", help="REQUEST_KEY_PKE: the user's certificate (SIGN, CERT payloads)")
    f.add_argument("--key", metavar="PEM", help="REQUEST_KEY_PKE: the user's RSA private key")
    f.add_argument("--kms-cert", metavar="PEM",
                   help="REQUEST_KEY_PKE: the KMS's RSA certificate (the envelope key is encrypted to it; a CHASH "
                   "SHA-256 names it)")
    f.add_argument("--params", required=True, metavar="FILE", help="the KMS's public parameters ('kms ibake-params')")
    f.add_argument("--out", required=True, metavar="FILE", help="the user key file to write (mode 0600)")
    f.add_argument("--ca", metavar="FILE", help="CA certificates for an https:// KMS")
    f.add_argument("--now", type=unix_seconds, metavar="UNIX_SECONDS", help="the request time (default: the clock)")
    add_json_option(f)
    f.set_defaults(func=run_ibake_fetch)
