"""Listeners: several binds, IPv6, Unix sockets (mode, stale files), fd://, systemd, errors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time

import pytest


@pytest.fixture
def short_dir():
    """A short directory for Unix socket paths (sun_path holds ~107 bytes)."""
    path = tempfile.mkdtemp(prefix="gca-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


def test_several_binds_tcp4_tcp6_and_unix_with_umask_mode(server_factory, short_dir):
    path = os.path.join(short_dir, "app.sock")
    binds = ["127.0.0.1:0", f"unix:{path}"] + (["[::1]:0"] if _has_ipv6() else [])
    server = server_factory(cfg={"bind": binds, "umask": 0o007, "workers": 2}).start()
    addresses = server.addresses()
    assert len(addresses) == len(binds)
    for address in addresses:
        assert int(server.request("pid", address)) in server.worker_pids()
    mode = os.stat(path).st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o770  # 0o777 minus the umask
    if _has_ipv6():
        assert addresses[2][0] == "::1"
    server.kill(signal.SIGTERM)
    assert server.wait_exit() == 0
    assert not os.path.exists(path)  # the master removes the sockets it made


def test_stale_unix_socket_is_replaced(server_factory, short_dir):
    path = os.path.join(short_dir, "app.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()  # the file stays, nobody listens
    server = server_factory(cfg={"bind": [f"unix:{path}"]}).start()
    assert int(server.request("pid", path)) in server.worker_pids()


def test_unix_path_held_by_a_live_server_or_a_plain_file_is_refused(server_factory, short_dir):
    busy = os.path.join(short_dir, "busy.sock")
    holder = socket.socket(socket.AF_UNIX)
    holder.bind(busy)
    holder.listen(1)
    plain = os.path.join(short_dir, "plain")
    with open(plain, "w") as fh:
        fh.write("data")
    for path, message in ((busy, "another process is listening"), (plain, "is not a socket")):
        server = server_factory(cfg={"bind": [f"unix:{path}"]}).start(wait=False)
        assert server.wait_exit() == 1
        assert message in server.log_tail()
        assert not server.events("post_worker_init")
    holder.close()
    assert open(plain).read() == "data"


def test_bind_errors_are_one_clear_line(server_factory):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        cases = [
            (["127.0.0.1:http"], "invalid port 'http'"),
            (["127.0.0.1:70000"], "invalid port '70000'"),
            (["[::1"], "missing ']'"),
            (["fd://x"], "fd:// needs a file descriptor number"),
            (["fd://250"], "fd://250: not an open file descriptor"),
            ([f"127.0.0.1:{port}"], "address already in use"),
        ]
        for binds, message in cases:
            server = server_factory(cfg={"bind": binds}, bind_retries=2).start(wait=False)
            assert server.wait_exit() == 1, binds
            assert message in server.log_tail(), (binds, server.log_tail())
            assert "Traceback" not in server.log_tail()
        assert "retrying in" in server.log_tail()


def test_fd_bind_uses_an_inherited_socket(server_factory):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        fd = listener.fileno()
        server = server_factory(cfg={"bind": [f"fd://{fd}"]}).start(pass_fds=(fd,))
        assert int(server.request("pid", listener.getsockname())) in server.worker_pids()
        server.kill(signal.SIGTERM)
        assert server.wait_exit() == 0


@pytest.mark.skipif(not shutil.which("systemd-socket-activate"), reason="systemd-socket-activate missing")
def test_systemd_socket_activation(server_factory, short_dir):
    path = os.path.join(short_dir, "sd.sock")
    server = server_factory(cfg={"bind": ["127.0.0.1:1"]})  # ignored: systemd's socket wins
    argv = ["systemd-socket-activate", "-l", path, "-E", "PYTHONPATH", *server.command()]
    server.start(argv=argv, wait=False)
    # systemd-socket-activate execs the server on the first connection
    client = socket.socket(socket.AF_UNIX)
    for _ in range(100):
        try:
            client.connect(path)
            break
        except (FileNotFoundError, ConnectionRefusedError):
            time.sleep(0.05)
    client.sendall(b"pid\n")
    client.settimeout(8)
    pid = int(client.recv(100).decode().strip())
    client.close()
    assert pid in server.worker_pids()
    assert server.master_pid == server.proc.pid  # LISTEN_PID named the exec'd process
    assert server.addresses() == [path]
    server.kill(signal.SIGTERM)
    assert server.wait_exit() == 0
    assert os.path.exists(path)  # systemd owns the path: not unlinked


def test_listeners_are_non_blocking_in_workers(server_factory):
    # every process shares O_NONBLOCK on a listening socket; workers must find it set
    server = server_factory(cfg={"bind": ["127.0.0.1:0", "127.0.0.1:0"]}).start()
    info = json.loads(server.request("info"))
    assert info["blocking"] == [False, False]
    assert info["ppid"] == server.master_pid


def test_backlog_and_reuse_port(server_factory):
    server = server_factory(cfg={"backlog": 37, "reuse_port": True}).start()
    host, port = server.addresses()[0][:2]
    if shutil.which("ss"):
        out = subprocess.run(
            ["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, timeout=5
        ).stdout.split()
        assert out[2] == "37"  # Send-Q of a listening socket is its backlog
    # SO_REUSEPORT is set: another socket with it may bind the same port
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind((host, port))


def test_listen_fds_from_the_environment(server_factory):
    # the same protocol as systemd: the fd at 3, LISTEN_PID naming the server's pid
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        fd = listener.fileno()
        server = server_factory()
        launcher = (
            "import os, sys; os.dup2(int(sys.argv[1]), 3); "
            "os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='1'); "
            "os.execv(sys.argv[2], sys.argv[2:])"
        )
        argv = [sys.executable, "-c", launcher, str(fd), *server.command()]
        server.start(argv=argv, pass_fds=(fd,))
        assert server.addresses() == [listener.getsockname()]
        assert int(server.request("pid", listener.getsockname())) in server.worker_pids()
        assert server.request("env LISTEN_FDS") == ""  # consumed, not leaked to workers


def test_listen_fds_for_another_pid_are_ignored(server_factory):
    server = server_factory().start(env={"LISTEN_PID": "1", "LISTEN_FDS": "1"})
    assert server.addresses()[0][0] == "127.0.0.1"  # bound from cfg.bind instead
    assert int(server.request("pid")) in server.worker_pids()


@pytest.mark.skipif(not shutil.which("systemd-socket-activate"), reason="systemd-socket-activate missing")
def test_usr2_under_systemd_passes_listen_fds_on(server_factory, short_dir, wait_until):
    path = os.path.join(short_dir, "sd.sock")
    server = server_factory()
    argv = ["systemd-socket-activate", "-l", path, "-E", "PYTHONPATH", *server.command()]
    server.start(argv=argv, wait=False)
    wait_until(lambda: os.path.exists(path), what="the activation socket")
    assert int(server.request("pid", path)) in server.worker_pids()  # execs the server
    server.kill(signal.SIGUSR2)
    new_master = server.wait_event("on_starting", 2)[1].pid
    server.wait_booted(2)
    assert server.addresses(1) == [path]
    server.kill(signal.SIGTERM)  # the old master
    assert server.wait_exit() == 0
    wait_until(lambda: "takes over" in server.log_tail(), what="promotion")
    assert int(server.request("pid", path)) in server.worker_pids()
    server.kill(signal.SIGTERM, new_master)
    server.wait_event("master_exit", 2)
    assert os.path.exists(path)  # still systemd's


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="socket filters are Linux's")
def test_a_listener_that_stops_admitting_keeps_its_queue_and_completes_no_new_connection():
    from gcorn.arbiter.listeners import Listener

    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = sock.getsockname()[1]
        queued = socket.create_connection(("127.0.0.1", port), timeout=2)
        queued.sendall(b"sent before")
        Listener(sock).stop_admitting()
        with pytest.raises(TimeoutError):  # no SYN-ACK: the client is not connected
            socket.create_connection(("127.0.0.1", port), timeout=0.3)
        client, _ = sock.accept()
        with client, queued:
            assert client.recv(64) == b"sent before"  # the queued one is whole
            client.sendall(b"answer")
            assert queued.recv(64) == b"answer"
    # the last copy closed: a client is refused at once rather than reset after it sent
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)
