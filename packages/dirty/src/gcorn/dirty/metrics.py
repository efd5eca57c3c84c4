"""Prometheus metrics of a dirty pool (needs ``pip install 'gcorn-dirty[metrics]'``).

:class:`DirtyPoolCollector` is a prometheus_client collector that, on every
scrape, asks the pool's dirty arbiter (one METRICS request on the pool's
socket) for its counters and gauges: any process that knows the socket path
can export them. The arbiter adds up the live workers' shared-memory
counters and the totals of the workers it has reaped in the same event-loop
turn, so counters never go down when a worker dies or is replaced::

    from prometheus_client import REGISTRY
    from gcorn.dirty.metrics import DirtyPoolCollector

    REGISTRY.register(DirtyPoolCollector("/run/dirty.sock", timeout=2.0))

``gcorn-dirty serve --metrics-bind HOST:PORT`` serves the same on
``http://HOST:PORT/metrics`` from a small child of the dirty arbiter
(:func:`serve_metrics`).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterable, Iterator
from http.server import ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, MetricsHandler
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from . import callstats as cs
from .arbiterconn import ArbiterChannel
from .config import parse_bind
from .errors import DirtyConfigError, DirtyError
from .protocol import MsgType

log = logging.getLogger("gcorn.dirty.metrics")

RESTART_REASONS = ("crash", "boot_failure", "boot_timeout", "timeout", "overdue", "memory", "reload")
STATES = ("booting", "ready", "draining")


class DirtyPoolCollector(Collector):
    """The metrics of the dirty pool whose arbiter listens on ``socket_path``.

    ``timeout`` bounds the request to the arbiter on each scrape; a pool that does
    not answer in time (or is not running) exports ``gcorn_dirty_up 0`` and
    ``gcorn_dirty_ready 0`` only, and the scrape itself still succeeds.
    """

    def __init__(self, socket_path: str, timeout: float = 2.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self._channel = ArbiterChannel(socket_path)
        self._failing = False

    def fetch(self) -> dict[str, Any] | None:
        """The arbiter's METRICS answer, or None when it cannot be reached."""
        try:
            data = self._channel.request(ArbiterChannel.frame(MsgType.METRICS, None), self.timeout)
        except DirtyError as exc:
            if not self._failing:
                log.warning("dirty pool metrics: %s", exc)
            self._failing = True
            return None
        self._failing = False
        return data if isinstance(data, dict) else None

    def describe(self) -> Iterable[Metric]:
        """The families this collector exports (without asking the pool)."""
        return list(_families({}))

    def collect(self) -> Iterable[Metric]:
        """Ask the pool; one family per metric."""
        data = self.fetch()
        if data is None:
            return [_up(False), GaugeMetricFamily(
                "gcorn_dirty_ready", "1 when every dirty app has at least one ready worker", value=0)]
        return list(_families(data))


def _up(ok: bool) -> Metric:
    return GaugeMetricFamily("gcorn_dirty_up", "1 when the dirty arbiter answered this scrape",
                             value=1 if ok else 0)


def _histogram(family: HistogramMetricFamily, labels: list[str], bounds: list[float],
               counts: list[int], total: float) -> None:
    buckets: list[tuple[str, float]] = []
    running = 0
    for bound, n in zip(bounds, counts, strict=False):
        running += n
        buckets.append((repr(float(bound)), running))
    buckets.append(("+Inf", sum(counts)))
    family.add_metric(labels, buckets, total)


