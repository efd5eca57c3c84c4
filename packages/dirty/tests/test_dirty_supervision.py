"""Supervision: crashes, hangs, heartbeats, signals, per-app allocation, hooks."""

from __future__ import annotations

import math
import os
import signal
import stat
import subprocess
import sys
import threading
import time

import pytest
from dirty_helpers import ECHO, HEAVY, HERE, alive, wait_for

from gcorn.dirty import DirtyError, DirtyTimeoutError, DirtyWorkerLostError


def test_sigkill_mid_call_fails_the_caller_at_once_and_pool_recovers(pool, tmp_path):
    c = pool.client(timeout=10)
    before = pool.wait_ready(2)
    marker = str(tmp_path / "kill-me")
    box: dict = {}

    def call():
        try:
            box["value"] = c.execute(ECHO, "sleep_report", 2.0, marker)
        except DirtyError as exc:
            box["error"] = exc
        box["t_end"] = time.monotonic()

    th = threading.Thread(target=call)
    th.start()
    assert wait_for(lambda: os.path.exists(marker), 5)
    victim = int(open(marker).read())
    t_kill = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    th.join(5)
    assert isinstance(box.get("error"), DirtyWorkerLostError), box
    assert box["t_end"] - t_kill < 1.0
    after = pool.wait_ready(2, timeout=5, exclude={victim})
    assert victim not in after and len(after & before) == 1
    assert {c.execute(ECHO, "pid_of") for _ in range(8)} == after


def test_hung_action_times_out_and_its_worker_is_recycled(make_pool):
    p = make_pool(workers=1, extra=["--graceful-timeout", "1"])
    c = p.client(timeout=0.5)
    old = p.wait_ready(1)
    t0 = time.monotonic()
    with pytest.raises(DirtyTimeoutError):
        c.execute(ECHO, "sleep", 30)
    assert time.monotonic() - t0 < 1.0
    # the worker stays stuck past its deadline: the arbiter replaces it
    new = p.wait_ready(1, timeout=8, exclude=old)
    assert new != old
    assert c.execute(ECHO, "noop", 1) == 1
    assert "past its deadline" in p.log()


def test_silent_worker_is_killed_after_dirty_timeout(make_pool):
    p = make_pool(workers=1, extra=["--timeout", "1"])
    old = p.wait_ready(1)
    c = p.client(timeout=5)
    with pytest.raises(DirtyError):
        c.execute(ECHO, "stop_self", _timeout=0.3)  # SIGSTOP: no more heartbeats
    new = p.wait_ready(1, timeout=6, exclude=old)
    assert new and not (new & old)
    assert "DIRTY WORKER TIMEOUT" in p.log()
    assert c.execute(ECHO, "noop", 3) == 3


def test_ttin_ttou_change_the_count_but_never_below_n(make_pool):
    p = make_pool([ECHO, f"{HEAVY}:2"], workers=2)
    p.send(signal.SIGTTIN)
    p.wait_ready(3)
    p.send(signal.SIGTTOU)
    p.wait_ready(2)
    p.send(signal.SIGTTOU)  # HeavyApp:2 needs two workers
    time.sleep(0.5)
    p.wait_ready(2)
    assert wait_for(lambda: "cannot remove a worker" in p.log(), 2)
    c = p.client()
    assert len({c.execute(HEAVY, "pid_of") for _ in range(8)}) == 2
    # the same through the arbiter's MANAGE request
    assert c.manage("add", 1) == {"changed": 1, "total_workers": 3}
    p.wait_ready(3)
    assert c.manage("remove", 5) == {"changed": 1, "total_workers": 2}
    p.wait_ready(2)


def test_hup_replaces_every_worker_while_calls_keep_succeeding(pool):
    old = pool.wait_ready(2)
    c = pool.client()
    stop = threading.Event()
    errors: list[str] = []
    count = [0]

    def hammer():
        while not stop.is_set():
            try:
                assert c.execute(ECHO, "noop", 7) == 7
                count[0] += 1
            except Exception as exc:  # record and go on: the test asserts there are none
                errors.append(repr(exc))

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    pool.send(signal.SIGHUP)
    new = pool.wait_ready(2, timeout=8, exclude=old)
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join(5)
    assert errors == []
    assert count[0] > 50
    assert not (new & old)
    assert {c.execute(ECHO, "pid_of") for _ in range(8)} == new
    assert wait_for(lambda: not any(alive(pid) for pid in old), 5)


