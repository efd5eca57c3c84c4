"""`metrics_bind`: a side process of the master that serves Prometheus metrics at /metrics.

The workers only count, in their scoreboard slots (gcorn.arbiter.scoreboard);
the master folds a reaped worker's counters into its class's retired block and
counts restarts by reason. This module turns a snapshot of that board into
metric families (`ScoreboardCollector`), and serves them, formatted by
prometheus_client, from its own process: a scrape never touches a worker.

The listening socket is bound by the master at start, so a busy port or a bad
address is a one-line error before anything is forked; the exporter inherits
it. A master started by USR2 finds the port still held by the old one and
leaves the binding to its exporter, which retries until the old master is gone.

Other parts of gcorn (the dirty pool) hand their own collectors to `metrics_side_process`.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import socketserver
import stat
import time
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector, CollectorRegistry

from gcorn.arbiter import SideProcess
from gcorn.arbiter.scoreboard import BUCKETS, Restart, Scoreboard

from .config import Config
from .errors import ConfigError

SIDE_NAME = "metrics-exporter"
_SETTING = "setting 'metrics_bind' (--metrics-bind)"
# while a USR2 predecessor still holds the address, the exporter tries again this often
REBIND_INTERVAL = 1.0
_PATHS = ("/metrics", "/")


# -- the address --------------------------------------------------------------------------


def metrics_address(spec: str) -> tuple[int, Any]:
    """(family, sockaddr) of a `metrics_bind` value; ConfigError naming it when it is bad."""
    if spec.startswith("unix:"):
        path = spec[5:]
        return socket.AF_UNIX, path[2:] if path.startswith("//") else path
    if spec.startswith("["):
        host, _, rest = spec[1:].partition("]")
        port = rest[1:]
    else:
        host, _, port = spec.rpartition(":")
    try:
        infos = socket.getaddrinfo(host or None, int(port), socket.AF_UNSPEC, socket.SOCK_STREAM,
                                   0, socket.AI_PASSIVE)
    except (socket.gaierror, ValueError) as exc:
        raise ConfigError(f"invalid value for {_SETTING}: cannot resolve {spec!r} ({exc})") from None
    family, _type, _proto, _name, sockaddr = infos[0]
    return int(family), sockaddr


def _clear_stale_unix(path: str) -> None:
    """Remove a socket file nobody listens on any more (a crashed server's leftover)."""
    try:
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            return
    except FileNotFoundError:
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)
    except OSError:
        pass
    finally:
        probe.close()


def open_socket(spec: str) -> socket.socket:
    """Bind and listen on `spec`; OSError when the address cannot be had."""
    family, sockaddr = metrics_address(spec)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if family == socket.AF_UNIX:
            _clear_stale_unix(sockaddr)
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(sockaddr)
        sock.listen(64)
    except OSError:
        sock.close()
        raise
    return sock


def bind_metrics(spec: str, successor: bool = False) -> socket.socket | None:
    """The master's listening socket for `spec`; ConfigError naming the setting if it fails.

    `successor`: this master was started by USR2, whose predecessor may still hold
    the address; then None, and the exporter binds it once the old master is gone.
    """
    try:
        return open_socket(spec)
    except OSError as exc:
        if successor and exc.errno == errno.EADDRINUSE:
            return None
        reason = exc.strerror or str(exc)
        raise ConfigError(f"invalid value for {_SETTING}: cannot listen on {spec!r}: {reason}"
                          ) from None


def unlink_unix(spec: str | None, sock: socket.socket | None) -> None:
    """At exit: remove the Unix socket file this master bound (a successor's stays its own)."""
    if not spec or sock is None or not spec.startswith("unix:"):
        return
    _family, path = metrics_address(spec)
    try:
        os.unlink(path)
    except OSError:
        pass


# -- the collector --------------------------------------------------------------------------


