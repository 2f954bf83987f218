"""``mikey kms serve --workers N``: N forked processes serving one socket (issue 9 "Speed").

Linux only: the tests read the process tree from ``/proc``.
"""

from __future__ import annotations

import os
import pathlib
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from mikey.kms.auth import DevIssuer
from mikey.kms.xml import read_kms_init, read_kms_key_prov

pytestmark = pytest.mark.skipif(not pathlib.Path("/proc/self/task").is_dir(), reason="needs Linux /proc")

ALICE = "sip:alice@example.org"
BOB = "sip:bob@example.org"
API = "/keymanagement/identity/v1/"
SERVING = re.compile(r"serving http://127\.0\.0\.1:([0-9]{1,5})")


def children(pid: int) -> list[int]:
    """The child processes of *pid* (its main thread's, which forks the workers)."""
    return [int(c) for c in pathlib.Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def running(pid: int) -> bool:
    """Whether *pid* exists and is not a zombie (an orphan's zombie may wait for a reaper)."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_until_gone(pids: list[int], limit: float = 30.0) -> list[int]:
    """The processes of *pids* still running after at most *limit* seconds."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and any(running(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if running(p)]


class Server:
    """``mikey kms serve --workers N --dev-tokens`` on a fresh data directory with ALICE and BOB registered."""

    def __init__(self, tmp_path: pathlib.Path, workers: int) -> None:
        self.data = tmp_path / "kms"
        added = subprocess.run([sys.executable, "-m", "mikey", "kms", "user", "add", "--data", str(self.data),
                                ALICE, BOB], capture_output=True, text=True, timeout=60)
        assert added.returncode == 0, added.stderr
        self.issuer = DevIssuer.load_or_create(self.data)
        self.log_path = tmp_path / "kms.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen([sys.executable, "-m", "mikey", "kms", "serve", "--data", str(self.data),
                                      "--port", "0", "--dev-tokens", "--workers", str(workers)],
                                     stdout=subprocess.PIPE, stderr=self._log, text=True)
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline().rstrip("\n")
        match = SERVING.fullmatch(first)
        if match is None:
            self.stop()
            raise AssertionError((first, self.log()))
        self.url = first.removeprefix("serving ")
        self.workers = children(self.proc.pid)  # forked before the first line

    def log(self) -> str:
        return self.log_path.read_text()

    def keyprov(self, user: str) -> tuple[int, bytes]:
        """POST keyprov/<user> on a new connection with the user's token."""
        return self.post("keyprov/" + quote(user, safe=""), user)

    def post(self, route: str, user: str) -> tuple[int, bytes]:
        req = urllib.request.Request(self.url + API + route, data=b"", method="POST",
                                     headers={"Authorization": f"Bearer {self.issuer.issue(user, now=time.time())}"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def stop(self) -> None:
        for pid in [self.proc.pid, *getattr(self, "workers", [])]:
            if running(pid):
                os.kill(pid, signal.SIGCONT)
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in getattr(self, "workers", []):
            if running(pid):
                os.kill(pid, signal.SIGKILL)
        self._log.close()


@pytest.fixture
def server(tmp_path: pathlib.Path) -> Iterator[Server]:
    kms = Server(tmp_path, workers=2)
    try:
        yield kms
    finally:
        kms.stop()


def test_every_worker_serves_the_shared_socket_and_database(server: Server) -> None:
    assert len(server.workers) == 2 and all(running(p) for p in server.workers)
    assert server.proc.pid not in server.workers
    status, body = server.post("init", ALICE)
    assert status == 200, body
    community = read_kms_init(body)
    answers = []
    for serving, stopped in (server.workers, server.workers[::-1]):
        os.kill(stopped, signal.SIGSTOP)  # a stopped worker accepts nothing: only *serving* can answer
        try:
            status, body = server.keyprov(ALICE)
            assert status == 200, body
            answers.append(read_kms_key_prov(body, community)[0])
            assert running(serving)
        finally:
            os.kill(stopped, signal.SIGCONT)
    # Both workers returned the one key set the database holds for ALICE's key period.
    first, second = answers
    assert (first.uri, first.period_no) == (second.uri, second.period_no) == (ALICE, first.period_no)
    assert (first.ssk, first.rsk, first.pvt) == (second.ssk, second.rsk, second.pvt)
    status, body = server.keyprov(BOB)
    assert status == 200 and read_kms_key_prov(body, community)[0].uri == BOB


def test_sigterm_stops_every_worker(server: Server) -> None:
    assert server.keyprov(ALICE)[0] == 200
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=60) == 0
    assert wait_until_gone(server.workers) == []
    assert "Traceback" not in server.log()


def test_kill_9_of_the_parent_leaves_no_worker(server: Server) -> None:
    assert server.keyprov(ALICE)[0] == 200
    server.proc.kill()
    server.proc.wait(timeout=30)
    assert wait_until_gone(server.workers) == []  # PR_SET_PDEATHSIG: each worker got SIGTERM


def test_a_worker_that_dies_stops_the_server(server: Server) -> None:
    victim, other = server.workers
    os.kill(victim, signal.SIGKILL)
    assert server.proc.wait(timeout=60) == 1
    assert wait_until_gone([other]) == []
    assert f"KMS worker {victim} ended on signal SIGKILL; stopping the other workers" in server.log()
