"""`gcorn ctl` and the master's control socket, end to end through the `gcorn` command."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import GCORN, Gcorn, wait_until

APP = '''
import asyncio
import time

HOLD = []


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/grow":
        block = bytearray(60 * 1024 * 1024)
        block[::4096] = b"x" * len(block[::4096])  # touch every page: resident, not just mapped
        HOLD.append(block)
    elif path == "/slow":
        time.sleep(1.5)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok\\n"]


async def asgi(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["path"] == "/slow":
        await asyncio.sleep(1.5)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok\\n"})
'''

Start = Callable[..., Gcorn]


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "ctlapp.py").write_text(APP)
    return tmp_path


def ctl(path: Path, *words: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `gcorn ctl -s PATH WORDS...`; fail with its output unless it exits 0 (check)."""
    proc = subprocess.run([GCORN, "ctl", "-s", str(path), *words], capture_output=True,
                          text=True, timeout=20)
    if check:
        assert proc.returncode == 0, (proc.stdout, proc.stderr)
    return proc


def ctl_json(path: Path, *words: str) -> Any:
    """The parsed --json answer of one ctl command."""
    return json.loads(ctl(path, *words, "--json").stdout)


def worker_pids(path: Path) -> set[int]:
    return {w["pid"] for w in ctl_json(path, "show", "workers")["workers"]}


def booted_pids(path: Path) -> set[int]:
    return {w["pid"] for w in ctl_json(path, "show", "workers")["workers"]
            if w["booted"] and not w["retiring"]}


def start_with_ctl(start_gcorn: Start, app_dir: Path, *args: str) -> tuple[Gcorn, Path]:
    sock = app_dir / "gcorn.ctl"
    server = start_gcorn("--control-socket", str(sock), "--graceful-timeout", "5", *args,
                         cwd=app_dir)
    wait_until(lambda: "Control socket listening at" in server.log(), 5)
    return server, sock


def test_the_socket_is_0600_logged_and_removed_on_exit(start_gcorn: Start, app_dir: Path) -> None:
    server, sock = start_with_ctl(start_gcorn, app_dir, "ctlapp:app")
    st = os.stat(sock)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == os.geteuid()
    assert f"Control socket listening at {sock}" in server.log()
    assert server.stop() == 0
    assert not sock.exists()


def test_the_default_path_is_gunicorns_under_xdg_runtime_dir_else_home(
    start_gcorn: Start, app_dir: Path
) -> None:
    runtime = app_dir / "run"
    runtime.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
    server = start_gcorn("ctlapp:app", cwd=app_dir, env={**env, "XDG_RUNTIME_DIR": str(runtime)})
    assert wait_until(lambda: f"Control socket listening at {runtime}/gcorn.ctl" in server.log(), 5)
    assert len(worker_pids(runtime / "gcorn.ctl")) == 1
    server.stop()
    home = app_dir / "home"
    home.mkdir()
    clean = {"XDG_RUNTIME_DIR": "", "HOME": str(home)}
    server = start_gcorn("ctlapp:app", cwd=app_dir, env=clean)
    sock = home / ".gcorn" / "gcorn.ctl"
    assert wait_until(lambda: f"Control socket listening at {sock}" in server.log(), 5)
    assert stat.S_IMODE(os.stat(sock.parent).st_mode) == 0o700
    # `gcorn ctl` finds the same default by itself
    proc = subprocess.run([GCORN, "ctl", "show", "stats", "--json"], capture_output=True, text=True,
                          timeout=20, env={**os.environ, **clean})
    assert json.loads(proc.stdout)["pid"] == server.pid, proc.stderr
    server.stop()
    assert not sock.exists()


def test_no_control_socket_disables_it(start_gcorn: Start, app_dir: Path) -> None:
    sock = app_dir / "off.ctl"
    server = start_gcorn("--control-socket", str(sock), "--no-control-socket", "ctlapp:app",
                         cwd=app_dir)
    assert server.get().status_code == 200
    assert not sock.exists() and "Control socket" not in server.log()
    proc = ctl(sock, "show", "workers", check=False)
    assert proc.returncode == 1 and "no control socket at" in proc.stderr


@pytest.mark.parametrize("worker", [["ctlapp:app"], ["-k", "gthread", "--threads", "4", "ctlapp:app"],
                                    ["-k", "asgi", "ctlapp:asgi"]], ids=["sync", "gthread", "asgi"])