def test_per_app_allocation_routes_and_survives_a_crash(make_pool):
    p = make_pool([ECHO, HEAVY], workers=3)  # HeavyApp.workers = 1
    st = p.status()
    holders = [w["pid"] for w in st["workers"] if HEAVY in w["apps"]]
    assert len(holders) == 1
    c = p.client()
    assert {c.execute(HEAVY, "pid_of") for _ in range(6)} == set(holders)
    assert len({c.execute(ECHO, "pid_of") for _ in range(12)}) == 3
    os.kill(holders[0], signal.SIGKILL)
    p.wait_ready(3, exclude=set(holders))
    new_holders = [w["pid"] for w in p.status()["workers"] if HEAVY in w["apps"]]
    assert len(new_holders) == 1 and new_holders != holders
    assert c.execute(HEAVY, "pid_of") == new_holders[0]


def test_app_that_fails_to_boot_is_backed_off_not_hot_looped(make_pool):
    started = time.monotonic()
    p = make_pool([ECHO, "dirty_test_apps:BrokenInitApp"], workers=1, wait=False)
    # Not a fixed sleep: on a loaded machine the pool's interpreter may take longer than that
    # to start. The path appears only once the arbiter listens (test_dirty_socket_publish).
    assert wait_for(lambda: os.path.exists(p.socket), 10), p.log()
    time.sleep(0.8)  # a few failed boots and backoffs
    from gcorn.dirty import DirtyNoWorkersAvailableError, connect

    c = connect(p.socket, timeout=0.5)
    t0 = time.monotonic()
    with pytest.raises(DirtyNoWorkersAvailableError, match="BrokenInitApp"):
        c.execute("dirty_test_apps:BrokenInitApp", "anything")
    assert time.monotonic() - t0 < 1.5
    c.close()
    assert wait_for(lambda: p.log().count("before booting") >= 2, 5), p.log()  # it does retry
    log = p.log()
    lifetime = time.monotonic() - started  # the arbiter has lived at most this long
    assert "cannot load model" in log
    tries = log.count("before booting")
    # Backoff 0.1 s, 0.2 s, 0.4 s...: n tries need at least 0.1 * (2 ** (n - 1) - 1) s, so at most
    # 1 + log2(lifetime / 0.1 + 1) fit in the pool's life (one more for slack). A hot loop would
    # log hundreds in the same time.
    assert tries <= 2 + math.log2(lifetime / 0.1 + 1), (tries, lifetime)
    assert p.proc.poll() is None


def test_term_lets_in_flight_calls_finish(make_pool):
    p = make_pool(workers=1)
    c = p.client()
    box: dict = {}
    th = threading.Thread(target=lambda: box.update(v=c.execute(ECHO, "sleep", 0.5)))
    th.start()
    time.sleep(0.15)
    p.send(signal.SIGTERM)
    th.join(5)
    assert p.proc.wait(10) == 0
    assert isinstance(box.get("v"), int)
    assert not os.path.exists(p.socket)


def test_quit_stops_fast(make_pool):
    p = make_pool(workers=2, extra=["--graceful-timeout", "20"])
    c = p.client()
    threading.Thread(target=lambda: pytest.raises(DirtyError, c.execute, ECHO, "sleep", 10),
                     daemon=True).start()
    time.sleep(0.2)
    pids = p.ready_pids()
    t0 = time.monotonic()
    p.stop(signal.SIGQUIT)
    assert time.monotonic() - t0 < 3.5
    assert wait_for(lambda: not any(alive(pid) for pid in pids), 3)


def test_no_orphans_when_the_parent_dies(tmp_path):
    sock = str(tmp_path / "o.sock")
    pidfile = tmp_path / "pids"
    script = f"""
import os, sys, subprocess, time
p = subprocess.Popen([sys.executable, "-m", "gcorn.dirty.cli", "serve", {ECHO!r}, "--workers", "2",
                      "--socket", {sock!r}, "--exit-with-parent", "--log-file", {str(tmp_path / 'o.log')!r}],
                     cwd={str(HERE)!r})
open({str(pidfile)!r}, "w").write(str(p.pid))
time.sleep(60)
"""
    parent = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": str(HERE)})
    try:
        from gcorn.dirty import connect

        assert wait_for(lambda: os.path.exists(sock), 10)
        c = connect(sock, timeout=5)
        workers = set()
        assert wait_for(lambda: len(workers.update(
            w["pid"] for w in c.status()["workers"] if w["state"] == "READY") or workers) == 2, 10)
        arbiter = int(pidfile.read_text())
        c.close()
    finally:
        parent.kill()
        parent.wait(5)
    assert wait_for(lambda: not alive(arbiter) and not any(alive(w) for w in workers), 8)


