"""``mikey kms serve`` under faults and load (issue 9, "Bad input and faults"): real server processes.

* Concurrency: two ``mikey kms serve`` processes on one PostgreSQL database (and one ``--data``
  directory: the at-rest key and the development token key) answer many concurrent keyprov
  requests for the same users and periods: one key set per (user, period) is stored, and every
  response for a user carries the same key material.
* Crash safety: ``kill -9`` of a server in the middle of a burst of first provisionings, then a
  restart on the same database (SQLite and PostgreSQL): every key set whose response arrived is
  stored, decrypts and is re-provisioned unchanged; no row is half-written; the server serves again.
* A second host (its own data directory) on the shared database: refuses to start with another
  at-rest key; with the shared one (``MIKEY_KMS_AT_REST_KEY``) it serves the same keys.

PostgreSQL is at ``MIKEY_TEST_POSTGRES_URL`` (default ``postgresql://127.0.0.1:5432/test``); each
test gets a throwaway database, dropped afterwards.  Skipped without a server; with ``CI`` set the
module fails instead (``.ci/run`` starts PostgreSQL).  No assertion depends on speed.
"""

from __future__ import annotations

import http.client
import os
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from pgdb import needs_postgres, throwaway_database

from mikey.identities import ntp_from_unix
from mikey.keystore import IdentityKeys, KmsPublicKeys
from mikey.kms.auth import DevIssuer
from mikey.kms.store import AtRestKey, KmsStore, database_url
from mikey.kms.xml import read_kms_init, read_kms_key_prov

API = "/keymanagement/identity/v1/"
START_TIMEOUT = 120.0  # a first start generates the community; generous for a loaded 2-core machine
REQUEST_TIMEOUT = 120.0


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A throwaway PostgreSQL database for one test (a ``postgresql://`` URL), dropped afterwards."""
    for url in throwaway_database():
        yield url.set(drivername="postgresql").render_as_string(False)


# -- servers and requests ---------------------------------------------------------------------------


def mikey(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mikey", *args], capture_output=True, text=True, timeout=180)


@dataclass
class Server:
    """One ``mikey kms serve`` process: its base URL, its stderr file."""

    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _launch(data: Path, db: str | None, log: Path) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "mikey", "kms", "serve", "--data", str(data), "--port", "0", "--dev-tokens"]
    if db is not None:
        args += ["--db", db]
    with log.open("ab") as err:
        return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err)


def _first_line(proc: subprocess.Popen[bytes], log: Path) -> str:
    """The server's first stdout line (``serving http://HOST:PORT``), waited for in a thread with a timeout."""
    out: list[bytes] = []
    stream: IO[bytes] | None = proc.stdout
    assert stream is not None
    reader = threading.Thread(target=lambda: out.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(START_TIMEOUT)
    line = out[0].decode().strip() if out else ""
    if not line.startswith("serving http://127.0.0.1:"):
        proc.kill()
        proc.wait()
        pytest.fail(f"the server did not start: first line {line!r}; stderr: {log.read_text(errors='replace')[-3000:]}")
    return line.removeprefix("serving ")


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[Server]]:
    """The servers a test starts (every one stopped afterwards)."""
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


def start(servers: list[Server], data: Path, db: str | None, count: int = 1) -> list[Server]:
    """*count* servers on *data*/*db*, launched at once (concurrent first starts share one community)."""
    launched: list[tuple[subprocess.Popen[bytes], Path]] = []
    for _ in range(count):
        log = data.parent / f"server{len(servers) + len(launched)}.log"
        launched.append((_launch(data, db, log), log))
    new = [Server(proc, _first_line(proc, log), log) for proc, log in launched]
    servers.extend(new)
    return new