def _families(data: dict[str, Any]) -> Iterator[Metric]:
    apps: list[str] = list(data.get("apps", []))
    ready: dict[str, bool] = data.get("ready", {})
    batched: dict[str, dict[str, int]] = data.get("batched", {})
    bounds = data.get("buckets", {})

    calls = CounterMetricFamily("gcorn_dirty_calls", "Dirty calls finished, by app, action and "
                                "outcome (lost: its worker died first)",
                                labels=["app", "action", "outcome"])
    duration = HistogramMetricFamily("gcorn_dirty_call_duration_seconds", "Seconds a dirty worker "
                                     "spent on a call, from reading it to its last frame",
                                     labels=["app", "action"])
    size = HistogramMetricFamily("gcorn_dirty_batch_size", "Calls per batch of a @batched action",
                                 labels=["app", "action"])
    wait = HistogramMetricFamily("gcorn_dirty_batch_queue_wait_seconds", "Seconds a call of a "
                                 "@batched action waited to be gathered into its batch",
                                 labels=["app", "action"])
    for s in data.get("series", []):
        labels = [s["app"], s["action"]]
        for outcome in cs.ALL_OUTCOMES:
            calls.add_metric([*labels, outcome], s["calls"].get(outcome, 0))
        _histogram(duration, labels, bounds.get("duration", []), s["duration"], s["duration_sum"])
        if sum(s["batch_size"]) or s["action"] in batched.get(s["app"], {}):
            _histogram(size, labels, bounds.get("batch_size", []), s["batch_size"], s["batch_size_sum"])
            _histogram(wait, labels, bounds.get("batch_wait", []), s["batch_wait"], s["batch_wait_sum"])
    yield calls
    yield duration
    yield size
    yield wait

    workers = GaugeMetricFamily("gcorn_dirty_workers", "Dirty workers holding an app, by state",
                                labels=["app", "state"])
    busy = GaugeMetricFamily("gcorn_dirty_busy_slots", "Slots (dirty_threads per worker) running "
                             "a call or a batch, on the workers holding an app", labels=["app"])
    slots = GaugeMetricFamily("gcorn_dirty_slots", "Slots of the ready workers holding an app",
                              labels=["app"])
    queue = GaugeMetricFamily("gcorn_dirty_queue_depth", "Calls (or batches) waiting in the "
                              "workers holding an app for a free slot", labels=["app"])
    gathering = GaugeMetricFamily("gcorn_dirty_batched_calls", "Calls of @batched actions held by "
                                  "the workers holding an app (gathering or in a running batch)",
                                  labels=["app"])
    per_app: dict[str, dict[str, int]] = {
        app: {"busy": 0, "slots": 0, "queue": 0, "batched": 0, **{st: 0 for st in STATES}} for app in apps}
    for w in data.get("workers", []):
        state = str(w["state"]).lower()
        threads, inflight = int(w["threads"]), int(w["inflight"])
        for app in w["apps"]:
            row = per_app.setdefault(app, {"busy": 0, "slots": 0, "queue": 0, "batched": 0,
                                           **{st: 0 for st in STATES}})
            if state in row:
                row[state] += 1
            if state in ("ready", "draining"):
                row["busy"] += min(inflight, threads)
                row["queue"] += max(0, inflight - threads)
                row["batched"] += int(w["batched"])
            if state == "ready":
                row["slots"] += threads
    for app, row in sorted(per_app.items()):
        for st in STATES:
            workers.add_metric([app, st], row[st])
        busy.add_metric([app], row["busy"])
        slots.add_metric([app], row["slots"])
        queue.add_metric([app], row["queue"])
        gathering.add_metric([app], row["batched"])
    yield workers
    yield busy
    yield slots
    yield queue
    yield gathering

    restarts = CounterMetricFamily("gcorn_dirty_worker_restarts", "Dirty workers replaced, by "
                                   "reason", labels=["reason"])
    counts: dict[str, int] = data.get("restarts", {})
    for reason in sorted({*RESTART_REASONS, *counts}):
        restarts.add_metric([reason], counts.get(reason, 0))
    yield restarts
    yield GaugeMetricFamily("gcorn_dirty_ready", "1 when every dirty app has at least one ready "
                            "worker", value=1 if apps and all(ready.get(a) for a in apps) else 0)
    yield _up(bool(data))


# ------------------------------------------------------------- standalone exposition
def bind_metrics(value: str) -> socket.socket:
    """The listening socket of ``--metrics-bind HOST:PORT``; DirtyConfigError naming it on failure."""
    host, port = parse_bind(value)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _name, addr = infos[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise DirtyConfigError(f"cannot listen on --metrics-bind {value!r} (dirty_metrics_bind): "
                               f"{exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(64)
    except OSError as exc:
        sock.close()
        raise DirtyConfigError(f"cannot listen on --metrics-bind {value!r} (dirty_metrics_bind): "
                               f"{exc.strerror or exc}") from None
    return sock


class _MetricsServer(ThreadingHTTPServer):
    """prometheus_client's handler on a socket the arbiter bound; exits with the arbiter."""

    daemon_threads = True

    def __init__(self, sock: socket.socket, registry: CollectorRegistry, parent: int) -> None:
        super().__init__(sock.getsockname()[:2], MetricsHandler.factory(registry),
                         bind_and_activate=False)
        self.socket.close()
        self.socket = sock
        self.server_address = sock.getsockname()[:2]
        self.parent = parent

    def service_actions(self) -> None:
        if os.getppid() != self.parent:
            os._exit(0)  # the arbiter is gone: nothing left to export


def serve_metrics(sock: socket.socket, socket_path: str, parent: int) -> int:
    """Serve ``/metrics`` for the pool at ``socket_path`` on ``sock`` until ``parent`` exits."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(DirtyPoolCollector(socket_path))
    server = _MetricsServer(sock, registry, parent)
    server.serve_forever(poll_interval=0.5)
    return 0
