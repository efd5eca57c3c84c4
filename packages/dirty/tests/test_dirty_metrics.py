"""Prometheus metrics of a dirty pool: `gcorn-dirty serve --metrics-bind`, scraped over real
HTTP and parsed with prometheus_client's own parser; DirtyPoolCollector for other processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from dirty_helpers import ECHO, HERE, Pool, wait_for
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gcorn.dirty import DirtyWorkerLostError
from gcorn.dirty.metrics import DirtyPoolCollector

BATCH = "dirty_test_apps:BatchApp"
SLOW = "dirty_test_apps:SlowInitApp"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition: (name, sorted labels) -> value."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def scrape(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain")
        return parse(r.read().decode())


def calls(m: dict, app: str, action: str, outcome: str) -> float:
    return m.get(("gcorn_dirty_calls_total",
                  (("action", action), ("app", app), ("outcome", outcome))), 0.0)


def hist(m: dict, name: str, app: str, action: str, suffix: str = "_count") -> float:
    return m.get((name + suffix, (("action", action), ("app", app))), 0.0)


def metered(make_pool, apps: list[str], **kw) -> tuple[Pool, int]:
    port = free_port()
    pool = make_pool(apps, extra=["--metrics-bind", f"127.0.0.1:{port}", *kw.pop("extra", [])], **kw)
    assert wait_for(lambda: _reachable(port), 10), pool.log()
    return pool, port


def _reachable(port: int) -> bool:
    try:
        scrape(port)
        return True
    except (OSError, urllib.error.URLError):
        return False


def test_calls_outcomes_and_duration_histogram(make_pool) -> None:
    pool, port = metered(make_pool, [ECHO], workers=2)
    c = pool.client()
    for i in range(5):
        assert c.execute(ECHO, "noop", i) == i
    for _ in range(2):
        with pytest.raises(Exception, match="boom"):
            c.execute(ECHO, "boom", "boom")
    assert list(c.stream(ECHO, "count", 3)) == ["00000000", "00000001", "00000002"]
    # a worker counts a call just after it has answered it: the last one may lag a scrape
    last: list[dict] = []
    assert wait_for(lambda: last.append(scrape(port)) or calls(last[-1], ECHO, "count", "ok") == 1
                    and calls(last[-1], ECHO, "boom", "error") == 2, 10), last[-1:]
    m = last[-1]
    assert calls(m, ECHO, "noop", "ok") == 5
    assert calls(m, ECHO, "noop", "error") == 0
    assert calls(m, ECHO, "boom", "error") == 2
    assert calls(m, ECHO, "count", "ok") == 1
    name = "gcorn_dirty_call_duration_seconds"
    assert hist(m, name, ECHO, "noop") == 5
    assert hist(m, name, ECHO, "noop", "_sum") > 0
    inf = m[(name + "_bucket", (("action", "noop"), ("app", ECHO), ("le", "+Inf")))]
    assert inf == 5
    buckets = sorted((float(dict(k[1])["le"]), v) for k, v in m.items()
                     if k[0] == name + "_bucket" and dict(k[1])["action"] == "noop")
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)  # cumulative
    assert m[("gcorn_dirty_workers", (("app", ECHO), ("state", "ready")))] == 2
    assert m[("gcorn_dirty_slots", (("app", ECHO),))] == 2
    assert m[("gcorn_dirty_busy_slots", (("app", ECHO),))] == 0
    assert m[("gcorn_dirty_queue_depth", (("app", ECHO),))] == 0
    assert m[("gcorn_dirty_ready", ())] == 1
    assert m[("gcorn_dirty_up", ())] == 1
    assert m[("gcorn_dirty_worker_restarts_total", (("reason", "crash"),))] == 0


def test_batch_size_and_queue_wait_for_concurrent_callers(make_pool) -> None:
    pool, port = metered(make_pool, [BATCH], workers=1)
    c = pool.client()
    n = 16
    go = threading.Barrier(n)
    out: list = [None] * n

    def call(i: int) -> None:
        go.wait()
        out[i] = c.execute(BATCH, "double", i)
    ts = [threading.Thread(target=call, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(10)
    assert out == [2 * i for i in range(n)]
    sizes = c.execute(BATCH, "sizes_seen")
    m = scrape(port)
    assert calls(m, BATCH, "double", "ok") == n
    assert hist(m, "gcorn_dirty_batch_size", BATCH, "double") == len(sizes)
    assert hist(m, "gcorn_dirty_batch_size", BATCH, "double", "_sum") == n
    assert max(sizes) > 1  # they did gather
    one = m[("gcorn_dirty_batch_size_bucket", (("action", "double"), ("app", BATCH), ("le", "1.0")))]
    assert one == sizes.count(1)
    assert hist(m, "gcorn_dirty_batch_queue_wait_seconds", BATCH, "double") == n
    assert hist(m, "gcorn_dirty_batch_queue_wait_seconds", BATCH, "double", "_sum") > 0
    # a plain action of the same app has no batch histograms
    assert hist(m, "gcorn_dirty_batch_size", BATCH, "sizes_seen") == 0


def test_killed_worker_keeps_totals_counts_the_lost_call_and_a_restart(make_pool) -> None:
    pool, port = metered(make_pool, [ECHO], workers=1)
    c = pool.client()
    for i in range(3):
        c.execute(ECHO, "noop", i)
    (pid,) = pool.ready_pids()
    errors: list = []

    def doomed() -> None:
        try:
            c.execute(ECHO, "sleep", 30)
        except Exception as exc:
            errors.append(exc)
    t = threading.Thread(target=doomed)
    t.start()
    assert wait_for(lambda: any(w["inflight"] for w in pool.status()["workers"]), 5)
    assert scrape(port)[("gcorn_dirty_busy_slots", (("app", ECHO),))] == 1
    os.kill(pid, signal.SIGKILL)
    t.join(10)
    assert errors and isinstance(errors[0], DirtyWorkerLostError)
    pool.wait_ready(1, exclude={pid})
    m = scrape(port)
    assert calls(m, ECHO, "noop", "ok") == 3  # still counted once its worker is gone
    assert calls(m, ECHO, "sleep", "lost") == 1
    assert m[("gcorn_dirty_worker_restarts_total", (("reason", "crash"),))] == 1, {k: v for k, v in m.items() if "restart" in k[0]}
    c.execute(ECHO, "noop", 4)
    m2 = scrape(port)
    assert calls(m2, ECHO, "noop", "ok") == 4
    for key, value in m.items():
        if key[0].endswith(("_total", "_count", "_bucket")):
            assert m2.get(key, 0) >= value, key  # nothing went down


def test_ready_gauge_is_zero_while_init_runs(make_pool, monkeypatch) -> None:
    monkeypatch.setenv("SLOW_INIT", "2")  # room for the first scrape on a busy machine
    port = free_port()
    pool = make_pool([SLOW], workers=1, wait=False, extra=["--metrics-bind", f"127.0.0.1:{port}"])
    assert wait_for(lambda: _reachable(port), 10), pool.log()
    m = scrape(port)
    assert m[("gcorn_dirty_ready", ())] == 0
    assert m[("gcorn_dirty_workers", (("app", SLOW), ("state", "booting")))] == 1
    assert wait_for(lambda: scrape(port)[("gcorn_dirty_ready", ())] == 1, 10), pool.log()
    m = scrape(port)
    assert m[("gcorn_dirty_workers", (("app", SLOW), ("state", "ready")))] == 1


def _serve(tmp_path: Path, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gcorn.dirty.cli", "serve", ECHO, "--socket",
                           str(tmp_path / "p.sock"), *extra], cwd=str(HERE), capture_output=True,
                          text=True, timeout=20, env=env or dict(os.environ, PYTHONPATH=str(HERE)))


@pytest.mark.parametrize("value", ["nope", "127.0.0.1:99999", ":9100", "::1:9100"])
def test_a_bad_metrics_bind_is_a_clear_error(tmp_path, value) -> None:
    r = _serve(tmp_path, "--metrics-bind", value)
    assert r.returncode == 2
    assert "--metrics-bind" in r.stderr and repr(value) in r.stderr, r.stderr


def test_a_metrics_port_in_use_is_a_clear_error(tmp_path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        value = f"127.0.0.1:{busy.getsockname()[1]}"
        r = _serve(tmp_path, "--metrics-bind", value)
    assert r.returncode == 2
    assert f"cannot listen on --metrics-bind {value!r}" in r.stderr, r.stderr
    assert "in use" in r.stderr, r.stderr
    assert not (tmp_path / "p.sock").exists()


def test_metrics_bind_without_prometheus_client_names_the_extra(tmp_path) -> None:
    shadow = tmp_path / "shadow" / "prometheus_client"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('not installed here')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(shadow.parent), str(HERE)]))
    r = _serve(tmp_path, "--metrics-bind", f"127.0.0.1:{free_port()}", env=env)
    assert r.returncode == 2
    assert "needs prometheus-client" in r.stderr and "gcorn-dirty[metrics]" in r.stderr, r.stderr


def test_collector_in_another_process_reads_the_pool_by_its_socket(make_pool) -> None:
    pool = make_pool([ECHO], workers=1)
    c = pool.client()
    c.execute(ECHO, "noop", 1)
    registry = CollectorRegistry()
    registry.register(DirtyPoolCollector(pool.socket, timeout=5))
    # the worker counts a call once its answer is written: the count may trail the answer
    assert wait_for(lambda: calls(parse(generate_latest(registry).decode()),
                                  ECHO, "noop", "ok") == 1, 5)
    m = parse(generate_latest(registry).decode())
    assert m[("gcorn_dirty_up", ())] == 1
    # a pool that is not there: the scrape still works and says so
    gone = CollectorRegistry()
    gone.register(DirtyPoolCollector(pool.socket + ".missing", timeout=1))
    m = parse(generate_latest(gone).decode())
    assert m[("gcorn_dirty_up", ())] == 0
    assert m[("gcorn_dirty_ready", ())] == 0


def test_metrics_server_stops_with_the_pool(make_pool) -> None:
    pool, port = metered(make_pool, [ECHO], workers=1)
    assert pool.stop() == 0
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _reachable(port):
        time.sleep(0.05)
    assert not _reachable(port)


def test_hup_reload_counts_a_restart_and_keeps_the_old_workers_calls(make_pool) -> None:
    pool, port = metered(make_pool, [ECHO], workers=1)
    c = pool.client()
    for i in range(4):
        c.execute(ECHO, "noop", i)
    (old,) = pool.ready_pids()
    pool.send(signal.SIGHUP)
    assert wait_for(lambda: pool.ready_pids() - {old} and len(pool.status()["workers"]) == 1, 10), pool.log()
    m = scrape(port)
    assert m[("gcorn_dirty_worker_restarts_total", (("reason", "reload"),))] == 1
    assert m[("gcorn_dirty_worker_restarts_total", (("reason", "crash"),))] == 0
    assert calls(m, ECHO, "noop", "ok") == 4
    assert calls(m, ECHO, "noop", "lost") == 0