def test_show_workers_counts_requests_and_in_flight(
    start_gcorn: Start, app_dir: Path, worker: list[str]
) -> None:
    server, sock = start_with_ctl(start_gcorn, app_dir, *worker)
    before = ctl_json(sock, "show", "workers")["workers"][0]["requests"]  # the readiness probe's
    for _ in range(5):
        assert server.get().status_code == 200
    (row,) = ctl_json(sock, "show", "workers")["workers"]
    assert row["requests"] == before + 5 and row["in_flight"] == 0
    assert row["booted"] and row["age"] == 1 and row["uptime"] >= 0
    assert 0 <= row["last_heartbeat"] < 31 and row["rss"] > 1024 * 1024
    slow = threading.Thread(target=server.get, args=("/slow",))
    slow.start()
    try:
        assert wait_until(lambda: ctl_json(sock, "show", "workers")["workers"][0]["in_flight"] == 1, 5)
    finally:
        slow.join()
    human = ctl(sock, "show", "workers").stdout
    header = human.splitlines()[0].split()
    assert header == ["PID", "AGE", "UPTIME", "REQUESTS", "CURRENT", "HEARTBEAT", "RSS", "STATE"]
    assert str(row["pid"]) in human and "1 worker(s)" in human
    assert ctl_json(sock, "show", "stats")["requests_total"] >= 6


def test_show_stats_listeners_config_all_help(start_gcorn: Start, app_dir: Path) -> None:
    server, sock = start_with_ctl(start_gcorn, app_dir, "-w", "2", "ctlapp:app")
    stats = ctl_json(sock, "show", "stats")
    assert stats["pid"] == server.pid and stats["workers_target"] == 2
    assert stats["workers_spawned"] == 2 and stats["uptime"] >= 0
    assert "workers_target" in ctl(sock, "show", "stats").stdout
    listeners = ctl_json(sock, "show", "listeners")
    assert listeners["count"] == 1 and listeners["listeners"][0]["type"] == "tcp"
    assert f"127.0.0.1:{server.port}" in ctl(sock, "show", "listeners").stdout
    config = ctl_json(sock, "show", "config")
    assert config["workers"] == 2 and config["control_socket"] == str(sock)
    assert "max_worker_memory" in config
    assert "workers" in ctl(sock, "show", "config").stdout
    everything = ctl_json(sock, "show", "all")
    assert everything["arbiter"]["pid"] == server.pid and everything["web_worker_count"] == 2
    assert everything["dirty"]["enabled"] is False
    human = ctl(sock, "show", "all").stdout
    assert f"master: pid {server.pid}" in human and "dirty pool: not running" in human
    assert "worker kill PID" in ctl(sock, "help").stdout
    bad = ctl(sock, "frobnicate", check=False)
    assert bad.returncode == 1 and "unknown command: 'frobnicate'" in bad.stderr
    bad = ctl(sock, "worker", "add", "lots", check=False)
    assert bad.returncode == 1 and "not a number: 'lots'" in bad.stderr
    bad = ctl(sock, "dirty", "add", check=False)
    assert bad.returncode == 1 and "no dirty pool is running" in bad.stderr
    bad = ctl(sock, "worker", "kill", "1", check=False)
    assert bad.returncode == 1 and "no worker with pid 1" in bad.stderr


@pytest.mark.slow
def test_worker_add_remove_kill_and_reload(start_gcorn: Start, app_dir: Path) -> None:
    server, sock = start_with_ctl(start_gcorn, app_dir, "ctlapp:app")
    first = worker_pids(sock)
    assert len(first) == 1
    assert ctl_json(sock, "worker", "add", "2") == {"added": 2, "previous": 1, "total": 3}
    assert wait_until(lambda: len(booted_pids(sock)) == 3, 10)
    grown = booted_pids(sock)
    assert first < grown
    assert "removed: 1" in ctl(sock, "worker", "remove").stdout
    assert wait_until(lambda: len(worker_pids(sock)) == 2, 10)
    assert not first & worker_pids(sock)  # the oldest retires
    crashed = sorted(worker_pids(sock))[0]
    os.kill(crashed, signal.SIGKILL)  # not the master's doing: counted as a crash
    assert wait_until(lambda: crashed not in worker_pids(sock) and len(booted_pids(sock)) == 2, 10)
    assert ctl_json(sock, "show", "stats")["workers_crashed"] == 1
    (victim, other) = sorted(worker_pids(sock))
    assert ctl_json(sock, "worker", "kill", str(victim)) == {"success": True, "killed": victim}
    assert wait_until(lambda: victim not in worker_pids(sock) and len(booted_pids(sock)) == 2, 10)
    assert other in worker_pids(sock)
    assert "killed: " in ctl(sock, "worker", "kill", str(other)).stdout
    assert wait_until(lambda: len(booted_pids(sock) - {other}) == 2, 10)
    before = booted_pids(sock)
    assert "status: reloading" in ctl(sock, "reload").stdout
    # HUP goes back to the configured count (-w 1), as gunicorn's does, with all-new workers
    assert wait_until(lambda: len(worker_pids(sock)) == 1 and not worker_pids(sock) & before, 15)
    assert ctl_json(sock, "show", "stats")["reloads"] == 1
    assert server.get().status_code == 200
    assert "Handling signal: hup" in server.log()


