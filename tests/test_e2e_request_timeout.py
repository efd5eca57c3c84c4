"""`request_timeout` on every worker type, through the `gcorn` command with real clients.

A request stuck past it is answered 504 (or its connection cut when the response
had started), the traceback of where it was stuck is logged, an access-log line
says 504, and the worker keeps serving; gthread threads stuck in C code are
counted, and once all `threads` are stuck the worker is recycled gracefully.
"""

from __future__ import annotations

import importlib.util
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from harness import Gcorn, wait_until

WSGI_APP = '''
import time

def wait_for_the_database(seconds):
    time.sleep(seconds)

def crunch_numbers(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass

def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/stuck":
        wait_for_the_database(30)
    elif path == "/spin":
        crunch_numbers(30)
    elif path == "/slow":
        time.sleep(2)
    elif path == "/stuck-after-start":
        write = start_response("200 OK", [("Content-Length", "10")])
        write(b"12345")
        wait_for_the_database(30)
        return [b"67890"]
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]
'''

ASGI_APP = '''
import asyncio

async def wait_for_the_database(seconds):
    await asyncio.sleep(seconds)

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/stuck":
        await wait_for_the_database(30)
    elif path == "/slow":
        await asyncio.sleep(2)
    elif path == "/stuck-after-start":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"10")]})
        await send({"type": "http.response.body", "body": b"12345", "more_body": True})
        await wait_for_the_database(30)
        await send({"type": "http.response.body", "body": b"67890"})
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})
'''

GREEN_WORKERS = [
    pytest.param(name, marks=pytest.mark.skipif(
        importlib.util.find_spec(name) is None,
        reason=f"{name} is not installed (pip install 'gcorn-workers[{name}]')"))
    for name in ("gevent", "eventlet")]
WORKERS = ["sync", "gthread", "asgi", *GREEN_WORKERS]
CONCURRENT = ["gthread", "asgi", *GREEN_WORKERS]
# the line of each app where /stuck waits
STUCK_LINE = {"asgi": "await asyncio.sleep(seconds)"}


def _serve(start_gcorn: Callable[..., Gcorn], tmp_path: Path, worker: str,
           *args: str) -> Gcorn:
    (tmp_path / "stuckapp.py").write_text(ASGI_APP if worker == "asgi" else WSGI_APP)
    extra = ["--threads", "4"] if worker == "gthread" else []
    return start_gcorn("-k", worker, *extra, "--access-logfile", "-", "--graceful-timeout", "2",
                       *args, "stuckapp:app")


def _boots(server: Gcorn) -> int:
    return server.log().count("Booting worker with pid")


@pytest.mark.parametrize("worker", WORKERS)
def test_a_stuck_request_gets_504_and_its_stuck_line_is_logged(
        start_gcorn: Callable[..., Gcorn], tmp_path: Path, worker: str) -> None:
    server = _serve(start_gcorn, tmp_path, worker, "--request-timeout", "1")
    started = time.monotonic()
    response = httpx.get(server.url + "/stuck", timeout=10)
    elapsed = time.monotonic() - started
    assert response.status_code == 504, response.text
    assert response.headers["connection"] == "close"
    assert 0.9 < elapsed < 4, elapsed  # request_timeout 1 s, not the app's 30 s
    wait_until(lambda: '"GET /stuck HTTP/1.1" 504' in server.log(), timeout=5)
    log = server.log()
    assert "Request timeout: GET /stuck ran past request_timeout=1s (answered 504)" in log, log
    # the traceback reaches the frame that was stuck, and names its line
    assert "in wait_for_the_database" in log, log
    assert STUCK_LINE.get(worker, "time.sleep(seconds)") in log, log
    assert '"GET /stuck HTTP/1.1" 504' in log, log  # the access log counts it
    # the same worker serves the next request: it was not killed for it
    assert httpx.get(server.url + "/", timeout=5).text == "ok"
    assert _boots(server) == 1, server.log()


@pytest.mark.parametrize("worker", CONCURRENT)
def test_other_requests_are_served_while_one_is_stuck(
        start_gcorn: Callable[..., Gcorn], tmp_path: Path, worker: str) -> None:
    server = _serve(start_gcorn, tmp_path, worker, "--request-timeout", "1")
    stuck: list[int] = []
    client = threading.Thread(
        target=lambda: stuck.append(httpx.get(server.url + "/stuck", timeout=10).status_code))
    client.start()
    try:
        time.sleep(0.3)
        started = time.monotonic()
        assert httpx.get(server.url + "/", timeout=5).text == "ok"
        assert time.monotonic() - started < 0.8  # not held behind the stuck one
    finally:
        client.join(10)
    assert stuck == [504]
    assert httpx.get(server.url + "/", timeout=5).text == "ok"


