"""The KMS of ``mikey demo --mode sakke``: a ``mikey kms serve`` child process (issue 9 §5).

:class:`DemoKms` starts the TS 33.180 KMS server on loopback (``--port 0``, a throw-away
``--data`` directory holding its SQLite database and development token key,
``--dev-tokens``), registers users with ``mikey kms user add`` while it serves, and issues
each a development bearer token; :func:`fetch_demo_keystores` then fetches the users'
keystores over HTTP (``init`` + ``keyprov``, the current and the next key period, TS 33.180
§D.2) exactly as ``mikey kms fetch`` does, from this server or from one already running.
Leaving the ``with`` block stops the server.  Tokens and key material are never printed.
"""

from __future__ import annotations

import os
import queue
import site
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Protocol, runtime_checkable

from ..errors import MikeyError
from ..keystore import SakkeKeystore

__all__ = ["DemoKms", "DemoKmsError", "KmsDemoPlugin", "FetchedKeys", "fetch_demo_keystores", "child_env"]

#: How long the server may take to print its first line, and a user registration to finish.
START_TIMEOUT = 60.0
#: The demo users' tokens live this long (seconds): the demo needs them for one fetch.
TOKEN_TTL = 600


class DemoKmsError(MikeyError):
    """The demo's KMS server did not start, refused a registration, or stopped."""

    kind = "kms"


@runtime_checkable
class KmsDemoPlugin(Protocol):
    """A mode plugin whose demo takes its users' keys from a KMS (MIKEY-SAKKE)."""

    def demo_kms_users(self) -> tuple[str, str]:
        """The URIs of the demo's Initiator and Responder, registered at the demo KMS."""
        ...

    def demo_credentials_from_kms(self, workdir: Path, fetched: Sequence[FetchedKeys]) -> dict[str, Any]:
        """The demo credentials (files under *workdir*) from the Initiator's and Responder's fetched keys."""
        ...


@dataclass(frozen=True)
class FetchedKeys:
    """One user's keystore as fetched from the KMS at ``kms_url``."""

    kms_url: str
    keystore: SakkeKeystore

    @property
    def period_numbers(self) -> list[int]:
        return self.keystore.period_numbers


def child_env() -> dict[str, str]:
    """The parent's environment; run from a source tree, that tree goes first on the children's path."""
    env = dict(os.environ)
    src = os.path.realpath(Path(__file__).resolve().parents[2])
    installed = {os.path.realpath(p) for p in (*site.getsitepackages(), site.getusersitepackages())}
    if src not in installed:
        env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _mikey(*args: str) -> list[str]:
    return [sys.executable, "-m", "mikey", *args]


def _first_line(stream: IO[str], out: queue.Queue[str | None]) -> None:
    out.put(stream.readline() or None)
    for _ in stream:  # keep draining so the server never blocks on a full pipe
        pass


class DemoKms:
    """``mikey kms serve --data DIR --port 0 --dev-tokens`` on 127.0.0.1, as a context manager."""

    def __init__(self, data: Path, *, timeout: float = START_TIMEOUT) -> None:
        self.data = Path(data)
        self.timeout = timeout
        self.url: str | None = None
        self.proc: subprocess.Popen[str] | None = None
        self.returncode: int | None = None
        self._stderr: IO[str] | None = None

    def __repr__(self) -> str:
        return f"DemoKms(url={self.url!r}, data={str(self.data)!r})"

    def __enter__(self) -> DemoKms:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        try:
            self._stderr.seek(0)
            return self._stderr.read().strip()[-1500:]
        except (OSError, ValueError):
            return ""

    def start(self) -> str:
        """Start the server and return its URL (the ``serving URL`` first line of its output)."""
        self._stderr = tempfile.TemporaryFile("w+", errors="replace")  # the server's log, shown if it fails
        self.proc = subprocess.Popen(
            _mikey("kms", "serve", "--data", str(self.data), "--host", "127.0.0.1", "--port", "0", "--dev-tokens"),
            stdout=subprocess.PIPE, stderr=self._stderr, stdin=subprocess.DEVNULL, text=True, env=child_env(),
        )
        if self.proc.stdout is None:  # Popen gives a pipe for stdout=PIPE; None would be a local bug
            raise DemoKmsError("the KMS server process has no standard output pipe")
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=_first_line, args=(self.proc.stdout, lines), daemon=True).start()
        try:
            first = lines.get(timeout=self.timeout)
        except queue.Empty:
            first = None
        if first is None or not first.startswith("serving http"):
            self.stop()
            tail = self._stderr_tail()
            self._close_log()
            raise DemoKmsError(f"the KMS server did not start: {tail or 'no output'}")
        self.url = first.split()[1]
        return self.url

    def add_users(self, uris: Sequence[str]) -> None:
        """``mikey kms user add --data DIR URI…`` while the server runs."""
        try:
            done = subprocess.run(_mikey("kms", "user", "add", "--data", str(self.data), *uris),
                                  capture_output=True, text=True, timeout=self.timeout, env=child_env())
        except subprocess.TimeoutExpired:
            raise DemoKmsError(f"'mikey kms user add' did not finish within {self.timeout:g} s") from None
        if done.returncode != 0:
            raise DemoKmsError(f"'mikey kms user add' failed: {done.stderr.strip()[-500:]}")

    def dev_token(self, uri: str) -> str:
        """A development bearer token for *uri* (what ``mikey kms token --data DIR --user URI`` prints)."""
        from ..kms.auth import DevIssuer

        return DevIssuer.load_or_create(self.data).issue(uri, ttl=TOKEN_TTL, now=time.time())

    def stop(self) -> None:
        """Terminate the server (SIGTERM: uvicorn shuts down cleanly), killing it if it lingers."""
        proc = self.proc
        if proc is None or self.returncode is not None:
            return
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self.returncode = proc.returncode
        self._close_log()

    def _close_log(self) -> None:
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    @property
    def stopped(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None


def fetch_demo_keystores(
    kms_url: str, tokens: Sequence[str], *, ca: str | None = None, now: float | None = None
) -> list[FetchedKeys]:
    """Each token's user's keystore from the KMS at *kms_url* over HTTP(S), as ``mikey kms fetch`` gets it.

    Raises :class:`~mikey.kms.client.KmsFetchError` when the KMS is unreachable or refuses.
    """
    from ..kms.client import fetch_keystore

    return [FetchedKeys(kms_url, fetch_keystore(kms_url, token, ca=ca, now=now)) for token in tokens]
