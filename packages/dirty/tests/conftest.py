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
