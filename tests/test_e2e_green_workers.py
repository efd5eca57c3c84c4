"""`gcorn -k gevent` and `gcorn -k eventlet` end to end: cooperative concurrency through the
real command (sleeping views, outbound HTTP with requests, dirty calls), monkey patching
before the app (and in the master with --preload), a hub blocked by CPU-bound code caught
by `timeout`, the one-line error without the library, and signals under wrk load.
"""

from __future__ import annotations

import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import psutil
import pytest
from harness import EXAMPLES, Gcorn, kill_masters, wait_until

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "packages" / "workers" / "tests"))
from green_support import GREEN_WORKERS

SLEEPY_APP = '''
import time

def app(environ, start_response):
    if environ["PATH_INFO"] == "/sleep":
        time.sleep(1.0)  # patched: yields to the other greenlets
    body = b"slept" if environ["PATH_INFO"] == "/sleep" else b"ok"
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
'''

OUTBOUND_APP = '''
import os
import requests  # imports ssl: after the worker patched it

session = requests.Session()

def app(environ, start_response):
    if environ["PATH_INFO"] == "/proxy":
        upstream = session.get(os.environ["UPSTREAM"] + "/slow", timeout=10)
        body = b"upstream said " + upstream.content
    else:
        body = b"ok"
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
'''

SPIN_APP = '''
import time

def app(environ, start_response):
    if environ["PATH_INFO"] == "/spin":
        end = time.monotonic() + 30
        while time.monotonic() < end:  # CPU-bound: never yields to the hub
            pass
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]
'''

DIRTY_APP = '''
import time
from gcorn.dirty import DirtyApp


class Slow(DirtyApp):
    def work(self, n):
        time.sleep(0.2)
        return n * 2
'''

DIRTY_WEB_APP = '''
from gcorn.dirty import get_dirty_client


def app(environ, start_response):
    if environ["PATH_INFO"] == "/":
        body = b"ok"
    else:
        n = int(environ["PATH_INFO"].strip("/"))
        body = str(get_dirty_client().execute("slowdirty:Slow", "work", n)).encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
'''


def concurrent_get(port: int, path: str, count: int, timeout: float) -> tuple[list[bytes], float]:
    """`count` requests on `count` connections at once; their responses and the elapsed time."""
    request = f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    started = time.monotonic()
    socks = [socket.create_connection(("127.0.0.1", port), timeout=timeout) for _ in range(count)]
    selector = selectors.DefaultSelector()
    chunks: dict[socket.socket, list[bytes]] = {}
    try:
        for sock in socks:
            sock.sendall(request)
            sock.setblocking(False)
            chunks[sock] = []
            selector.register(sock, selectors.EVENT_READ)
        deadline = started + timeout
        open_socks = len(socks)
        while open_socks and time.monotonic() < deadline:
            for key, _ in selector.select(max(deadline - time.monotonic(), 0.01)):
                sock = key.fileobj  # type: ignore[assignment]
                try:
                    data = sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except ConnectionResetError:
                    data = b""
                if data:
                    chunks[sock].append(data)
                else:
                    selector.unregister(sock)
                    open_socks -= 1
        return [b"".join(chunks[s]) for s in socks], time.monotonic() - started
    finally:
        selector.close()
        for sock in socks:
            sock.close()


def _write(tmp_path: Path, **files: str) -> None:
    for name, text in files.items():
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(text))


@pytest.mark.parametrize("worker", GREEN_WORKERS)
def test_one_worker_answers_200_sleeping_requests_at_once(
        start_gcorn: Callable[..., Gcorn], tmp_path: Path, worker: str) -> None:
    _write(tmp_path, sleepy=SLEEPY_APP)
    server = start_gcorn("-k", worker, "-w", "1", "sleepy:app")
    responses, elapsed = concurrent_get(server.port, "/sleep", 200, timeout=10)
    assert [r.split(b"\r\n", 1)[0] for r in responses] == [b"HTTP/1.1 200 OK"] * 200
    assert all(r.endswith(b"slept") for r in responses)
    assert elapsed < 3.0, f"200 x 1 s sleeps took {elapsed:.2f} s on one {worker} worker"
    assert server.stop() == 0
    assert "Traceback" not in server.log()


@pytest.mark.parametrize("name", ["gevent_wsgi", "gevent_pywsgi"])
def test_gunicorns_other_gevent_names_run_the_gevent_worker(
        start_gcorn: Callable[..., Gcorn], tmp_path: Path, name: str) -> None:
    pytest.importorskip("gevent")
    _write(tmp_path, sleepy=SLEEPY_APP)
    server = start_gcorn("-k", name, "-w", "1", "sleepy:app")
    responses, elapsed = concurrent_get(server.port, "/sleep", 20, timeout=10)
    assert all(r.endswith(b"slept") for r in responses)
    assert elapsed < 3.0, f"{elapsed:.2f} s: the sleeps did not overlap"
    assert server.stop() == 0


