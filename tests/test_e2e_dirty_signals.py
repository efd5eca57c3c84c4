"""The gcorn master supervises the dirty arbiter, and signals reach the dirty tree."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
from harness import wait_until
from test_e2e_dirty_harness import GcornServer, alive

GTHREAD = ["-k", "gthread", "--threads", "4", "web:app"]
ASGI = ["-k", "asgi", "starlette_web:app"]


def pool(workers: int = 2) -> list[str]:
    return ["--dirty-app", "probe:Probe", "--dirty-workers", str(workers)]


@pytest.mark.parametrize(
    "http", [pytest.param(GTHREAD, id="gthread"), pytest.param(ASGI, id="asgi-starlette")])
def test_a_killed_dirty_arbiter_is_respawned_and_calls_work_again(
    tmp_path: Path, http: list[str]
) -> None:
    server = GcornServer(tmp_path, [*pool(), *http])
    try:
        _, arbiter_pid = server.whoami()
        old_workers = server.dirty_workers(arbiter_pid)
        assert len(old_workers) == 2
        os.kill(arbiter_pid, signal.SIGKILL)
        # the master restarts it (backoff 0.5 s); the HTTP worker's client finds the new pool
        # (the old workers may answer for the half second before they notice and drain)
        answer = wait_until(lambda: (now := server.whoami())[0] not in old_workers and now, 10)
        assert answer, server.logs()
        new_worker, new_arbiter = answer
        assert new_arbiter != arbiter_pid
        assert new_arbiter in {p.pid for p in server.descendants()}
        # the orphaned workers of the dead arbiter stop by themselves
        procs = [p for p in server.descendants() if p.pid in old_workers]
        assert wait_until(lambda: not alive(procs), 10), [p.pid for p in alive(procs)]
        assert wait_until(lambda: len(server.dirty_workers(new_arbiter)) == 2, 5)
    finally:
        assert server.stop() == 0, server.logs()


def test_term_to_the_master_stops_the_whole_dirty_tree(tmp_path: Path) -> None:
    server = GcornServer(tmp_path, [*pool(), *GTHREAD])
    try:
        _, arbiter_pid = server.whoami()
        tree = server.descendants()
        assert arbiter_pid in {p.pid for p in tree} and len(server.dirty_workers(arbiter_pid)) == 2
    finally:
        code = server.stop(signal.SIGTERM)
    assert code == 0, server.logs()
    assert server.leftovers == [], [p.pid for p in server.leftovers]  # no orphan of any kind
    assert "Traceback" not in server.logs()


def test_hup_replaces_dirty_workers_while_calls_keep_succeeding(tmp_path: Path) -> None:
    server = GcornServer(tmp_path, [*pool(), *GTHREAD])
    try:
        _, arbiter_pid = server.whoami()
        before = server.dirty_workers(arbiter_pid)
        statuses: list[int] = []
        stop = threading.Event()

        def call_in_a_loop() -> None:
            deadline = time.monotonic() + 10
            with httpx.Client(timeout=5) as client:
                while not stop.is_set() and time.monotonic() < deadline:
                    statuses.append(client.get(server.url + "/echo/x").status_code)

        caller = threading.Thread(target=call_in_a_loop)
        caller.start()
        try:
            time.sleep(0.3)
            os.kill(server.pid, signal.SIGHUP)
            replaced = wait_until(
                lambda: (now := server.dirty_workers(arbiter_pid)) and len(now) == 2
                and not now & before, 8)
            time.sleep(0.3)
        finally:
            stop.set()
            caller.join(10)
        assert replaced, (before, server.dirty_workers(arbiter_pid))
        assert len(statuses) > 20 and set(statuses) == {200}, statuses
        # the same dirty arbiter did it: HUP does not restart the pool's supervisor
        assert server.whoami()[1] == arbiter_pid
    finally:
        assert server.stop() == 0, server.logs()


def test_usr1_to_the_master_reaches_every_dirty_worker(tmp_path: Path) -> None:
    server = GcornServer(tmp_path, [*pool(), *GTHREAD])
    try:
        _, arbiter_pid = server.whoami()
        workers = wait_until(lambda: (w := server.dirty_workers(arbiter_pid)) and len(w) == 2 and w, 5)
        # both workers have booted (and chained their USR1 handler) once each has answered
        assert wait_until(lambda: {server.whoami()[0] for _ in range(8)} == workers, 10)
        os.kill(server.pid, signal.SIGUSR1)
        expected = {f"usr1 {pid}" for pid in workers}
        assert wait_until(lambda: expected <= set(server.marks()), 5), server.marks()
        assert server.get("/echo/still").json() == {"result": "still"}
    finally:
        assert server.stop() == 0, server.logs()


def test_ttin_and_ttou_to_the_dirty_arbiter_change_the_worker_count(tmp_path: Path) -> None:
    server = GcornServer(tmp_path, [*pool(2), *GTHREAD])
    try:
        _, arbiter_pid = server.whoami()
        assert wait_until(lambda: len(server.dirty_workers(arbiter_pid)) == 2, 5)
        os.kill(arbiter_pid, signal.SIGTTIN)
        assert wait_until(lambda: len(server.dirty_workers(arbiter_pid)) == 3, 5)
        os.kill(arbiter_pid, signal.SIGTTOU)
        assert wait_until(lambda: len(server.dirty_workers(arbiter_pid)) == 2, 8)
        # the HTTP side's master still has the same dirty arbiter and calls still work
        assert server.whoami()[1] == arbiter_pid
    finally:
        assert server.stop() == 0, server.logs()
