"""Dirty-pool failures reach the HTTP client as statuses, fast, and the pool recovers."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
from harness import EXAMPLES, wait_until
from test_e2e_dirty_harness import GcornServer


def test_example_app_turns_busy_into_503_with_retry_after(tmp_path: Path) -> None:
    # one dirty worker, one slot, one queued call: the rest of a burst is refused at once
    server = GcornServer(tmp_path, [
        "--chdir", str(EXAMPLES), "-k", "gthread", "--threads", "8",
        "--dirty-app", "dirty_app:WordCount", "--dirty-workers", "1", "--dirty-threads", "1",
        "--dirty-queue-size", "1", "hello:app",
    ])
    try:
        counted = server.wait_ok("/dirty?text=the+cat+and+the+hat+the+cat").json()
        assert counted["words"] == 7 and counted["top"][0] == ["cat", 2]

        def timed_get(_: int) -> tuple[httpx.Response, float]:
            started = time.monotonic()
            response = server.get("/dirty?text=slow&delay=1", timeout=10)
            return response, time.monotonic() - started

        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            results = list(pool.map(timed_get, range(6)))
        statuses = sorted(r.status_code for r, _ in results)
        assert set(statuses) == {200, 503}, statuses
        busy = [(r, t) for r, t in results if r.status_code == 503]
        assert len(busy) >= 3, statuses  # at most one running and one queued (plus a race)
        for response, elapsed in busy:
            assert response.headers["Retry-After"] == "1"
            assert response.json() == {"error": "busy, retry later"}
            assert elapsed < 0.8, elapsed  # refused at once, not after waiting
        # the pool is not hurt: the next call goes through
        assert server.wait_ok("/dirty?text=again").json()["words"] == 1
    finally:
        assert server.stop() == 0, server.logs()


def test_example_app_answers_bad_input_and_a_missing_pool_with_a_status(tmp_path: Path) -> None:
    server = GcornServer(tmp_path, ["--chdir", str(EXAMPLES), "hello:app"])  # no dirty pool
    try:
        assert server.wait_ok("/").text == "Hello, World!\n"
        assert server.get("/dirty?text=x&delay=soon").status_code == 400
        missing = server.get("/dirty?text=x")
        assert missing.status_code == 500 and "GCORN_DIRTY_SOCKET" in missing.json()["message"]
        assert "Traceback" not in missing.text
    finally:
        assert server.stop() == 0, server.logs()


@pytest.mark.parametrize("http", [
    pytest.param(["-k", "gthread", "--threads", "4", "web:app"], id="gthread"),
    pytest.param(["-k", "asgi", "starlette_web:app"], id="asgi-starlette"),
])
def test_dirty_worker_killed_mid_call_answers_5xx_at_once_and_the_next_call_works(
    tmp_path: Path, http: list[str]
) -> None:
    server = GcornServer(tmp_path, ["--dirty-app", "probe:Probe", "--dirty-workers", "1", *http])
    try:
        worker_pid, arbiter_pid = server.whoami()
        answer: dict[str, object] = {}

        def slow_call() -> None:
            answer["response"] = server.get("/sleep/5", timeout=10)
            answer["at"] = time.monotonic()

        caller = threading.Thread(target=slow_call)
        caller.start()
        time.sleep(0.5)  # the call is running in the dirty worker
        killed_at = time.monotonic()
        os.kill(worker_pid, signal.SIGKILL)
        caller.join(5)
        assert not caller.is_alive()
        response = answer["response"]
        assert isinstance(response, httpx.Response)
        assert response.status_code == 502 and response.json() == {"error": "DirtyWorkerLostError"}
        assert float(answer["at"]) - killed_at < 1.0  # type: ignore[arg-type]
        # a replacement takes the seat and the next call succeeds
        new_pid, same_arbiter = server.whoami()
        assert new_pid != worker_pid and same_arbiter == arbiter_pid
        assert wait_until(lambda: len(server.dirty_workers(arbiter_pid)) == 1, 5)
    finally:
        assert server.stop() == 0, server.logs()
