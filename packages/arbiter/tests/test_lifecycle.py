"""Start, serve, stop: hook order, graceful and quick stops, dead and hung workers."""

from __future__ import annotations

import signal
import threading
import time


def test_hooks_run_in_gunicorn_order_and_workers_serve(server_factory):
    server = server_factory(cfg={"workers": 2}).start()
    answers = {int(server.request("pid")) for _ in range(20)}
    assert answers <= server.worker_pids() and answers
    server.kill(signal.SIGTERM)
    assert server.wait_exit() == 0
    names = [e.name for e in server.events()]
    assert names[:3] == ["on_starting", "nworkers_changed", "when_ready"]
    assert names.index("when_ready") < names.index("pre_fork") < names.index("post_fork")
    assert names.count("post_worker_init") == 2
    assert names[-2:] == ["on_exit", "master_exit"]
    assert names.count("child_exit") == 2 and names.count("worker_exit") == 2
    master = server.master_pid
    # master-side hooks run in the master, worker-side ones in the workers
    assert all(e.pid == master for e in server.events("pre_fork") + server.events("child_exit"))
    assert all(e.pid != master for e in server.events("post_fork") + server.events("worker_exit"))
    assert server.events("nworkers_changed")[0].detail == "2 None"
    # the master sees the worker's own booted flag (gunicorn's always says no)
    assert all(e.detail.endswith("booted=True") for e in server.events("child_exit"))


def test_term_lets_an_inflight_job_finish(server_factory):
    server = server_factory(cfg={"graceful_timeout": 10}).start()
    result: dict[str, str] = {}
    thread = threading.Thread(target=lambda: result.update(r=server.request("slow 1.0")))
    thread.start()
    server.wait_event("slow-start")
    started = time.monotonic()
    server.kill(signal.SIGTERM)
    assert server.wait_exit() == 0
    thread.join(5)
    assert result["r"].startswith("done ")
    assert time.monotonic() - started >= 0.5  # the master waited for the job
    assert not server.events("worker_int")


def test_int_and_quit_stop_quickly(server_factory):
    for sig in (signal.SIGINT, signal.SIGQUIT):
        server = server_factory(cfg={"graceful_timeout": 20}).start()
        thread = threading.Thread(target=lambda s=server: _swallow(s.request, "slow 10"))
        thread.start()
        server.wait_event("slow-start")
        started = time.monotonic()
        server.kill(sig)
        assert server.wait_exit() == 0
        assert time.monotonic() - started < 6  # not the 10 s job, not graceful_timeout
        assert server.events("worker_int"), server.log_tail()
        thread.join(5)


def test_int_during_graceful_stop_makes_it_quick(server_factory, wait_until):
    server = server_factory(cfg={"graceful_timeout": 20}).start()
    thread = threading.Thread(target=lambda: _swallow(server.request, "slow 10"))
    thread.start()
    server.wait_event("slow-start")
    server.kill(signal.SIGTERM)
    # INT must come during the graceful wait, not in the same wake-up as TERM
    wait_until(lambda: "Handling signal: term" in server.log_tail(), what="the graceful stop")
    started = time.monotonic()
    server.kill(signal.SIGINT)
    assert server.wait_exit() == 0
    assert time.monotonic() - started < 6
    thread.join(5)


def test_graceful_timeout_kills_a_worker_that_does_not_finish(server_factory):
    server = server_factory(cfg={"graceful_timeout": 0.5}).start()
    thread = threading.Thread(target=lambda: _swallow(server.request, "slow 10"))
    thread.start()
    server.wait_event("slow-start")
    started = time.monotonic()
    server.kill(signal.SIGTERM)
    assert server.wait_exit() == 0
    assert 0.4 < time.monotonic() - started < 8  # graceful_timeout, not the 10 s job
    thread.join(5)


def test_a_killed_worker_is_replaced(server_factory, wait_until):
    server = server_factory(cfg={"workers": 2}).start()
    victim = next(iter(server.worker_pids()))
    server.kill(signal.SIGKILL, victim)
    server.wait_booted(3)
    pids = wait_until(lambda: len(server.worker_pids()) == 2 and server.worker_pids(), what="2 workers")
    assert victim not in pids
    assert "was sent SIGKILL" in server.log_tail()
    assert server.request("pid")


def test_hung_worker_is_aborted_then_replaced(server_factory):
    server = server_factory(cfg={"timeout": 1}).start()
    first = server.request("pid")
    assert server.request("hang") == "hanging"
    server.wait_event("worker_abort")
    server.wait_booted(2)
    assert "WORKER TIMEOUT" in server.log_tail()
    abort = server.events("worker_abort")[0]
    assert abort.pid == int(first)  # the hook ran in the hung worker itself
    assert server.request("pid") != first and server.request("pid")


def test_a_worker_stuck_after_sigabrt_gets_sigkill(server_factory, wait_until):
    # worker_abort hangs: the master follows up with SIGKILL
    server = server_factory(cfg={"timeout": 1}, abort_hangs=True).start()
    first = int(server.request("pid"))
    started = time.monotonic()
    server.request("hang")
    server.wait_event("worker_abort")
    wait_until(lambda: any(e.detail.startswith(f"{first} ") for e in server.events("child_exit")),
               what="the stuck worker to be reaped")
    assert time.monotonic() - started >= 1.5  # timeout, then the abort grace
    assert f"Worker (pid:{first}) exited with signal SIGKILL" in server.log_tail(20000)
    server.wait_booted(2)
    assert int(server.request("pid")) != first


def test_pidfile_written_and_removed(server_factory, tmp_path):
    pidfile = tmp_path / "gcorn.pid"
    server = server_factory(cfg={"pidfile": str(pidfile)}).start()
    assert int(pidfile.read_text()) == server.master_pid
    assert oct(pidfile.stat().st_mode & 0o777) == "0o644"
    second = server_factory(cfg={"pidfile": str(pidfile)}).start(wait=False)
    assert second.wait_exit() == 1
    assert "names a running process" in second.log_tail()
    server.kill(signal.SIGTERM)
    assert server.wait_exit() == 0
    assert not pidfile.exists()


def test_stale_pidfile_is_replaced(server_factory, tmp_path):
    pidfile = tmp_path / "gcorn.pid"
    pidfile.write_text("999999999\n")
    server = server_factory(cfg={"pidfile": str(pidfile)}).start()
    assert int(pidfile.read_text()) == server.master_pid


def _swallow(fn, *args):
    try:
        fn(*args)
    except OSError:
        pass  # the connection is cut by the quick stop: expected here


def test_term_right_after_a_fork_is_not_lost(server_factory):
    # a worker signalled between fork() and its own handlers must still stop
    server = server_factory(load_delay=0.5, cfg={"graceful_timeout": 20}).start()
    server.kill(signal.SIGTTIN)
    server.kill(signal.SIGHUP)
    server.wait_event("post_fork", 3)
    started = time.monotonic()
    server.kill(signal.SIGTERM)
    assert server.wait_exit() == 0
    assert time.monotonic() - started < 10  # far below graceful_timeout=20
