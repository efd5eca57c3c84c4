"""Calls through a real pool: results, errors, payloads, streams, threads, asyncio."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest
from dirty_helpers import ECHO, HEAVY

from gcorn.dirty import (
    DirtyAppError,
    DirtyAppNotFoundError,
    DirtyError,
    DirtyMessageTooLargeError,
    DirtyTimeoutError,
)

MiB = 1 << 20


def test_execute_passes_args_and_kwargs(pool):
    c = pool.client()
    assert c.execute(ECHO, "noop", 5) == 5
    assert c.execute(ECHO, "kwargs", 1, (2,), key={"n": [None]}) == [[1, (2,)], {"key": {"n": [None]}}]
    assert c.execute(ECHO, "aadd", 2, 3) == 5  # coroutine actions are awaited


def test_app_error_carries_remote_type_message_and_traceback(pool):
    c = pool.client()
    with pytest.raises(DirtyAppError) as info:
        c.execute(ECHO, "boom", "kaput")
    err = info.value
    assert err.remote_type == "RuntimeError" and err.remote_message == "kaput"
    assert "raise RuntimeError(msg)" in err.traceback and "dirty_test_apps.py" in err.traceback
    assert c.execute(ECHO, "noop", 1) == 1  # the connection is still fine


def test_unknown_action_and_unknown_app_are_clear_errors(pool):
    c = pool.client()
    with pytest.raises(DirtyAppError, match="unknown action 'nope'"):
        c.execute(ECHO, "nope")
    with pytest.raises(DirtyAppError, match="unknown action '_private'"):
        c.execute(ECHO, "_private")
    with pytest.raises(DirtyAppNotFoundError, match="not configured"):
        c.execute("dirty_test_apps:Missing", "noop")


def test_unencodable_result_is_an_app_error(pool):
    c = pool.client()
    with pytest.raises(DirtyAppError, match="cannot encode"):
        c.execute(ECHO, "unencodable")
    with pytest.raises(TypeError, match="cannot encode"):
        c.execute(ECHO, "echo", object())
    assert c.execute(ECHO, "noop", 2) == 2


def test_16_mib_bytes_round_trip_intact(pool):
    c = pool.client()
    data = os.urandom(16 * MiB)
    out = c.execute(ECHO, "echo", data)
    assert type(out) is bytes and out == data
    assert c.execute(ECHO, "echo", bytearray(data[:MiB])) == data[:MiB]
    assert c.execute(ECHO, "echo", memoryview(data)[:100]) == data[:100]


def test_oversize_message_is_refused_on_either_side_and_connection_survives(make_pool):
    p = make_pool(workers=1, extra=["--max-message-size", "1MiB"])
    c = p.client()
    t0 = time.monotonic()
    with pytest.raises(DirtyMessageTooLargeError) as sent:
        c.execute(ECHO, "echo", b"x" * (MiB + 1))
    assert time.monotonic() - t0 < 1.0
    assert str(MiB) in str(sent.value) and sent.value.limit == MiB and sent.value.size > MiB
    with pytest.raises(DirtyMessageTooLargeError) as replied:
        c.execute(ECHO, "make", 2 * MiB)
    assert "reply of" in str(replied.value) and str(MiB) in str(replied.value)
    assert c.execute(ECHO, "noop", 3) == 3
    # a peer with a larger limit: the worker refuses the frame and stays in sync
    from gcorn.dirty.syncconn import SyncConn

    d = c._directory()
    slot, gen, path = d.by_app[ECHO][0]
    conn = SyncConn(path, 8 * MiB)
    from gcorn.dirty.protocol import MsgType, frame_buffers

    w = conn.start(99, frame_buffers(MsgType.CALL, 99, d.codec.encode([ECHO, "echo", (b"y" * 2 * MiB,), {}, 5])))
    conn.wait(w, time.monotonic() + 5)
    mtype, payload = w.frames.popleft()
    assert mtype == MsgType.ERROR and b"exceeds dirty_max_message_size" in payload
    w = conn.start(100, frame_buffers(MsgType.CALL, 100, d.codec.encode([ECHO, "noop", (4,), {}, 5])))
    conn.wait(w, time.monotonic() + 5)
    assert w.frames.popleft()[0] == MsgType.RESULT
    conn.close()


def test_stream_10000_chunks_in_order(pool):
    c = pool.client()
    got = list(c.stream(ECHO, "count", 10_000))
    assert got == [f"{i:08d}" for i in range(10_000)]


def test_generator_raising_midway_delivers_chunks_then_error(pool):
    c = pool.client()
    seen = []
    with pytest.raises(DirtyAppError, match="ValueError in dirty_test_apps:EchoApp.fail_after: broke after 5") as info:
        for item in c.stream(ECHO, "fail_after", 5):
            seen.append(item)
    assert seen == [0, 1, 2, 3, 4]
    assert info.value.remote_type == "ValueError"
    assert c.execute(ECHO, "noop", 9) == 9


def test_abandoned_stream_leaves_the_client_usable(pool):
    c = pool.client()
    it = c.stream(ECHO, "count", 100_000)
    assert next(it) == "00000000"
    it.close()
    assert c.execute(ECHO, "noop", 1) == 1
    assert list(c.stream(ECHO, "count", 3)) == ["00000000", "00000001", "00000002"]


def test_32_threads_share_one_client_with_unmixed_answers(pool):
    c = pool.client()
    errors: list[str] = []
    barrier = threading.Barrier(32)

    def run(i: int) -> None:
        barrier.wait()
        for j in range(40):
            value = {"t": i, "j": j, "pad": "p" * (i * 13 + j)}
            out = c.execute(ECHO, "echo", value)
            if out != value:
                errors.append(f"{i}/{j}: {out!r:.80}")
        if list(c.stream(ECHO, "count", 50)) != [f"{k:08d}" for k in range(50)]:
            errors.append(f"{i}: stream mixed")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert not any(t.is_alive() for t in threads)
    assert errors == []


def test_shared_client_calls_run_concurrently(make_pool):
    p = make_pool(workers=1, threads=4)
    c = p.client()
    t0 = time.monotonic()
    threads = [threading.Thread(target=c.execute, args=(ECHO, "sleep", 0.5)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert time.monotonic() - t0 < 0.9


def test_per_call_timeout(pool):
    c = pool.client(timeout=10)
    t0 = time.monotonic()
    with pytest.raises(DirtyTimeoutError):
        c.execute(ECHO, "sleep", 2, _timeout=0.3)
    assert time.monotonic() - t0 < 0.8
    assert c.execute(ECHO, "noop", 1, _timeout=2) == 1


def test_async_execute_stream_and_errors(pool):
    c = pool.client()

    async def main():
        results = await asyncio.gather(*(c.execute_async(ECHO, "noop", i) for i in range(200)))
        assert results == list(range(200))
        assert [x async for x in c.stream_async(ECHO, "acount", 5)] == [0, 1, 2, 3, 4]
        chunks = [x async for x in c.stream_async(ECHO, "count", 2000)]
        assert chunks[-1] == "00001999" and len(chunks) == 2000
        seen = []
        with pytest.raises(DirtyAppError, match="broke after 3"):
            async for x in c.stream_async(ECHO, "fail_after", 3):
                seen.append(x)
        assert seen == [0, 1, 2]
        with pytest.raises(DirtyTimeoutError):
            await c.execute_async(ECHO, "sleep", 2, _timeout=0.2)
        with pytest.raises(DirtyAppError):
            await c.execute_async(ECHO, "boom", "x")
        assert await c.execute_async(HEAVY, "pid_of") > 0
        data = os.urandom(3 * MiB)
        assert await c.execute_async(ECHO, "echo", data) == data
        await c.close_async()

    asyncio.run(main())
    # the same client object still works synchronously and in a new loop
    assert c.execute(ECHO, "noop", 1) == 1
    assert asyncio.run(c.execute_async(ECHO, "noop", 2)) == 2


def test_async_deadlines_of_calls_in_flight_together_each_hold(make_pool):
    # One connection, one timer for every call in flight: a short deadline sent after long
    # ones still fires at its own time, and the calls that finish in time are not failed.
    c = make_pool([ECHO], workers=1, threads=4).client()

    async def main() -> None:
        slow = [asyncio.ensure_future(c.execute_async(ECHO, "sleep", 0.6, _timeout=t)) for t in (5, 0.3, 4)]
        await asyncio.sleep(0.05)
        started = time.monotonic()
        with pytest.raises(DirtyTimeoutError, match="timed out after 0.2 s"):
            await c.execute_async(ECHO, "sleep", 2, _timeout=0.2)
        assert 0.15 < time.monotonic() - started < 0.5
        done = await asyncio.gather(*slow, return_exceptions=True)
        assert isinstance(done[1], DirtyTimeoutError), done
        assert done[0] == done[2] and not isinstance(done[0], BaseException), done
        assert [await c.execute_async(ECHO, "noop", i, _timeout=1) for i in range(3)] == [0, 1, 2]
        await c.close_async()

    asyncio.run(main())


def test_connecting_to_nothing_is_a_connection_error(tmp_path):
    from gcorn.dirty import DirtyConnectionError, connect

    c = connect(str(tmp_path / "absent.sock"), timeout=1)
    with pytest.raises(DirtyConnectionError, match="absent.sock"):
        c.execute(ECHO, "noop")
    assert issubclass(DirtyConnectionError, DirtyError)


def test_pickle_codec_is_opt_in_per_pool(make_pool):
    p = make_pool(workers=1, extra=["--codec", "pickle"])
    c = p.client()
    assert c.execute(ECHO, "echo", {1, 2, frozenset({3})}) == {1, 2, frozenset({3})}
    assert list(c.stream(ECHO, "count", 2)) == ["00000000", "00000001"]
    with pytest.raises(DirtyAppError, match="kaput"):
        c.execute(ECHO, "boom", "kaput")


def test_numpy_arrays_round_trip_through_a_worker(pool):
    np = pytest.importorskip("numpy")
    c = pool.client()
    arr = np.arange(300_000, dtype=np.int32).reshape(1000, 300)
    out = c.execute(ECHO, "echo", arr)
    assert isinstance(out, np.ndarray) and out.dtype == np.int32 and out.shape == (1000, 300)
    assert (out == arr).all()
    assert c.execute(ECHO, "echo", np.float64(1.5)) == 1.5