def test_stale_socket_and_pidfile_are_cleaned_up(make_pool, tmp_path):
    import socket as socketlib

    sub = tmp_path / "p0"
    sub.mkdir()
    stale = socketlib.socket(socketlib.AF_UNIX)
    stale.bind(str(sub / "pool.sock"))
    stale.close()  # a socket file nobody listens on, as a crashed arbiter leaves
    pidfile = tmp_path / "dirty.pid"
    pidfile.write_text("999999\n")
    p = make_pool(workers=1, extra=["--pidfile", str(pidfile)])
    assert stat.S_IMODE(os.stat(p.socket).st_mode) == 0o600
    assert int(pidfile.read_text()) == p.proc.pid
    assert p.client().execute(ECHO, "noop", 1) == 1
    # a second pool on the same live socket refuses to start
    clash = subprocess.run([sys.executable, "-m", "gcorn.dirty.cli", "serve", ECHO, "--socket", p.socket],
                           cwd=str(HERE), capture_output=True, text=True, timeout=20)
    assert clash.returncode != 0 and "already serving" in clash.stderr
    p.stop()
    assert not pidfile.exists()


def test_usr1_reopens_log_files(make_pool):
    p = make_pool(workers=1)
    rotated = p.log_path.with_suffix(".1")
    os.rename(p.log_path, rotated)
    p.send(signal.SIGUSR1)
    time.sleep(0.3)  # two pending signals are not delivered in the order they were sent
    p.send(signal.SIGTTIN)
    assert wait_for(lambda: p.log_path.exists() and "TTIN" in p.log(), 5)


def test_hooks_from_a_config_file(make_pool, tmp_path):
    out = tmp_path / "hooks"
    out.mkdir()
    conf = tmp_path / "dirty.conf.py"
    conf.write_text(f"""
import os
OUT = {str(out)!r}
dirty_threads = 2
def on_dirty_starting(arbiter):
    open(os.path.join(OUT, "starting-%d" % arbiter.pid), "w").close()
def dirty_post_fork(arbiter, worker):
    open(os.path.join(OUT, "post_fork-%d" % os.getpid()), "w").close()
def dirty_worker_init(worker):
    assert worker.apps, "apps are loaded before dirty_worker_init"
    open(os.path.join(OUT, "init-%d" % worker.pid), "w").close()
def dirty_worker_exit(arbiter, worker):
    open(os.path.join(OUT, "exit-%d" % worker.pid), "w").close()
""")
    p = make_pool(workers=1, extra=["-c", str(conf)])
    (pid,) = p.ready_pids()
    names = set(os.listdir(out))
    assert {f"starting-{p.proc.pid}", f"post_fork-{pid}", f"init-{pid}"} <= names
    assert p.status()["workers"][0]["pid"] == pid
    os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: f"exit-{pid}" in os.listdir(out), 5)


def test_hup_loads_new_app_code(make_pool, tmp_path, monkeypatch):
    mod = tmp_path / "code"
    mod.mkdir()
    (mod / "versioned_app.py").write_text(
        "from gcorn.dirty import DirtyApp\n\nclass App(DirtyApp):\n    def version(self):\n        return 1\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        p for p in (str(mod), os.environ.get("PYTHONPATH", "")) if p))
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")  # the new source must be compiled afresh
    p = make_pool(["versioned_app:App"], workers=1)
    c = p.client()
    assert c.execute("versioned_app:App", "version") == 1
    (mod / "versioned_app.py").write_text(
        "from gcorn.dirty import DirtyApp\n\nclass App(DirtyApp):\n    def version(self):\n        return 'two'\n")
    old = p.ready_pids()
    p.send(signal.SIGHUP)
    p.wait_ready(1, exclude=old)
    assert c.execute("versioned_app:App", "version") == "two"


def test_arbiter_killed_hard_leaves_nothing_behind_after_a_new_start(make_pool):
    import glob
    import tempfile

    p = make_pool(workers=1)
    workers = p.ready_pids()
    mine = glob.glob(os.path.join(tempfile.gettempdir(), f"gcorn-dirty-w-{p.proc.pid}-*"))
    assert len(mine) == 1
    p.proc.kill()
    p.proc.wait(5)
    assert wait_for(lambda: not any(alive(w) for w in workers), 5)  # workers follow their arbiter
    q = make_pool(workers=1)  # a new pool sweeps the dead one's worker directory
    assert q.client().execute(ECHO, "noop", 1) == 1
    assert not os.path.exists(mine[0])


def test_sigkill_mid_call_fails_an_async_caller_at_once(pool, tmp_path):
    import asyncio

    c = pool.client(timeout=10)
    marker = str(tmp_path / "kill-async")

    async def main():
        call = asyncio.ensure_future(c.execute_async(ECHO, "sleep_report", 2.0, marker))
        for _ in range(500):
            if os.path.exists(marker):
                break
            await asyncio.sleep(0.01)
        os.kill(int(open(marker).read()), signal.SIGKILL)
        t0 = time.monotonic()
        with pytest.raises(DirtyWorkerLostError):
            await asyncio.wait_for(call, 5)
        assert time.monotonic() - t0 < 1.0
        await asyncio.sleep(0.3)
        assert await c.execute_async(ECHO, "noop", 5) == 5

    asyncio.run(main())
