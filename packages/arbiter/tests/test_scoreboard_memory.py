"""The worker scoreboard (shared across fork), the memory cap's counting, the ctl framing."""

from __future__ import annotations

import os
import struct

import pytest

from gcorn.arbiter.control import decode_frame, encode
from gcorn.arbiter.memory import MIB, MemoryCap, rss_bytes
from gcorn.arbiter.scoreboard import Scoreboard


def test_a_forked_worker_writes_what_the_master_reads() -> None:
    board = Scoreboard(slots=4)
    slot = board.claim(age=7)
    stats = board.stats_for(slot)
    pid = os.fork()
    if pid == 0:  # the worker: two requests, one still running
        stats.begin()
        stats.end()
        stats.begin()
        os._exit(0)
    os.waitpid(pid, 0)
    board.set_pid(slot, pid)
    board.set_rss(slot, 5 * MIB)
    row = board.read(slot)
    assert row is not None
    assert (row.pid, row.age, row.requests, row.in_flight, row.rss) == (pid, 7, 1, 1, 5 * MIB)
    assert [r.pid for r in board.rows()] == [pid]
    board.release(slot)
    assert board.rows() == []
    again = board.claim(age=8)  # a reused slot starts from zero
    row = board.read(again)
    assert row is not None and again == slot
    assert (row.pid, row.age, row.requests, row.in_flight, row.rss) == (0, 8, 0, 0, 0)
    board.close()


def test_a_full_board_gives_a_stats_object_that_writes_nowhere() -> None:
    board = Scoreboard(slots=1)
    assert board.claim(1) == 0 and board.claim(2) == -1
    stats = board.stats_for(-1)
    stats.begin()
    stats.end()
    assert (stats.requests, stats.in_flight) == (1, 0)
    assert board.read(-1) is None
    board.release(-1)  # a no-op, not an error
    board.close()


def test_the_cap_needs_n_checks_in_a_row() -> None:
    cap = MemoryCap(limit_mib=10, checks=3)
    over, under = 11 * MIB, 9 * MIB
    assert [cap.check(1, over), cap.check(1, over)] == [False, False]
    assert cap.check(1, under) is False  # a dip resets the count
    assert [cap.check(1, over), cap.check(1, over), cap.check(1, over)] == [False, False, True]
    assert cap.check(2, None) is False  # unknown RSS never recycles
    assert not MemoryCap(0, 3).enabled and MemoryCap(1, 3).enabled


def test_rss_of_this_process_and_of_no_process() -> None:
    mine = rss_bytes(os.getpid())
    assert mine is not None and mine > MIB
    assert rss_bytes(2**22 + 12345) is None


def test_frames_are_bounded_and_must_be_json_objects() -> None:
    frame = encode({"id": 1, "command": "show workers"})
    assert decode_frame(frame[:3], 100) == (None, 0)
    assert decode_frame(frame[:-1], 100) == (None, 0)
    assert decode_frame(frame + b"x", 100) == ({"id": 1, "command": "show workers"}, len(frame))
    with pytest.raises(ValueError, match="over the 10-byte limit"):
        decode_frame(frame, 10)
    with pytest.raises(ValueError, match="not JSON"):
        decode_frame(struct.pack(">I", 2) + b"{x", 100)
    with pytest.raises(ValueError, match="not a JSON object"):
        decode_frame(struct.pack(">I", 2) + b"[]", 100)


