"""Kamailio, the SIP proxy/registrar of MIKEY's SIP use cases (issue 12), run as a child process.

:class:`Kamailio` renders the project's configuration (``kamailio.cfg`` beside this module) with the
run's values, starts Debian's ``kamailio`` (5.6) in the foreground on ``127.0.0.1`` and a free UDP port,
with its control socket, pid file and log in a working directory of its own (parallel instances do not
share a path), waits until it answers an OPTIONS ping (RFC 3261 §11), and stops it (SIGTERM, wait,
SIGKILL to its process group).  What the configuration does: registrar and location in memory, record-
routing, parallel forking to every registered contact of an AOR (RFC 3261 §16.6), call divert per AOR as
a 302 redirect (§21.3.3) or a retarget with a Diversion header (RFC 5806), a voicemail AOR for callees
without a contact or that do not answer in time, 404 for unknown users, 513 for oversized requests.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import IO, Literal

from mikey.errors import MikeyError

__all__ = [
    "DivertMode",
    "Kamailio",
    "KamailioError",
    "kamailio_available",
    "kamailio_binary",
    "free_udp_port",
    "sip_options_ping",
]

DivertMode = Literal["302", "retarget"]

#: Where Debian installs the binaries (``/usr/sbin`` is not on a normal user's PATH).
_SBIN = Path("/usr/sbin")
_USER_RE = re.compile(r"[A-Za-z0-9._~+-]{1,64}")
_DOMAIN_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
#: sun_path is 108 bytes on Linux, with the "unix:" prefix not counted.
_MAX_SOCKET_PATH = 100
#: The line written to the log before each start attempt.
_START_MARK = "--- mikey: starting kamailio on "


class KamailioError(MikeyError):
    """Kamailio could not be configured, started or queried (a local failure; the message holds its log tail)."""

    kind = "kamailio"


def _find_tool(name: str, env: str) -> str | None:
    override = os.environ.get(env)
    if override:
        return override if os.access(override, os.X_OK) else None
    found = shutil.which(name)
    if found:
        return found
    candidate = _SBIN / name
    return str(candidate) if os.access(candidate, os.X_OK) else None


def kamailio_binary() -> str | None:
    """The ``kamailio`` executable (``$MIKEY_KAMAILIO``, the PATH, then ``/usr/sbin``), or ``None``."""
    return _find_tool("kamailio", "MIKEY_KAMAILIO")


def kamailio_available() -> bool:
    """True when a ``kamailio`` executable is installed."""
    return kamailio_binary() is not None


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port on *host* that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def sip_options_ping(host: str, port: int, *, timeout: float = 0.5) -> int | None:
    """Send one OPTIONS to ``sip:host:port`` over UDP (RFC 3261 §11) and return the reply's status code.

    ``None`` when nothing answered within *timeout* seconds (or the answer is not a SIP response).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        local_port = sock.getsockname()[1]
        tag = secrets.token_hex(6)
        request = (
            f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {host}:{local_port};branch=z9hG4bK-mikey-{tag};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:ping@{host}>;tag={tag}\r\n"
            f"To: <sip:{host}:{port}>\r\n"
            f"Call-ID: ping-{tag}@{host}\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()
        sock.settimeout(timeout)
        try:
            sock.sendto(request, (host, port))
            deadline = time.monotonic() + timeout
            while True:
                data = sock.recv(65535)
                match = re.match(rb"SIP/2\.0 (\d{3}) ", data)
                if match and f"ping-{tag}@".encode() in data:
                    return int(match.group(1))
                if time.monotonic() >= deadline:
                    return None
        except OSError:  # timeout, or ICMP port unreachable reported on the connected path
            return None


def _split_aor(value: str, domain: str, what: str) -> tuple[str, str]:
    """``bob``, ``bob@dom`` or ``sip:bob@dom`` as (user, ``sip:user@dom``); anything else is refused."""
    text = value[4:] if value.startswith("sip:") else value
    user, _, host = text.partition("@")
    host = host or domain
    if not _USER_RE.fullmatch(user) or not _DOMAIN_RE.fullmatch(host):
        raise KamailioError(f"{what} {value!r} is not a SIP AOR of the form [sip:]user[@domain] "
                            "with a plain user name and domain")
    return user, f"sip:{user}@{host}"


class Kamailio:
    """Kamailio on ``host:port`` (UDP) with mikey's configuration; a context manager.

    *voicemail* is the AOR of the voicemail UA: INVITEs to a callee without a registered contact, or
    that time out (*no_answer_timeout* seconds after a provisional answer), 480 or 486, go there.
    *divert* maps AORs to the AOR their calls go to, as a 302 (``divert_mode="302"``) or by retargeting
    (``"retarget"``); *divert_modes* sets the flavour per diverted AOR (the others take *divert_mode*).  *users*, when given, are the known subscribers: calls to any other user get 404
    (the voicemail and divert AORs are known too); without it, a user without a contact gets 404 unless
    a voicemail AOR is set.  *max_message_size* bytes is the largest request relayed (513 above).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        domain: str = "mikey.test",
        voicemail: str | None = None,
        divert: Mapping[str, str] | None = None,
        divert_mode: DivertMode = "302",
        divert_modes: Mapping[str, DivertMode] | None = None,
        users: Iterable[str] | None = None,
        no_answer_timeout: float = 30.0,
        no_reply_timeout: float = 5.0,
        max_message_size: int = 32768,
        host: str = "127.0.0.1",
        port: int = 0,
        start_timeout: float = 10.0,
        log_level: int = 2,
        binary: str | None = None,
    ) -> None:
        if not _DOMAIN_RE.fullmatch(domain):
            raise KamailioError(f"SIP domain {domain!r} is not a plain host name")
        try:
            if ipaddress.ip_address(host).version != 4:
                raise ValueError(host)
        except ValueError:
            raise KamailioError(f"host {host!r} is not an IPv4 address (Kamailio listens on UDP over IPv4)") from None
        if not 0 <= port <= 65535:
            raise KamailioError(f"port {port} is out of range")
        for mode in (divert_mode, *(divert_modes or {}).values()):
            if mode not in ("302", "retarget"):
                raise KamailioError(f"a divert mode must be '302' or 'retarget', not {mode!r}")
        if not 0.1 <= no_answer_timeout <= 3600 or not 0.1 <= no_reply_timeout <= 3600:
            raise KamailioError("the no-answer and no-reply timeouts must be between 0.1 and 3600 s")
        if not 1024 <= max_message_size <= 65535:
            raise KamailioError("max_message_size must be between 1024 and 65535 bytes")
        if not -5 <= log_level <= 3:
            raise KamailioError("log_level must be between -5 and 3 (Kamailio's debug levels)")
        self.workdir = Path(workdir)
        self.domain = domain
        self.host = host
        self.port = port
        self._fixed_port = port != 0
        self.divert_mode: DivertMode = divert_mode
        self.no_answer_timeout = no_answer_timeout
        self.no_reply_timeout = no_reply_timeout
        self.max_message_size = max_message_size
        self.start_timeout = start_timeout
        self.log_level = log_level
        self.binary = binary
        self.voicemail: str | None = None
        self._vm_user: str | None = None
        if voicemail is not None:
            self._vm_user, self.voicemail = _split_aor(voicemail, domain, "voicemail AOR")
        self.divert: dict[str, str] = {}
        #: source AOR -> "302" or "retarget"
        self.divert_modes: dict[str, DivertMode] = {}
        self._divert_users: dict[str, tuple[str, DivertMode]] = {}
        modes = {_split_aor(a, domain, "divert source")[1]: m for a, m in (divert_modes or {}).items()}
        for source, target in (divert or {}).items():
            src_user, src_aor = _split_aor(source, domain, "divert source")
            mode = modes.pop(src_aor, divert_mode)
            self.divert[src_aor] = _split_aor(target, domain, "divert target")[1]
            self.divert_modes[src_aor] = mode
            self._divert_users[src_user] = (self.divert[src_aor], mode)
        if modes:
            raise KamailioError(f"divert_modes names AORs that divert does not: {', '.join(sorted(modes))}")
        self.users: list[str] | None = None
        if users is not None:
            known = {_split_aor(u, domain, "user")[0] for u in users}
            known.update(self._divert_users)
            known.update(_split_aor(t, domain, "divert target")[0] for t in self.divert.values())
            if self._vm_user is not None:
                known.add(self._vm_user)
            self.users = sorted(known)
        self.cfg_path = self.workdir / "kamailio.cfg"
        self.log_path = self.workdir / "kamailio.log"
        self.pid_path = self.workdir / "kamailio.pid"
        self.run_dir = self.workdir / "run"
        self.ctl_path: Path | None = None
        self._short_dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._finalizer: weakref.finalize[[int], Kamailio] | None = None

    # -- addresses ---------------------------------------------------------------------------------

    @property
    def proxy(self) -> str:
        """``host:port`` of the proxy (a UA's outbound proxy)."""
        return f"{self.host}:{self.port}"

    @property
    def uri(self) -> str:
        """The proxy's own SIP URI, ``sip:host:port;lr``."""
        return f"sip:{self.host}:{self.port};lr"

    def aor(self, user: str) -> str:
        """``sip:user@domain``."""
        return _split_aor(user, self.domain, "user")[1]

    @property
    def running(self) -> bool:
        """True while the Kamailio process is alive."""
        return self._proc is not None and self._proc.poll() is None

    # -- configuration -----------------------------------------------------------------------------

    def render(self) -> str:
        """The configuration for this run: ``#!define`` lines, the shipped file, then the table seeds."""
        template = resources.files("mikey.sip").joinpath("kamailio.cfg").read_text(encoding="utf-8")
        ctl = self.ctl_path if self.ctl_path is not None else self.run_dir / "kamailio_ctl"
        if re.search(r'["\\\n\r]', str(ctl)):
            raise KamailioError(f"the control socket path {str(ctl)!r} holds a quote, backslash or newline")
        lines = [
            "#!KAMAILIO",
            "# Rendered by mikey.sip.kamailio for one run; the shipped configuration follows.",
            f"#!define LOG_LEVEL {self.log_level}",
            f"#!define FR_TIMER_MS {round(self.no_reply_timeout * 1000)}",
            f"#!define FR_INV_TIMER_MS {round(self.no_answer_timeout * 1000)}",
            f"#!define MAX_MESSAGE_SIZE {self.max_message_size}",
            f'#!define CTL_SOCKET "unix:{ctl}"',
        ]
        if self.users is not None:
            lines.append("#!define WITH_USERS")
        if self.voicemail is not None:
            lines += ["#!define WITH_VOICEMAIL", f'#!define VM_AOR "{self.voicemail}"',
                      f'#!define VM_USER "{self._vm_user}"']
        seeds = [f'\t$sht({"redirect" if mode == "302" else "retarget"}=>{user}) = "{target}";'
                 for user, (target, mode) in sorted(self._divert_users.items())]
        seeds += [f"\t$sht(users=>{user}) = 1;" for user in self.users or []]
        seed = ["", "# the run's divert and subscriber tables (mikey.sip.kamailio)", "route[SEED] {", *seeds,
                "\treturn;", "}", ""]
        return "\n".join(lines) + "\n\n" + template + "\n".join(seed)

    # -- process -----------------------------------------------------------------------------------

    def start(self) -> Kamailio:
        """Render the configuration, start Kamailio and wait until it answers OPTIONS; return self."""
        if self._proc is not None:
            raise KamailioError("this Kamailio is already started")
        binary = self.binary or kamailio_binary()
        if binary is None:
            raise KamailioError("kamailio is not installed (Debian package 'kamailio')")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        run_dir = self.run_dir
        if len(str(run_dir / "kamailio_ctl")) > _MAX_SOCKET_PATH:
            self._short_dir = Path(tempfile.mkdtemp(prefix="mikey-kam-"))
            run_dir = self._short_dir
        self.ctl_path = run_dir / "kamailio_ctl"
        attempts = 1 if self._fixed_port else 3
        try:
            for attempt in range(attempts):
                if not self._fixed_port:
                    self.port = free_udp_port(self.host)
                self.cfg_path.write_text(self.render(), encoding="utf-8")
                try:
                    self._spawn(binary, run_dir)
                    self._wait_ready()
                    return self
                except KamailioError:
                    this_run = self.log_tail(200).rpartition(_START_MARK)[2]
                    self._terminate()
                    if "bind" not in this_run.lower() or attempt == attempts - 1:
                        raise  # another process took the free port between our probe and Kamailio's bind
        except BaseException:
            self.stop()
            raise
        raise KamailioError("kamailio did not start")  # pragma: no cover - the loop returns or raises

    def _spawn(self, binary: str, run_dir: Path) -> None:
        if self._log is None:
            self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._log.write(f"{_START_MARK}udp:{self.host}:{self.port}\n".encode())
        self._log.flush()
        command = [
            binary, "-DD", "-E", "-f", str(self.cfg_path), "-Y", str(run_dir), "-P", str(self.pid_path),
            "-w", str(self.workdir), "-L", str(_modules_dir(binary)), "-l", f"udp:{self.host}:{self.port}",
            f"--alias={self.domain}", "-a", "no", "-m", "32", "-M", "8", "--atexit=no",
        ]
        try:
            self._proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                cwd=self.workdir, start_new_session=True,
            )
        except OSError as exc:
            raise KamailioError(f"cannot run {binary}: {exc}") from exc
        # a Kamailio nobody stopped does not outlive this interpreter
        self._finalizer = weakref.finalize(self, _kill_group, self._proc.pid)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self._proc is None or self._proc.poll() is not None:
                code = None if self._proc is None else self._proc.returncode
                raise KamailioError(f"kamailio exited with status {code} while starting; "
                                    f"log {self.log_path}:\n{self.log_tail()}")
            if sip_options_ping(self.host, self.port, timeout=0.2) == 200:
                return
            if time.monotonic() >= deadline:
                raise KamailioError(f"kamailio did not answer OPTIONS on udp:{self.proxy} within "
                                    f"{self.start_timeout:g} s; log {self.log_path}:\n{self.log_tail()}")
            time.sleep(0.05)

    def stop(self, timeout: float = 5.0) -> int | None:
        """Stop Kamailio (SIGTERM, wait up to *timeout* s, then SIGKILL its process group); its exit status."""
        code = self._terminate(timeout)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._short_dir is not None:
            shutil.rmtree(self._short_dir, ignore_errors=True)
            self._short_dir = None
        return code

    def _terminate(self, timeout: float = 5.0) -> int | None:
        proc, self._proc = self._proc, None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _kill_group(proc.pid)
                proc.wait(timeout)
        _kill_group(proc.pid)  # workers that outlived the main process (none after a clean exit)
        return proc.returncode

    def __enter__(self) -> Kamailio:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def log_tail(self, lines: int = 30) -> str:
        """The last *lines* lines of Kamailio's log (stderr), for error messages."""
        try:
            data = self.log_path.read_bytes()[-65536:]
        except OSError:
            return "(no log)"
        return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])

    # -- control socket ----------------------------------------------------------------------------

    def rpc(self, *command: str, timeout: float = 5.0) -> str:
        """Run one RPC command over the control socket with ``kamcmd`` and return its output."""
        if not self.running or self.ctl_path is None:
            raise KamailioError("kamailio is not running")
        kamcmd = _find_tool("kamcmd", "MIKEY_KAMCMD")
        if kamcmd is None:
            raise KamailioError("kamcmd is not installed (Debian package 'kamailio')")
        try:
            result = subprocess.run([kamcmd, "-s", f"unix:{self.ctl_path}", *command], capture_output=True,
                                    timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise KamailioError(f"kamcmd {' '.join(command)}: {exc}") from exc
        out = result.stdout.decode("utf-8", "replace")
        if result.returncode != 0:
            err = result.stderr.decode("utf-8", "replace").strip() or out.strip()
            raise KamailioError(f"kamcmd {' '.join(command)} failed: {err}")
        return out

    def contacts(self, aor: str) -> list[str]:
        """The contact URIs registered for *aor* (``ul.lookup``); empty when there are none."""
        user = _split_aor(aor, self.domain, "AOR")[0]
        try:
            out = self.rpc("ul.lookup", "location", user)
        except KamailioError as exc:
            if "not found" in str(exc).lower():
                return []
            raise
        return re.findall(r"Address:\s*(\S+)", out)

    def wait_contacts(self, aor: str, count: int = 1, timeout: float = 10.0) -> list[str]:
        """Wait until *aor* has at least *count* registered contacts; return them."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.contacts(aor)
            if len(found) >= count:
                return found
            if time.monotonic() >= deadline:
                raise KamailioError(f"{aor} has {len(found)} registered contact(s) after {timeout:g} s, "
                                    f"expected {count}")
            time.sleep(0.05)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"Kamailio(udp:{self.host}:{self.port}, domain={self.domain!r}, {state})"


def _modules_dir(binary: str) -> Path:
    """Kamailio's module directory (Debian's multiarch path, or ``lib/kamailio/modules`` beside the binary)."""
    for candidate in (Path("/usr/lib/x86_64-linux-gnu/kamailio/modules"),
                      Path(binary).resolve().parent.parent / "lib" / "kamailio" / "modules",
                      Path(binary).resolve().parent.parent / "lib64" / "kamailio" / "modules"):
        if (candidate / "tm.so").exists():
            return candidate
    found = sorted(Path("/usr/lib").glob("*/kamailio/modules/tm.so"))
    if found:
        return found[0].parent
    raise KamailioError(f"cannot find Kamailio's modules (tm.so) for {binary}")


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
