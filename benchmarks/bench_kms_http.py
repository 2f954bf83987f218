"""Key provisioning through the real ``mikey kms serve`` (3GPP TS 33.180 §D.2; issue 9 "Speed").

Run:  PYTHONPATH=src python benchmarks/bench_kms_http.py [--users N] [--concurrency C]
          [--postgres [URL]] [--serve-arg=--workers=2 ...] [--profile] [--quick] [--json]

Starts ``mikey kms serve --port 0 --dev-tokens`` on a fresh data directory (SQLite; with
``--postgres`` also on a throwaway PostgreSQL database, dropped afterwards), registers the users,
and drives it with C client threads, each on its own keep-alive HTTP/1.1 connection, sending
POSTs with an empty body and the user's bearer token (ES256 JWT), as deployed clients do.
Four phases per database:

* ``issue``: ``keyprov/<user>``, each a user's first provisioning, so the server generates a
  fresh key set (RSK, RFC 6508 §6.1.1; SSK/PVT, RFC 6507 §5.1.1) and commits it;
* ``fetch``: what ``mikey kms fetch`` sends for a new user: ``init``, ``keyprov/<user>`` and
  ``keyprov/<user>/<NTP time in the next period>`` (two fresh key sets per user);
* ``cached``: the ``issue`` users again (the stored key set is read and decrypted);
* ``init``: KmsInit (no key set: HTTP, JWT and XML, and the community read).

It prints requests/s, p50/p99 latency and the server's CPU time per request (from
``/proc/PID/stat``), next to the cost of key generation alone
(:func:`mikey.kms.issue.issue_user_keys`, timed in this process in the same run), and the
ratio of served new key sets per second to ``cores / keygen_time`` (the issue's target: 0.7).
On a shared machine that ratio moves with the load, so the CPU-bound ratio is printed too:
key generation CPU time over the server's CPU time per new key set, the ratio the server
would reach with every core to itself and perfect scaling over the cores.
The load generator runs on the same machine: its CPU time is printed too.
``--serve-arg=--workers=2`` runs two server processes (the CPU time of all of them is counted),
``--serve-arg=--threads=N`` sets the worker threads per process, ``--concurrency 1`` shows the
latency of one client alone.

``--profile`` samples the server with ``py-spy record --gil`` (if installed) during each phase
and prints where the server's Python time goes per request: key generation, database, JWT,
XML, thread-pool hand-off, HTTP/ASGI.
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

from mikey.identities import ntp_from_unix
from mikey.kms import generate_community, issue_user_keys
from mikey.kms.auth import DevIssuer

API = "/keymanagement/identity/v1/"
TARGET = 0.7
KEY_PERIOD = 2_592_000  # the key period of a community 'mikey kms serve' creates (30 days)


@dataclass
class Phase:
    """One measured phase: throughput, latency and CPU cost."""

    database: str
    phase: str
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    server_cpu_ms_per_request: float | None
    client_cpu_ms_per_request: float
    key_sets: int = 0  # fresh key sets issued in the phase
    profile_ms_per_request: dict[str, float] | None = None


def keygen_seconds(count: int) -> tuple[float, float]:
    """Seconds of one user key set (SSK/PVT + RSK) for fresh users: (wall, CPU), best of three batches."""
    community = generate_community("kms.bench.example.org")
    issue_user_keys(community, "sip:warmup@example.org", period_no=1)  # builds the per-process tables
    wall = cpu = float("inf")
    for batch in range(3):
        start, start_cpu = time.perf_counter(), time.process_time()
        for i in range(count):
            issue_user_keys(community, f"sip:keygen{batch}-{i}@example.org", period_no=1)
        wall = min(wall, (time.perf_counter() - start) / count)
        cpu = min(cpu, (time.process_time() - start_cpu) / count)
    return wall, cpu


def _cpu_seconds(pid: int) -> float | None:
    """utime + stime of process *pid* and its reaped children (Linux ``/proc``), else ``None``."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def _tree_cpu_seconds(pid: int) -> float | None:
    """CPU seconds of *pid* and its live child processes (a multi-worker server)."""
    total = _cpu_seconds(pid)
    if total is None:
        return None
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    for child in children:
        total += _cpu_seconds(int(child)) or 0.0
    return total


