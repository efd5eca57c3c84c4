"""The sync worker that runs past `timeout`: the master's SIGABRT ends the request with a
500 to the client (when the response has not started) and the traceback of the stuck
frame in the error log, as gunicorn does; through the `gcorn` command, with real clients."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

GCORN = shutil.which("gcorn", path=os.path.dirname(sys.executable)) or "gcorn"

APP = '''
import time

def wait_for_the_database(seconds):
    time.sleep(seconds)

def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/stuck":
        wait_for_the_database(30)
    if path == "/stuck-after-start":
        write = start_response("200 OK", [("Content-Length", "10")])
        write(b"12345")
        wait_for_the_database(30)
        return [b"67890"]
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]
'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Gcorn:
    """`gcorn stuckapp:app` with timeout=1 on a free port."""

    def __init__(self, cwd: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = cwd / "server.log"
        env = dict(os.environ, GCORN_CMD_ARGS="", PYTHONUNBUFFERED="1")
        self._out = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [GCORN, "--bind", f"127.0.0.1:{self.port}", "--timeout", "1", "--graceful-timeout", "2",
             "stuckapp:app"],
            cwd=cwd, env=env, stdout=self._out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log()
            try:
                httpx.get(self.url + "/", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise AssertionError(self.log())

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._out.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Gcorn]:
    (tmp_path / "stuckapp.py").write_text(APP)
    srv = Gcorn(tmp_path)
    try:
        yield srv
    finally:
        srv.stop()


def test_a_stuck_request_gets_500_and_the_stuck_frame_is_logged(server: Gcorn) -> None:
    started = time.monotonic()
    response = httpx.get(server.url + "/stuck", timeout=10)
    elapsed = time.monotonic() - started
    assert response.status_code == 500
    assert response.headers["connection"] == "close"
    assert elapsed < 5, elapsed  # timeout 1 s, not the app's 30 s
    deadline = time.monotonic() + 5
    while "WORKER TIMEOUT" not in server.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = server.log()
    assert "WORKER TIMEOUT" in log
    assert "Error handling request GET /stuck" in log
    # the traceback reaches the frame that was stuck
    assert 'line 5, in wait_for_the_database' in log, log
    assert "time.sleep(seconds)" in log
    # a new worker serves the next request
    assert httpx.get(server.url + "/", timeout=10).text == "ok"


def test_a_response_already_started_is_cut_not_answered_twice(server: Gcorn) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /stuck-after-start HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert data.endswith(b"\r\n\r\n12345")  # cut short: no 500 written into the body
    assert b" 500 " not in data
    assert httpx.get(server.url + "/", timeout=10).text == "ok"
