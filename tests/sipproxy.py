"""Test helpers for SIP through Kamailio (issue 12): fixtures, a context manager, and a sipp runner.

Fixtures (a test module takes them with ``import sipproxy`` and ``kamailio = sipproxy.kamailio``,
``kamailio_factory = sipproxy.kamailio_factory`` at module level):

- ``kamailio``: a started :class:`mikey.sip.kamailio.Kamailio` with the default options, stopped after
  the test.
- ``kamailio_factory``: ``kamailio_factory(voicemail="vm", divert={"bob": "carol"}, divert_mode="retarget",
  users=[...], no_answer_timeout=1.0, ...)`` starts one with those options; all are stopped after the test.

Both skip when ``kamailio`` is not installed, and FAIL instead when the environment variable ``CI`` is set.
Outside pytest, :func:`running_kamailio` is the same as a context manager.

:class:`Sipp` runs a scenario of ``tests/sipp/`` with Debian's ``sipp`` (package ``sip-tester``) as a
child process on 127.0.0.1 and reads back the ``key=value`` lines its ``<log>`` actions wrote.
:class:`PhoneProcess` runs ``mikey phone --json`` and collects its JSON event lines.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mikey.sip.kamailio import Kamailio, free_udp_port, kamailio_available

SIPP_DIR = Path(__file__).parent / "sipp"
SIPP = shutil.which("sipp") or (("/usr/bin/sipp") if os.access("/usr/bin/sipp", os.X_OK) else None)


def require(available: bool, what: str) -> None:
    """Skip the test when *what* is missing, or fail it when ``CI`` is set (CI installs it)."""
    if available:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{what} is not installed, and CI is set (.ci/run installs it)")
    pytest.skip(f"{what} is not installed")


def require_kamailio() -> None:
    require(kamailio_available(), "kamailio (Debian package 'kamailio')")


def require_sipp() -> None:
    require(SIPP is not None, "sipp (Debian package 'sip-tester')")


@contextmanager
def running_kamailio(workdir: Path, **options: Any) -> Iterator[Kamailio]:
    """A started Kamailio in *workdir* with *options* (see :class:`Kamailio`), stopped on exit."""
    proxy = Kamailio(workdir, **options)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def kamailio(tmp_path: Path) -> Iterator[Kamailio]:
    """A started Kamailio with the default configuration (domain mikey.test)."""
    require_kamailio()
    with running_kamailio(tmp_path / "kamailio") as proxy:
        yield proxy


@pytest.fixture
def kamailio_factory(tmp_path: Path) -> Iterator[Callable[..., Kamailio]]:
    """``factory(**options) -> Kamailio``: start Kamailios with custom options; all stopped after the test."""
    require_kamailio()
    started: list[Kamailio] = []

    def factory(**options: Any) -> Kamailio:
        proxy = Kamailio(tmp_path / f"kamailio{len(started)}", **options)
        started.append(proxy)
        proxy.start()
        return proxy

    try:
        yield factory
    finally:
        for proxy in started:
            proxy.stop()


# -- sipp ------------------------------------------------------------------------------------------


def wait_bound(port: int, host: str = "127.0.0.1", timeout: float = 5.0) -> None:
    """Wait until some process has bound UDP *host:port* (our bind attempt fails)."""
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind((host, port))
            except OSError:
                return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"nothing listens on udp:{host}:{port} after {timeout:g} s")
        time.sleep(0.02)


@dataclass(frozen=True)
class SippResult:
    """How a sipp run ended: exit status (0 = every call reached the scenario's end) and its log lines."""

    returncode: int
    logs: list[str]
    errors: str
    messages: str

    def values(self, key: str) -> list[str]:
        """The values of the ``key=value`` lines the scenario's ``<log>`` actions wrote, in order."""
        prefix = f"{key}="
        return [line[len(prefix):].strip() for line in self.logs if line.startswith(prefix)]

    def value(self, key: str) -> str:
        found = self.values(key)
        if not found:
            raise AssertionError(f"sipp logged no {key}=; logs {self.logs}, errors:\n{self.errors}")
        return found[-1]

    def describe(self) -> str:
        return (f"sipp exit {self.returncode}; logs {self.logs}\nerrors:\n{self.errors[-3000:]}\n"
                f"messages:\n{self.messages[-6000:]}")


class Sipp:
    """One sipp process running ``tests/sipp/<scenario>.xml`` on 127.0.0.1 (a context manager)."""

    def __init__(
        self,
        scenario: str,
        workdir: Path,
        *,
        remote: tuple[str, int] | None = None,
        service: str = "service",
        port: int | None = None,
        keys: dict[str, str] | None = None,
        calls: int = 1,
        duration_ms: int = 0,
        timeout: float = 20.0,
        extra: list[str] | None = None,
    ) -> None:
        if SIPP is None:
            raise RuntimeError("sipp is not installed")
        self.scenario = scenario
        self.port = port if port is not None else free_udp_port()
        workdir.mkdir(parents=True, exist_ok=True)
        stem = f"{scenario}-{self.port}"
        self.log_file = workdir / f"{stem}.logs"
        self.error_file = workdir / f"{stem}.errors"
        self.message_file = workdir / f"{stem}.messages"
        self.screen_file = workdir / f"{stem}.screen"
        self.timeout = timeout
        command = [
            SIPP, "-sf", str(SIPP_DIR / f"{scenario}.xml"), "-i", "127.0.0.1", "-p", str(self.port),
            "-m", str(calls), "-s", service, "-d", str(duration_ms), "-nostdin",
            "-timeout", f"{timeout:g}s", "-timeout_error",
            "-trace_logs", "-log_file", str(self.log_file),
            "-trace_err", "-error_file", str(self.error_file),
            "-trace_msg", "-message_file", str(self.message_file),
        ]
        for key, value in (keys or {}).items():
            command += ["-key", key, value]
        command += extra or []
        if remote is not None:
            command.append(f"{remote[0]}:{remote[1]}")
        self.command = command
        self._screen = open(self.screen_file, "wb")  # noqa: SIM115 - closed in wait()/stop()
        self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=self._screen,
                                     stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True)

    def wait_listening(self) -> Sipp:
        """Wait until this sipp has bound its port (a UAS must before the proxy sends it anything)."""
        wait_bound(self.port)
        return self

    def wait(self, timeout: float | None = None) -> SippResult:
        """Wait for sipp to exit (killing it after *timeout*, default its own timeout + 5 s)."""
        try:
            code = self.proc.wait(timeout if timeout is not None else self.timeout + 5)
        except subprocess.TimeoutExpired:
            self.stop()
            code = -9
        self._screen.close()
        return SippResult(code, _read_lines(self.log_file), _read(self.error_file), _read(self.message_file))

    def stop(self) -> None:
        """End sipp if it still runs (SIGTERM, then SIGKILL to its process group)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(3)
        self._screen.close()

    def __enter__(self) -> Sipp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _read_lines(path: Path) -> list[str]:
    # sipp's <log> lines; drop its blank lines
    return [line.strip() for line in _read(path).splitlines() if line.strip()]


def sipp_register(proxy: Kamailio, user: str, contact_port: int, workdir: Path, *, expires: int = 300) -> None:
    """REGISTER ``user`` at *proxy* with the Contact ``sip:user@127.0.0.1:contact_port`` (sipp register.xml)."""
    run = Sipp("register", workdir, remote=(proxy.host, proxy.port), service=user, timeout=10,
               keys={"domain": proxy.domain, "contact_port": str(contact_port), "expires": str(expires)})
    result = run.wait()
    if result.returncode != 0 or result.values("status") != ["200"]:
        raise AssertionError(f"REGISTER {user} failed: {result.describe()}")


def sip_status(line: str) -> int | None:
    """The status code of a SIP status line, or None."""
    match = re.match(r"SIP/2\.0 (\d{3})", line)
    return int(match.group(1)) if match else None


# -- mikey phone -----------------------------------------------------------------------------------


class PhoneProcess:
    """``python -m mikey phone --json <args>`` as a child process; its JSON event lines collected.

    A context manager: the process is ended (SIGTERM, then SIGKILL) on exit if it still runs.
    """

    def __init__(self, args: list[str], *, name: str = "phone") -> None:
        argv = list(args)
        if "--json" not in argv:
            argv.insert(0, "--json")
        self.name = name
        self.command = [sys.executable, "-m", "mikey", "phone", *argv]
        self.events: list[dict[str, Any]] = []
        self.stray: list[str] = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, start_new_session=True)
        self._stderr: list[str] = []
        self._threads = [threading.Thread(target=self._read_stdout, daemon=True),
                         threading.Thread(target=self._read_stderr, daemon=True)]
        for thread in self._threads:
            thread.start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.strip()
            if not line:
                continue
            with self._cond:
                try:
                    self.events.append(json.loads(line))
                except ValueError:
                    self.stray.append(line)
                self._cond.notify_all()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line)

    @property
    def stderr(self) -> str:
        return "".join(self._stderr)

    def wait_event(self, kind: str, timeout: float = 15.0, *, after: int = 0, **match: Any) -> dict[str, Any]:
        """The first event of *kind* (from index *after* of :attr:`events` on) whose fields equal *match*;
        waits up to *timeout* seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events[after:]:
                    if event.get("event") == kind and all(event.get(k) == v for k, v in match.items()):
                        return event
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not any(t.is_alive() for t in self._threads)):
                    raise AssertionError(f"{self.name}: no {kind} event {match or ''} after {timeout:g} s; "
                                         f"{self.describe()}")
                self._cond.wait(min(left, 0.1))

    def ready(self, timeout: float = 15.0) -> dict[str, Any]:
        """Wait for the ``ready`` event (registered); returns it (``aor``, ``contact``)."""
        return self.wait_event("ready", timeout)

    def contact_port(self) -> int:
        """The UDP port of the phone's registered contact (for requests that bypass the proxy)."""
        return int(str(self.ready()["contact"]).rsplit(":", 1)[1].split(";")[0].rstrip(">"))

    def of(self, kind: str) -> list[dict[str, Any]]:
        with self._cond:
            return [e for e in self.events if e.get("event") == kind]

    def wait(self, timeout: float = 30.0) -> int:
        """Wait for the phone to exit (killing it after *timeout*); its exit status."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"{self.name} did not exit within {timeout:g} s; {self.describe()}") from None
        for thread in self._threads:
            thread.join(5)
        return code

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(3)
        for thread in self._threads:
            thread.join(5)

    def describe(self) -> str:
        return (f"{self.name} exit {self.proc.poll()}; events {self.events}; stray {self.stray}; "
                f"stderr:\n{self.stderr[-3000:]}")

    def __enter__(self) -> PhoneProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
