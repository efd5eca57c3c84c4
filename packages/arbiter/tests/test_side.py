"""Side processes: started with the master, restarted with backoff, signalled, stopped last."""

from __future__ import annotations

import os
import signal
import time


def _fds_are_sockets(pid: int) -> list[str]:
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue
        if target.startswith("socket:"):
            out.append(target)
    return out


def test_side_process_gets_signals_is_restarted_and_stopped_last(server_factory, wait_until):
    server = server_factory(side=True, cfg={"workers": 2}).start()
    side = server.wait_event("side-start")[0].pid
    assert side not in server.worker_pids() and side != server.master_pid
    assert _fds_are_sockets(side) == []  # it does not hold the HTTP listeners
    server.kill(signal.SIGHUP)
    server.wait_event("side-hup")
    server.kill(signal.SIGUSR1)
    server.wait_event("side-usr1")
    assert server.events("side-hup")[0].pid == side
    # killed: restarted after a short backoff
    os.kill(side, signal.SIGKILL)
    second = server.wait_event("side-start", 2)[1].pid
    assert second != side
    assert "Side process probe-side exited with signal SIGKILL; restarting in" in server.log_tail()
    server.wait_booted(4)  # the HUP replaced both workers
    server.kill(signal.SIGTERM)
    assert server.wait_exit() == 0
    names = [e.name for e in server.events()]
    term = names.index("side-term")
    # workers are gone before the side process is told to stop
    assert names.count("child_exit") == 4
    assert max(i for i, n in enumerate(names) if n == "worker_exit") < term
    assert term < names.index("on_exit")
    assert server.events("side-term")[0].pid == second


def test_crashing_side_process_backs_off(server_factory):
    started = time.monotonic()
    server = server_factory(side=True, side_crash_after=0.05).start()
    server.wait_event("side-crash", 2)
    time.sleep(max(0.0, 2.0 - (time.monotonic() - started)))
    crashes = len(server.events("side-crash"))
    # backoff 0.2, 0.4, 0.8 s...: a few restarts in 2 s, not a hot loop
    assert crashes <= 6, crashes
    assert "exited with exit code 7; restarting in" in server.log_tail()
    assert int(server.request("pid")) in server.worker_pids()  # workers unaffected


def test_nothing_is_left_behind_when_the_master_is_killed(server_factory, wait_until):
    server = server_factory(side=True, cfg={"workers": 2}).start()
    side = server.wait_event("side-start")[0].pid
    children = server.worker_pids() | {side}
    server.kill(signal.SIGKILL)
    server.wait_exit()

    def gone(pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                return fh.read().split(") ")[1].startswith("Z")  # a zombie is gone
        except FileNotFoundError:
            return True

    wait_until(lambda: all(gone(pid) for pid in children), what="orphans to exit")
    assert server.events("side-term")[0].pid == side  # the kernel's parent-death signal


def test_forwarded_hup_and_usr1_do_not_kill_a_side_process_without_handlers(server_factory):
    server = server_factory(plain_side=True).start()
    for n in range(3):
        server.kill(signal.SIGHUP)
        server.kill(signal.SIGUSR1)
        # a HUP sent while the previous one is still pending would be merged with it
        server.wait_event("on_reload", n + 1)
    server.wait_booted(4)
    time.sleep(0.3)
    assert len(server.events("plain-start")) == 1, server.log_tail()
    assert "Side process plain-side exited" not in server.log_tail(50000)
    server.kill(signal.SIGTERM)
    assert server.wait_exit() == 0
