"""gthread under `request_timeout`: a request that ends just as its limit passes gets one answer.

The watchdog's 504 and the serving thread's own response (the app's head, or the
500 of an app error) race for the connection; the first to claim it writes, the
other's bytes are dropped. The apps here sleep for about `request_timeout`, a
few milliseconds either side, so that both orders happen; a client must never
read two status lines.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from harness import Gcorn

APP = '''
import time

def app(environ, start_response):
    seconds = float(environ["QUERY_STRING"] or "0")
    if environ["PATH_INFO"] == "/answer-late":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        time.sleep(seconds)
        return [b"ok"]
    if environ["PATH_INFO"] == "/fail-late":
        time.sleep(seconds)
        raise RuntimeError("the app fails just as request_timeout passes")
    time.sleep(seconds)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]
'''

LIMIT = 0.3
STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3}) ")


def _exchange(port: int, path: str) -> bytes:
    """One request on its own connection; every byte the server sent until it closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass  # a cut after the answer: what came before it is what counts
    return data


def test_a_client_never_sees_two_status_lines(start_gcorn: Callable[..., Gcorn],
                                              tmp_path: Path) -> None:
    (tmp_path / "edgeapp.py").write_text(APP)
    server = start_gcorn("-k", "gthread", "--threads", "4", "--request-timeout", str(LIMIT),
                         "edgeapp:app")
    # the watchdog looks every LIMIT/10 s: these land on both sides of its answer
    offsets = [LIMIT + step / 1000 for step in range(-30, 50, 7)]
    paths = [f"{route}?{seconds:.3f}" for seconds in offsets
             for route in ("/", "/answer-late", "/fail-late")]
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda path: (path, _exchange(server.port, path)), paths))
    statuses: dict[str, set[int]] = {}
    for path, data in answers:
        lines = STATUS_LINE.findall(data)
        assert len(lines) == 1, (path, data)
        status = int(lines[0])
        route = path.split("?")[0]
        statuses.setdefault(route, set()).add(status)
        if status == 504:
            assert data.endswith(b"request_timeout\n"), (path, data)
        elif status == 200:
            assert data.endswith(b"\r\n\r\nok"), (path, data)
    assert statuses["/"] <= {200, 504}, statuses
    assert statuses["/answer-late"] <= {200, 504}, statuses
    assert statuses["/fail-late"] <= {500, 504}, statuses
    # well past the limit it is always the 504, well before it always the app's answer
    assert 504 in statuses["/"] and 200 in statuses["/"], statuses
    log = server.log()
    assert "start_response called a second time" not in log, log
    assert httpx.get(server.url + "/", timeout=5).text == "ok"  # the worker serves on
