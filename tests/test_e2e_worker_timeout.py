"""The sync worker that runs past `timeout`: the master's SIGABRT ends the request with a
500 to the client (when the response has not started) and the traceback of the stuck
frame in the error log, as gunicorn does; through the `gcorn` command, with real clients."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from harness import Gcorn, wait_until

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


@pytest.fixture
def server(start_gcorn: Callable[..., Gcorn], tmp_path: Path) -> Gcorn:
    """`gcorn stuckapp:app` with timeout=1, ready once it answers GET /."""
    (tmp_path / "stuckapp.py").write_text(APP)
    return start_gcorn("--timeout", "1", "--graceful-timeout", "2", "stuckapp:app")


def test_a_stuck_request_gets_500_and_the_stuck_frame_is_logged(server: Gcorn) -> None:
    started = time.monotonic()
    response = httpx.get(server.url + "/stuck", timeout=10)
    elapsed = time.monotonic() - started
    assert response.status_code == 500
    assert response.headers["connection"] == "close"
    assert elapsed < 5, elapsed  # timeout 1 s, not the app's 30 s
    wait_until(lambda: "WORKER TIMEOUT" in server.log(), timeout=5)
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
