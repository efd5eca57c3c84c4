"""Readiness through a real `gcorn-dirty serve`: calls wait for a worker whose init() has
returned, dirty_boot_timeout bounds init(), HUP replaces workers one by one with no failed call."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from dirty_helpers import ECHO, Pool, wait_for

from gcorn.dirty import DirtyError, connect

SLOW = "dirty_test_apps:SlowInitApp"


def test_a_call_before_any_worker_is_ready_waits_for_init(tmp_path) -> None:
    pool = Pool(tmp_path, [SLOW], workers=1, wait=False)
    try:
        assert wait_for(lambda: os.path.exists(pool.socket), 10)
        client = connect(pool.socket, timeout=10)
        started = time.monotonic()
        pid = client.execute(SLOW, "whoami")  # waits for init() (1.5 s), no immediate error
        assert 0.5 < time.monotonic() - started < 8
        assert pool.status()["ready_apps"] == {SLOW: True}
        client.close()
    finally:
        pool.stop()
    assert pid > 0


def test_a_call_whose_timeout_ends_before_init_fails_at_its_timeout(tmp_path) -> None:
    pool = Pool(tmp_path, [SLOW], workers=1, wait=False)
    try:
        assert wait_for(lambda: os.path.exists(pool.socket), 10)
        client = connect(pool.socket, timeout=10)
        st = client.status()
        assert st["ready_apps"] == {SLOW: False}
        started = time.monotonic()
        with pytest.raises(DirtyError):
            client.execute(SLOW, "whoami", _timeout=0.3)
        assert time.monotonic() - started < 1.0
        client.close()
    finally:
        pool.stop()


def test_boot_timeout_kills_an_init_that_takes_too_long_naming_the_app(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SLOW_INIT", "30")
    pool = Pool(tmp_path, [SLOW], workers=1, wait=False, extra=["--boot-timeout", "1"])
    try:
        assert wait_for(lambda: "dirty_boot_timeout=1 s: killing it" in pool.log(), 8), pool.log()
        assert "dirty_test_apps:SlowInitApp" in pool.log()
        assert wait_for(lambda: pool.status()["boot_failures"][SLOW] >= 1, 5)
    finally:
        pool.stop(signal.SIGQUIT)


@pytest.mark.slow
def test_hup_replaces_workers_one_by_one_and_no_call_fails(tmp_path) -> None:
    pool = Pool(tmp_path, [ECHO], workers=3, threads=2)
    before = pool.ready_pids()
    errors: list[BaseException] = []
    done = threading.Event()
    counts = [0]

    def hammer() -> None:
        client = connect(pool.socket, timeout=10)
        try:
            while not done.is_set():
                try:
                    assert client.execute(ECHO, "noop", 1) == 1
                    counts[0] += 1
                except BaseException as exc:  # any failure is the test's failure
                    errors.append(exc)
        finally:
            client.close()

    threads = [threading.Thread(target=hammer) for _ in range(6)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.3)
        pool.send(signal.SIGHUP)
        seen_max = 0
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            st = pool.status()
            booting = sum(1 for w in st["workers"] if w["state"] == "BOOTING")
            seen_max = max(seen_max, booting)
            ready = {w["pid"] for w in st["workers"] if w["state"] == "READY"}
            if len(ready) == 3 and not ready & before:
                break
            time.sleep(0.02)
        else:
            raise AssertionError(f"HUP did not replace every worker: {pool.status()}")
        assert seen_max == 1, seen_max  # one replacement at a time, not three at once
        time.sleep(0.3)
    finally:
        done.set()
        for t in threads:
            t.join(10)
        pool.stop()
    assert not errors, errors[:3]
    assert counts[0] > 100
    assert "replacing 3 workers one by one" in pool.log()
