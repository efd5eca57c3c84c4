"""Fixtures that run a real Arbiter (tests/runner.py) in a subprocess and drive it.

Waits return as soon as their condition holds; their limits are generous only
so that a machine shared by many test runs does not turn slowness into failures.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

RUNNER = Path(__file__).with_name("runner.py")
SRC = Path(__file__).resolve().parents[1] / "src"


def wait_until(
    predicate: Callable[[], Any], timeout: float = 10.0, what: str | Callable[[], str] = "condition"
) -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout` s.

    `what` may be a callable: it is called only on failure, so a message that
    quotes the log shows the log as it was when the wait gave up.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            described = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout}s waiting for {described}")
        time.sleep(0.02)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Event(tuple):  # type: ignore[type-arg]
    """(name, pid, detail) parsed from one line of the events file."""

    @property
    def name(self) -> str:
        return str(self[0])

    @property
    def pid(self) -> int:
        return int(self[1])

    @property
    def detail(self) -> str:
        return str(self[2])


class Server:
    """One runner.py process: options file, events file, signals, requests."""

    def __init__(self, tmp_path: Path, opts: dict[str, Any]) -> None:
        self.tmp = tmp_path
        self.events_path = tmp_path / "events"
        self.opts_path = tmp_path / "opts.json"
        self.log_path = tmp_path / "master.log"
        self.opts = {"events": str(self.events_path), **opts}
        self.events_path = Path(self.opts["events"])
        self.proc: subprocess.Popen[bytes] | None = None
        self.write_opts()

    def write_opts(self, **changes: Any) -> None:
        """Rewrite the options file (the runner re-reads it on HUP)."""
        cfg = {**self.opts.get("cfg", {}), **changes.pop("cfg", {})}
        self.opts.update(changes)
        self.opts["cfg"] = cfg
        self.opts_path.write_text(json.dumps(self.opts))

    def command(self) -> list[str]:
        return [sys.executable, str(RUNNER), str(self.opts_path)]

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
        env.pop("NOTIFY_SOCKET", None)
        env.update(extra or {})
        return env

    def start(
        self,
        workers: int | None = None,
        env: dict[str, str] | None = None,
        argv: list[str] | None = None,
        pass_fds: tuple[int, ...] = (),
        wait: bool = True,
    ) -> Server:
        """Start the runner; wait until `workers` (default cfg workers) have booted."""
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            argv or self.command(),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env(env),
            pass_fds=pass_fds,
            start_new_session=True,
            cwd=self.tmp,
        )
        log.close()
        if wait:
            count = self.opts.get("cfg", {}).get("workers", 1) if workers is None else workers
            self.wait_booted(count)
        return self

    # -- observing ----------------------------------------------------------

    def events(self, name: str | None = None) -> list[Event]:
        """Every recorded event (optionally only those called `name`)."""
        try:
            lines = self.events_path.read_text().splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            parts = line.split(" ", 2)
            event = Event((parts[0], parts[1], parts[2] if len(parts) > 2 else ""))
            if name is None or event.name == name:
                out.append(event)
        return out

    def wait_event(self, name: str, count: int = 1, timeout: float = 10.0) -> list[Event]:
        """Wait until at least `count` events called `name` were recorded."""
        return wait_until(
            lambda: (evs := self.events(name)) and len(evs) >= count and evs,
            timeout,
            # built on failure: the state at the start of the wait would mislead
            lambda: f"{count} x {name!r} (have {len(self.events(name))}; log: {self.log_tail()})",
        )

    def wait_booted(self, count: int, timeout: float = 15.0) -> None:
        """Wait until `count` workers are serving (distinct pids answering)."""
        self.wait_event("post_worker_init", count, timeout)

    @property
    def master_pid(self) -> int:
        return self.wait_event("on_starting")[0].pid

    def addresses(self, index: int = 0) -> list[Any]:
        """The listeners' socket names from when_ready number `index`."""
        event = self.wait_event("when_ready", index + 1)[index]
        return [tuple(a) if isinstance(a, list) else a for a in json.loads(event.detail)]

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text()[-chars:]
        except FileNotFoundError:
            return ""

    def worker_pids(self) -> set[int]:
        """Workers that booted and whose exit was not yet seen by the master."""
        booted = {e.pid for e in self.events("post_worker_init")}
        gone = {int(e.detail.split()[0]) for e in self.events("child_exit")}
        return booted - gone

    # -- acting ---------------------------------------------------------------

    def request(self, cmd: str = "pid", address: Any = None, timeout: float = 5.0) -> str:
        """Send one command line to a worker and return its one-line answer."""
        address = address if address is not None else self.addresses()[0]
        family = socket.AF_UNIX if isinstance(address, str) else (
            socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        )
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(address if isinstance(address, str) else address[:2])
            sock.sendall(cmd.encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(1024)
                if not chunk:
                    break
                data += chunk
        return data.decode().strip()

    def kill(self, sig: int, pid: int | None = None) -> None:
        os.kill(pid or self.master_pid, sig)

    def wait_exit(self, timeout: float = 15.0) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"master did not exit in {timeout}s: {self.log_tail()}") from exc

    def cleanup(self) -> None:
        """Kill everything this test started (masters, workers, side processes)."""
        pids = {e.pid for e in self.events()}
        if self.proc is not None:
            pids.add(self.proc.pid)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Build Server objects (one tmp dir each); every one is killed at teardown."""
    servers: list[Server] = []

    def make(**opts: Any) -> Server:
        path = tmp_path / f"s{len(servers)}"
        path.mkdir()
        server = Server(path, opts)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.cleanup()


@pytest.fixture(name="wait_until")
def wait_until_fixture() -> Callable[..., Any]:
    """The polling helper, for tests (test modules cannot import conftest)."""
    return wait_until


@pytest.fixture(name="free_port")
def free_port_fixture() -> Callable[[], int]:
    """The free-port helper, for tests (test modules cannot import conftest)."""
    return free_port
