"""The one harness of the root tests: free ports, bounded polling and real servers.

`ExternalServer` runs any server command (gcorn, nginx, haproxy, redis-server...)
as a subprocess with its output in a log file. It is ready when its readiness
probe says so, within a bounded time, and it stops with TERM, then KILL. `Gcorn`
is that for the `gcorn` command, on a free port. Every server started is recorded
here so that tests/conftest.py can print its log when a test fails and stop it
should the test forget to; a server made with `shared=True` serves several tests
(a module-scoped fixture starts it and stops it, with `with`): its log is printed
under a failure too, and no test's end stops it. The fixtures `start_gcorn` and `start_server` (in
tests/conftest.py) are the usual way in; a test file imports this module as
`from harness import ...` (tests/conftest.py puts this folder on sys.path).

A later suite adds a real server as one fixture::

    @pytest.fixture
    def nginx(start_server, tmp_path):
        port = free_port()
        ...write nginx.conf...
        return start_server(["nginx", "-p", str(tmp_path), "-c", "nginx.conf",
                             "-g", "daemon off;"], ready=tcp_probe(port), name="nginx")
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx

__all__ = [
    "DEPLOY", "EXAMPLES", "GCORN", "ROOT", "ExternalServer", "Gcorn", "ServerNotReady",
    "deploy_config", "free_port", "http_probe", "log_probe", "shared_servers", "started_servers",
    "tcp_probe", "wait_until",
]

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
DEPLOY = ROOT / "docs" / "deploy"  # the configs docs/deploy.md shows, which the tests run
GCORN = shutil.which("gcorn", path=os.path.dirname(sys.executable)) or "gcorn"

T = TypeVar("T")
S = TypeVar("S", bound="ExternalServer")
Probe = Callable[["ExternalServer"], bool]

# every server started since the current test began (reset by tests/conftest.py)
_STARTED: list[ExternalServer] = []
# servers that serve several tests (shared=True); a stopped one is forgotten when the next
# test begins, so that a failure in its fixture's teardown still shows its log
_SHARED: list[ExternalServer] = []


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def kill_masters(*pids: int) -> None:
    """SIGKILL each master in `pids` (0 = none) and its children: the cleanup of a test
    whose USR2 made a master that is no child of ours, so no fixture stops it."""
    import psutil

    for pid in pids:
        try:
            proc = psutil.Process(pid) if pid else None
            if proc is None or not proc.is_running():
                continue
            for child in proc.children(recursive=True):
                child.kill()
            proc.kill()
        except psutil.NoSuchProcess:
            continue


def write_echo_app(directory: Path, module: str, kind: str) -> str:
    """Copy tests/echoapp.py to `directory`/`module`.py with `app` bound to its `wsgi` or
    `asgi` callable (`kind`); returns the app spec, `module:app`."""
    if kind not in ("wsgi", "asgi"):
        raise ValueError(f"kind must be 'wsgi' or 'asgi', not {kind!r}")
    source = Path(__file__).with_name("echoapp.py").read_text()
    (directory / f"{module}.py").write_text(f"{source}\napp = {kind}\n")
    return f"{module}:app"


def deploy_config(name: str, replace: Mapping[str, str] | None = None) -> str:
    """docs/deploy/`name` with each `replace` key swapped for its value (each must occur).

    The doc's files hold real-looking values (`listen 80;`, `127.0.0.1:8000`); a test
    puts its free ports and tmp_path paths in their place, and a value that the file
    no longer holds fails here, so the doc and the test cannot drift apart.
    """
    text = (DEPLOY / name).read_text()
    for old, new in (replace or {}).items():
        assert old in text, f"docs/deploy/{name} no longer contains {old!r}"
        text = text.replace(old, new)
    return text


def wait_until(predicate: Callable[[], T], timeout: float = 5.0, interval: float = 0.05) -> T:
    """Poll `predicate` until it returns something truthy or `timeout` passes; return its last value."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = predicate()
    return value


class ServerNotReady(AssertionError):
    """A server exited, or did not pass its readiness probe in time; the message has its log."""


def tcp_probe(port: int, host: str = "127.0.0.1") -> Probe:
    """Ready when something accepts a TCP connection on host:port."""
    def probe(_: ExternalServer) -> bool:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            return False
    return probe


def http_probe(url: str) -> Probe:
    """Ready when `url` gives any HTTP answer (a 500 counts: the server is up)."""
    def probe(_: ExternalServer) -> bool:
        try:
            httpx.get(url, timeout=1.0)
        except httpx.HTTPError:
            return False
        return True
    return probe


def log_probe(pattern: str) -> Probe:
    """Ready when the server's log matches the regular expression `pattern`."""
    compiled = re.compile(pattern)
    return lambda server: compiled.search(server.log()) is not None