@contextmanager
def kms_server(data: Path, db: str | None, extra: Sequence[str]) -> Iterator[tuple[str, int]]:
    """A running ``mikey kms serve`` on *data* (and *db*): yields its URL and PID."""
    args = [sys.executable, "-m", "mikey", "kms", "serve", "--data", str(data), "--port", "0", "--dev-tokens",
            *(["--db", db] if db else []), *extra]
    with (data.parent / "server.log").open("ab") as log:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode().strip()
        if not line.startswith("serving http://"):
            raise SystemExit(f"the server did not start ({line!r}): {(data.parent / 'server.log').read_text()[-2000:]}")
        yield line.removeprefix("serving "), proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


Job = Sequence[tuple[str, str]]  # requests (path, bearer token) one client sends in order


def drive(url: str, jobs: Sequence[Job], concurrency: int) -> tuple[float, list[float]]:
    """Run *jobs* from *concurrency* keep-alive connections, each POST with an empty body; (seconds, latencies)."""
    parts = urlsplit(url)
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    failures: list[str] = []
    barrier = threading.Barrier(concurrency + 1)

    def client(index: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=300)
        mine = jobs[index::concurrency]
        barrier.wait()
        for path, token in (request for job in mine for request in job):
            start = time.perf_counter()
            conn.request("POST", path, body=b"", headers={"Authorization": f"Bearer {token}",
                                                          "Content-Type": "application/xml"})
            response = conn.getresponse()
            body = response.read()
            latencies[index].append(time.perf_counter() - start)
            if response.status != 200:
                failures.append(f"{path}: HTTP {response.status}: {body[:200]!r}")
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    if failures:
        raise SystemExit(f"{len(failures)} requests failed, e.g. {failures[0]}")
    return seconds, [x for per in latencies for x in per]


#: py-spy sampling rate (samples per second of the thread holding the GIL).
PROFILE_RATE = 250
#: Where a sampled stack's time is charged: the first category one of whose markers is in the stack.
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("key generation", ("issue_user_keys",)),
    ("AES-GCM at rest", ("AtRestKey.seal", "AtRestKey.open")),
    ("database", ("mikey/kms/store.py", "sqlalchemy/", "psycopg")),
    ("JWT verification", ("mikey/kms/auth.py", "jwt/")),
    ("XML", ("mikey/kms/xml.py", "ElementTree", "_parse_body", "_error_xml")),
    ("core (other)", ("KmsCore",)),
    ("thread-pool hand-off", ("WorkerThread", "anyio/", "queue.py", "threading.py")),
)


def _category(stack: str) -> str:
    for name, markers in CATEGORIES:
        if any(m in stack for m in markers):
            return name
    return "HTTP/ASGI (uvicorn, Starlette, asyncio)"


