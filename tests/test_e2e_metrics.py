"""`--metrics-bind`: the Prometheus exporter, scraped with httpx and parsed by prometheus_client.

Each test starts a real gcorn with the exporter on a free port (or a Unix
socket), drives real requests at it, and reads the exposition back through
`prometheus_client.parser`, as a Prometheus server would.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from harness import GCORN, Gcorn, free_port, wait_until
from prometheus_client.parser import text_string_to_metric_families

APP = '''
import asyncio
import time

HOLD = []


def app(environ, start_response):
    path = environ["PATH_INFO"]
    environ["wsgi.input"].read()
    if path == "/boom":
        raise RuntimeError("boom: a 500 on purpose")
    if path == "/slow":
        time.sleep(float(environ["QUERY_STRING"] or "1.5"))
    if path == "/grow":
        block = bytearray(60 * 1024 * 1024)
        block[::4096] = b"x" * len(block[::4096])  # touch every page: resident, not just mapped
        HOLD.append(block)
    if path == "/missing":
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no\\n"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok\\n"]


async def asgi(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    while (await receive()).get("more_body"):
        pass
    path = scope["path"]
    if path == "/boom":
        raise RuntimeError("boom: a 500 on purpose")
    if path == "/slow":
        await asyncio.sleep(float(scope["query_string"] or b"1.5"))
    status = 404 if path == "/missing" else 200
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": b"ok\\n"})
'''

Start = Callable[..., Gcorn]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

WORKERS = {
    "sync": (["-k", "sync"], "metricsapp:app"),
    "gthread": (["-k", "gthread", "--threads", "4"], "metricsapp:app"),
    "asgi": (["-k", "asgi"], "metricsapp:asgi"),
}


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "metricsapp.py").write_text(APP)
    return tmp_path


class Exporter:
    """A gcorn with --metrics-bind and the helpers to scrape it."""

    def __init__(self, server: Gcorn, url: str, transport: httpx.HTTPTransport | None = None):
        self.server = server
        self.url = url
        self.transport = transport

    def text(self) -> str:
        with httpx.Client(transport=self.transport, timeout=5) as client:
            response = client.get(self.url)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/plain")
        return response.text

    def samples(self) -> Samples:
        """Every sample of one scrape, by (name, labels)."""
        found: Samples = {}
        for family in text_string_to_metric_families(self.text()):
            for sample in family.samples:
                found[(sample.name, frozenset(sample.labels.items()))] = sample.value
        return found

    def wait_ready(self) -> Samples:
        """The first scrape that says gcorn_up 1 (the exporter may start just after the master)."""
        def up() -> Samples | None:
            try:
                samples = self.samples()
            except httpx.TransportError:
                return None
            return samples if samples.get(("gcorn_up", frozenset())) == 1 else None
        return wait_until(up, timeout=10)


def scrape_until(exporter: Exporter, ok: Callable[[Samples], bool],
                 timeout: float = 10) -> Samples:
    """The first scrape for which `ok` holds."""
    def scrape() -> Samples | None:
        samples = exporter.samples()
        return samples if ok(samples) else None
    return wait_until(scrape, timeout=timeout)


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 when the series is absent (a counter not yet counted)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, lbls), v in samples.items() if n == name and want <= lbls)


def start_exporting(start_gcorn: Start, app_dir: Path, worker: str, *extra: str) -> Exporter:
    args, app = WORKERS[worker]
    port = free_port()
    server = start_gcorn(*args, "--metrics-bind", f"127.0.0.1:{port}", *extra, app, cwd=app_dir)
    exporter = Exporter(server, f"http://127.0.0.1:{port}/metrics")
    exporter.wait_ready()
    return exporter


@pytest.mark.parametrize("worker", sorted(WORKERS))
def test_requests_are_counted_by_method_and_status_class(start_gcorn: Start, app_dir: Path,
                                                         worker: str) -> None:
    exporter = start_exporting(start_gcorn, app_dir, worker)
    base = exporter.server.url
    with httpx.Client(timeout=5) as client:
        for _ in range(5):
            assert client.get(base + "/").status_code == 200
        assert client.get(base + "/missing").status_code == 404
        assert client.post(base + "/", content=b"body").status_code == 200
        assert client.post(base + "/boom", content=b"x").status_code == 500
    # the readiness probe of the harness sent GETs of its own: count from the scrape
    samples = exporter.samples()
    label = {"worker_class": worker}
    get_2xx = value(samples, "gcorn_http_requests_total", method="GET", status="2xx", **label)
    assert get_2xx >= 5
    assert value(samples, "gcorn_http_requests_total", method="GET", status="4xx", **label) == 1
    assert value(samples, "gcorn_http_requests_total", method="POST", status="2xx", **label) == 1
    assert value(samples, "gcorn_http_requests_total", method="POST", status="5xx", **label) == 1
    requests = total(samples, "gcorn_http_requests_total", **label)
    assert requests == get_2xx + 3
    # the histogram counts every request once, cumulatively, and the sum is positive
    assert value(samples, "gcorn_http_request_duration_seconds_count", **label) == requests
    assert value(samples, "gcorn_http_request_duration_seconds_bucket", le="+Inf",
                 **label) == requests
    assert 0 < value(samples, "gcorn_http_request_duration_seconds_sum", **label) < 5
    assert value(samples, "gcorn_http_requests_in_flight", **label) == 0
    assert value(samples, "gcorn_http_connections_accepted_total", **label) >= 1
    assert value(samples, "gcorn_workers", **label) == 1
    assert total(samples, "gcorn_worker_restarts_total") == 0
    ages = [v for (n, _), v in samples.items() if n == "gcorn_worker_heartbeat_age_seconds"]
    assert len(ages) == 1 and 0 <= ages[0] < 10
    # a scrape never counts as a request: the exporter is not a worker
    assert total(exporter.samples(), "gcorn_http_requests_total", **label) == requests


def test_a_slow_request_is_in_flight_and_an_open_connection(start_gcorn: Start,
                                                            app_dir: Path) -> None:
    exporter = start_exporting(start_gcorn, app_dir, "sync")
    done = threading.Event()

    def slow() -> None:
        try:
            httpx.get(exporter.server.url + "/slow?1.5", timeout=10)
        finally:
            done.set()

    thread = threading.Thread(target=slow)
    thread.start()
    try:
        busy = scrape_until(exporter, lambda s: value(
            s, "gcorn_http_requests_in_flight", worker_class="sync") == 1, timeout=5)
        assert value(busy, "gcorn_http_connections_open", worker_class="sync") == 1
    finally:
        thread.join(10)
    assert done.is_set()
    after = exporter.samples()
    assert value(after, "gcorn_http_requests_in_flight", worker_class="sync") == 0
    assert value(after, "gcorn_http_connections_open", worker_class="sync") == 0
    assert value(after, "gcorn_http_request_duration_seconds_bucket", le="1.0",
                 worker_class="sync") < value(after, "gcorn_http_request_duration_seconds_count",
                                              worker_class="sync")


def _worker_pids(samples: Samples) -> set[int]:
    return {int(dict(labels)["pid"]) for name, labels in samples
            if name == "gcorn_worker_heartbeat_age_seconds"}


def test_a_killed_worker_keeps_the_totals_and_counts_a_crash(start_gcorn: Start,
                                                             app_dir: Path) -> None:
    exporter = start_exporting(start_gcorn, app_dir, "gthread")
    for _ in range(4):
        assert exporter.server.get("/").status_code == 200
    before = exporter.samples()
    served = total(before, "gcorn_http_requests_total")
    (pid,) = _worker_pids(before)
    os.kill(pid, signal.SIGKILL)
    after = scrape_until(exporter, lambda s: bool(_worker_pids(s) - {pid}))
    assert pid not in _worker_pids(after)
    assert value(after, "gcorn_worker_restarts_total", reason="crash",
                 worker_class="gthread") == 1
    # the dead worker's requests are in the totals still, and new ones add to them
    assert total(after, "gcorn_http_requests_total") >= served
    assert exporter.server.get("/").status_code == 200
    later = exporter.samples()
    assert total(later, "gcorn_http_requests_total") >= served + 1
    assert value(later, "gcorn_http_request_duration_seconds_count",
                 worker_class="gthread") == total(later, "gcorn_http_requests_total")


def test_max_requests_restarts_are_counted(start_gcorn: Start, app_dir: Path) -> None:
    exporter = start_exporting(start_gcorn, app_dir, "sync", "--max-requests", "3")
    seen = total(exporter.samples(), "gcorn_http_requests_total")
    for _ in range(6):
        assert exporter.server.get("/").status_code == 200
    samples = scrape_until(exporter, lambda s: value(
        s, "gcorn_worker_restarts_total", reason="max_requests", worker_class="sync") >= 2)
    assert total(samples, "gcorn_http_requests_total") >= seen + 6
    assert value(samples, "gcorn_worker_restarts_total", reason="crash", worker_class="sync") == 0


def test_request_timeouts_are_counted(start_gcorn: Start, app_dir: Path) -> None:
    exporter = start_exporting(start_gcorn, app_dir, "sync", "--request-timeout", "0.3")
    assert exporter.server.get("/slow?2").status_code == 504
    samples = exporter.samples()
    assert value(samples, "gcorn_http_request_timeouts_total", worker_class="sync") == 1
    assert value(samples, "gcorn_http_requests_total", method="GET", status="5xx",
                 worker_class="sync") == 1


@pytest.mark.parametrize("worker", ["asgi", "gthread"])
def test_http2_streams_are_requests_for_metrics_and_ctl(start_gcorn: Start, app_dir: Path,
                                                        tmp_path: Path, worker: str) -> None:
    pytest.importorskip("h2", reason="HTTP/2 needs the h2 library")
    ctl_path = tmp_path / "h2.ctl"
    exporter = start_exporting(start_gcorn, app_dir, worker, "--http2-cleartext", "both",
                               "--control-socket", str(ctl_path))
    before = total(exporter.samples(), "gcorn_http_requests_total")
    with httpx.Client(http1=False, http2=True, timeout=5) as client:
        answers = [client.get(exporter.server.url + "/") for _ in range(3)]
        answers.append(client.post(exporter.server.url + "/missing", content=b"x"))
    assert [(a.http_version, a.status_code) for a in answers] == [("HTTP/2", 200)] * 3 + [
        ("HTTP/2", 404)]
    samples = exporter.samples()
    assert total(samples, "gcorn_http_requests_total") == before + 4
    assert value(samples, "gcorn_http_requests_total", method="POST", status="4xx",
                 worker_class=worker) == 1
    shown = subprocess.run([GCORN, "ctl", "-s", str(ctl_path), "show", "workers", "--json"],
                           capture_output=True, text=True, timeout=20)
    assert shown.returncode == 0, shown.stderr
    rows = json.loads(shown.stdout)["workers"]
    assert sum(int(row["requests"]) for row in rows) == before + 4


def test_a_unix_socket_exporter(start_gcorn: Start, app_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "metrics.sock"
    args, app = WORKERS["sync"]
    server = start_gcorn(*args, "--metrics-bind", f"unix:{path}", app, cwd=app_dir)
    exporter = Exporter(server, "http://gcorn/metrics", httpx.HTTPTransport(uds=str(path)))
    samples = exporter.wait_ready()
    assert value(samples, "gcorn_workers", worker_class="sync") == 1
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(path)), timeout=5) as client:
        assert client.get("http://gcorn/nothing-here").status_code == 404
    server.stop()
    assert not path.exists()  # the master removes the socket file it bound


def _run_gcorn(app_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GCORN_CMD_ARGS": ""}
    return subprocess.run([GCORN, "-b", f"127.0.0.1:{free_port()}", *args, "metricsapp:app"],
                          cwd=app_dir, env=env, capture_output=True, text=True, timeout=20)


@pytest.mark.parametrize("bad", ["9101", "localhost", "[::1]", "::1:9101", "127.0.0.1:99999",
                                 "fd://3", "unix:", "no-such-host.invalid:9101"])
def test_a_bad_metrics_bind_is_a_one_line_error(app_dir: Path, bad: str) -> None:
    proc = _run_gcorn(app_dir, "--metrics-bind", bad)
    assert proc.returncode == 1, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("gcorn: error: invalid value for setting 'metrics_bind'"), line
    assert repr(bad) in line and "Traceback" not in proc.stderr


def test_a_busy_metrics_port_stops_gcorn_at_start(app_dir: Path) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    spec = f"127.0.0.1:{holder.getsockname()[1]}"
    try:
        started = time.monotonic()
        proc = _run_gcorn(app_dir, "--metrics-bind", spec)
    finally:
        holder.close()
    assert proc.returncode == 1, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert "setting 'metrics_bind' (--metrics-bind)" in line and repr(spec) in line, line
    assert "in use" in line and "Booting worker" not in proc.stderr
    assert time.monotonic() - started < 10


@pytest.mark.slow
def test_a_worker_recycled_for_memory_is_counted(start_gcorn: Start, app_dir: Path) -> None:
    exporter = start_exporting(start_gcorn, app_dir, "sync", "--max-worker-memory", "50",
                               "--max-worker-memory-checks", "2")
    assert exporter.server.get("/grow").status_code == 200
    samples = scrape_until(exporter, lambda s: value(
        s, "gcorn_worker_restarts_total", reason="memory", worker_class="sync") == 1, timeout=15)
    assert value(samples, "gcorn_worker_restarts_total", reason="crash", worker_class="sync") == 0


DIRTY_APP = '''
from gcorn.dirty import DirtyApp


class Upper(DirtyApp):
    def upper(self, text):
        return text.upper()
'''

DIRTY_WEB_APP = '''
from gcorn.dirty import get_dirty_client


def app(environ, start_response):
    body = get_dirty_client().execute("dirtyapp:Upper", "upper", "hi").encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
'''


def test_one_exposition_serves_the_http_tree_and_the_dirty_pool(start_gcorn: Start,
                                                               tmp_path: Path) -> None:
    (tmp_path / "dirtyapp.py").write_text(DIRTY_APP)
    (tmp_path / "dirtyweb.py").write_text(DIRTY_WEB_APP)
    port = free_port()
    server = start_gcorn("--dirty-app", "dirtyapp:Upper", "--dirty-workers", "1",
                         "--metrics-bind", f"127.0.0.1:{port}", "dirtyweb:app", cwd=tmp_path)
    exporter = Exporter(server, f"http://127.0.0.1:{port}/metrics")
    exporter.wait_ready()
    with httpx.Client(timeout=5) as client:
        for _ in range(3):
            response = client.get(server.url + "/")
            assert response.status_code == 200 and response.text == "HI"
    # every GET (the harness's readiness probes too) made one dirty call
    def one_call_per_get(s: Samples) -> bool:
        calls = value(s, "gcorn_dirty_calls_total", app="dirtyapp:Upper", action="upper",
                      outcome="ok")
        return calls >= 3 and calls == total(s, "gcorn_http_requests_total", method="GET")
    samples = scrape_until(exporter, one_call_per_get)
    assert samples is not None, exporter.text()
    assert value(samples, "gcorn_dirty_up") == 1
    assert value(samples, "gcorn_dirty_ready") == 1


def test_a_hup_keeps_the_exporter_where_it_is_and_says_so(start_gcorn: Start, app_dir: Path) -> None:
    port, other = free_port(), free_port()
    conf = app_dir / "gcorn.conf.py"
    conf.write_text(f"metrics_bind = '127.0.0.1:{port}'\n")
    server = start_gcorn("-c", str(conf), "metricsapp:app", cwd=app_dir)
    exporter = Exporter(server, f"http://127.0.0.1:{port}/metrics")
    exporter.wait_ready()
    (old_worker,) = _worker_pids(exporter.samples())
    conf.write_text(f"metrics_bind = '127.0.0.1:{other}'\n")
    os.kill(server.pid, signal.SIGHUP)
    # the new worker (booted from the new config) still counts for the exporter that runs
    after = scrape_until(exporter, lambda s: bool(_worker_pids(s)) and old_worker not in _worker_pids(s))
    before = total(after, "gcorn_http_requests_total")
    assert server.get("/").status_code == 200
    scrape_until(exporter, lambda s: total(s, "gcorn_http_requests_total") == before + 1)
    assert f"metrics_bind changed to '127.0.0.1:{other}': a HUP keeps the exporter at " \
           f"'127.0.0.1:{port}'" in server.log()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{other}/metrics", timeout=2)
