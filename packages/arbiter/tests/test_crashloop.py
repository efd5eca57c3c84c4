"""Crash-loop protection: boot failures are backed off, then the master gives up loudly."""

from __future__ import annotations

import signal
import time


def test_app_that_cannot_import_stops_the_master_with_exit_3(server_factory):
    # an import that raises is a boot failure (3) in gunicorn, not an app-load error (4)
    server = server_factory(app_fail=True, cfg={"workers": 2, "boot_failure_limit": 3})
    started = time.monotonic()
    server.start(wait=False)
    assert server.wait_exit() == 3
    elapsed = time.monotonic() - started
    log = server.log_tail(20000)
    assert "Crash loop: 3 workers failed to boot within 60s" in log
    assert "Reason: Worker failed to boot." in log
    assert "boot_failure_limit=3" in log
    assert "no module named 'broken_app'" in log  # the worker's own error is logged
    forks = len(server.events("post_fork"))
    assert 3 <= forks <= 4, forks  # no hot loop: it stopped at the limit
    assert elapsed < 15
    assert server.events("on_exit")
    assert all(e.detail.endswith("booted=False") for e in server.events("child_exit"))


def test_worker_that_fails_before_loading_stops_the_master_with_exit_3(server_factory):
    server = server_factory(post_fork_fail=True, cfg={"boot_failure_limit": 2})
    server.start(wait=False)
    assert server.wait_exit() == 3
    log = server.log_tail(20000)
    assert "Crash loop: 2 workers failed to boot" in log
    assert "post_fork failed on purpose" in log


def test_failures_are_backed_off_and_a_fixed_config_recovers(server_factory):
    server = server_factory(app_fail=True, cfg={"boot_failure_limit": 0})
    started = time.monotonic()
    server.start(wait=False)
    server.wait_event("post_fork", 3)
    time.sleep(max(0.0, 2.0 - (time.monotonic() - started)))
    forks = len(server.events("post_fork"))
    # backoff 0.1, 0.2, 0.4, 0.8 s...: a hot loop would fork hundreds of times in 2 s
    assert forks <= 8, forks
    assert server.proc.poll() is None  # limit 0: never gives up
    assert "next spawn in" in server.log_tail()
    server.write_opts(app_fail=False)
    server.kill(signal.SIGHUP)
    server.wait_booted(1)
    assert int(server.request("pid")) in server.worker_pids()


def test_failures_outside_the_window_do_not_add_up(server_factory):
    server = server_factory(app_fail=True, cfg={"boot_failure_limit": 3, "boot_failure_window": 0.25})
    server.start(wait=False)
    time.sleep(1.5)
    # the backoff spaces failures wider than the window, so the limit is never reached
    assert server.proc.poll() is None, server.log_tail()
    server.kill(signal.SIGTERM)
    assert server.wait_exit() == 0


def test_a_worker_too_slow_to_boot_counts_as_a_boot_failure(server_factory):
    server = server_factory(load_delay=5, cfg={"timeout": 0.5, "boot_failure_limit": 2})
    server.start(wait=False)
    assert server.wait_exit(timeout=20) == 3
    log = server.log_tail(20000)
    assert "while booting: loading the app took longer than timeout=0.5s" in log
    assert "Crash loop: 2 workers failed to boot" in log


def test_crashes_after_boot_are_not_boot_failures(server_factory):
    server = server_factory(cfg={"boot_failure_limit": 2})
    server.start()
    for n in range(4):
        try:
            server.request("crash", timeout=2)
        except OSError:
            pass  # the worker died mid-connection: expected
        server.wait_booted(n + 2)
    assert server.proc.poll() is None
    log = server.log_tail(50000)
    assert log.count("RuntimeError: worker crashed on purpose") == 4
    assert "exited with exit code 1" in log
    assert "Crash loop" not in log and "failed to boot" not in log
    assert int(server.request("pid")) in server.worker_pids()
