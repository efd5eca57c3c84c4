"""A retiring worker (TERM, as on HUP or when an old master stops) loses no keep-alive request.

A keep-alive client sends its next request the moment a response arrives, so a
worker that closes "idle" keep-alive connections when told to stop closes them
under clients that have just sent a request (wrk reported those as read
errors across HUP and USR2). The stopping gthread and asgi workers instead
answer the next request on such a connection with `Connection: close`, and
close only the connections that stay idle through a short grace.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from asgi_support import AsgiServer
from wsgi_support import Server

REQUEST = b"GET /pid HTTP/1.1\r\nHost: t\r\n\r\n"


class Target:
    """A running server of one worker class: its port, a signal to the master, its workers."""

    def __init__(self, port: int, signal_master: Callable[[int], None],
                 worker_pids: Callable[[], list[int]], stop: Callable[[], Any]) -> None:
        self.port = port
        self.signal_master = signal_master
        self.worker_pids = worker_pids
        self.stop = stop


def _start(kind: str, tmp_path: Path) -> Target:
    if kind == "asgi":
        asrv = AsgiServer(tmp_path, "asgi_apps:app", keepalive=5, graceful_timeout=10).wait_ready()
        return Target(asrv.port, asrv.signal, asrv.worker_pids, asrv.stop)
    wsrv = Server(tmp_path, worker="gthread",
                  settings={"threads": 2, "keepalive": 5, "graceful_timeout": 10}).start()
    assert wsrv.proc is not None
    proc = wsrv.proc

    def pids() -> list[int]:
        import psutil
        return [child.pid for child in psutil.Process(proc.pid).children()]

    return Target(wsrv.port, proc.send_signal, pids, wsrv.stop)


def _read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    """One whole response (head, body) with a Content-Length; ConnectionError if it is cut short."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a response head: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.lower().split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed in the middle of a response body")
        body += chunk
    return head, body


def _says_close(head: bytes) -> bool:
    return b"\r\nconnection: close" in head.lower()


@pytest.mark.parametrize("kind", ["gthread", "asgi"])
def test_request_on_an_idle_keep_alive_connection_after_term_is_answered(
        tmp_path: Path, kind: str) -> None:
    target = _start(kind, tmp_path)
    socks: list[socket.socket] = []
    try:
        for _ in range(2):
            sock = socket.create_connection(("127.0.0.1", target.port), timeout=5)
            socks.append(sock)
            sock.sendall(REQUEST)
            head, _ = _read_response(sock)
            assert head.startswith(b"HTTP/1.1 200") and not _says_close(head)
        busy, idle = socks
        target.signal_master(signal.SIGTERM)
        termed = time.monotonic()
        time.sleep(0.3)  # the worker is stopping; its keep-alive connections are still open
        busy.sendall(REQUEST)
        head, _ = _read_response(busy)
        assert head.startswith(b"HTTP/1.1 200"), head
        assert _says_close(head), head
        assert busy.recv(1024) == b""
        # the one that stays idle is let go after the short grace, not after keepalive (5 s)
        idle.settimeout(4)
        assert idle.recv(1024) == b""
        assert time.monotonic() - termed < 3.0
    finally:
        for sock in socks:
            sock.close()
        target.stop()


def _hammer(port: int, until: float, counts: dict[str, int], errors: list[str]) -> None:
    """Like wrk: keep-alive, the next request sent as soon as the response is read."""
    sock: socket.socket | None = None
    while time.monotonic() < until:
        if sock is None:
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        try:
            sock.sendall(REQUEST)
            head, _ = _read_response(sock)
        except OSError as exc:
            errors.append(repr(exc))
            sock.close()
            sock = None
            continue
        counts["ok"] += 1
        if _says_close(head):
            counts["close"] += 1
            sock.close()
            sock = None
    if sock is not None:
        sock.close()


@pytest.mark.parametrize("kind", ["gthread", "asgi"])
def test_worker_retired_under_keep_alive_load_loses_no_request(tmp_path: Path, kind: str) -> None:
    target = _start(kind, tmp_path)
    try:
        [old] = target.worker_pids()
        counts = {"ok": 0, "close": 0}
        errors: list[str] = []
        until = time.monotonic() + 2.0
        clients = [threading.Thread(target=_hammer, args=(target.port, until, counts, errors))
                   for _ in range(4)]
        for client in clients:
            client.start()
        time.sleep(0.5)
        os.kill(old, signal.SIGTERM)  # what the master does to an old worker on HUP
        for client in clients:
            client.join(10)
        assert errors == []
        # the retirement did happen under load: connections ended with a close answer
        assert counts["close"] >= 1 and counts["ok"] > 50, counts
        assert old not in target.worker_pids()
    finally:
        target.stop()