class ScoreboardCollector(Collector):
    """The HTTP tree's metrics, read from the shared scoreboard at each scrape."""

    def __init__(self, board: Scoreboard) -> None:
        self.board = board

    def collect(self) -> Iterator[Metric]:
        """Every gcorn_* family of the HTTP side (see docs/metrics.md)."""
        snap = self.board.snapshot()
        klass = ["worker_class"]
        yield GaugeMetricFamily("gcorn_up", "1 once the master reported ready, 0 while it "
                                "starts or stops.", value=1.0 if snap.ready else 0.0)
        workers = GaugeMetricFamily("gcorn_workers", "Live HTTP worker processes.", labels=klass)
        requests = CounterMetricFamily(
            "gcorn_http_requests", "HTTP requests ended, by method and status class "
            "('other': no response, or a status outside 100-599).",
            labels=["worker_class", "method", "status"])
        duration = HistogramMetricFamily(
            "gcorn_http_request_duration_seconds",
            "Time from a request's head to the end of its response.", labels=klass)
        in_flight = GaugeMetricFamily("gcorn_http_requests_in_flight",
                                      "Requests begun and not ended.", labels=klass)
        conns_open = GaugeMetricFamily("gcorn_http_connections_open",
                                       "Client connections open in the live workers.", labels=klass)
        conns = CounterMetricFamily("gcorn_http_connections_accepted",
                                    "Client connections accepted.", labels=klass)
        timeouts = CounterMetricFamily("gcorn_http_request_timeouts",
                                       "Requests ended by request_timeout.", labels=klass)
        restarts = CounterMetricFamily(
            "gcorn_worker_restarts", "Workers replaced, by reason.",
            labels=["worker_class", "reason"])
        for name, totals in snap.classes.items():
            workers.add_metric([name], totals.workers)
            for method, status, count in totals.requests_by():
                requests.add_metric([name, method, status], count)
            cumulative, buckets = 0, []
            for bound, count in zip(BUCKETS, totals.buckets, strict=False):
                cumulative += count
                buckets.append((repr(bound), float(cumulative)))
            cumulative += totals.buckets[-1]
            buckets.append(("+Inf", float(cumulative)))
            duration.add_metric([name], buckets, sum_value=totals.duration_sum)
            in_flight.add_metric([name], totals.in_flight)
            conns_open.add_metric([name], totals.connections_open)
            conns.add_metric([name], totals.connections_accepted)
            timeouts.add_metric([name], totals.request_timeouts)
            for reason in Restart:
                restarts.add_metric([name, reason.name.lower()], totals.restarts[reason])
        yield from (workers, requests, duration, in_flight, conns_open, conns, timeouts, restarts)
        age = GaugeMetricFamily("gcorn_worker_heartbeat_age_seconds",
                                "Seconds since each live worker's last heartbeat, as the "
                                "master last read it.", labels=["worker_class", "pid"])
        rss = GaugeMetricFamily("gcorn_worker_rss_bytes", "Each live worker's resident set "
                                "size, as the master last measured it.",
                                labels=["worker_class", "pid"])
        for worker in snap.workers:
            labels = [worker.worker_class, str(worker.pid)]
            age.add_metric(labels, max(0.0, snap.taken_at - worker.heartbeat))
            rss.add_metric(labels, worker.rss)
        yield age
        yield rss


# -- the server -----------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    server: MetricsServer
    server_version = "gcorn-metrics"

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _answer(self, body: bool) -> None:
        if self.path.split("?", 1)[0] not in _PATHS:
            self._send(404, "text/plain; charset=utf-8", b"not found: try /metrics\n", body)
            return
        encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
        try:
            output = encoder(self.server.registry)
        except Exception as exc:
            self.server.log.exception("metrics: a collector failed")
            self._send(500, "text/plain; charset=utf-8", f"collector failed: {exc}\n".encode(),
                       body)
            return
        self._send(200, content_type, output, body)

    def _send(self, status: int, content_type: str, data: bytes, body: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return None  # a scrape every few seconds is not worth a log line

    def address_string(self) -> str:
        address = self.client_address
        return str(address[0]) if isinstance(address, tuple) and address else "unix"


class MetricsServer(ThreadingHTTPServer):
    """An HTTP server on an already-listening socket, answering from `registry`."""

    daemon_threads = True

    def __init__(self, sock: socket.socket, registry: CollectorRegistry, log: Any) -> None:
        self.registry = registry
        self.log = log
        name = sock.getsockname()
        socketserver.BaseServer.__init__(self, name, _Handler)
        self.socket = sock
        self.server_name = "gcorn-metrics"
        self.server_port = name[1] if isinstance(name, tuple) else 0

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.log.debug("metrics: a scrape failed", exc_info=True)


def _bind_when_free(spec: str, log: Any) -> socket.socket:
    """A USR2 successor's exporter: wait for the old master to let go of the address."""
    log.info("metrics_bind %s is still held by the old master: waiting for it", spec)
    while True:
        try:
            return open_socket(spec)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
        time.sleep(REBIND_INTERVAL)


def _stop(sig: int, frame: Any) -> None:
    raise SystemExit(0)


def serve(spec: str, sock: socket.socket | None, collectors: Sequence[Collector], log: Any) -> int:
    """The exporter's main (the side process target): serve /metrics until TERM."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        signal.signal(sig, _stop)
    registry = CollectorRegistry(auto_describe=False)
    for collector in collectors:
        registry.register(collector)
    if sock is None:
        sock = _bind_when_free(spec, log)
    server = MetricsServer(sock, registry, log)
    log.info("Serving metrics at %s/metrics (pid: %s)", spec, os.getpid())
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
    return 0


def metrics_side_process(cfg: Config, board: Scoreboard, sock: socket.socket | None,
                         log: Any, extra: Sequence[Collector] = ()) -> SideProcess:
    """The exporter as a side process of the master: the HTTP tree's collector and `extra`
    (the dirty pool's, gcorn.dirty.metrics, when the pool runs), each built before any
    fork, each `collect()` run in the exporter process at every scrape."""
    collectors: list[Collector] = [ScoreboardCollector(board), *extra]
    return SideProcess(SIDE_NAME, target=serve, args=(str(cfg.metrics_bind), sock, collectors, log))
