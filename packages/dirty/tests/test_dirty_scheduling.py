"""Scheduling: free slots first, dirty_threads concurrency, bounded queues, deadlines."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest
from dirty_helpers import ECHO, wait_for

from gcorn.dirty import DirtyBusyError, DirtyTimeoutError


def test_no_head_of_line_blocking_behind_a_busy_worker(make_pool, tmp_path):
    p = make_pool(workers=2)
    busy_client, probe = p.client(), p.client()
    busy_client.execute(ECHO, "noop", 0)
    probe.execute(ECHO, "noop", 0)
    latencies: list[float] = []
    for trial in range(3):
        marker = str(tmp_path / f"busy{trial}")
        th = threading.Thread(target=busy_client.execute, args=(ECHO, "sleep_report", 1.0, marker))
        th.start()
        assert wait_for(lambda m=marker: os.path.exists(m), 5)
        busy_pid = int(open(marker).read())
        for _ in range(4):
            t0 = time.perf_counter()
            assert probe.execute(ECHO, "pid_of") != busy_pid  # never queued behind the busy one
            latencies.append(time.perf_counter() - t0)
        th.join(5)
    latencies.sort()
    # The median is the routing figure; the max only has to stay far below the 1 s
    # busy call, because a loaded test machine can delay any single call.
    assert latencies[len(latencies) // 2] < 0.05, latencies
    assert latencies[-1] < 0.5, latencies


def _slow_call_running(p, client, tmp_path, seconds: float) -> tuple[threading.Thread, int]:
    marker = str(tmp_path / "slow")
    th = threading.Thread(target=client.execute, args=(ECHO, "sleep_report", seconds, marker))
    th.start()
    assert wait_for(lambda: os.path.exists(marker), 5)
    return th, int(open(marker).read())


def test_fast_calls_never_queue_behind_a_slow_one_when_callers_outnumber_slots(make_pool, tmp_path):
    p = make_pool(workers=2)
    c = p.client()
    for _ in range(4):
        c.execute(ECHO, "noop", 0)
    slow, slow_pid = _slow_call_running(p, c, tmp_path, 2.0)
    latencies: list[float] = []
    pids: list[int] = []
    start = threading.Barrier(40)

    def fast() -> None:
        start.wait(5)
        t0 = time.perf_counter()
        pids.append(c.execute(ECHO, "pid_of"))
        latencies.append(time.perf_counter() - t0)

    callers = [threading.Thread(target=fast) for _ in range(40)]
    for t in callers:
        t.start()
    for t in callers:
        t.join(10)
    slow.join(5)
    assert len(latencies) == 40
    # every fast call ran on the free worker, none waited for the 2 s call
    assert slow_pid not in pids and max(latencies) < 1.0, sorted(latencies)[-5:]


def test_fast_async_calls_never_queue_behind_a_slow_one(make_pool, tmp_path):
    import asyncio

    p = make_pool(workers=2)
    c = p.client()
    c.execute(ECHO, "noop", 0)
    slow, slow_pid = _slow_call_running(p, c, tmp_path, 2.0)

    async def main() -> list[tuple[float, int]]:
        async def fast() -> tuple[float, int]:
            t0 = time.perf_counter()
            pid = await c.execute_async(ECHO, "pid_of")
            return time.perf_counter() - t0, pid

        await c.execute_async(ECHO, "noop", 0)
        return await asyncio.gather(*(fast() for _ in range(50)))

    got = asyncio.run(main())
    slow.join(5)
    assert slow_pid not in {pid for _, pid in got}
    assert max(t for t, _ in got) < 1.0, sorted(t for t, _ in got)[-5:]


def test_dirty_threads_run_calls_at_once_on_one_worker(make_pool):
    p = make_pool(workers=1, threads=4)
    clients = [p.client() for _ in range(4)]
    for c in clients:
        c.execute(ECHO, "noop", 0)
    pids: list[int] = []
    t0 = time.monotonic()
    threads = [threading.Thread(target=lambda c=c: pids.append(c.execute(ECHO, "sleep", 0.5)))
               for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    elapsed = time.monotonic() - t0
    assert len(pids) == 4 and len(set(pids)) == 1
    assert elapsed < 0.9, f"4 x 0.5 s on 4 threads took {elapsed:.2f} s"


def test_full_queue_answers_busy_at_once(make_pool):
    p = make_pool(workers=1, threads=1, extra=["--queue-size", "2"])
    c = p.client()
    c.execute(ECHO, "noop", 0)
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(c.execute(ECHO, "sleep", 0.6)))
               for _ in range(3)]
    for t in threads:
        t.start()
        time.sleep(0.05)
    # one call runs in the worker; the other two wait in this process for a free slot
    # (never in the worker's queue, where a slot freed elsewhere could not take them)
    assert wait_for(lambda: p.status()["workers"][0]["inflight"] == 1, 2)
    assert wait_for(lambda: c._queues.sync.waiting(ECHO) == 2, 2)
    t0 = time.monotonic()
    with pytest.raises(DirtyBusyError, match="dirty_queue_size=2"):
        c.execute(ECHO, "noop", 1)
    assert time.monotonic() - t0 < 0.3  # at once, not after the 1.8 s of queued work
    # a second client of the same pool in this process shares the queue: refused as well
    with pytest.raises(DirtyBusyError):
        p.client().execute(ECHO, "noop", 1)
    for t in threads:
        t.join(5)
    assert len(results) == 3
    assert DirtyBusyError.status == 503 and DirtyBusyError.retry_after >= 1
    assert c.execute(ECHO, "noop", 2) == 2


def test_call_whose_caller_gave_up_is_dropped_before_it_runs(make_pool, tmp_path):
    p = make_pool(workers=1, threads=1)
    c = p.client()
    blocker = threading.Thread(target=c.execute, args=(ECHO, "sleep", 0.8))
    blocker.start()
    time.sleep(0.1)
    marker = str(tmp_path / "must-not-run")
    with pytest.raises(DirtyTimeoutError):
        c.execute(ECHO, "sleep_report", 0.01, marker, _timeout=0.2)
    blocker.join(5)
    assert c.execute(ECHO, "noop", 1) == 1
    assert not os.path.exists(marker), "an expired call was run"


def test_calls_spread_over_workers(pool):
    c = pool.client()
    pids = {c.execute(ECHO, "pid_of") for _ in range(10)}
    assert len(pids) == 2


def test_saturated_pool_answers_every_call_its_own_result(make_pool):
    # callers far outnumber slots: each call is handed to a freed slot by whichever thread
    # (or task) read the reply that freed it; none may be lost, doubled or crossed
    import asyncio

    p = make_pool(workers=2, threads=1)
    c = p.client()
    c.execute(ECHO, "noop", 0)
    got: dict[int, object] = {}
    errors: list[BaseException] = []

    def caller(base: int) -> None:
        try:
            for i in range(25):
                n = base + i
                got[n] = c.execute(ECHO, "noop", n) if i % 5 else list(c.stream(ECHO, "count", 2))
        except BaseException as exc:  # reported below
            errors.append(exc)

    async def tasks() -> list[object]:
        return await asyncio.gather(*(c.execute_async(ECHO, "noop", -n) for n in range(1, 201)))

    threads = [threading.Thread(target=caller, args=(k * 1000,)) for k in range(12)]
    for t in threads:
        t.start()
    async_results = asyncio.run(tasks())
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert async_results == [-n for n in range(1, 201)]
    assert len(got) == 12 * 25
    for n, value in got.items():
        assert value == (n if n % 1000 % 5 else ["00000000", "00000001"]), (n, value)
    assert c._queues.sync.apps == {}  # nobody left waiting


def _run(results: dict, name: str, call) -> threading.Thread:
    def target() -> None:
        try:
            results[name] = call()
        except Exception as exc:  # the assertion below shows it
            results[name] = exc
    thread = threading.Thread(target=target)
    thread.start()
    return thread


def test_a_client_that_closes_never_fails_the_call_of_another_client_in_line(make_pool):
    # One slot; client A holds it, client B's call waits in this process's line. The reply
    # that frees the slot is read by A's thread: B's call must not leave on A's connection,
    # which A closes at once (it once did, and B got "dirty client closed").
    pool = make_pool([ECHO], workers=1, threads=1)
    a, b = pool.client(), pool.client()
    assert a.execute(ECHO, "noop", 1) == 1 and b.execute(ECHO, "noop", 2) == 2
    results: dict = {}
    for _ in range(3):
        first = _run(results, "a", lambda c=a: c.execute(ECHO, "sleep", 0.2))
        time.sleep(0.05)
        second = _run(results, "b", lambda: b.execute(ECHO, "sleep", 0.2))
        first.join(5)
        a.close()
        second.join(5)
        assert isinstance(results["a"], int) and isinstance(results["b"], int), results
        a = pool.client()


async def _async_line(pool) -> list:
    a, b = pool.client(), pool.client()
    assert await a.execute_async(ECHO, "noop", 1) == 1 and await b.execute_async(ECHO, "noop", 2) == 2
    first = asyncio.ensure_future(a.execute_async(ECHO, "sleep", 0.2))
    await asyncio.sleep(0.05)
    second = asyncio.ensure_future(b.execute_async(ECHO, "sleep", 0.2))
    done = [await first]
    await a.close_async()
    done.append(await asyncio.wait_for(second, 5))
    await b.close_async()
    return done


def test_an_async_client_that_closes_never_fails_the_call_of_another_in_line(make_pool):
    pool = make_pool([ECHO], workers=1, threads=1)
    assert all(isinstance(pid, int) for pid in asyncio.run(_async_line(pool)))