class ExternalServer:
    """A real server command as a subprocess: bounded start (probe) and stop (TERM, then KILL)."""

    def __init__(self, command: Sequence[str], *, cwd: Path, log_path: Path | None = None,
                 env: Mapping[str, str] | None = None, ready: Probe | None = None,
                 ready_timeout: float = 15.0, ready_interval: float = 0.05,
                 stop_signal: int = signal.SIGTERM, stop_timeout: float = 10.0,
                 new_session: bool = False, name: str | None = None, shared: bool = False,
                 pass_fds: Sequence[int] = ()) -> None:
        self.command = [str(part) for part in command]
        self.name = name or Path(self.command[0]).name
        self.cwd = cwd
        self.log_path = log_path or cwd / f"{self.name}.log"
        self.env = dict(os.environ if env is None else env)
        self.ready = ready
        self.ready_timeout = ready_timeout
        self.ready_interval = ready_interval
        self.stop_signal = stop_signal
        self.stop_timeout = stop_timeout
        self.new_session = new_session
        self.shared = shared
        self.pass_fds = tuple(pass_fds)  # open fds the server inherits (socket activation)
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        """The running (or finished) process; only after start()."""
        assert self._proc is not None, f"{self.name} was not started"
        return self._proc

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self.proc.pid

    def start(self: S, wait: bool = True) -> S:
        """Start the command; with `wait`, return once the readiness probe passes."""
        self._log = open(self.log_path, "wb")  # closed by stop()
        self._proc = subprocess.Popen(
            self.command, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=self.new_session,
            pass_fds=self.pass_fds)
        (_SHARED if self.shared else _STARTED).append(self)
        if wait and self.ready is not None:
            try:
                self.wait_ready()
            except BaseException:
                self.stop()  # never leave a server behind a failed start
                raise
        return self

    def wait_ready(self, timeout: float | None = None) -> None:
        """Wait until the probe passes; ServerNotReady if the server exits or time runs out."""
        assert self.ready is not None
        limit = self.ready_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while True:
            if self.proc.poll() is not None:
                raise ServerNotReady(
                    f"{self.name} exited {self.proc.returncode} before it was ready:\n{self.log()}")
            if self.ready(self):
                return
            if time.monotonic() > deadline:
                raise ServerNotReady(f"{self.name} not ready after {limit}s:\n{self.log()}")
            time.sleep(self.ready_interval)

    def wait_exit(self, timeout: float) -> int:
        """Wait for a server that must stop by itself; its exit status (AssertionError if it runs on)."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop(signal.SIGKILL, timeout=5)
            raise AssertionError(f"{self.name} still running after {timeout}s:\n{self.log()}") from None

    def alive(self) -> bool:
        """Whether the process still runs."""
        return self._proc is not None and self._proc.poll() is None

    def log(self) -> str:
        """Everything the server wrote to stdout and stderr so far."""
        if self._log is not None and not self._log.closed:
            self._log.flush()
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, sig: int | None = None, timeout: float | None = None) -> int | None:
        """Send `sig` (default TERM), wait up to `timeout`, then KILL; return the exit status."""
        proc = self._proc
        if proc is None:
            return None
        try:
            if proc.poll() is None:
                proc.send_signal(self.stop_signal if sig is None else sig)
            proc.wait(self.stop_timeout if timeout is None else timeout)
        except subprocess.TimeoutExpired:
            if self.new_session:
                os.killpg(proc.pid, signal.SIGKILL)  # its own group: what it spawned goes too
            else:
                proc.kill()
            proc.wait(5)
        finally:
            if self._log is not None:
                self._log.close()
        return proc.returncode

    def __enter__(self: S) -> S:
        return self if self._proc is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Gcorn(ExternalServer):
    """The `gcorn` command on a free port of 127.0.0.1 (`-b` comes first in its argv).

    Ready when it answers HTTP on `ready_path`; the environment's GCORN_CMD_ARGS and
    GCORN_DIRTY_SOCKET are cleared so that the caller's shell cannot leak in.
    """

    def __init__(self, args: Sequence[str], *, cwd: Path, env: Mapping[str, str] | None = None,
                 ready_path: str | None = "/", log_path: Path | None = None,
                 ready_timeout: float = 15.0, stop_timeout: float = 10.0,
                 new_session: bool = False, name: str = "gcorn", shared: bool = False) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        environ = {k: v for k, v in os.environ.items() if k != "GCORN_DIRTY_SOCKET"}
        environ.update(GCORN_CMD_ARGS="", PYTHONUNBUFFERED="1")
        environ.update(env or {})
        super().__init__(
            [GCORN, "-b", f"127.0.0.1:{self.port}", *args], cwd=cwd, env=environ,
            log_path=log_path or cwd / f"{name}.log", name=name, ready_timeout=ready_timeout,
            stop_timeout=stop_timeout, new_session=new_session, shared=shared,
            ready=None if ready_path is None else http_probe(self.url + ready_path))

    def get(self, path: str = "/", timeout: float = 5.0, **kwargs: Any) -> httpx.Response:
        """One GET on a fresh connection."""
        return httpx.get(self.url + path, timeout=timeout, **kwargs)


def started_servers() -> list[ExternalServer]:
    """The servers started since the current test began."""
    return list(_STARTED)


def shared_servers() -> list[ExternalServer]:
    """The shared servers (shared=True) running now, or stopped since the current test began."""
    return list(_SHARED)


def forget_servers() -> None:
    """Start a new test's record (tests/conftest.py calls it)."""
    _STARTED.clear()
    _SHARED[:] = [server for server in _SHARED if server.alive()]
