"""MIKEY-TICKET Ticket Request and Resolve through the real ``mikey kms serve`` (RFC 6043; issue 10 "Speed").

Run:  PYTHONPATH=src python benchmarks/bench_ticket_kms.py [--tickets N] [--concurrency C] [--json]

Starts ``mikey kms serve --port 0 --dev-tokens`` on a fresh data directory (SQLite), provisions
Alice's and Bob's PSKs through the admin route, and drives ``POST /keymanagement/mikey/v1`` with C
client threads, each on its own keep-alive HTTP/1.1 connection (``application/mikey`` bodies):

* ``request``: N REQUEST_INIT_PSK from Alice (each answered with a fresh base ticket, §4.2.1);
* ``resolve``: N RESOLVE_INIT_PSK from Bob, one per ticket (J = 0: each resolve is recorded in the
  database for reuse detection, §5.3, one committed row per request).

It prints requests/s and p50/p99 latency, next to the in-process costs timed in the same run: the
PSK Responder (one RFC 3830 I_MESSAGE), and Request and Resolve at the KMS core (``TicketKms``) over
the in-memory store and over the KMS database (:class:`~mikey.kms.ticket_role.DatabaseTicketStore`,
SQLite).  The issue's target: a PSK Resolve at the core within 2x of the PSK Responder.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from mikey.cli.demo_kms import DemoKms
from mikey.cli.mode_ticket import PLUGIN, provision_ticket_user, ticket_policy
from mikey.cli.speed import baseline_cases, measure
from mikey.kms.auth import DevIssuer
from mikey.kms.core import MIKEY_PATH
from mikey.kms.store import AtRestKey, KmsStore
from mikey.kms.ticket_role import TicketKmsRole
from mikey.modes.ticket import TicketInitiator, TicketRequester, TicketResponder
from mikey.replay import ReplayCache

ALICE, BOB = "sip:alice@bench.example", "sip:bob@bench.example"


def drive(url: str, bodies: Sequence[bytes], concurrency: int) -> tuple[float, list[float], list[bytes]]:
    """POST every body (C threads, keep-alive); wall time, latencies (s), answers in order."""
    parts = urlsplit(url)
    answers: list[bytes] = [b""] * len(bodies)
    latencies: list[float] = []
    lock = threading.Lock()
    cursor = iter(range(len(bodies)))

    def worker() -> None:
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
        while True:
            with lock:
                i = next(cursor, None)
            if i is None:
                break
            t0 = time.perf_counter()
            conn.request("POST", MIKEY_PATH, bodies[i], {"Content-Type": "application/mikey"})
            resp = conn.getresponse()
            data = resp.read()
            dt = time.perf_counter() - t0
            if resp.status != 200:
                raise SystemExit(f"HTTP {resp.status}: {data[:200]!r}")
            with lock:
                latencies.append(dt)
                answers[i] = data
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, latencies, answers


def summary(name: str, wall: float, latencies: list[float]) -> dict[str, float | str]:
    ordered = sorted(latencies)
    return {"phase": name, "requests": len(ordered), "per_second": len(ordered) / wall,
            "p50_ms": statistics.median(ordered) * 1e3, "p99_ms": ordered[max(0, int(len(ordered) * 0.99) - 1)] * 1e3}


def core_costs(tmp: Path, quick: bool) -> dict[str, float]:
    """In-process us/op: the PSK Responder, Request/Resolve at the core (memory store), Resolve on SQLite."""
    out = {"psk_responder_us": measure(baseline_cases({"psk-responder"})["psk-responder"], quick=quick)}
    rows: dict[str, Callable[[], object]] = {c.name: c.run for c in PLUGIN.speed_cases()}
    out["core_request_memory_us"] = measure(rows["TICKET KMS core: Request"], quick=quick)
    out["core_resolve_memory_us"] = measure(rows["TICKET KMS core: Resolve"], quick=quick)
    store = KmsStore(f"sqlite:///{tmp / 'core.sqlite3'}", AtRestKey.generate())
    psk_a, psk_b = os.urandom(16), os.urandom(16)
    store.add_ticket_user(ALICE.encode(), psk_a, key_id=b"alice")
    store.add_ticket_user(BOB.encode(), psk_b, key_id=b"bob")
    now = time.time()
    role = TicketKmsRole.on_store(store, b"kms.bench.example")
    req = TicketRequester(psk_a, ticket_policy([BOB], "DEFHJNO", 3600, now), id_i=ALICE.encode(), psk_id=b"alice")
    grant = req.receive(role.handle(req.create_message(now), now) or b"", now)
    ti = TicketInitiator(grant, id_i=ALICE.encode(), id_r=BOB.encode()).create_message(now)
    resolve = TicketResponder(psk_b, id_r=BOB.encode(), psk_id=b"bob").receive(ti, now).resolve_init or b""

    def db_resolve() -> object:  # J = 1: a lookup of the party (the TPK is cached), no write
        role.kms.replay_cache = ReplayCache()  # the same RESOLVE_INIT is new each time
        return role.handle(resolve, now)

    out["core_resolve_sqlite_us"] = measure(db_resolve, quick=quick)
    out["resolve_memory_over_psk_responder"] = out["core_resolve_memory_us"] / out["psk_responder_us"]
    out["resolve_sqlite_over_psk_responder"] = out["core_resolve_sqlite_us"] / out["psk_responder_us"]
    store.close()
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tickets", type=int, default=400)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    report: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ticket-") as tmp_name:
        tmp = Path(tmp_name)
        report["core"] = core_costs(tmp, args.quick)
        with DemoKms(tmp / "kms") as kms:
            assert kms.url is not None
            token = DevIssuer.load_or_create(kms.data).issue("bench-admin", admin=True, now=time.time())
            psk_a, psk_b = os.urandom(16), os.urandom(16)
            provision_ticket_user(kms.url, token, ALICE, psk_a, key_id="alice")
            provision_ticket_user(kms.url, token, BOB, psk_b, key_id="bob")
            now = time.time()
            requesters = [TicketRequester(psk_a, ticket_policy([BOB], "DEFHNO", 3600, now), id_i=ALICE.encode(),
                                          psk_id=b"alice") for _ in range(args.tickets)]
            wall, lat, answers = drive(kms.url, [r.create_message(now) for r in requesters], args.concurrency)
            phases = [summary("request", wall, lat)]
            now = time.time()
            resolves = []
            for r, a in zip(requesters, answers, strict=True):
                ti = TicketInitiator(r.receive(a, now), id_i=ALICE.encode(), id_r=BOB.encode()).create_message(now)
                resolves.append(TicketResponder(psk_b, id_r=BOB.encode(), psk_id=b"bob").receive(ti, now).resolve_init
                                or b"")
            wall, lat, _ = drive(kms.url, resolves, args.concurrency)
            phases.append(summary("resolve", wall, lat))
            report["http"] = phases
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    core = report["core"]
    assert isinstance(core, dict)
    print(f"in process (us/op): PSK Responder {core['psk_responder_us']:.0f}; KMS core Request "
          f"{core['core_request_memory_us']:.0f}, Resolve {core['core_resolve_memory_us']:.0f} (memory store, "
          f"{core['resolve_memory_over_psk_responder']:.2f}x the PSK Responder), Resolve on SQLite "
          f"{core['core_resolve_sqlite_us']:.0f} ({core['resolve_sqlite_over_psk_responder']:.2f}x)")
    for ph in report["http"]:  # type: ignore[attr-defined]
        print(f"HTTP {ph['phase']:<8} {ph['requests']} requests, {args.concurrency} clients: {ph['per_second']:.0f}/s, "
              f"p50 {ph['p50_ms']:.1f} ms, p99 {ph['p99_ms']:.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
