"""Resource slots through a real `gcorn-dirty serve`: virtual GPU tokens given to each
worker before its apps are imported, kept by replacements, never over-subscribed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from dirty_helpers import HERE, Pool, wait_for

from gcorn.dirty import DirtyConfigError, current_resources
from gcorn.dirty.resources import ResourcePool, parse_demand, parse_resources

WHOLE = "dirty_gpu_apps:Whole"
HALF = "dirty_gpu_apps:Half"
PLAIN = "dirty_gpu_apps:Plain"


def _views(pool: Pool, app: str, n: int) -> dict[int, dict]:
    """What each of the n workers' app saw, by pid (sequential calls rotate over the workers)."""
    client = pool.client()
    views: dict[int, dict] = {}
    deadline = time.monotonic() + 10
    while len(views) < n and time.monotonic() < deadline:
        v = client.execute(app, "seen")
        views[v["pid"]] = v
    assert len(views) == n, views
    return views


def _resources(tokens: dict) -> list[str]:
    return ["--resources", json.dumps(tokens)]


def test_four_virtual_gpus_one_per_worker_set_before_import(make_pool) -> None:
    pool = make_pool([WHOLE], workers=4, extra=_resources({"gpu": [0, 1, 2, 3]}))
    views = _views(pool, WHOLE, 4)
    assert sorted(v["at_import"] for v in views.values()) == ["0", "1", "2", "3"]
    for v in views.values():
        assert v["current"] == {"gpu": [v["at_import"]]}
    status = pool.status()
    held = {w["pid"]: w["resources"] for w in status["workers"]}
    assert {pid: r["gpu"][0][0] for pid, r in held.items()} == {p: v["at_import"] for p, v in views.items()}
    assert status["resources"]["free"] == {"gpu": {}}


def test_a_replacement_gets_the_slot_of_the_worker_it_replaces(make_pool) -> None:
    pool = make_pool([WHOLE], workers=2, extra=_resources({"gpu": ["a", "b"]}))
    views = _views(pool, WHOLE, 2)
    victim, view = next(iter(views.items()))
    os.kill(victim, signal.SIGKILL)
    fresh = pool.wait_ready(2, exclude={victim})
    new_pid = (fresh - set(views)).pop()
    after = _views(pool, WHOLE, 2)
    assert after[new_pid]["at_import"] == view["at_import"]


def test_ttin_never_over_subscribes_and_ttou_frees_the_slot(make_pool) -> None:
    pool = make_pool([WHOLE], workers=2, extra=_resources({"gpu": [0, 1]}))
    pool.send(signal.SIGTTIN)
    assert wait_for(lambda: "cannot add a worker (TTIN)" in pool.log(), 5), pool.log()
    assert "no free 'gpu' slot" in pool.log() and "dirty_gpu_apps:Whole needs 1" in pool.log()
    time.sleep(0.3)
    assert len(pool.status()["workers"]) == 2
    pool.send(signal.SIGTTOU)
    pool.wait_ready(1)
    pool.send(signal.SIGTTIN)  # the slot TTOU freed can be given again
    pool.wait_ready(2)
    assert sorted(v["at_import"] for v in _views(pool, WHOLE, 2).values()) == ["0", "1"]


def test_half_a_gpu_shares_one_device_between_two_workers(make_pool) -> None:
    pool = make_pool([HALF], workers=4, extra=_resources({"gpu": ["g0", "g1"]}))
    seen = sorted(v["at_import"] for v in _views(pool, HALF, 4).values())
    assert seen == ["g0", "g0", "g1", "g1"]
    pool.send(signal.SIGTTIN)
    assert wait_for(lambda: "cannot add a worker (TTIN)" in pool.log(), 5), pool.log()


def test_an_app_without_resources_sees_no_gpu_when_the_pool_has_gpus(make_pool) -> None:
    pool = make_pool([PLAIN], workers=1, extra=_resources({"gpu": [0]}))
    (view,) = _views(pool, PLAIN, 1).values()
    assert view["at_import"] == "" and view["current"] == {"gpu": []}


def test_too_few_slots_at_start_is_a_clear_error(tmp_path) -> None:
    env = dict(os.environ, PYTHONPATH=str(HERE))
    result = subprocess.run(
        [sys.executable, "-m", "gcorn.dirty.cli", "serve", WHOLE, "--workers", "3", "--socket",
         str(tmp_path / "s.sock"), *_resources({"gpu": [0, 1]})],
        cwd=str(HERE), env=env, capture_output=True, text=True, timeout=20)
    assert result.returncode != 0
    assert "no free 'gpu' slot" in result.stderr and "Whole needs 1" in result.stderr, result.stderr


def test_resource_values_are_checked() -> None:
    assert parse_resources('{"gpu": [0, "x"]}') == {"gpu": ["0", "x"]}
    for bad in ("{", '{"gpu": 3}', '{"gpu": [0, 0]}', '{"tpu": "auto"}', "[1]"):
        with pytest.raises(DirtyConfigError, match="dirty_resources"):
            parse_resources(bad)
    for bad in ({"gpu": 1.5}, {"gpu": 0}, {"gpu": True}, [1]):
        with pytest.raises(DirtyConfigError, match="resources"):
            parse_demand("m:A", bad)
    pool = ResourcePool({"gpu": ["0", "1"]})
    first = pool.allocate({"a": {"gpu": 0.5}})
    assert pool.allocate({"b": {"gpu": 0.5}}) == {"gpu": [(first["gpu"][0][0], 0.5)]}  # packed
    with pytest.raises(DirtyConfigError, match="no free 'gpu' slot"):
        pool.allocate({"c": {"gpu": 2}})
    assert current_resources() == {}  # outside a worker
