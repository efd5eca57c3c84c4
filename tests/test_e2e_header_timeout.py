"""`header_timeout` (gcorn only; gunicorn has no limit on reading a request head): a
client that sends its head one line at a time (slowloris) is answered 408 and closed at
the deadline, on every worker, and the 408 is in the access log; a slow client that
finishes in time is served. Through the `gcorn` command, with raw sockets."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from harness import Gcorn, wait_until

APP = '''
def wsgi(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]

async def asgi(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})
'''

WORKERS = {
    "sync": ["slowapp:wsgi"],
    "gthread": ["-k", "gthread", "--threads", "2", "slowapp:wsgi"],
    "asgi": ["-k", "asgi", "slowapp:asgi"],
}
HEADER_TIMEOUT = 3.0


@dataclass
class Running:
    port: int
    access_log: Path


@pytest.fixture(scope="module", params=list(WORKERS))
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """A gcorn on one worker class with header_timeout 3 s, for every test of the module."""
    tmp = tmp_path_factory.mktemp("slowloris")
    (tmp / "slowapp.py").write_text(APP)
    access_log = tmp / "access.log"
    # keepalive 1 s: the head deadline, not the keep-alive one, governs a head being read
    with Gcorn(["--header-timeout", str(HEADER_TIMEOUT), "--keep-alive", "1",
                "--access-logfile", str(access_log), *WORKERS[request.param]],
               cwd=tmp, shared=True) as gcorn:
        yield Running(gcorn.port, access_log)


def slow_client(port: int, lines: int, every: float, finish: bool) -> tuple[bytes, float]:
    """Send a head one header line per `every` seconds; (everything read, seconds taken)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /slow HTTP/1.1\r\nHost: t\r\n")
        reply = b""
        for n in range(lines):
            time.sleep(every)
            try:
                sock.sendall(b"X-Line-%d: %s\r\n" % (n, b"v" * 20))
            except (BrokenPipeError, ConnectionResetError):
                break  # cut: read what the server said
            sock.setblocking(False)
            try:
                reply += sock.recv(65536)
            except BlockingIOError:
                pass
            except ConnectionResetError:
                break
            finally:
                sock.setblocking(True)
            if reply:
                break
        if finish and not reply:
            sock.sendall(b"\r\n")
        sock.settimeout(5)
        try:
            while chunk := sock.recv(65536):
                reply += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return reply, time.monotonic() - started


def test_a_slowloris_head_is_cut_with_408_at_the_deadline(server: Running) -> None:
    reply, elapsed = slow_client(server.port, lines=20, every=1.0, finish=False)  # a line a second
    assert reply.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), reply
    assert b"Connection: close" in reply or b"connection: close" in reply
    # cut at the deadline (plus one worker tick), long before the 10 s the client would take
    assert HEADER_TIMEOUT - 0.1 < elapsed < HEADER_TIMEOUT + 2.0, elapsed
    wait_until(lambda: any(" 408 " in line for line in server.access_log.read_text().splitlines()),
               timeout=3)
    assert any(" 408 " in line for line in server.access_log.read_text().splitlines()), \
        server.access_log.read_text()


def test_a_slow_head_that_ends_in_time_is_served(server: Running) -> None:
    # 1.5 s of dribbling: longer than keepalive (1 s), shorter than header_timeout (3 s)
    reply, _ = slow_client(server.port, lines=3, every=0.5, finish=True)
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n"), reply
    assert reply.endswith(b"ok")


def test_the_default_is_10_seconds() -> None:
    from gcorn.cli.config import Config

    assert Config().header_timeout == 10
