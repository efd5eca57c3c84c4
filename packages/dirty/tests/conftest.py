"""Fixtures: real gcorn-dirty pools in subprocesses, bounded in time."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The test apps and helpers live beside this file; dirty workers import them too.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dirty_helpers import ECHO, HEAVY, Pool


@pytest.fixture
def make_pool(tmp_path: Path) -> Iterator:
    pools: list[Pool] = []

    def factory(apps: list[str] | None = None, **kw) -> Pool:
        sub = tmp_path / f"p{len(pools)}"
        sub.mkdir(exist_ok=True)
        pool = Pool(sub, apps or [ECHO], **kw)
        pools.append(pool)
        return pool

    yield factory
    for pool in pools:
        try:
            pool.stop(signal.SIGQUIT)
        except AssertionError:
            pass


@pytest.fixture
def pool(make_pool) -> Pool:
    return make_pool([ECHO, HEAVY], workers=2)


# --- stash on Redis (issue 14) ------------------------------------------------------------
@pytest.fixture
def make_redis(tmp_path: Path) -> Iterator:
    """`make_redis(*redis-server args)`: a started real redis-server; its log shows on failure."""
    from dirty_redis import REDIS_SERVER, RedisServer

    if REDIS_SERVER is None:
        reason = "redis-server is not installed (apt-get install redis-server; tools/env.sh does)"
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    servers: list[RedisServer] = []

    def factory(*args: str) -> RedisServer:
        server = RedisServer(tmp_path, *args)
        servers.append(server)
        return server.start()

    yield factory
    for server in servers:
        server.close()
        print(f"--- redis-server on port {server.port} ({server.starts} starts) log:\n{server.log()}")


@pytest.fixture
def redis_server(make_redis) -> object:
    return make_redis()