def test_shutdown_graceful_stops_the_master(start_gcorn: Start, app_dir: Path) -> None:
    server, sock = start_with_ctl(start_gcorn, app_dir, "ctlapp:app")
    answer = ctl_json(sock, "shutdown", "--graceful")
    assert answer["status"] == "shutting_down" and answer["mode"] == "graceful"
    assert server.wait_exit(10) == 0
    assert "control socket: graceful shutdown" in server.log() and not sock.exists()


def test_shutdown_quick_in_human_form(start_gcorn: Start, app_dir: Path) -> None:
    server, sock = start_with_ctl(start_gcorn, app_dir, "ctlapp:app")
    assert "mode: quick" in ctl(sock, "shutdown", "quick").stdout
    assert server.wait_exit(10) == 0
    assert "control socket: quick shutdown" in server.log()


def _nobody() -> int:
    import pwd

    try:
        return pwd.getpwnam("nobody").pw_uid
    except KeyError:
        pytest.skip("no user nobody")


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory any user may enter (pytest's tmp_path is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="gcorn-ctl-"))
    path.chmod(0o755)
    yield path
    for child in path.iterdir():
        child.unlink()
    path.rmdir()


# Run as another uid: connect, send one command, print what came back (or the error).
PEER = r'''
import json, os, socket, struct, sys
os.setgid(int(sys.argv[2])); os.setuid(int(sys.argv[2]))
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
try:
    s.connect(sys.argv[1])
except OSError as exc:
    print("connect failed:", exc.strerror); sys.exit(0)
body = json.dumps({"id": 1, "command": "show workers", "args": []}).encode()
try:
    s.sendall(struct.pack(">I", len(body)) + body)
except OSError:
    pass  # refused peers may be closed on before they write: the refusal is still there to read
data = b""
while chunk := s.recv(65536):
    data += chunk
print(data[4:].decode())
'''


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a peer as another user")
def test_a_non_owner_is_refused(start_gcorn: Start, app_dir: Path, open_dir: Path) -> None:
    nobody = _nobody()
    sock = open_dir / "shared.ctl"
    # 0666: the file mode lets nobody connect, so the SO_PEERCRED check is what refuses it
    server = start_gcorn("--control-socket", str(sock), "--control-socket-mode", "0o666",
                         "ctlapp:app", cwd=app_dir)
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o666
    peer = subprocess.run([sys.executable, "-c", PEER, str(sock), str(nobody)],
                          capture_output=True, text=True, timeout=15)
    assert peer.returncode == 0, peer
    answer = json.loads(peer.stdout)
    assert answer["status"] == "error", peer
    assert answer["error"].startswith(f"permission denied: uid {nobody} may not use")
    assert f"refused a client with uid {nobody}" in server.log()
    # the owner (root) still gets its answer
    assert len(worker_pids(sock)) == 1
    server.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a peer as another user")
def test_the_default_mode_keeps_other_users_out(start_gcorn: Start, app_dir: Path,
                                                open_dir: Path) -> None:
    sock = open_dir / "private.ctl"
    server = start_gcorn("--control-socket", str(sock), "ctlapp:app", cwd=app_dir)
    peer = subprocess.run([sys.executable, "-c", PEER, str(sock), str(_nobody())],
                          capture_output=True, text=True, timeout=15)
    assert "connect failed: Permission denied" in peer.stdout, peer
    server.stop()


def test_slow_and_garbage_clients_never_stall_the_master(start_gcorn: Start, app_dir: Path) -> None:
    server, sock = start_with_ctl(start_gcorn, app_dir, "ctlapp:app")
    clients = []

    def connect(first: bytes = b"") -> socket.socket:
        c = socket.socket(socket.AF_UNIX)
        c.settimeout(10)
        # a full backlog says EAGAIN on a unix socket: the master accepts at its own pace
        assert wait_until(lambda: c.connect_ex(str(sock)) in (0, errno.EISCONN), 5)
        if first:
            c.sendall(first)
        clients.append(c)
        return c

    try:
        # garbage gets a clear error, not silence
        huge = connect(b"\xff\xff\xff\xffGARBAGE")  # 4 GiB announced
        not_json = connect(struct.pack(">I", 5) + b"nope!")
        bad = huge.recv(65536)
        assert b"bad request" in bad and b"over the" in bad
        assert b"not JSON" in not_json.recv(65536)
        # a length then silence, and more silent clients than the master takes at once
        stuck = connect(struct.pack(">I", 1000))
        for _ in range(20):
            connect()
        started = time.monotonic()
        for _ in range(20):  # the master keeps supervising and its workers keep serving
            assert server.get(timeout=2).status_code == 200
        # a well-behaved client is answered while the silent ones are still open
        assert len(worker_pids(sock)) == 1
        assert time.monotonic() - started < 10
        # the stuck ones are closed (oldest first, or at the deadline); the master lives on
        try:
            assert stuck.recv(100) == b""
        except ConnectionResetError:
            pass  # closed with its unread bytes: a reset is a close too
        assert server.get().status_code == 200
    finally:
        for c in clients:
            c.close()
    assert "closing the oldest" in server.log()


def test_the_master_survives_a_client_that_never_reads(start_gcorn: Start, app_dir: Path) -> None:
    server, sock = start_with_ctl(start_gcorn, app_dir, "ctlapp:app")
    hog = socket.socket(socket.AF_UNIX)
    hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    hog.connect(str(sock))
    body = json.dumps({"id": 1, "command": "show config", "args": []}).encode()
    frame = struct.pack(">I", len(body)) + body
    try:
        for _ in range(200):  # answers pile up unread: the master must not block sending them
            hog.sendall(frame)
    except OSError:
        pass  # the master dropped us: fine too
    for _ in range(10):
        assert server.get(timeout=2).status_code == 200
    assert len(worker_pids(sock)) == 1
    hog.close()


@pytest.mark.slow
def test_a_worker_over_the_memory_cap_is_replaced_without_failing_requests(
    start_gcorn: Start, app_dir: Path
) -> None:
    server, sock = start_with_ctl(start_gcorn, app_dir, "--max-worker-memory", "50",
                                  "--max-worker-memory-checks", "2", "ctlapp:app")
    (old,) = worker_pids(sock)
    assert server.get("/grow").status_code == 200
    failures: list[str] = []
    served = 0
    deadline = time.monotonic() + 15
    with httpx.Client(timeout=5) as client:
        while time.monotonic() < deadline:
            try:
                if client.get(server.url + "/").status_code != 200:
                    failures.append("status")
                served += 1
            except httpx.HTTPError as exc:
                failures.append(repr(exc))
            pids = worker_pids(sock)
            if old not in pids and len(booted_pids(sock)) == 1:
                break
            time.sleep(0.05)
    assert old not in worker_pids(sock), server.log()
    assert failures == [] and served > 0
    log = server.log()
    assert f"Worker (pid:{old}) uses " in log and "over max_worker_memory=50 MiB for 2 checks" in log
    line = next(x for x in log.splitlines() if f"Worker (pid:{old}) uses " in x)
    rss = float(line.split(" uses ")[1].split(" MiB")[0])
    assert rss > 50
    assert ctl_json(sock, "show", "stats")["workers_recycled_memory"] == 1


def test_gunicornc_talks_to_gcorn(start_gcorn: Start, app_dir: Path) -> None:
    gunicornc = shutil.which("gunicornc", path=os.path.dirname(sys.executable))
    if gunicornc is None:
        pytest.skip("gunicorn's gunicornc is not installed beside this interpreter")
    server, sock = start_with_ctl(start_gcorn, app_dir, "ctlapp:app")
    out = subprocess.run([gunicornc, "-s", str(sock), "-j", "-c", "worker add 1"],
                         capture_output=True, text=True, timeout=20)
    assert json.loads(out.stdout) == {"added": 1, "previous": 1, "total": 2}, out.stderr
    assert wait_until(lambda: len(booted_pids(sock)) == 2, 10)
    out = subprocess.run([gunicornc, "-s", str(sock), "-c", "show workers"],
                         capture_output=True, text=True, timeout=20)
    assert "Total: 2 workers" in out.stdout, out
    out = subprocess.run([gunicornc, "-s", str(sock), "-c", "dirty add"],
                         capture_output=True, text=True, timeout=20)
    assert "use `gcorn ctl dirty add|remove [N]`" in out.stdout + out.stderr, out


@pytest.mark.slow
def test_after_usr2_the_new_master_takes_the_socket(start_gcorn: Start, app_dir: Path) -> None:
    pidfile = app_dir / "gcorn.pid"
    server, sock = start_with_ctl(start_gcorn, app_dir, "--pid", str(pidfile), "ctlapp:app")
    os.kill(server.pid, signal.SIGUSR2)
    new_pidfile = Path(f"{pidfile}.2")
    assert wait_until(new_pidfile.exists, 10)
    new_master = int(new_pidfile.read_text())
    try:
        assert wait_until(lambda: "stays with the old master until it exits" in server.log(), 10)
        assert ctl_json(sock, "show", "stats")["pid"] == server.pid
        assert server.stop(signal.SIGTERM) == 0
        # promoted: it serves the socket the old master removed on its way out
        assert wait_until(lambda: sock.exists() and ctl_json(sock, "show", "stats")["pid"]
                          == new_master, 10), server.log()
    finally:
        try:
            os.kill(new_master, signal.SIGTERM)
        except ProcessLookupError:
            pass
    assert wait_until(lambda: not sock.exists(), 10)
