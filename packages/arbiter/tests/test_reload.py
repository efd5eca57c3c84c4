"""HUP (reload and replace workers), TTIN/TTOU, USR1."""

from __future__ import annotations

import signal
import socket
import threading
import time

import pytest


def test_hup_replaces_every_worker_and_calls_on_reload(server_factory, wait_until):
    server = server_factory(cfg={"workers": 2, "graceful_timeout": 10}).start()
    old = server.worker_pids()
    result: dict[str, str] = {}
    slow = threading.Thread(target=lambda: result.update(r=server.request("slow 1.0")))
    slow.start()
    server.wait_event("slow-start")  # in flight on an old worker before the HUP
    server.write_opts(cfg={"workers": 3})
    server.kill(signal.SIGHUP)
    server.wait_event("on_reload")
    server.wait_booted(5)
    wait_until(lambda: server.worker_pids().isdisjoint(old), what="old workers to exit")
    new = server.worker_pids()
    assert len(new) == 3
    answers = {int(server.request("pid")) for _ in range(30)}
    assert answers <= new
    slow.join(5)
    assert result["r"].startswith("done ")  # the old worker finished its job
    assert int(result["r"].split()[1]) in old
    # on_reload runs in the master, after the new config was read
    assert server.events("on_reload")[0].pid == server.master_pid
    assert server.events("nworkers_changed")[-1].detail == "3 2"


def test_hup_with_a_broken_config_keeps_serving(server_factory, wait_until):
    server = server_factory().start()
    before = server.worker_pids()
    server.write_opts(reload_fail=True)
    server.kill(signal.SIGHUP)
    wait_until(lambda: "Reload failed" in server.log_tail(), what="the failed reload")
    time.sleep(0.3)  # a worker wrongly started by the HUP would have forked by now
    assert server.worker_pids() == before
    assert int(server.request("pid")) in before
    assert not server.events("on_reload")


def test_hup_rebinds_when_bind_changes(server_factory, wait_until, free_port):
    server = server_factory().start()
    old_addr = server.addresses()[0]
    new_port = free_port()
    server.write_opts(cfg={"bind": [f"127.0.0.1:{new_port}"]})
    server.kill(signal.SIGHUP)
    server.wait_booted(2)
    wait_until(lambda: len(server.worker_pids()) == 1, what="old worker to exit")
    assert int(server.request("pid", ("127.0.0.1", new_port))) in server.worker_pids()
    with pytest.raises(ConnectionRefusedError):
        server.request("pid", old_addr)


def test_ttin_and_ttou_change_the_worker_count(server_factory, wait_until):
    server = server_factory().start()
    server.kill(signal.SIGTTIN)
    server.wait_booted(2)
    server.kill(signal.SIGTTIN)
    server.wait_booted(3)
    assert len(server.worker_pids()) == 3
    server.kill(signal.SIGTTOU)
    wait_until(lambda: len(server.worker_pids()) == 2, what="one worker less")
    server.kill(signal.SIGTTOU)
    server.kill(signal.SIGTTOU)  # never below one
    wait_until(lambda: len(server.worker_pids()) == 1, what="one worker left")
    time.sleep(0.3)
    assert len(server.worker_pids()) == 1
    changes = [e.detail for e in server.events("nworkers_changed")]
    assert changes == ["1 None", "2 1", "3 2", "2 3", "1 2"]
    # the oldest workers are the ones retired
    first = server.events("post_worker_init")[0].pid
    assert first not in server.worker_pids()


def test_ttin_acts_even_when_a_ttou_is_queued_behind_it(server_factory, wait_until):
    # gunicorn forks for a TTIN at once, so TTIN then TTOU replaces the oldest
    # worker; the TTOU arrives while the master is still inside the TTIN's
    # nworkers_changed hook, so both are taken in the same wake-up
    server = server_factory(resize_delay=0.5).start()
    first = next(iter(server.worker_pids()))
    server.kill(signal.SIGTTIN)
    server.wait_event("nworkers_changed", 2)
    server.kill(signal.SIGTTOU)
    server.wait_booted(2)
    wait_until(lambda: first not in server.worker_pids(), what="the oldest worker to retire")
    assert len(server.worker_pids()) == 1
    assert [e.detail for e in server.events("nworkers_changed")] == ["1 None", "2 1", "1 2"]


def test_usr1_reopens_logs_in_master_and_workers(server_factory, wait_until):
    server = server_factory(cfg={"workers": 2}).start()
    server.kill(signal.SIGUSR1)
    expected = server.worker_pids() | {server.master_pid}
    wait_until(lambda: {e.pid for e in server.events("reopen")} == expected, what="reopen everywhere")
    assert server.worker_pids() == expected - {server.master_pid}  # nobody was restarted


def test_no_request_fails_while_hup_replaces_workers(server_factory):
    server = server_factory(cfg={"workers": 2}, load_delay=0.2).start()
    old = server.worker_pids()
    stop = threading.Event()
    failures: list[str] = []
    answers: list[int] = []

    def hammer() -> None:
        while not stop.is_set():
            try:
                answers.append(int(server.request("pid")))
            except (OSError, ValueError) as exc:
                failures.append(repr(exc))

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(2):
            server.kill(signal.SIGHUP)
            time.sleep(0.8)
    finally:
        stop.set()
        for thread in threads:
            thread.join(5)
    assert not failures, failures[:3]
    assert set(answers) & old and set(answers) - old  # both generations answered


def test_usr1_right_after_a_fork_does_not_kill_the_new_worker(server_factory):
    server = server_factory(cfg={"workers": 3}, load_delay=0.3).start()
    for n in range(3):
        server.kill(signal.SIGHUP)
        server.kill(signal.SIGUSR1)
        # the next HUP only once this one was taken: the kernel merges a signal
        # sent while the same one is still pending, and a busy master may not
        # have run for a while (a sleep would only make that unlikely)
        server.wait_event("on_reload", n + 1)
    server.wait_booted(12)
    time.sleep(0.5)
    # 3 workers, replaced 3 times; none died of a USR1 that came too early
    assert len(server.events("post_fork")) == 12, server.log_tail()
    assert "exited with signal SIGUSR1" not in server.log_tail(50000)


def test_hup_keeps_unchanged_listeners_and_survives_a_bad_new_bind(server_factory, wait_until,
                                                                   free_port):
    port = free_port()
    server = server_factory(cfg={"bind": [f"127.0.0.1:{port}"]}).start()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        busy = taken.getsockname()[1]
        server.write_opts(cfg={"bind": [f"127.0.0.1:{port}", f"127.0.0.1:{busy}"]})
        server.kill(signal.SIGHUP)
        server.wait_booted(2)
        assert "address already in use; keeping the current listeners" in server.log_tail()
    # the old generation serves until the master has seen the new one boot, then
    # finishes what it accepted: only once it is gone must the new worker answer
    wait_until(lambda: len(server.worker_pids()) == 1, what="the first worker to retire")
    assert int(server.request("pid", ("127.0.0.1", port))) in server.worker_pids()
    extra = free_port()
    server.write_opts(cfg={"bind": [f"127.0.0.1:{port}", f"127.0.0.1:{extra}"]})
    server.kill(signal.SIGHUP)
    server.wait_booted(3)
    wait_until(lambda: len(server.worker_pids()) == 1, what="the second worker to retire")
    for p in (port, extra):
        assert int(server.request("pid", ("127.0.0.1", p))) in server.worker_pids()
    assert "Closing listener" not in server.log_tail(50000)  # the first socket was kept
