"""dirty_backend = "ray" end to end: a real local Ray (one head for the module, 2 CPUs and
2 virtual GPUs), real `gcorn-dirty serve --backend ray` pools, the ordinary clients."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

pytest.importorskip("ray", reason="Ray is not installed here (pip install 'gcorn-dirty[ray]'); "
                                  "the Ray backend tests need it")

from dirty_helpers import HERE, Pool, alive, wait_for

from gcorn.dirty import (
    DirtyAppError,
    DirtyWorkerLostError,
)
from gcorn.dirty.ray_cluster import LocalHead, secure_environment

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

MODEL = "dirty_ray_apps:Model"
GPU = "dirty_ray_apps:GpuModel"
BOOT = 60.0  # a worker's boot: import ray, connect, start an actor (seconds on a loaded 2-core box)


@pytest.fixture(scope="module")
def ray_head() -> Iterator[LocalHead]:
    saved = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    secure_environment()  # token auth; the pools (subprocesses) inherit the token
    head = LocalHead.start(num_cpus=2, num_gpus=2)
    try:
        yield head
    finally:
        head.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def ray_pool(make_pool, head: LocalHead, apps: list[str], workers: int = 1, threads: int = 1,
             extra: list[str] | None = None) -> Pool:
    pool = make_pool(apps, workers=workers, threads=threads, wait=False,
                     extra=["--backend", "ray", "--ray-address", head.address, *(extra or [])])
    pool.wait_ready(workers, timeout=BOOT)
    return pool


def ray_kill(head: LocalHead, actor_name: str) -> None:
    """ray.kill() the named actor, from a driver of its own (the test process stays Ray-free)."""
    code = ("import sys, ray; ray.init(address=sys.argv[1], logging_level='ERROR'); "
            "ray.kill(ray.get_actor(sys.argv[2], namespace='gcorn-dirty'))")
    subprocess.run([sys.executable, "-c", code, head.address, actor_name], check=True, timeout=60,
                   stdin=subprocess.DEVNULL)


def test_calls_streams_and_errors_go_through_the_actor(make_pool, ray_head, tmp_path) -> None:
    pool = ray_pool(make_pool, ray_head, [MODEL], workers=1, threads=2)
    client = pool.client(timeout=30)
    where = client.execute(MODEL, "where")
    workers = {w["pid"] for w in pool.status()["workers"]}
    assert where["pid"] not in workers and where["loaded"] == where["pid"]  # init() ran in the actor
    assert where["actor"].startswith(f"{MODEL}@") and where["actor"].endswith(":w1")
    assert client.execute(MODEL, "echo", {"k": [1, 2.5, b"\x00bytes", "s", None]}) == \
        {"k": [1, 2.5, b"\x00bytes", "s", None]}
    assert asyncio.run(client.execute_async(MODEL, "aadd", 2, b=3)) == 5
    assert list(client.stream(MODEL, "count", 5)) == [f"item-{i}" for i in range(5)]
    assert list(client.stream(MODEL, "acount", 3)) == [0, 1, 2]

    async def collect() -> list:
        return [x async for x in client.stream_async(MODEL, "count", 4)]
    assert asyncio.run(collect()) == [f"item-{i}" for i in range(4)]

    with pytest.raises(DirtyAppError) as info:
        client.execute(MODEL, "boom", "no such weights")
    err = info.value
    assert err.remote_type == "KeyError" and err.status == 500
    assert "dirty_ray_apps.py" in err.traceback and "raise KeyError(msg)" in err.traceback
    got = []
    with pytest.raises(DirtyAppError) as info:
        for item in client.stream(MODEL, "fail_after", 2):
            got.append(item)
    assert got == [0, 1] and info.value.remote_type == "ValueError"
    with pytest.raises(DirtyAppError, match="unknown action"):
        client.execute(MODEL, "nope")
    # A batched action gathers in the dirty worker and runs as one actor call.
    results: dict[int, object] = {}

    def call(x: int) -> None:
        try:
            results[x] = client.execute(MODEL, "double", x)
        except DirtyAppError as exc:
            results[x] = exc
    threads = [threading.Thread(target=call, args=(x,)) for x in (1, 2, -3, 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert [results[x] for x in (1, 2, 4)] == [2, 4, 8]
    assert isinstance(results[-3], DirtyAppError) and "negative: -3" in str(results[-3])
    # A caller that stops reading an endless stream stops its generator (after a bounded
    # run-ahead), frees its slot, and the pool keeps serving.
    ticks = tmp_path / "ticks"
    stream = client.stream(MODEL, "ticker", str(ticks))
    assert next(iter(stream)) == 0
    stream.close()

    closed = tmp_path / "ticks.closed"
    assert wait_for(closed.exists, 10), "the generator was not closed"
    assert int(closed.read_text()) < 5000
    assert client.execute(MODEL, "echo", 1) == 1
    status = pool.status()
    assert status["backend"] == "ray" and status["ray_address"] == ray_head.address


def test_app_n_runs_n_actors_one_gpu_each_least_busy_first(make_pool, ray_head) -> None:
    pool = ray_pool(make_pool, ray_head, [f"{GPU}:2"], workers=2, threads=1)
    client = pool.client(timeout=30)
    seen: dict[int, dict] = {}
    deadline = time.monotonic() + 20
    while len(seen) < 2 and time.monotonic() < deadline:
        v = client.execute(GPU, "seen")
        seen[v["pid"]] = v
    assert len(seen) == 2, seen
    # resources = {"gpu": 1} is num_gpus=1: Ray gives each actor its own device.
    gpus = sorted(v["current"]["gpu"][0] for v in seen.values())
    assert gpus == ["0", "1"], seen
    assert all(v["visible"] == v["current"]["gpu"][0] for v in seen.values())
    # Least busy: while one actor sleeps, every other call goes to the idle one, at once.
    box: dict[str, int] = {}
    slow = threading.Thread(target=lambda: box.setdefault("slow", client.execute(GPU, "sleep", 1.5)))
    slow.start()
    assert wait_for(lambda: any(w["inflight"] for w in pool.status()["workers"]), 10)
    started = time.monotonic()
    quick = {client.execute(GPU, "seen")["pid"] for _ in range(6)}
    assert time.monotonic() - started < 1.2
    slow.join(30)
    assert len(quick) == 1 and box["slow"] not in quick
    # Two long calls run side by side on the two actors.
    started = time.monotonic()
    pids: list[int] = []
    pair = [threading.Thread(target=lambda: pids.append(client.execute(GPU, "sleep", 1.0)))
            for _ in range(2)]
    for t in pair:
        t.start()
    for t in pair:
        t.join(30)
    assert time.monotonic() - started < 1.9 and len(set(pids)) == 2


def test_a_killed_actor_fails_its_call_and_is_recreated(make_pool, ray_head) -> None:
    pool = ray_pool(make_pool, ray_head, [MODEL], workers=1, threads=1)
    client = pool.client(timeout=45)
    before = client.execute(MODEL, "where")
    (worker,) = pool.ready_pids()
    box: dict[str, BaseException] = {}

    def slow() -> None:
        try:
            client.execute(MODEL, "sleep", 20)
        except BaseException as exc:  # noqa: B036 - the test inspects what the caller got
            box["error"] = exc
    caller = threading.Thread(target=slow)
    caller.start()
    assert wait_for(lambda: any(w["inflight"] for w in pool.status()["workers"]), 10)
    ray_kill(ray_head, before["actor"])
    caller.join(15)
    assert not caller.is_alive(), "the caller of a dead actor must not wait for its timeout"
    err = box["error"]
    assert isinstance(err, DirtyWorkerLostError) and err.status == 502, repr(err)
    assert before["actor"] in str(err) and "died" in str(err)
    # The next call succeeds, on a new actor in a new dirty worker (the arbiter replaced it).
    after = client.execute(MODEL, "where")
    assert after["pid"] != before["pid"] and after["actor"] != before["actor"]
    assert wait_for(lambda: not alive(worker), 10)
    assert "exited unexpectedly with 5; replacing it" in pool.log()


def test_hup_replaces_each_actor_without_failing_calls(make_pool, ray_head) -> None:
    pool = ray_pool(make_pool, ray_head, [MODEL], workers=1, threads=2)
    client = pool.client(timeout=30)
    before = client.execute(MODEL, "where")
    errors: list[BaseException] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            try:
                client.execute(MODEL, "echo", 1)
            except BaseException as exc:  # noqa: B036 - every failure counts
                errors.append(exc)
            time.sleep(0.005)
    t = threading.Thread(target=load)
    t.start()
    try:
        pool.send(signal.SIGHUP)
        assert wait_for(lambda: client.execute(MODEL, "where")["actor"] != before["actor"], BOOT,
                        step=0.1)
    finally:
        stop.set()
        t.join(30)
    assert not errors, errors[:3]
    assert client.execute(MODEL, "where")["loaded"] != before["loaded"]  # init() ran again


def test_init_failing_in_the_actor_is_a_boot_failure(make_pool, ray_head) -> None:
    pool = make_pool(["dirty_ray_apps:BrokenInit"], workers=1, wait=False,
                     extra=["--backend", "ray", "--ray-address", ray_head.address])
    # The worker logs its traceback, then the arbiter, once it has reaped it, the boot failure.
    assert wait_for(lambda: "cannot load the weights" in pool.log() and "before booting" in pool.log(),
                    BOOT, step=0.2), pool.log()
    log = pool.log()
    assert "failed to load its apps" in log and "RuntimeError" in log and "before booting" in log
    status = pool.status()
    assert status["boot_failures"]["dirty_ray_apps:BrokenInit"] >= 1
    assert not status["ready_apps"]["dirty_ray_apps:BrokenInit"]


def test_unreachable_ray_address_fails_at_once_naming_it(tmp_path) -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"127.0.0.1:{port}"
    env = dict(os.environ, PYTHONPATH=str(HERE))
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "gcorn.dirty.cli", "serve", MODEL, "--backend", "ray",
                           "--ray-address", address, "--socket", str(tmp_path / "p.sock")],
                          cwd=str(HERE), env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2, proc.stderr
    assert address in proc.stderr and "cannot reach a Ray cluster" in proc.stderr
    assert time.monotonic() - started < 15


def test_without_an_address_the_pool_runs_its_own_ray(make_pool, ray_head, tmp_path) -> None:
    pool = make_pool([MODEL], workers=1, wait=False, extra=["--backend", "ray"])
    pool.wait_ready(1, timeout=BOOT + 30)
    client = pool.client(timeout=30)
    assert list(client.stream(MODEL, "count", 2)) == ["item-0", "item-1"]
    status = pool.status()
    own = status["ray_address"]
    assert status["backend"] == "ray" and own and own != ray_head.address
    head = [p for p in _children(pool.proc.pid) if "gcorn.dirty.ray_cluster" in _cmdline(p)]
    assert len(head) == 1, "the pool's own Ray head is its child"
    closed = tmp_path / "closed"
    client.execute(MODEL, "mark_close", str(closed))
    actor_pid = client.execute(MODEL, "where")["pid"]
    assert pool.stop(signal.SIGTERM, timeout=40) == 0
    assert closed.read_text() == str(actor_pid), "a graceful stop runs close() in the actor"
    assert wait_for(lambda: not alive(head[0]), 20), "the pool's Ray head outlived it"


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode()
    except OSError:
        return ""
