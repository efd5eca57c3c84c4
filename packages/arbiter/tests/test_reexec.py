"""USR2: a new master on the same sockets; the old one runs until told to stop."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
import time


def _hammer(server, address, stop, failures, answers):
    while not stop.is_set():
        try:
            answers.append(int(server.request("pid", address)))
        except (OSError, ValueError) as exc:
            failures.append(repr(exc))
        time.sleep(0.01)


def test_usr2_reexec_keeps_sockets_and_promotes_after_the_old_master_stops(server_factory, wait_until):
    short = tempfile.mkdtemp(prefix="gca-")
    unix_path = os.path.join(short, "s.sock")
    server = server_factory(cfg={"bind": ["127.0.0.1:0", f"unix:{unix_path}"], "pidfile": "app.pid"})
    server.start()
    pidfile = server.tmp / "app.pid"
    old_master = server.master_pid
    old_workers = server.worker_pids()
    tcp = server.addresses()[0]
    stop, failures, answers = threading.Event(), [], []
    hammer = threading.Thread(target=_hammer, args=(server, tcp, stop, failures, answers))
    hammer.start()
    try:
        server.kill(signal.SIGUSR2)
        starts = server.wait_event("on_starting", 2)
        new_master = starts[1].pid
        assert new_master != old_master
        server.wait_booted(2)
        # pre_exec ran in the forked child, which then became the new master
        assert server.events("pre_exec")[0].pid == new_master
        assert server.addresses(1) == server.addresses(0)  # same sockets, inherited
        assert wait_until(lambda: (server.tmp / "app.pid.2").exists(), what="app.pid.2")
        assert int((server.tmp / "app.pid.2").read_text()) == new_master
        assert int(pidfile.read_text()) == old_master
        # the old master keeps running (and serving) until told to stop
        time.sleep(0.3)
        assert server.proc.poll() is None
        server.kill(signal.SIGUSR2, new_master)  # a not-yet-promoted child ignores USR2
        server.kill(signal.SIGTERM, old_master)
        assert server.wait_exit() == 0
        wait_until(lambda: pidfile.exists() and int(pidfile.read_text()) == new_master,
                   what="promotion of the new master's pidfile")
        assert not (server.tmp / "app.pid.2").exists()
        assert os.path.exists(unix_path)  # the old master did not unlink the shared path
        new_workers = server.worker_pids() - old_workers
        assert int(server.request("pid", unix_path)) in new_workers
        time.sleep(0.2)
    finally:
        stop.set()
        hammer.join(5)
    assert not failures, failures[:3]
    assert set(answers) & old_workers and set(answers) & new_workers
    assert len(server.events("on_starting")) == 2  # the ignored USR2 started nobody
    server.kill(signal.SIGTERM, new_master)
    wait_until(lambda: len(server.events("master_exit")) == 2, what="the new master to exit")
    assert not pidfile.exists()
    assert not os.path.exists(unix_path)
    shutil.rmtree(short, ignore_errors=True)


def test_rollback_stopping_the_new_master_keeps_the_old_one(server_factory, wait_until):
    short = tempfile.mkdtemp(prefix="gca-")
    unix_path = os.path.join(short, "s.sock")
    server = server_factory(cfg={"bind": [f"unix:{unix_path}"], "pidfile": "app.pid"}).start()
    old_master = server.master_pid
    server.kill(signal.SIGUSR2)
    new_master = server.wait_event("on_starting", 2)[1].pid
    server.wait_booted(2)
    server.kill(signal.SIGTERM, new_master)
    wait_until(lambda: server.events("master_exit"), what="the new master to stop")
    wait_until(lambda: "The re-exec'd master" in server.log_tail(), what="the old master to reap it")
    # the unpromoted master left the shared path and the old master's pidfile alone
    assert os.path.exists(unix_path)
    assert int((server.tmp / "app.pid").read_text()) == old_master
    assert not (server.tmp / "app.pid.2").exists()
    old_workers = {e.pid for e in server.events("post_worker_init")[:1]}
    assert int(server.request("pid", unix_path)) in old_workers
    # and the old master can be upgraded again
    server.kill(signal.SIGUSR2)
    server.wait_event("on_starting", 3)
    server.wait_booted(3)
    shutil.rmtree(short, ignore_errors=True)


def test_a_reexecd_master_keeps_its_inherited_socket_on_hup(server_factory, wait_until,
                                                            free_port):
    port = free_port()
    server = server_factory(cfg={"bind": [f"127.0.0.1:{port}"]}).start()
    server.kill(signal.SIGUSR2)
    new_master = server.wait_event("on_starting", 2)[1].pid
    server.wait_booted(2)
    server.kill(signal.SIGTERM)
    assert server.wait_exit() == 0
    extra = free_port()
    server.write_opts(cfg={"bind": [f"127.0.0.1:{port}", f"127.0.0.1:{extra}"]})
    server.kill(signal.SIGHUP, new_master)
    server.wait_booted(3)
    # the pre-HUP worker may answer until it has exited: wait for its retirement
    wait_until(lambda: len(server.worker_pids()) == 1, what="the old worker to retire")
    for p in (port, extra):
        assert int(server.request("pid", ("127.0.0.1", p))) in server.worker_pids()
    assert "Closing listener" not in server.log_tail(50000)
    server.kill(signal.SIGTERM, new_master)
    server.wait_event("master_exit", 2)