@pytest.mark.parametrize("worker", WORKERS)
def test_a_response_already_started_is_cut_not_answered_twice(
        start_gcorn: Callable[..., Gcorn], tmp_path: Path, worker: str) -> None:
    server = _serve(start_gcorn, tmp_path, worker, "--request-timeout", "1")
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /stuck-after-start HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert time.monotonic() - started < 4
    assert data.lower().startswith(b"http/1.1 200 ok\r\n"), data
    assert data.endswith(b"\r\n\r\n12345"), data  # cut short: no 504 inside the body
    assert b"504" not in data
    wait_until(lambda: "response already started: connection closed" in server.log(), timeout=5)
    assert "Request timeout: GET /stuck-after-start" in server.log()
    assert httpx.get(server.url + "/", timeout=5).text == "ok"


@pytest.mark.parametrize("worker", ["sync", "gthread"])
def test_a_busy_loop_is_interrupted(start_gcorn: Callable[..., Gcorn], tmp_path: Path,
                                    worker: str) -> None:
    server = _serve(start_gcorn, tmp_path, worker, "--request-timeout", "1")
    response = httpx.get(server.url + "/spin", timeout=10)
    assert response.status_code == 504
    wait_until(lambda: "in crunch_numbers" in server.log(), timeout=5)
    assert "in crunch_numbers" in server.log()
    # the thread was interrupted, not left spinning: nothing is reported stuck
    time.sleep(1.5)
    assert "cannot be interrupted" not in server.log()
    assert httpx.get(server.url + "/", timeout=5).text == "ok"
    assert _boots(server) == 1


def test_gthread_all_threads_stuck_in_c_code_recycles_the_worker(
        start_gcorn: Callable[..., Gcorn], tmp_path: Path) -> None:
    (tmp_path / "stuckapp.py").write_text(WSGI_APP)
    server = start_gcorn("-k", "gthread", "--threads", "2", "--request-timeout", "1",
                         "--graceful-timeout", "10", "stuckapp:app")
    statuses: list[int] = []
    clients = [threading.Thread(target=lambda: statuses.append(
        httpx.get(server.url + "/stuck", timeout=10).status_code)) for _ in range(2)]
    for client in clients:
        client.start()
    for client in clients:
        client.join(10)
    assert statuses == [504, 504]
    # time.sleep cannot be interrupted: each thread is reported, then the worker recycled
    assert wait_until(lambda: "recycling the worker" in server.log(), timeout=5), server.log()
    log = server.log()
    assert "a serving thread cannot be interrupted" in log
    assert "2 of 2 threads stuck" in log
    # gracefully, and without waiting graceful_timeout for the stuck threads
    assert wait_until(lambda: _boots(server) == 2, timeout=5), server.log()
    assert wait_until(lambda: httpx.get(server.url + "/", timeout=5).text == "ok", timeout=5)


@pytest.mark.parametrize("worker", ["sync", "gthread", "asgi"])
def test_no_request_timeout_by_default(start_gcorn: Callable[..., Gcorn], tmp_path: Path,
                                       worker: str) -> None:
    server = _serve(start_gcorn, tmp_path, worker)
    response = httpx.get(server.url + "/slow", timeout=10)
    assert response.status_code == 200
    assert response.text == "ok"
    assert "Request timeout" not in server.log()


def test_a_bad_request_timeout_is_a_clear_error(start_gcorn: Callable[..., Gcorn],
                                                tmp_path: Path) -> None:
    (tmp_path / "stuckapp.py").write_text(WSGI_APP)
    server = start_gcorn("--request-timeout", "soon", "stuckapp:app", wait=False)
    assert server.proc.wait(10) != 0
    assert "request_timeout" in server.log() or "--request-timeout" in server.log()


COUNTER_HOOK = '''
def post_request(worker, req, environ, resp):
    worker.log.warning("request_timeouts=%d", worker.request_timeouts)
'''


@pytest.mark.parametrize("worker", WORKERS)
def test_each_worker_counts_its_timed_out_requests(start_gcorn: Callable[..., Gcorn],
                                                   tmp_path: Path, worker: str) -> None:
    (tmp_path / "counter.conf.py").write_text(COUNTER_HOOK)
    server = _serve(start_gcorn, tmp_path, worker, "-c", "counter.conf.py",
                    "--request-timeout", "1")
    assert httpx.get(server.url + "/", timeout=5).text == "ok"
    # gthread: a busy loop, so that the interrupted thread comes back to run the hook
    path = "/spin" if worker == "gthread" else "/stuck"
    assert httpx.get(server.url + path, timeout=10).status_code == 504
    assert wait_until(lambda: "request_timeouts=1" in server.log(), timeout=5), server.log()
    assert "request_timeouts=0" in server.log()  # the hook ran for / before
