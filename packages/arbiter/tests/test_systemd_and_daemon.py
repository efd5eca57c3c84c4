"""sd_notify messages, daemon mode, and WINCH."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile
import time

import pytest


@pytest.fixture
def notify_socket():
    """A datagram socket playing systemd's NOTIFY_SOCKET."""
    path = tempfile.mkdtemp(prefix="gca-")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(os.path.join(path, "notify"))
    sock.settimeout(5)
    yield sock
    sock.close()
    shutil.rmtree(path, ignore_errors=True)


def _next(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


def test_sd_notify_ready_reloading_stopping(server_factory, notify_socket):
    server = server_factory()
    server.start(env={"NOTIFY_SOCKET": notify_socket.getsockname()})
    ready = _next(notify_socket)
    assert ready.startswith("READY=1\n") and f"master {server.master_pid}" in ready
    assert server.events("pre_fork")  # READY comes once workers are forked
    server.kill(signal.SIGHUP)
    reloading = _next(notify_socket).split("\n")
    assert reloading[0] == "RELOADING=1"
    assert reloading[1].startswith("MONOTONIC_USEC=") and int(reloading[1].split("=")[1]) > 0
    assert _next(notify_socket) == "READY=1"
    server.kill(signal.SIGTERM)
    assert _next(notify_socket) == "STOPPING=1"
    assert server.wait_exit() == 0


def test_sd_notify_abstract_socket(server_factory):
    name = f"gcorn-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        server = server_factory().start(env={"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(4096).startswith(b"READY=1")
        server.kill(signal.SIGTERM)
        assert sock.recv(4096) == b"STOPPING=1"


def test_winch_is_ignored_when_not_daemonized(server_factory):
    server = server_factory().start()
    before = server.worker_pids()
    server.kill(signal.SIGWINCH)
    time.sleep(0.4)
    assert server.worker_pids() == before
    assert int(server.request("pid")) in before


def test_daemon_mode_and_winch(server_factory, wait_until):
    server = server_factory(cfg={"daemon": True, "pidfile": "d.pid"})
    server.start(wait=False)
    assert server.wait_exit() == 0  # the launching process returns at once
    pidfile = server.tmp / "d.pid"
    master = wait_until(lambda: pidfile.exists() and int(pidfile.read_text() or 0), what="pidfile")
    assert master != server.proc.pid and master == server.master_pid
    assert os.getsid(master) not in (os.getsid(0), master)  # own session, not its leader
    assert os.readlink(f"/proc/{master}/fd/1") == "/dev/null"
    server.wait_booted(1)
    worker = int(server.request("pid"))
    server.kill(signal.SIGWINCH, master)
    wait_until(lambda: not server.worker_pids(), what="WINCH to stop the workers")
    time.sleep(0.3)
    assert not server.worker_pids()  # and nothing is respawned
    os.kill(master, 0)  # the master stays up
    assert server.events("nworkers_changed")[-1].detail == "0 1"
    server.kill(signal.SIGTTIN, master)
    server.wait_booted(2)
    assert int(server.request("pid")) != worker
    server.kill(signal.SIGTERM, master)
    server.wait_event("master_exit")
    wait_until(lambda: not pidfile.exists(), what="pidfile removal")
