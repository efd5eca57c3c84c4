"""`--graceful-timeout 0` means no grace in the workers as in the master: a worker that
stops by itself (here after `--max-requests 1`) does not wait for the request still in
flight. It once became 30 s in the gthread and asgi workers (`value or 30`), so the slow
request below was answered in full, 4 s later, while the master would not have waited."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from harness import Gcorn, log_probe, wait_until

SLOW = 4.0

APP = f'''
import asyncio, pathlib, time

def wsgi(environ, start_response):
    if environ["PATH_INFO"] == "/slow":
        pathlib.Path("slow-started").touch()
        time.sleep({SLOW})
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]

async def asgi(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] == "/slow":
        pathlib.Path("slow-started").touch()
        await asyncio.sleep({SLOW})
    await send({{"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"2")]}})
    await send({{"type": "http.response.body", "body": b"ok"}})
'''

WORKERS = {
    "gthread": ["-k", "gthread", "--threads", "4", "zeroapp:wsgi"],
    "asgi": ["-k", "asgi", "zeroapp:asgi"],
}


def request(port: int, path: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    return sock


def read_all(sock: socket.socket) -> bytes:
    """What the server sent until it closed (a reset counts as a close)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
            if data.endswith(b"ok"):
                break
    except ConnectionResetError:
        pass
    return data


@pytest.mark.parametrize("worker", sorted(WORKERS))
def test_graceful_timeout_zero_does_not_wait_for_in_flight_work(
        worker: str, tmp_path: Path, start_gcorn: Callable[..., Gcorn]) -> None:
    (tmp_path / "zeroapp.py").write_text(APP)
    # no HTTP readiness probe: it would be the one request that max_requests allows
    server = start_gcorn("--graceful-timeout", "0", "--max-requests", "1", "--workers", "1",
                         *WORKERS[worker], ready_path=None)
    server.ready = log_probe(r"Booting worker with pid")
    server.wait_ready()
    slow = request(server.port, "/slow")
    wait_until(lambda: (tmp_path / "slow-started").exists(), timeout=10)
    with request(server.port, "/") as fast:
        assert read_all(fast).startswith(b"HTTP/1.1 200")
    answered = time.monotonic()
    with slow:
        data = read_all(slow)
    waited = time.monotonic() - answered
    # the worker stopped at once: the slow request's connection closed unanswered
    assert not data.startswith(b"HTTP/1.1 200"), (data, server.log())
    assert waited < SLOW - 1.5, (waited, server.log())
    assert "Autorestarting worker" in server.log()


LIFESPAN_APP = '''
import pathlib

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                pathlib.Path("shutdown-ran").touch()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})
'''


def test_graceful_timeout_zero_skips_the_lifespan_shutdown_without_an_error(
        tmp_path: Path, start_gcorn: Callable[..., Gcorn]) -> None:
    (tmp_path / "lifeapp.py").write_text(LIFESPAN_APP)
    server = start_gcorn("-k", "asgi", "--graceful-timeout", "0", "--max-requests", "1",
                         "lifeapp:app", ready_path=None)
    server.ready = log_probe(r"Booting worker with pid")
    server.wait_ready()
    with request(server.port, "/") as sock:
        assert read_all(sock).startswith(b"HTTP/1.1 200")
    assert wait_until(lambda: "ASGI lifespan shutdown skipped: graceful_timeout is 0" in server.log(),
                      10), server.log()
    log = server.log()
    assert "did not complete" not in log and "Exception in ASGI lifespan" not in log, log
    assert not (tmp_path / "shutdown-ran").exists()  # not started rather than cut halfway