@contextmanager
def profiled(pid: int, enabled: bool, requests: int) -> Iterator[dict[str, float]]:
    """While the block runs, ``py-spy record --gil`` samples *pid*; fills the dict with ms per request."""
    result: dict[str, float] = {}
    spy = shutil.which("py-spy") if enabled else None
    if spy is None:
        yield result
        return
    with tempfile.TemporaryDirectory(prefix="bench-kms-spy-") as tmp:
        out = Path(tmp) / "stacks.txt"
        proc = subprocess.Popen([spy, "record", "--pid", str(pid), "--gil", "--subprocesses", "--nonblocking",
                                 "--rate", str(PROFILE_RATE), "--format", "raw", "--output", str(out)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # py-spy attaches
        try:
            yield result
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)
        if out.exists():
            totals: collections.Counter[str] = collections.Counter()
            for line in out.read_text().splitlines():
                stack, _, count = line.rpartition(" ")
                if count.isdigit():
                    totals[_category(stack)] += int(count)
            for name, samples in totals.most_common():
                result[name] = samples / PROFILE_RATE / requests * 1e3


def measure(database: str, phase: str, url: str, pid: int, jobs: Sequence[Job], concurrency: int,
            profile: bool = False, key_sets: int = 0) -> Phase:
    requests = sum(len(job) for job in jobs)
    with profiled(pid, profile, requests) as breakdown:
        server_before, client_before = _tree_cpu_seconds(pid), time.process_time()
        seconds, latencies = drive(url, jobs, concurrency)
        server_after, client_after = _tree_cpu_seconds(pid), time.process_time()
    latencies.sort()
    server_cpu = None if server_before is None or server_after is None else server_after - server_before
    return Phase(
        database=database,
        phase=phase,
        requests=requests,
        seconds=seconds,
        rps=requests / seconds,
        p50_ms=statistics.median(latencies) * 1e3,
        p99_ms=latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1e3,
        server_cpu_ms_per_request=None if server_cpu is None else server_cpu / requests * 1e3,
        client_cpu_ms_per_request=(client_after - client_before) / requests * 1e3,
        key_sets=key_sets,
        profile_ms_per_request=breakdown or None,
    )


def run_database(database: str, db: str | None, users: int, concurrency: int, extra: Sequence[str],
                 profile: bool = False) -> list[Phase]:
    """The four phases on one database (a fresh data directory)."""
    with tempfile.TemporaryDirectory(prefix="bench-kms-") as tmp:
        data = Path(tmp) / "kms"
        uris = [f"sip:bench{i:05d}@example.org" for i in range(users)]
        fetchers = [f"sip:fetch{i:05d}@example.org" for i in range(users)]
        warm = [f"sip:warm{i:03d}@example.org" for i in range(concurrency)]
        added = subprocess.run([sys.executable, "-m", "mikey", "kms", "user", "add", "--data", str(data),
                                *(["--db", db] if db else []), *warm, *uris, *fetchers],
                               capture_output=True, text=True)
        if added.returncode != 0:
            raise SystemExit(f"mikey kms user add failed: {added.stderr}")
        with kms_server(data, db, extra) as (url, pid):
            issuer = DevIssuer.load_or_create(data)
            now = time.time()
            tokens = {u: issuer.issue(u, ttl=3600, now=now) for u in [*warm, *uris, *fetchers]}
            # TS 33.180 §D.2.1 keyprov/<user>/<NTP time>: a time in the next key period.
            next_period = f"{ntp_from_unix(now + KEY_PERIOD):016x}"

            def keyprov(u: str) -> tuple[str, str]:
                return API + "keyprov/" + quote(u, safe=""), tokens[u]

            def fetch(u: str) -> Job:  # what 'mikey kms fetch' sends: init, keyprov, keyprov of the next period
                path, token = keyprov(u)
                return [(API + "init", token), (path, token), (f"{path}/{next_period}", token)]

            drive(url, [[keyprov(u)] for u in warm], concurrency)  # connections, thread pool, KMS tables warm
            return [
                measure(database, "issue", url, pid, [[keyprov(u)] for u in uris], concurrency, profile, users),
                measure(database, "fetch", url, pid, [fetch(u) for u in fetchers], concurrency, profile, 2 * users),
                measure(database, "cached", url, pid, [[keyprov(u)] for u in uris], concurrency, profile),
                measure(database, "init", url, pid, [[(API + "init", tokens[u])] for u in uris], concurrency,
                        profile),
            ]


@contextmanager
def throwaway_postgres(base: str) -> Iterator[str]:
    """A fresh database in the PostgreSQL server at *base* (dropped afterwards)."""
    import psycopg

    from mikey.kms.store import database_url

    admin = database_url(base).set(drivername="postgresql").render_as_string(False)
    name = f"mikey_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield database_url(base).set(drivername="postgresql", database=name).render_as_string(False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def report(phases: list[Phase], keygen: float, keygen_cpu: float, cores: int, extra: Sequence[str],
           emit: Callable[[str], None] = print) -> None:
    ceiling = cores / keygen
    emit(f"key generation alone (RSK + SSK/PVT, issue_user_keys): {keygen * 1e3:.2f} ms "
         f"({keygen_cpu * 1e3:.2f} ms CPU) -> {cores} cores / keygen = {ceiling:.0f} key sets/s")
    emit(f"server: mikey kms serve {' '.join(extra)}".rstrip())
    emit(f"{'database':<10} {'phase':<7} {'requests':>8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
         f"{'srv CPU ms/req':>15} {'client CPU ms/req':>18}")
    for p in phases:
        cpu = "n/a" if p.server_cpu_ms_per_request is None else f"{p.server_cpu_ms_per_request:.2f}"
        emit(f"{p.database:<10} {p.phase:<7} {p.requests:>8} {p.rps:>8.1f} {p.p50_ms:>8.1f} {p.p99_ms:>8.1f} "
             f"{cpu:>15} {p.client_cpu_ms_per_request:>18.2f}")
    for p in phases:
        if p.profile_ms_per_request:
            total = sum(p.profile_ms_per_request.values())
            parts = ", ".join(f"{name} {ms:.2f}" for name, ms in p.profile_ms_per_request.items())
            emit(f"{p.database} {p.phase}: server Python time {total:.2f} ms/request (py-spy --gil): {parts}")
    for p in phases:
        if p.key_sets:
            rate = p.key_sets / p.seconds
            ratio = rate / ceiling
            verdict = "meets" if ratio >= TARGET else "below"
            emit(f"{p.database} {p.phase}: served {rate:.1f} new key sets/s / ({cores} / {keygen * 1e3:.2f} ms) = "
                 f"{ratio:.3f} ({verdict} the target {TARGET})")
            if p.server_cpu_ms_per_request:
                server_ms = p.server_cpu_ms_per_request * p.requests / p.key_sets
                emit(f"{p.database} {p.phase}: CPU-bound ratio keygen CPU / server CPU per new key set = "
                     f"{keygen_cpu * 1e3:.2f} / {server_ms:.2f} ms = {keygen_cpu * 1e3 / server_ms:.3f}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--users", type=int, default=600, help="fresh users per database (default 600)")
    parser.add_argument("--concurrency", type=int, default=16, help="client connections (default 16)")
    parser.add_argument("--postgres", nargs="?", const=os.environ.get("MIKEY_TEST_POSTGRES_URL",
                                                                      "postgresql://127.0.0.1:5432/test"),
                        metavar="URL", help="also run on a throwaway database of this PostgreSQL server")
    parser.add_argument("--no-sqlite", action="store_true", help="skip the SQLite run")
    parser.add_argument("--serve-arg", action="append", default=[], metavar="ARG",
                        help="extra argument for 'mikey kms serve' (repeatable), e.g. --serve-arg=--workers=2")
    parser.add_argument("--profile", action="store_true",
                        help="sample the server with py-spy (if installed) and break its time down per request")
    parser.add_argument("--quick", action="store_true", help="fewer users (a smoke run)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    users = max(args.concurrency, args.users // 5 if args.quick else args.users)
    cores = os.cpu_count() or 1
    keygen, keygen_cpu = keygen_seconds(20 if args.quick else 100)
    phases: list[Phase] = []
    if not args.no_sqlite:
        phases += run_database("sqlite", None, users, args.concurrency, args.serve_arg, args.profile)
    if args.postgres:
        with throwaway_postgres(args.postgres) as db:
            phases += run_database("postgresql", db, users, args.concurrency, args.serve_arg, args.profile)
    keygen_after, keygen_cpu_after = keygen_seconds(20 if args.quick else 100)  # the load may change meanwhile
    keygen, keygen_cpu = min(keygen, keygen_after), min(keygen_cpu, keygen_cpu_after)
    if args.profile and shutil.which("py-spy") is None:
        print("--profile: py-spy is not installed (pip install py-spy); no breakdown", file=sys.stderr)
    if args.json:
        cpu_ratios = {f"{p.database} {p.phase}": keygen_cpu * p.key_sets * 1e3 / (p.server_cpu_ms_per_request * p.requests)
                      for p in phases if p.key_sets and p.server_cpu_ms_per_request}
        print(json.dumps({"cores": cores, "keygen_ms": keygen * 1e3, "keygen_cpu_ms": keygen_cpu * 1e3,
                          "ceiling_per_s": cores / keygen, "cpu_bound_ratios": cpu_ratios,
                          "target": TARGET, "serve_args": args.serve_arg, "concurrency": args.concurrency,
                          "phases": [asdict(p) for p in phases],
                          "ratios": {f"{p.database} {p.phase}": p.key_sets / p.seconds / (cores / keygen)
                                     for p in phases if p.key_sets}},
                         indent=2))
    else:
        print(f"{cores} cores, {args.concurrency} client connections (keep-alive), {users} users per database")
        report(phases, keygen, keygen_cpu, cores, args.serve_arg)


if __name__ == "__main__":
    main()