def post(url: str, token: str) -> tuple[int, bytes]:
    """POST with an empty body and the bearer token (as deployed clients do); raises OSError if no answer."""
    req = urllib.request.Request(url, data=b"", method="POST",
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/xml"})
    try:
        with urllib.request.urlopen(req, timeout=REQUEST_TIMEOUT) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except http.client.HTTPException as e:  # e.g. IncompleteRead: the server died mid-answer
        raise ConnectionError(f"truncated answer: {e!r}") from e


def keyprov_url(server: Server, user: str, ntp_time: int | None = None) -> str:
    url = f"{server.url}{API}keyprov/{quote(user, safe='')}"
    return url if ntp_time is None else f"{url}/{ntp_time:016x}"


def material(keys: IdentityKeys) -> tuple[str, int | None, bytes, bytes, bytes, bytes]:
    return keys.uri, keys.period_no, keys.identifier, keys.ssk, keys.pvt, keys.rsk


def register(data: Path, db: str | None, users: list[str]) -> None:
    r = mikey("kms", "user", "add", "--data", str(data), *(["--db", db] if db else []), *users)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("added ") == len(users)


def community(server: Server, token: str) -> KmsPublicKeys:
    status, body = post(server.url + API + "init", token)
    assert status == 200, body[:500]
    return read_kms_init(body)


def open_store(data: Path, db: str | None) -> KmsStore:
    return KmsStore(db or f"sqlite:///{data / 'kms.sqlite3'}", AtRestKey.from_file(data / "at_rest.key"))


# -- concurrency: two servers, one PostgreSQL database -------------------------------------------------


@needs_postgres
def test_two_servers_on_one_postgres_issue_one_key_set_per_user_and_period(
    tmp_path: Path, pg_url: str, servers: list[Server]
) -> None:
    data = tmp_path / "kms"
    users = [f"sip:racer{i}@example.org" for i in range(4)]
    register(data, pg_url, users)  # creates the at-rest key and the schema; the servers then race for the community
    a, b = start(servers, data, pg_url, count=2)
    issuer = DevIssuer.load_or_create(data)
    tokens = {u: issuer.issue(u, ttl=3600, now=time.time()) for u in users}
    kms = community(a, tokens[users[0]])
    assert community(b, tokens[users[0]]) == kms  # both started on one community (KPAK, Z) though launched at once

    # For every (user, current period) and (user, next period): 8 requests alternating between the two
    # servers, queued back to back, so that 16 threads race on the first issuing of each key set.
    next_ntp = ntp_from_unix(time.time() + kms.key_period)
    jobs = [(user, keyprov_url((a, b)[(rep + with_next) % 2], user, next_ntp if with_next else None))
            for user in users for with_next in (0, 1) for rep in range(8)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(lambda job: (job[0], *post(job[1], tokens[job[0]])), jobs))

    seen: dict[tuple[str, int | None], set[tuple[str, int | None, bytes, bytes, bytes, bytes]]] = defaultdict(set)
    for user, status, body in answers:
        assert status == 200, body[:500]
        for keys in read_kms_key_prov(body, kms):
            assert keys.uri == user
            seen[keys.uri, keys.period_no].add(material(keys))
    assert len(seen) == 2 * len(users)  # current and next period of each user
    assert {len(variants) for variants in seen.values()} == {1}, "two key sets for one (user, period)"

    engine = sa.create_engine(database_url(pg_url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT user_uri, period_no, count(*) FROM kms_key_sets "
                                        "GROUP BY user_uri, period_no")).all()
            assert conn.execute(sa.text("SELECT count(*) FROM kms_community")).scalar_one() == 1
    finally:
        engine.dispose()
    assert {(r[0], r[1]): r[2] for r in rows} == dict.fromkeys(seen, 1)
    with open_store(data, pg_url) as store:
        for (user, period), [variant] in seen.items():
            assert period is not None
            stored = store.get_key_set(user, period)
            assert stored is not None and material(stored) == variant
            stored.validate()  # the RSK against Z, the SSK/PVT against KPAK
    assert a.proc.poll() is None and b.proc.poll() is None, a.stderr() + b.stderr()


# -- crash safety: kill -9 mid-burst, restart ---------------------------------------------------------

USERS = 200  # far more than are answered before the kill, so the kill lands mid-burst
KILL_AFTER = 12  # answers received before the server is killed
THREADS = 8


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=needs_postgres)])
def test_kill_9_mid_burst_keeps_every_answered_key_set(
    tmp_path: Path, backend: str, servers: list[Server], request: pytest.FixtureRequest
) -> None:
    data = tmp_path / "kms"
    db: str | None = request.getfixturevalue("pg_url") if backend == "postgresql" else None
    users = [f"sip:burst{i:03d}@example.org" for i in range(USERS)]
    register(data, db, users)
    [server] = start(servers, data, db)
    issuer = DevIssuer.load_or_create(data)
    tokens = {u: issuer.issue(u, ttl=3600, now=time.time()) for u in users}
    kms = community(server, tokens[users[0]])

    received: dict[str, bytes] = {}
    attempted: set[str] = set()
    refused: list[tuple[str, int, bytes]] = []
    lock = threading.Lock()
    enough = threading.Event()

    def burst(chunk: list[str]) -> None:
        for user in chunk:
            with lock:
                attempted.add(user)
            try:
                status, body = post(keyprov_url(server, user), tokens[user])
            except OSError:  # the server died before answering (reset, refused, truncated)
                continue
            with lock:
                if status == 200:
                    received[user] = body
                    if len(received) >= KILL_AFTER:
                        enough.set()
                else:
                    refused.append((user, status, body[:300]))

    threads = [threading.Thread(target=burst, args=(users[i::THREADS],), daemon=True) for i in range(THREADS)]
    for t in threads:
        t.start()
    assert enough.wait(REQUEST_TIMEOUT), f"only {len(received)} answers; refused {refused[:3]}; {server.stderr()}"
    server.proc.kill()  # SIGKILL: no shutdown handler runs
    server.proc.wait()
    for t in threads:
        t.join(REQUEST_TIMEOUT)
        assert not t.is_alive()
    assert refused == []
    assert KILL_AFTER <= len(received) < USERS, "the kill did not land mid-burst"

    [again] = start(servers, data, db)  # restart on the same database and data directory
    if backend == "sqlite":
        with sqlite3.connect(data / "kms.sqlite3") as conn:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    with open_store(data, db) as store:
        records = store.list_key_sets()
        stored_users = {r.user_uri for r in records}
        assert len(records) == len(stored_users)  # one key set per user: the burst asked for one period
        # Every answered key set is stored; a stored one without an answer was in flight at the kill.
        assert set(received) <= stored_users <= attempted
        for record in records:  # every row is whole: it decrypts and its keys are valid for the community
            keys = store.get_key_set(record.user_uri, record.period_no)
            assert keys is not None
            keys.validate()
        for user, body in received.items():
            [answered] = read_kms_key_prov(body, kms)
            assert answered.period_no is not None
            stored = store.get_key_set(user, answered.period_no)
            assert stored is not None and material(stored) == material(answered)
            status, again_body = post(keyprov_url(again, user), tokens[user])  # re-provisioning: the same keys
            assert status == 200 and [material(k) for k in read_kms_key_prov(again_body, kms)] == [material(answered)]
        # The restarted server serves again: a user never provisioned before gets a fresh, stored key set.
        fresh = next(u for u in reversed(users) if u not in stored_users)
        status, body = post(keyprov_url(again, fresh), tokens[fresh])
        assert status == 200, body[:500]
        [issued] = read_kms_key_prov(body, kms)
        assert issued.period_no is not None
        issued.validate()
        stored = store.get_key_set(fresh, issued.period_no)
        assert stored is not None and material(stored) == material(issued)
        assert len(store.list_key_sets()) == len(records) + 1
    assert again.proc.poll() is None, again.stderr()


