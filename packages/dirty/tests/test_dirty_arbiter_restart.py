"""A client outlives its pool's arbiter: a hard-killed arbiter is an error at once, not a wait,
and a new arbiter on the same socket (as gcorn's master respawns it) is found by the same client."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from dirty_helpers import ECHO, Pool, alive, wait_for

from gcorn.dirty import DirtyConnectionError


def kill_hard(pool: Pool) -> None:
    workers = pool.ready_pids()
    pool.proc.kill()
    pool.proc.wait(5)
    assert wait_for(lambda: not any(alive(w) for w in workers), 5)  # workers follow their arbiter


def test_sync_client_finds_a_restarted_arbiter_on_the_same_socket(tmp_path: Path) -> None:
    first = Pool(tmp_path, [ECHO], workers=1)
    client = first.client(timeout=5)
    try:
        assert client.execute(ECHO, "noop", 1) == 1
        kill_hard(first)
        started = time.monotonic()
        with pytest.raises(DirtyConnectionError):
            client.execute(ECHO, "noop", 2)  # the dead pool's directory must not make it wait 5 s
        assert time.monotonic() - started < 1.0
        second = Pool(tmp_path, [ECHO], workers=1)
        try:
            started = time.monotonic()
            assert client.execute(ECHO, "noop", 3) == 3
            assert time.monotonic() - started < 1.0
        finally:
            second.stop()
    finally:
        client.close()


def test_async_client_finds_a_restarted_arbiter_on_the_same_socket(tmp_path: Path) -> None:
    first = Pool(tmp_path, [ECHO], workers=1)
    client = first.client(timeout=5)

    async def call(value: int) -> tuple[object, float]:
        started = time.monotonic()
        try:
            result: object = await client.execute_async(ECHO, "noop", value)
        except DirtyConnectionError as exc:
            result = exc
        return result, time.monotonic() - started

    try:
        assert asyncio.run(call(1))[0] == 1
        kill_hard(first)
        error, elapsed = asyncio.run(call(2))
        assert isinstance(error, DirtyConnectionError) and elapsed < 1.0
        second = Pool(tmp_path, [ECHO], workers=1)
        try:
            result, elapsed = asyncio.run(call(3))
            assert result == 3 and elapsed < 1.0
        finally:
            second.stop()
    finally:
        client.close()