class _SlowUpstream(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        time.sleep(0.5)
        self.send_response(200)
        self.send_header("Content-Length", "4")
        self.end_headers()
        self.wfile.write(b"slow")

    def log_message(self, *args: object) -> None:
        return


class _Upstream(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 would hold concurrent connects back by a SYN retry


@pytest.fixture
def upstream() -> object:
    """A second local server whose /slow answers after 0.5 s (one thread per request)."""
    httpd = _Upstream(("127.0.0.1", 0), _SlowUpstream)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize("worker", GREEN_WORKERS)
def test_outbound_requests_calls_wait_cooperatively_and_ssl_is_patched_first(
        start_gcorn: Callable[..., Gcorn], tmp_path: Path, worker: str, upstream: str) -> None:
    pytest.importorskip("requests")
    _write(tmp_path, outbound=OUTBOUND_APP)
    server = start_gcorn("-k", worker, "-w", "1", "outbound:app", env={"UPSTREAM": upstream})
    responses, elapsed = concurrent_get(server.port, "/proxy", 20, timeout=10)
    assert all(r.endswith(b"upstream said slow") for r in responses), responses[:2]
    # 20 x 0.5 s upstream calls overlap instead of queueing behind each other (10 s)
    assert elapsed < 3.0, f"{elapsed:.2f} s"
    assert server.stop() == 0
    log = server.log()
    assert "MonkeyPatchWarning" not in log and "imported before" not in log, log
    assert "Traceback" not in log


@pytest.mark.parametrize("worker", GREEN_WORKERS)
def test_preload_patches_the_master_before_the_app(
        start_gcorn: Callable[..., Gcorn], tmp_path: Path, upstream: str, worker: str) -> None:
    pytest.importorskip("requests")
    _write(tmp_path, outbound=OUTBOUND_APP)
    server = start_gcorn("-k", worker, "-w", "1", "--preload", "outbound:app",
                         env={"UPSTREAM": upstream})
    assert server.get("/proxy").text == "upstream said slow"
    server.proc.send_signal(signal.SIGHUP)  # workers forked again from the patched master
    assert wait_until(lambda: "Handling signal: hup" in server.log(), 5)
    assert wait_until(lambda: server.get("/proxy").status_code == 200, 10)
    assert server.stop() == 0
    log = server.log()
    if worker == "eventlet":  # eventlet cannot run the arbiter: the log says so
        assert "eventlet worker with preload_app: the master is not monkey-patched" in log
    else:
        assert f"{worker} worker with preload_app: monkey-patching the master" in log
    assert "MonkeyPatchWarning" not in log and "imported before" not in log, log
    assert "Traceback" not in log


@pytest.mark.parametrize("worker", GREEN_WORKERS)
def test_fifty_dirty_calls_overlap_on_one_green_worker(
        start_gcorn: Callable[..., Gcorn], tmp_path: Path, worker: str) -> None:
    _write(tmp_path, slowdirty=DIRTY_APP, dirtyweb=DIRTY_WEB_APP)
    server = start_gcorn(
        "-k", worker, "-w", "1", "--dirty-app", "slowdirty:Slow", "--dirty-workers", "2",
        "--dirty-threads", "25", "dirtyweb:app", env={"PYTHONPATH": str(tmp_path)})
    # the pool may still be booting when HTTP is up: wait for one call to go through
    assert wait_until(lambda: server.get("/1", timeout=10).text == "2", 15, 0.2)
    responses, elapsed = concurrent_get(server.port, "/21", 50, timeout=15)
    assert all(r.endswith(b"\r\n\r\n42") for r in responses), responses[:2]
    # one worker, 50 x 200 ms: the calls wait in the hub side by side, not one after another
    assert elapsed < 3.0, f"50 dirty calls took {elapsed:.2f} s (serialized: 10 s)"
    assert server.stop(timeout=15) == 0
    assert "Traceback" not in server.log()


@pytest.mark.parametrize("worker", GREEN_WORKERS[:1])
def test_preload_with_a_dirty_pool_leaves_the_master_unpatched(
        start_gcorn: Callable[..., Gcorn], tmp_path: Path, worker: str) -> None:
    """The dirty arbiter is forked from the master and runs asyncio: patching would stop it."""
    _write(tmp_path, slowdirty=DIRTY_APP, dirtyweb=DIRTY_WEB_APP)
    server = start_gcorn(
        "-k", worker, "-w", "1", "--preload", "--dirty-app", "slowdirty:Slow",
        "--dirty-workers", "1", "--dirty-threads", "10", "dirtyweb:app",
        env={"PYTHONPATH": str(tmp_path)})
    assert wait_until(lambda: server.get("/1", timeout=10).text == "2", 15, 0.2), server.log()
    responses, elapsed = concurrent_get(server.port, "/21", 10, timeout=15)
    assert all(r.endswith(b"\r\n\r\n42") for r in responses), responses[:2]
    assert elapsed < 1.5, f"10 dirty calls took {elapsed:.2f} s (serialized: 2 s)"
    assert server.stop(timeout=15) == 0
    assert "preload_app and a dirty pool: the master is not monkey-patched" in server.log()


@pytest.mark.parametrize("worker", GREEN_WORKERS)
def test_a_hub_blocked_by_cpu_bound_code_is_caught_by_timeout(
        start_gcorn: Callable[..., Gcorn], tmp_path: Path, worker: str) -> None:
    _write(tmp_path, spin=SPIN_APP)
    server = start_gcorn("-k", worker, "-w", "1", "--timeout", "2", "spin:app")
    first = psutil.Process(server.pid).children()[0].pid
    try:
        httpx.get(server.url + "/spin", timeout=8)
    except httpx.HTTPError:
        pass  # the worker is killed under the request
    assert wait_until(lambda: "WORKER TIMEOUT" in server.log(), 8)
    log = server.log()
    assert f"the {worker} hub was blocked for more than 2" in log, log
    assert "in app" in log  # the frame that held the hub: the app's busy loop
    # a new worker serves
    assert wait_until(lambda: server.get("/").status_code == 200, 10)
    assert first not in [p.pid for p in psutil.Process(server.pid).children()]
    server.stop()


@pytest.mark.parametrize("worker", ["gevent", "eventlet"])
def test_missing_library_is_a_one_line_error_naming_pip(tmp_path: Path, worker: str) -> None:
    shutil.copy(EXAMPLES / "hello.py", tmp_path / "hello.py")
    fake = tmp_path / "fake" / worker  # shadows the installed library
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(f"raise ImportError(\"No module named '{worker}'\")\n")
    result = subprocess.run(
        [sys.executable, "-m", "gcorn.cli", "-k", worker, "hello:app"], cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path / "fake"), "PATH": "/usr/bin:/bin", "GCORN_CMD_ARGS": ""},
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert f"pip install 'gcorn-workers[{worker}]'" in lines[0]


@pytest.mark.slow  # about 10 s: 8 s of wrk load
@pytest.mark.timeout(60)
@pytest.mark.parametrize("worker", GREEN_WORKERS)
def test_term_hup_ttin_ttou_usr2_under_load_lose_no_request(
        start_gcorn: Callable[..., Gcorn], tmp_path: Path, worker: str) -> None:
    wrk = shutil.which("wrk")
    assert wrk, "wrk is needed (tools/env.sh installs it)"
    shutil.copy(EXAMPLES / "hello.py", tmp_path / "hello.py")
    pidfile = tmp_path / "gcorn.pid"
    master = start_gcorn("-w", "2", "-k", worker, "--pid", str(pidfile),
                         "--graceful-timeout", "10", "hello:app", new_session=True)
    new_master = 0

    def read_pid(path: Path) -> int:
        try:
            return int(path.read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    try:
        load = subprocess.Popen([wrk, "-t1", "-c10", "-d8s", "--timeout", "5s", master.url + "/"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(1.0)
        master.proc.send_signal(signal.SIGHUP)
        time.sleep(1.2)
        master.proc.send_signal(signal.SIGTTIN)
        assert wait_until(lambda: len(psutil.Process(master.pid).children()) == 3, 5)
        time.sleep(0.5)
        master.proc.send_signal(signal.SIGTTOU)
        assert wait_until(lambda: len(psutil.Process(master.pid).children()) == 2, 10)
        master.proc.send_signal(signal.SIGUSR2)
        new_master = wait_until(lambda: read_pid(Path(f"{pidfile}.2")), 10)
        assert new_master, "the new master's pidfile"
        assert wait_until(lambda: len(psutil.Process(new_master).children()) >= 2, 10)
        time.sleep(0.5)
        master.proc.send_signal(signal.SIGTERM)
        assert master.proc.wait(20) == 0
        output, _ = load.communicate(timeout=20)
        total = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
        assert total > 200, output
        assert "Socket errors" not in output, output
        assert "Non-2xx" not in output, output
        survivor = psutil.Process(new_master)
        survivor.send_signal(signal.SIGTERM)
        survivor.wait(20)
        new_master = 0
    finally:
        kill_masters(new_master, master.pid)  # the re-executed one is no child of ours
        master.stop(timeout=5)


@pytest.mark.parametrize("worker", GREEN_WORKERS)
def test_access_log_and_statsd_through_the_command(
        start_gcorn: Callable[..., Gcorn], tmp_path: Path, worker: str) -> None:
    shutil.copy(EXAMPLES / "hello.py", tmp_path / "hello.py")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(0.5)
        port = receiver.getsockname()[1]
        server = start_gcorn("-k", worker, "--access-logfile", str(tmp_path / "access.log"),
                             "--statsd-host", f"127.0.0.1:{port}", "hello:app")
        assert server.get("/green?x=1").status_code == 200
        seen = ""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and "gunicorn.request.status.200:1|c" not in seen:
            try:
                seen += receiver.recv(4096).decode() + "\n"
            except TimeoutError:
                continue
    assert "gunicorn.requests:1|c" in seen and "gunicorn.request.status.200:1|c" in seen, seen
    assert wait_until(lambda: '"GET /green?x=1 HTTP/1.1" 200' in
                      (tmp_path / "access.log").read_text(), 5)
    assert server.stop() == 0