# -- a second host: its own data directory, the shared at-rest key ---------------------------------------


@needs_postgres
def test_second_host_needs_the_shared_at_rest_key(tmp_path: Path, pg_url: str, servers: list[Server]) -> None:
    """Another instance on the shared database serves the same community only with the same at-rest key."""
    first = tmp_path / "host1"
    [a] = start(servers, first, pg_url)
    stranger = mikey("kms", "serve", "--data", str(tmp_path / "host2"), "--db", pg_url, "--port", "0", "--dev-tokens")
    assert stranger.returncode == 2 and stranger.stdout == ""
    assert "cannot decrypt the stored KSAK: wrong at-rest key" in stranger.stderr and "Traceback" not in stranger.stderr
    second = tmp_path / "host3"
    second.mkdir(mode=0o700)
    # The same development issuer on both hosts (a real deployment points both at one identity server).
    for name in ("dev_token_key.pem", "dev_token_jwks.json"):
        (second / name).write_bytes((first / name).read_bytes())
        (second / name).chmod(0o600)
    key = (first / "at_rest.key").read_text().strip()
    log = tmp_path / "host3.log"
    with log.open("ab") as err:
        proc = subprocess.Popen([sys.executable, "-m", "mikey", "kms", "serve", "--data", str(second), "--db", pg_url,
                                 "--port", "0", "--dev-tokens"], stdout=subprocess.PIPE, stderr=err,
                                env={**os.environ, "MIKEY_KMS_AT_REST_KEY": key})
    b = Server(proc, _first_line(proc, log), log)
    servers.append(b)
    assert not (second / "at_rest.key").exists()  # the key came from the environment; no file was made
    user = "sip:roamer@example.org"
    register(first, pg_url, [user])
    token = DevIssuer.load_or_create(first).issue(user, ttl=600, now=time.time())
    kms = community(a, token)
    assert community(b, token) == kms
    status_a, body_a = post(keyprov_url(a, user), token)
    status_b, body_b = post(keyprov_url(b, user), token)
    assert status_a == status_b == 200
    assert [material(k) for k in read_kms_key_prov(body_a, kms)] == [material(k) for k in read_kms_key_prov(body_b, kms)]