def test_detailed_counters_fold_into_the_class_when_a_worker_is_reaped() -> None:
    from gcorn.arbiter.scoreboard import BUCKETS, ExitReason, Restart

    board = Scoreboard(slots=4)
    slot = board.claim(age=1, worker_class="sync")
    stats = board.stats_for(slot, detailed=True)
    pid = os.fork()
    if pid == 0:  # the worker: three requests, one connection, one timeout, then max_requests
        stats.connection_opened()
        for method, status, took in (("GET", 200, 0.001), ("POST", 404, 0.2), ("BREW", 0, 20.0)):
            stats.begin()
            stats.end(method, status, took)
        stats.request_timed_out()
        stats.begin()  # still running when it exits: in flight, never folded
        stats.exiting(ExitReason.MAX_REQUESTS)
        os._exit(0)
    os.waitpid(pid, 0)
    board.set_pid(slot, pid)
    live = board.snapshot()
    sync = live.classes["sync"]
    assert (sync.requests, sync.in_flight, sync.connections_open, sync.workers) == (3, 1, 1, 1)
    assert sorted(sync.requests_by()) == [("GET", "2xx", 1), ("POST", "4xx", 1),
                                          ("other", "other", 1)]
    assert sync.buckets[0] == 1 and sync.buckets[BUCKETS.index(0.25)] == 1 and sync.buckets[-1] == 1
    assert abs(sync.duration_sum - 20.201) < 1e-9
    assert board.exit_reason(slot) is ExitReason.MAX_REQUESTS
    board.release(slot, Restart.MAX_REQUESTS)
    after = board.snapshot()
    sync = after.classes["sync"]
    # the totals survive the worker; its gauges do not
    assert (sync.requests, sync.in_flight, sync.connections_open, sync.workers) == (3, 0, 0, 0)
    assert (sync.request_timeouts, sync.connections_accepted) == (1, 1)
    assert sync.restarts[Restart.MAX_REQUESTS] == 1 and sum(sync.restarts) == 1
    assert after.workers == []
    again = board.claim(age=2, worker_class="asgi")  # a new class gets its own block
    board.set_pid(again, 4242)
    board.stats_for(again, detailed=True).end("GET", 200, 0.01)
    snap = board.snapshot()
    assert (snap.classes["sync"].requests, snap.classes["asgi"].requests) == (3, 1)
    assert [w.worker_class for w in snap.workers] == ["asgi"]
    assert board.exit_reason(again) is ExitReason.NONE
    board.close()


def test_without_detail_only_requests_and_in_flight_are_counted() -> None:
    board = Scoreboard(slots=2)
    slot = board.claim(age=1, worker_class="sync")
    board.set_pid(slot, 1)
    stats = board.stats_for(slot)
    stats.connection_opened()
    stats.begin()
    stats.end("GET", 200, 0.1)
    sync = board.snapshot().classes["sync"]
    assert (sync.requests, sync.connections_accepted, sum(sync.buckets), sync.requests_by()) == (
        1, 0, 0, [])
    board.close()


def test_bucket_edges_odd_statuses_and_any_number_of_methods() -> None:
    from gcorn.arbiter import scoreboard

    board = Scoreboard(slots=2)
    slot = board.claim(age=1, worker_class="asgi")
    board.set_pid(slot, 1)
    stats = board.stats_for(slot, detailed=True)
    # `le` buckets: a duration equal to a bound is counted in it
    for took in (0.005, 0.0050001, 0.0, 10.0, 10.5):
        stats.begin()
        stats.end("GET", 200, took)
    for status in (999, 600, 99, 0):
        stats.begin()
        stats.end("PUT", status, 0.001)
    for n in range(scoreboard._CODE_CELLS_MAX + 10):  # a client picks the method: the cache is bounded
        stats.begin()
        stats.end(f"M{n}", 204, 0.001)
    asgi = board.snapshot().classes["asgi"]
    assert asgi.buckets[0] == 2 + 4 + scoreboard._CODE_CELLS_MAX + 10
    assert asgi.buckets[1] == 1
    assert asgi.buckets[len(scoreboard.BUCKETS) - 1] == 1 and asgi.buckets[-1] == 1
    by = dict(((m, c), n) for m, c, n in asgi.requests_by())
    assert by[("GET", "2xx")] == 5 and by[("PUT", "other")] == 4
    assert by[("other", "2xx")] == scoreboard._CODE_CELLS_MAX + 10
    assert len(scoreboard._CODE_CELLS) <= scoreboard._CODE_CELLS_MAX
    board.close()
