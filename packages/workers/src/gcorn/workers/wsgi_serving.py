"""`WsgiServing`: what every WSGI worker (sync, gthread, gevent, eventlet) shares once forked:
parser factory, TLS, PROXY protocol, accept."""

from __future__ import annotations

import os
import signal
import socket
import sys
from typing import Any

from gcorn.arbiter import WORKER_BOOT_ERROR, setting
from gcorn.http import ParseError
from gcorn.workers.errors import ClientDisconnected, WorkerError
from gcorn.workers.exchange import proxy_protocol
from gcorn.workers.exchange.uwsgi import UwsgiReader, uwsgi_allow_list
from gcorn.workers.parsing import parser_factory
from gcorn.workers.tls import build_context, is_tls_enabled, wrap_connection
from gcorn.workers.wsgi.connection import Connection
from gcorn.workers.wsgi.handler import RequestHandler

__all__ = ["WsgiServing", "boot_serving", "raw_socket", "signal_wakeup_fd"]


def signal_wakeup_fd() -> tuple[int, int]:
    """A pipe's read end that becomes readable when a signal arrives (main thread only).

    Waiting on it as well as on the sockets lets TERM end a poll at once
    instead of at the end of its timeout.
    """
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    os.set_blocking(write_fd, False)
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    return read_fd, write_fd


def drain_wakeup_fd(fd: int) -> None:
    """Empty the wakeup pipe after a poll returned for it."""
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        return


def raw_socket(listener: Any) -> socket.socket:
    """The socket object behind an arbiter `Listener` (or the socket itself)."""
    sock: socket.socket = getattr(listener, "sock", listener)
    return sock


def boot_serving(worker: Any, multithread: bool) -> WsgiServing:
    """Build the serving state; a bad setting exits with WORKER_BOOT_ERROR (3)."""
    try:
        return WsgiServing(worker, multithread)
    except (ImportError, ValueError, TypeError, WorkerError) as exc:
        worker.log.error("Worker failed to boot: %s", exc)
        sys.exit(int(WORKER_BOOT_ERROR))


class WsgiServing:
    """The per-worker serving state of a WSGI worker (built in `run()`, after fork)."""

    #: what `open` wraps a client in (the green workers wait in their hub instead of poll)
    connection_class: type[Connection] = Connection

    def __init__(self, worker: Any, multithread: bool) -> None:
        cfg = worker.cfg
        self.worker = worker
        self.cfg = cfg
        self.log = worker.log
        self.make_parser = parser_factory(cfg)
        self.ssl_context: Any = None
        if is_tls_enabled(cfg):
            self.ssl_context = build_context(cfg)
        self.handler = RequestHandler(worker, multithread)
        timeout = float(setting(cfg, "timeout", 30) or 0)
        # I/O on one client never waits longer than the worker timeout
        self.io_timeout: float | None = timeout if timeout > 0 else None
        # seconds to read a whole request head (0: no limit); gcorn only
        self.header_timeout = float(setting(cfg, "header_timeout", 10) or 0)
        self.proxy = proxy_protocol.ProxyProtocol(cfg, self.handler.policy.proxy_allow)
        # protocol = uwsgi: each connection gets a uwsgi reader in place of the HTTP parser
        self.uwsgi_allow = uwsgi_allow_list(cfg)

    def open(self, client: socket.socket, addr: Any, listener: Any) -> Connection | None:
        """Wrap an accepted socket (TLS handshake included); None if it failed."""
        if self.ssl_context is not None:
            try:
                tls = wrap_connection(self.ssl_context, client, self.cfg)
                tls.settimeout(self.io_timeout)
                tls.do_handshake()
            except OSError as exc:  # ssl.SSLError included
                self.log.debug("TLS handshake with %s failed: %s", addr, exc)
                client.close()
                return None
            client = tls
        # TCP_NODELAY: accepted sockets inherit it from the arbiter's listeners
        parser = self.make_parser() if self.uwsgi_allow is None else UwsgiReader(
            self.uwsgi_allow, addr)
        return self.connection_class(client, addr, listener, parser, self.io_timeout)

    def first_request(self, conn: Connection) -> Any:
        """The first request head of a connection (PROXY header read first when enabled)."""
        if self.proxy.enabled:
            self.proxy.read(conn)
        return conn.next_event(answer_eof=True)

    def refuse(self, conn: Connection, exc: Exception) -> None:
        """Answer a parse/policy error (its status) before closing."""
        if isinstance(exc, (ParseError, WorkerError)) and not isinstance(exc, ClientDisconnected):
            self.handler.refuse(conn, exc)
