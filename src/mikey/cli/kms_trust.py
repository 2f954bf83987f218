"""``mikey kms trust add|list|remove``: the other KMSs a KMS's clients should trust (TS 33.180 §D.3.4).

``trust add --data DIR [--db URL] FILE`` trusts the KmsCertificate in FILE: another KMS's KmsInit
response (its ``init`` answer, or ``kms init``'s ``kms_init.xml``) or a bare KmsCertificate.  The
certificate is validated (namespace, required elements, Z and KPAK points on their curves; this
KMS's own URI is refused) and replaces the one stored for the same KMS URI.  ``trust list`` prints
the trusted KMSs and the cache number as JSON; ``trust remove URI`` stops trusting one.  Every change
increments the KmsCertCache number ``certcache`` serves and is audited (actor ``cli``); running
servers on the same database serve it from their next request (the admin route
``POST …/admin/trusted-kms`` does the same over HTTP).  Bad input: exit 2, one line, nothing stored.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import KeyMaterialError, MikeyError
from ..kms.xml import MAX_KMS_XML_BYTES, read_kms_certificate
from .common import UsageError
from .kms_server import DEFAULT_DATA_DIR, open_store

__all__ = ["register_trust"]


def _read(path: str) -> bytes:
    try:
        with Path(path).open("rb") as f:
            data = f.read(MAX_KMS_XML_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_KMS_XML_BYTES:
        raise UsageError(f"{path}: larger than {MAX_KMS_XML_BYTES} bytes")
    return data


def run_add(args: argparse.Namespace) -> int:
    try:
        info = read_kms_certificate(_read(args.file))
    except KeyMaterialError as exc:
        raise UsageError(f"{args.file}: not a valid KmsCertificate: {exc.message}") from None
    with open_store(args.data, args.db) as store:
        try:
            if not store.has_community():
                raise UsageError(f"--data: the KMS database of {args.data} holds no community yet (start 'serve')")
            outcome, cache_num = store.add_trusted_kms(info, actor="cli")
        except MikeyError as exc:
            raise UsageError(str(exc)) from None
    print(f"{outcome} {info.kms_uri} (cache number {cache_num})", flush=True)
    return 0


def run_list(args: argparse.Namespace) -> int:
    with open_store(args.data, args.db) as store:
        try:
            cache_num, trusted = store.trusted_kms_cache()
        except MikeyError as exc:
            raise UsageError(str(exc)) from None
    rows = [{"kms_uri": t.kms_uri, "user_id_format": int(t.certificate.public.id_scheme),
             "key_period": t.certificate.public.key_period,
             "key_period_offset": t.certificate.public.key_period_offset,
             "kpak": t.certificate.public.kpak.hex(), "z": t.certificate.public.z.hex(),
             "domains": list(t.certificate.domains), "added_at": t.added_at, "added_by": t.added_by}
            for t in trusted]
    print(json.dumps({"cache_num": cache_num, "trusted_kms": rows}, indent=2))
    return 0


def run_remove(args: argparse.Namespace) -> int:
    with open_store(args.data, args.db) as store:
        try:
            cache_num = store.remove_trusted_kms(args.uri, actor="cli")
        except MikeyError as exc:
            raise UsageError(str(exc)) from None
    if cache_num is None:
        print(f"mikey: {args.uri!r} is not trusted (nothing changed)", file=sys.stderr)
        return 1
    print(f"removed {args.uri} (cache number {cache_num})", flush=True)
    return 0


def _store_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=DEFAULT_DATA_DIR, metavar="DIR", help=f"data directory (default {DEFAULT_DATA_DIR})")
    p.add_argument("--db", metavar="URL", help="database URL (default: DIR/kms.sqlite3)")


def register_trust(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``trust`` to the ``mikey kms`` sub-commands."""
    t = sub.add_parser("trust", help="manage the other KMSs whose certificates certcache serves (TS 33.180 §D.3.4)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    tsub = t.add_subparsers(dest="trust_command", metavar="COMMAND", required=True)
    a = tsub.add_parser("add", help="trust another KMS's KmsCertificate (from its KmsInit response)")
    _store_options(a)
    a.add_argument("file", metavar="FILE", help="the other KMS's KmsInit response XML (or a KmsCertificate)")
    a.set_defaults(func=run_add)
    ls = tsub.add_parser("list", help="list the trusted KMSs and the cache number, JSON")
    _store_options(ls)
    ls.set_defaults(func=run_list)
    r = tsub.add_parser("remove", help="stop trusting a KMS")
    _store_options(r)
    r.add_argument("uri", metavar="URI", help="the KMS URI")
    r.set_defaults(func=run_remove)
