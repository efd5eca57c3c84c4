"""TERM to the master under keep-alive load loses no request that was sent: every request
whose bytes reached a worker is answered (the last one on a connection with `Connection:
close`), on every worker class, through the `gcorn` command with many raw-socket clients
that send their next request the moment a response arrives."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from harness import Gcorn

APP = '''
import asyncio, time

def wsgi(environ, start_response):
    if environ["PATH_INFO"] == "/slow":
        time.sleep(0.3)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]

async def asgi(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] == "/slow":
        await asyncio.sleep(0.3)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})
'''

WORKERS = {
    "sync": ["loadapp:wsgi"],
    "gthread": ["-k", "gthread", "--threads", "4", "loadapp:wsgi"],
    "asgi": ["-k", "asgi", "loadapp:asgi"],
}


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    sent: int = 0
    answered: int = 0
    closes: int = 0
    term_at: float = 0.0
    lost: list[str] = field(default_factory=list)


def read_response(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a response: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    while len(body) < 2:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed in the body")
        body += chunk
    return head


def client(port: int, path: str, stop: threading.Event, tally: Tally) -> None:
    """Keep-alive requests back to back, a new connection after each `Connection: close`."""
    request = b"GET " + path.encode() + b" HTTP/1.1\r\nHost: t\r\n\r\n"
    sock: socket.socket | None = None
    on_conn = 0
    while not stop.is_set():
        if sock is None:
            on_conn = 0
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            except OSError:
                time.sleep(0.01)  # the listener is gone: nothing was sent
                continue
        try:
            sock.sendall(request)
        except OSError:
            sock.close()
            sock = None
            continue  # not sent (the connection was already closed)
        with tally.lock:
            tally.sent += 1
        try:
            head = read_response(sock)
        except OSError as exc:
            with tally.lock:
                tally.lost.append(f"{exc!r} after {on_conn} answered on the connection, at {time.monotonic() - tally.term_at:+.3f}s")
            sock.close()
            sock = None
            continue
        on_conn += 1
        with tally.lock:
            tally.answered += 1
        if b"connection: close" in head.lower():
            with tally.lock:
                tally.closes += 1
            sock.close()
            sock = None
    if sock is not None:
        sock.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("worker", list(WORKERS))
def test_term_under_keep_alive_load_answers_every_request_sent(
        start_gcorn: Callable[..., Gcorn], tmp_path: Path, worker: str) -> None:
    (tmp_path / "loadapp.py").write_text(APP)
    server = start_gcorn("-w", "2", "--graceful-timeout", "5", "--keep-alive", "5", *WORKERS[worker])
    tally = Tally()
    stop = threading.Event()
    paths = ["/", "/slow"] if worker != "sync" else ["/"]
    threads = [threading.Thread(target=client, args=(server.port, paths[n % len(paths)], stop, tally))
               for n in range(16 if worker != "sync" else 4)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)
        before = tally.answered
        tally.term_at = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(15) == 0
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    assert before > 20, (before, server.log())  # the load was real
    assert tally.lost == [], (f"{len(tally.lost)} of {tally.sent} sent requests got no answer",
                              tally.lost[:5])
    assert tally.answered == tally.sent


@pytest.mark.timeout(30)
@pytest.mark.parametrize("worker", ["gthread", "asgi"])
def test_a_response_in_flight_at_term_says_connection_close(
        start_gcorn: Callable[..., Gcorn], tmp_path: Path, worker: str) -> None:
    (tmp_path / "loadapp.py").write_text(APP)
    server = start_gcorn("--graceful-timeout", "5", "--keep-alive", "5", *WORKERS[worker])
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert b"connection: close" not in read_response(sock).lower()  # keep-alive
        sock.sendall(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(0.1)  # the app is sleeping 0.3 s: its response has not started
        server.proc.send_signal(signal.SIGTERM)
        head = read_response(sock)
        assert head.startswith(b"HTTP/1.1 200"), head
        # told before the connection closes, so the client sends nothing more on it
        assert b"connection: close" in head.lower(), head
        sock.settimeout(3)
        assert sock.recv(1024) == b""
    assert server.proc.wait(10) == 0
