"""Start and stop a real arbiter + asgi worker for the tests (see asgi_runner.py)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from workers_helpers import free_port  # noqa: F401  (the tests of other branches import it here)

HERE = Path(__file__).resolve().parent

RUNNER = HERE / "asgi_runner.py"


class AsgiServer:
    """A running `python asgi_runner.py` process (arbiter + one asgi worker)."""

    def __init__(self, tmp_path: Path, app: str, **settings: Any) -> None:
        self.tmp_path = tmp_path
        self.port_file = tmp_path / "port"
        self.events = tmp_path / "events.log"
        self.stderr_path = tmp_path / "server.err"
        opts = {"app": app, "port_file": str(self.port_file), "events": str(self.events),
                "timeout": 10, "graceful_timeout": 5}
        opts.update(settings)
        opts_path = tmp_path / "opts.json"
        opts_path.write_text(json.dumps(opts))
        env = dict(os.environ)
        env["ASGI_TEST_EVENTS"] = str(self.events)
        env["PYTHONPATH"] = str(HERE) + os.pathsep + env.get("PYTHONPATH", "")
        self._stderr = open(self.stderr_path, "wb")
        argv = [sys.executable, str(RUNNER), str(opts_path)]
        if settings.get("block_websockets"):
            argv.append("--block-websockets")
        self.proc = subprocess.Popen(argv,
                                     stdout=subprocess.DEVNULL, stderr=self._stderr, env=env)
        self.host = "127.0.0.1"
        self.port = 0

    def wait_ready(self, timeout: float = 10.0) -> AsgiServer:
        """Wait until the worker answers a real request; stop the server if it never does."""
        try:
            return self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float) -> AsgiServer:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.stderr()}")
            if self.port_file.exists():
                host, port = self.port_file.read_text().split()
                self.host, self.port = host, int(port)
                try:
                    reply = raw_request(self.port, b"GET /pid HTTP/1.1\r\nHost: t\r\n"
                                        b"Connection: close\r\n\r\n", timeout=2)
                except OSError:
                    reply = b""
                if reply.startswith(b"HTTP/1.1 "):
                    return self
            time.sleep(0.05)
        raise TimeoutError(f"server not ready: {self.stderr()}")

    @property
    def url(self) -> str:
        """Base http URL."""
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """Base ws URL."""
        return f"ws://{self.host}:{self.port}"

    def stderr(self) -> str:
        """What the server logged so far."""
        if not self._stderr.closed:
            self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")

    def events_text(self) -> str:
        """Lines written by hooks and apps."""
        return self.events.read_text() if self.events.exists() else ""

    def worker_pids(self) -> list[int]:
        """The worker processes (children of the arbiter)."""
        import psutil
        return [child.pid for child in psutil.Process(self.proc.pid).children()]

    def signal(self, sig: int) -> None:
        """Send a signal to the arbiter."""
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        """Wait for the arbiter to exit; its exit code."""
        return self.proc.wait(timeout)

    def stop(self) -> None:
        """TERM, then KILL if it lingers; always closes the log file."""
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(8)
                except subprocess.TimeoutExpired:
                    for pid in self.worker_pids():
                        os.kill(pid, signal.SIGKILL)
                    self.proc.kill()
                    self.proc.wait(5)
        finally:
            self._stderr.close()


def raw_request(port: int, data: bytes, timeout: float = 5.0, read_until_close: bool = True,
                host: str = "127.0.0.1") -> bytes:
    """Send raw bytes and read the reply until the server closes (or `timeout`)."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
            if not read_until_close:
                break
        return b"".join(chunks)


_LEFTOVER: dict[int, bytes] = {}


def read_response(sock: socket.socket, timeout: float = 5.0) -> tuple[bytes, bytes]:
    """Read one Content-Length or chunked response from `sock`: (head, body).

    Bytes past that response are kept for the next call on the same socket
    (pipelined responses often arrive in one segment).
    """
    sock.settimeout(timeout)
    buf = _LEFTOVER.pop(sock.fileno(), b"")

    def more() -> bytes:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed early: {buf[:200]!r}")
        return chunk

    while b"\r\n\r\n" not in buf:
        buf += more()
    head, _, rest = buf.partition(b"\r\n\r\n")
    lower = head.lower()
    if b"content-length:" in lower:
        length = int(lower.split(b"content-length:")[1].split(b"\r\n")[0])
        while len(rest) < length:
            rest += more()
        body, extra = rest[:length], rest[length:]
    elif b"transfer-encoding: chunked" in lower:
        while b"0\r\n\r\n" not in rest:
            rest += more()
        end = rest.index(b"0\r\n\r\n") + 5
        body, extra = rest[:end], rest[end:]
    else:
        body, extra = rest, b""
    if extra:
        _LEFTOVER[sock.fileno()] = extra
    return head, body
