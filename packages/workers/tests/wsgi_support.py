"""Helpers for the WSGI worker tests: start a real arbiter + worker, talk to it."""

from __future__ import annotations

import http.client
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
from workers_helpers import free_port

HERE = Path(__file__).resolve().parent

RUNNER = HERE / "wsgi_runner.py"


class Server:
    """A wsgi_runner.py subprocess: a real Arbiter forking a real worker."""

    def __init__(self, tmp: Path, worker: str = "sync", app: str = "wsgi_apps:router",
                 settings: dict[str, Any] | None = None, hooks: str | None = None,
                 access_log: bool = False, bind: list[str] | None = None,
                 loglevel: str = "INFO", env: dict[str, str] | None = None) -> None:
        self.tmp = Path(tmp)
        self.port = free_port()
        self.host = "127.0.0.1"
        self.bind = bind or [f"{self.host}:{self.port}"]
        self.access_path = self.tmp / f"access-{self.port}.log" if access_log else None
        self.log_path = self.tmp / f"server-{self.port}.log"
        self.spec = {"worker": worker, "app": app, "bind": self.bind,
                     "settings": settings or {}, "loglevel": loglevel}
        if hooks:
            self.spec["hooks"] = hooks
        if self.access_path:
            self.spec["access_log"] = str(self.access_path)
        self.env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
        self.env["PYTHONPATH"] = os.pathsep.join(
            [str(HERE)] + [p for p in self.env.get("PYTHONPATH", "").split(os.pathsep) if p])
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, ready_path: str = "/pid", timeout: float = 15.0,
              probe: Any = None) -> Server:
        """Start and wait until a request is answered (the process is killed on failure)."""
        try:
            return self._start(ready_path, timeout, probe)
        except BaseException:
            if self.proc is not None and self.proc.poll() is None:
                self.stop(signal.SIGKILL)
            raise

    def _start(self, ready_path: str, timeout: float, probe: Any) -> Server:
        self._logf = open(self.log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, str(RUNNER), json.dumps(self.spec)],
                                     stdout=self._logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=self.env, cwd=str(HERE))
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited rc={self.proc.returncode}:\n{self.log()}")
            try:
                if self.unix_path():
                    return self
                if probe is not None:
                    if probe(self):
                        return self
                    time.sleep(0.05)
                    continue
                status, _, _ = self.request("GET", ready_path, timeout=2)
                if status < 500:
                    return self
            except OSError as exc:
                last = exc
            time.sleep(0.05)
        self.stop(signal.SIGKILL)
        raise RuntimeError(f"server not ready: {last}\n{self.log()}")

    def unix_path(self) -> str | None:
        """For a unix: bind, the socket path once it exists."""
        bind = self.bind[0]
        if bind.startswith("unix:"):
            path = bind[5:]
            return path if os.path.exists(path) else None
        return None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        """Signal the arbiter and wait for it; SIGKILL after `timeout`."""
        proc = self.proc
        assert proc is not None
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self._logf.close()
        return int(proc.returncode)

    def log(self) -> str:
        """Everything the server printed so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def access_lines(self) -> list[str]:
        """The access-log lines written so far."""
        if not self.access_path or not self.access_path.exists():
            return []
        return self.access_path.read_text().splitlines()

    def connection(self, timeout: float = 5.0) -> http.client.HTTPConnection:
        """A new http.client connection to the server."""
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None,
                timeout: float = 5.0) -> tuple[int, http.client.HTTPMessage, bytes]:
        """One request on a new connection: (status, headers, body)."""
        conn = self.connection(timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.headers, resp.read()
        finally:
            conn.close()

    def raw(self, data: bytes, timeout: float = 5.0, shut: bool = False) -> bytes:
        """Send raw bytes on a new connection; read until the server closes (or timeout)."""
        with socket.create_connection((self.host, self.port), timeout=timeout) as s:
            s.sendall(data)
            if shut:
                s.shutdown(socket.SHUT_WR)
            return read_until_close(s, timeout)


def read_until_close(s: socket.socket, timeout: float = 5.0) -> bytes:
    """Everything until EOF, bounded by `timeout` seconds."""
    chunks = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            data = s.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def split_responses(data: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """Parse back-to-back HTTP/1.1 responses (Content-Length or chunked framed)."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        assert sep, f"incomplete response head: {data[:200]!r}"
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            n = int(headers["content-length"])
            body, data = rest[:n], rest[n:]
        elif headers.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                size_line, _, rest = rest.partition(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    _, _, rest = rest.partition(b"\r\n")
                    break
                body += rest[:size]
                rest = rest[size + 2:]
            data = rest
        else:
            body, data = rest, b""
        out.append((status, headers, body))
    return out
