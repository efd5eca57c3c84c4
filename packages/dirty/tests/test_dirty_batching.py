"""@batched actions through a real pool: gathering across connections and processes, one
result per caller, error isolation, deadlines while queued, concurrent batches."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time

import pytest
from dirty_helpers import HERE

from gcorn.dirty import DirtyAppError, DirtyConfigError, DirtyTimeoutError, batched

BATCH = "dirty_test_apps:BatchApp"

# One client process: `threads` threads, each one call of double(base + i); prints the results.
CALLER = """
import json, sys, threading
from gcorn.dirty import connect
sock, base, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
client = connect(sock, timeout=10)
out = {}
go = threading.Barrier(threads)
def call(i):
    go.wait()
    out[base + i] = client.execute("dirty_test_apps:BatchApp", "double", base + i)
ts = [threading.Thread(target=call, args=(i,)) for i in range(threads)]
[t.start() for t in ts]
[t.join() for t in ts]
print(json.dumps(out))
"""


def _concurrently(fn, args: list) -> list:
    """Run fn(arg) for every arg in its own thread at once; results or exceptions, in order."""
    out: list = [None] * len(args)
    go = threading.Barrier(len(args))

    def run(i: int) -> None:
        go.wait()
        try:
            out[i] = fn(args[i])
        except Exception as exc:
            out[i] = exc
    ts = [threading.Thread(target=run, args=(i,)) for i in range(len(args))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(20)
    return out


def test_calls_from_four_processes_gather_into_batches(make_pool) -> None:
    pool = make_pool([BATCH], workers=1, threads=1)
    env = dict(os.environ, PYTHONPATH=str(HERE))
    procs = [subprocess.Popen([sys.executable, "-c", CALLER, pool.socket, str(100 * p), "16"],
                              stdout=subprocess.PIPE, env=env) for p in range(4)]
    results: dict[str, int] = {}
    for proc in procs:
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0
        results.update(json.loads(out))
    assert results == {str(100 * p + i): 2 * (100 * p + i) for p in range(4) for i in range(16)}
    sizes = pool.client().execute(BATCH, "sizes_seen")
    assert sum(sizes) == 64 and max(sizes) <= 16
    # 64 calls, 50 ms a batch, one slot: gathered, not one pass per call
    assert len(sizes) <= 12, sizes


def test_async_callers_gather_and_each_gets_its_own_result(make_pool) -> None:
    pool = make_pool([BATCH], workers=1, threads=1)

    async def main() -> list[int]:
        from gcorn.dirty import connect
        client = connect(pool.socket, timeout=10)
        try:
            return list(await asyncio.gather(*(client.execute_async(BATCH, "double", i) for i in range(64))))
        finally:
            await client.close_async()
    assert asyncio.run(main()) == [2 * i for i in range(64)]
    sizes = pool.client().execute(BATCH, "sizes_seen")
    assert sum(sizes) == 64 and len(sizes) <= 12, sizes


def test_callers_of_one_moment_fill_one_workers_batch_which_flushes_at_max_size(make_pool) -> None:
    # Two workers: spread evenly, 8 + 8 would each wait max_wait_ms (2 s); sent to the
    # worker whose batch fills, the 16 make one batch of max_size that runs at once.
    pool = make_pool([BATCH], workers=2, threads=1)

    async def main() -> list[list[int]]:
        from gcorn.dirty import connect
        client = connect(pool.socket, timeout=10)
        try:
            await client.execute_async(BATCH, "pid")  # connections open: only the batch is timed
            started = time.monotonic()
            out = list(await asyncio.gather(*(client.execute_async(BATCH, "batch_len", i)
                                              for i in range(16))))
            assert time.monotonic() - started < 1.5, out
            # the next 16 go to a worker with a free slot too, and fill it the same way
            out += list(await asyncio.gather(*(client.execute_async(BATCH, "batch_len", i)
                                               for i in range(16))))
            return out
        finally:
            await client.close_async()
    out = asyncio.run(main())
    assert [size for size, _pid in out] == [16] * 32, out
    client = pool.client()
    assert [size for size, _pid in _concurrently(lambda i: client.execute(BATCH, "batch_len", i),
                                                 list(range(16)))] == [16] * 16


def test_large_async_batched_calls_written_together_all_arrive(make_pool) -> None:
    pool = make_pool([BATCH], workers=1, threads=1)

    async def main() -> list[int]:
        from gcorn.dirty import connect
        client = connect(pool.socket, timeout=20)
        try:  # 16 x 4 MiB in one loop turn: more than a socket buffer holds
            return list(await asyncio.gather(*(client.execute_async(BATCH, "length", bytes(4 << 20))
                                               for _ in range(16))))
        finally:
            await client.close_async()
    assert asyncio.run(main()) == [4 << 20] * 16


def test_a_stopping_worker_logs_its_batch_size_histogram_and_queue_wait(make_pool) -> None:
    pool = make_pool([BATCH], workers=1, threads=1)
    client = pool.client()
    assert _concurrently(lambda x: client.execute(BATCH, "double", x), list(range(8))) == \
        [2 * x for x in range(8)]
    pool.stop()
    line = next((ln for ln in pool.log().splitlines() if "batches: {" in ln), "")
    assert "'sizes': {" in line and "'mean_wait_ms'" in line, pool.log()


def test_a_returned_exception_fails_only_its_caller(make_pool) -> None:
    pool = make_pool([BATCH], workers=1, threads=1)
    client = pool.client()
    out = _concurrently(lambda x: client.execute(BATCH, "picky", x), list(range(8)))
    for x, r in enumerate(out):
        if x % 2:
            assert isinstance(r, DirtyAppError) and r.remote_type == "ValueError", r
            assert f"odd {x}" in str(r)
        else:
            assert r == x


def test_a_raised_exception_fails_every_caller_of_the_batch_with_the_traceback(make_pool) -> None:
    pool = make_pool([BATCH], workers=1, threads=1)
    client = pool.client()
    out = _concurrently(lambda x: client.execute(BATCH, "explode", x), ["bomb", *range(7)])
    failed = [r for r in out if isinstance(r, DirtyAppError)]
    assert failed and failed[0].remote_type == "RuntimeError"
    assert "the whole batch blew up" in failed[0].traceback
    assert len(failed) > 1, out  # the callers batched with the bomb fail with it
    assert client.execute(BATCH, "explode", 5) == 5  # the next batch is fine


def test_a_result_list_of_the_wrong_length_is_a_clear_error(make_pool) -> None:
    pool = make_pool([BATCH], workers=1, threads=1)
    client = pool.client()
    with pytest.raises(DirtyAppError, match=r"returned 0 results for a batch of 1 calls"):
        client.execute(BATCH, "short", 1)


def test_keyword_arguments_are_refused_clearly(make_pool) -> None:
    pool = make_pool([BATCH], workers=1, threads=1)
    with pytest.raises(DirtyAppError, match="positional arguments only"):
        pool.client().execute(BATCH, "double", x=1)


def test_a_caller_whose_deadline_passes_while_queued_is_answered_and_not_computed(make_pool) -> None:
    pool = make_pool([BATCH], workers=1, threads=1)
    client = pool.client()
    first = threading.Thread(target=lambda: _concurrently(
        lambda x: client.execute(BATCH, "slow", x), [1, 2, 3, 4]))
    first.start()  # a full batch: the only slot is busy for 1 s
    time.sleep(0.2)
    started = time.monotonic()
    with pytest.raises(DirtyTimeoutError):
        client.execute(BATCH, "slow", "late", _timeout=0.3)
    assert time.monotonic() - started < 0.8
    first.join(10)
    time.sleep(1.3)  # long enough for a second batch to have run, had it been kept
    assert "late" not in client.execute(BATCH, "seen_by_slow")


def test_batches_of_different_actions_run_concurrently_with_two_threads(make_pool) -> None:
    pool = make_pool([BATCH], workers=1, threads=2)
    client = pool.client()
    started = time.monotonic()
    out = _concurrently(lambda a: client.execute(BATCH, a, 7), ["slow", "other"])
    assert out == [7, 7]
    assert time.monotonic() - started < 1.4  # 1.0 s and 0.5 s side by side, not 1.5 s


def test_batched_rejects_bad_arguments() -> None:
    with pytest.raises(DirtyConfigError, match="max_size"):
        batched(max_size=0)
    with pytest.raises(DirtyConfigError, match="max_wait_ms"):
        batched(max_wait_ms=-1)
    with pytest.raises(DirtyConfigError, match="generator"):
        @batched()
        def gen(calls):
            yield calls
