"""Every HTTP worker class calls the dirty pool through the real `gcorn`, with no setup in the app."""

from __future__ import annotations

import concurrent.futures
import time
from pathlib import Path

import pytest
from test_e2e_dirty_harness import GcornServer

POOL = ["--dirty-app", "probe:Probe", "--dirty-workers", "2"]


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["-k", "sync", "web:app"], id="sync-wsgi"),
        pytest.param(["-k", "gthread", "--threads", "4", "flask_web:app"], id="gthread-flask"),
        pytest.param(["-k", "asgi", "starlette_web:app"], id="asgi-starlette"),
    ],
)
def test_a_route_calls_the_pool_and_returns_its_result(tmp_path: Path, args: list[str]) -> None:
    server = GcornServer(tmp_path, [*POOL, *args])
    try:
        assert server.wait_ok("/echo/hello").json() == {"result": "hello"}
        worker_pid, arbiter_pid = server.whoami()
        # the answer came from a dirty worker, a grandchild of the master via the dirty arbiter
        assert worker_pid in {p.pid for p in server.descendants()}
        assert server.dirty_workers(arbiter_pid) >= {worker_pid}
        # an unknown app is the pool's clear 404, not a crash of the HTTP worker
        missing = server.get("/echo/x?app=probe:Nope")
        assert missing.status_code == 404 and missing.json() == {"error": "DirtyAppNotFoundError"}
        assert server.get("/echo/again").json() == {"result": "again"}
    finally:
        assert server.stop() == 0, server.logs()


def test_gthread_threads_call_the_pool_concurrently(tmp_path: Path) -> None:
    # two dirty workers: two 0.6 s calls from two threads of one HTTP worker overlap
    server = GcornServer(tmp_path, [*POOL, "-k", "gthread", "--threads", "4", "flask_web:app"])
    try:
        server.wait_ok("/echo/ready")
        server.wait_ok("/sleep/0")
        with concurrent.futures.ThreadPoolExecutor(2) as pool:


            started = time.monotonic()
            answers = list(pool.map(lambda _: server.get("/sleep/0.6"), range(2)))
            elapsed = time.monotonic() - started
        assert [a.status_code for a in answers] == [200, 200]
        assert len({a.json()["result"] for a in answers}) == 2  # one call on each dirty worker
        assert elapsed < 1.1, elapsed
    finally:
        assert server.stop() == 0, server.logs()
