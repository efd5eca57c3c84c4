"""The arbiter's small parts on their own: bind parsing, boot guard, pidfile, heartbeat."""

from __future__ import annotations

import os
import socket

import pytest

from gcorn.arbiter import BindError, PidfileError
from gcorn.arbiter.addresses import parse_bind
from gcorn.arbiter.bootguard import BootGuard
from gcorn.arbiter.heartbeat import Heartbeat
from gcorn.arbiter.pidfile import Pidfile, read_pid


@pytest.mark.parametrize(
    ("spec", "family", "host", "port"),
    [
        ("127.0.0.1:8080", socket.AF_INET, "127.0.0.1", 8080),
        ("127.0.0.1", socket.AF_INET, "127.0.0.1", 8000),
        (":9000", socket.AF_INET, "", 9000),
        ("0.0.0.0:1", socket.AF_INET, "0.0.0.0", 1),
        ("tcp://127.0.0.1:81", socket.AF_INET, "127.0.0.1", 81),
        ("[::1]:8080", socket.AF_INET6, "::1", 8080),
        ("[::]", socket.AF_INET6, "::", 8000),
        ("::1", socket.AF_INET6, "::1", 8000),
        ("localhost:5000", None, "localhost", 5000),
    ],
)
def test_parse_tcp_binds(spec, family, host, port):
    addr = parse_bind(spec)
    assert (addr.host, addr.port) == (host, port)
    if family is not None:
        assert addr.family == family
    assert addr.spec == spec


def test_parse_unix_and_fd_binds():
    assert parse_bind("unix:/tmp/a.sock").path == "/tmp/a.sock"
    assert parse_bind("unix:///tmp/a.sock").path == "/tmp/a.sock"
    assert parse_bind("unix:rel.sock").family == socket.AF_UNIX
    assert parse_bind("fd://5").fd == 5


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty bind"),
        ("unix:", "names no socket path"),
        ("fd://", "needs a file descriptor"),
        ("1.2.3.4:port", "invalid port 'port'"),
        ("1.2.3.4:99999", "invalid port '99999'"),
        ("[::1]x", "expected ':PORT'"),
        ("no-such-host.invalid:80", "cannot resolve host"),
    ],
)
def test_parse_errors_name_the_problem(spec, message):
    with pytest.raises(BindError, match=message):
        parse_bind(spec)


def test_boot_guard_backs_off_exponentially_and_resets_on_boot():
    now = [100.0]
    guard = BootGuard(limit=4, window=10, backoff_base=0.1, backoff_max=0.5, clock=lambda: now[0])
    assert guard.may_spawn()
    delays = []
    for _ in range(3):
        assert not guard.record_failure()
        delays.append(round(guard.next_spawn_at - now[0], 3))
        assert not guard.may_spawn()
        now[0] += 1
    assert delays == [0.1, 0.2, 0.4]
    assert guard.may_spawn()
    assert guard.record_failure()  # 4 in 10 s: the limit
    guard.record_boot()
    assert guard.may_spawn()
    now[0] += 11  # everything left the window
    assert guard.recent_failures == 0
    assert not guard.record_failure()
    assert guard.next_spawn_at - now[0] == pytest.approx(0.1)


def test_boot_guard_caps_the_delay_and_limit_zero_never_gives_up():
    now = [0.0]
    guard = BootGuard(limit=0, window=60, backoff_base=1, backoff_max=3, clock=lambda: now[0])
    for _ in range(20):
        assert not guard.record_failure()
    assert guard.next_spawn_at - now[0] == 3


def test_pidfile_lifecycle(tmp_path):
    path = str(tmp_path / "x.pid")
    pidfile = Pidfile(path)
    pidfile.create(os.getpid())
    assert read_pid(path) == os.getpid()
    # another live process's pid is refused, unless it is allowed (the old master)
    with pytest.raises(PidfileError, match="names a running process"):
        Pidfile(path).create(1)
    Pidfile(path).create(1, allowed=(os.getpid(),))
    assert read_pid(path) == 1
    pidfile.unlink()  # not ours any more: left alone
    assert os.path.exists(path)
    pidfile.create(os.getpid(), allowed=(1,))
    pidfile.rename(path + ".new")
    assert not os.path.exists(path) and read_pid(path + ".new") == os.getpid()
    pidfile.unlink()
    assert not os.path.exists(path + ".new")


def test_pidfile_in_a_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(PidfileError, match="cannot write pidfile"):
        Pidfile(str(tmp_path / "missing" / "x.pid")).create(os.getpid())


def test_heartbeat_notify_throttle_and_booted_flag(tmp_path):
    beat = Heartbeat(tmp_dir=str(tmp_path), min_interval=60)
    try:
        assert os.listdir(tmp_path) == []  # unlinked at once
        first = beat.last_update()
        beat.notify()  # throttled: within min_interval
        assert beat.last_update() == first
        beat.notify(force=True)
        assert beat.last_update() >= first
        assert not beat.is_booted()
        beat.mark_booted()
        assert beat.is_booted()
    finally:
        beat.close()
        beat.close()


def test_serves_matches_a_listener_to_a_bind_string(tmp_path):
    from gcorn.arbiter.listeners import Listener, serves

    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    port = tcp.getsockname()[1]
    listener = Listener(tcp)
    assert serves(listener, f"127.0.0.1:{port}")
    assert serves(listener, f"localhost:{port}") or socket.gethostbyname("localhost") != "127.0.0.1"
    assert not serves(listener, "127.0.0.1:0")  # port 0 always means a new socket
    assert not serves(listener, f"127.0.0.2:{port}")
    assert not serves(listener, f"[::1]:{port}")
    assert serves(listener, f"fd://{tcp.fileno()}")
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(str(tmp_path / "u.sock"))
    assert serves(Listener(unix), f"unix:{tmp_path / 'u.sock'}")
    assert not serves(Listener(unix), f"unix:{tmp_path / 'v.sock'}")
    tcp.close()
    unix.close()
