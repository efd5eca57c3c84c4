"""What every connection of one ASGI worker shares: settings read once, counters, live sets."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from typing import Any

from gcorn.arbiter import ExitReason, graceful_timeout, setting
from gcorn.workers.deadline import request_timeout
from gcorn.workers.exchange.access import access_wanted
from gcorn.workers.exchange.forwarded import ForwardedPolicy
from gcorn.workers.exchange.hooks import RequestHooks
from gcorn.workers.exchange.proxy_protocol import proxy_mode
from gcorn.workers.exchange.uwsgi import UwsgiReader, uwsgi_allow_list
from gcorn.workers.http2 import PREFACE, H2Options, h2_available
from gcorn.workers.parsing import parser_factory

__all__ = ["ASGI_VERSION", "ServerState"]

ASGI_VERSION = {"version": "3.0", "spec_version": "2.4"}


def _nothing() -> None:
    return None



class ServerState:
    """Settings, counters and the live connections of one worker's event loop."""

    def __init__(self, worker: Any, app: Any, loop: asyncio.AbstractEventLoop,
                 lifespan_state: dict[str, Any]) -> None:
        cfg = worker.cfg
        self.worker = worker
        self.cfg = cfg
        self.log = worker.log
        self.app = app
        self.loop = loop
        self.lifespan_state = lifespan_state
        self.asgi = dict(ASGI_VERSION)
        self.root_path: str = setting(cfg, "root_path", "") or ""
        self.keepalive: float = float(setting(cfg, "keepalive", 2))
        # 0: a graceful stop waits for nothing, as in the master (gcorn.arbiter.contracts)
        self.graceful_timeout: float = graceful_timeout(cfg)
        self.header_timeout: float = float(setting(cfg, "header_timeout", 10) or 0)
        # seconds one request's app task may run (0: no limit); gcorn.workers.deadline
        self.request_timeout: float = request_timeout(cfg)
        self.limit_concurrency: int = int(setting(cfg, "limit_concurrency", 0))
        self.disconnect_grace: float = float(setting(cfg, "asgi_disconnect_grace_period", 3))
        self.ws_max_size: int = int(setting(cfg, "websocket_max_message_size", 16 * 1024 * 1024))
        self.ws_ping_interval: float = float(setting(cfg, "websocket_ping_interval", 20.0))
        self.ws_ping_timeout: float = float(setting(cfg, "websocket_ping_timeout", 20.0))
        self.ws_per_message_deflate: bool = bool(setting(cfg, "websocket_per_message_deflate",
                                                          True))
        # one validated set of parser options for every connection (fails at boot)
        self.new_parser = parser_factory(cfg)
        # protocol = uwsgi: a uwsgi reader per connection instead (its peer set on connect)
        self.uwsgi_allow = uwsgi_allow_list(cfg)
        if self.uwsgi_allow is not None:
            allow = self.uwsgi_allow
            self.new_parser = lambda: UwsgiReader(allow)
        self.policy = ForwardedPolicy(cfg)
        self.proxy_mode = proxy_mode(setting(cfg, "proxy_protocol", "off"))
        self.hooks = RequestHooks(worker, setting(cfg, "pre_request", None),
                                  setting(cfg, "post_request", None), self.log)
        # the one decision the WSGI workers use too; a HUP replaces the worker, so once is enough
        self.access_enabled = access_wanted(self.log)
        # HTTP/2: settings read once; h2 only when the `h2` library is installed
        self.h2_options = H2Options.from_cfg(cfg)
        self.h2_ready = self.h2_options.enabled and h2_available()
        self.h2_prior = self.h2_ready and self.h2_options.prior_knowledge
        self.h2_upgrade = self.h2_ready and self.h2_options.upgrade
        self.connections: set[Any] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.in_flight = 0
        self.shutting_down = False
        self.accept_paused = False
        self.resume_accepting: Callable[[], None] = _nothing
        self.max_requests: int = int(getattr(worker, "max_requests", 0) or 0) or sys.maxsize
        # keep-alive is offered while this holds; the graceful stop clears it
        self.keep_alive_ok = self.keepalive > 0
        # monotonic time of the last tick: idle timestamps need no clock call per request
        self.clock = time.monotonic()

    def is_h2c_preface(self, data: bytes, peer: Any) -> bool:
        """The first bytes of a connection open h2c with prior knowledge, from a trusted peer."""
        return (self.h2_prior and len(data) >= 3 and data[:24] == PREFACE[:len(data[:24])]
                and self.policy.trusted.allows(peer))

    def tick(self) -> None:
        """Refresh the cached clock (called by the worker's tick)."""
        self.clock = time.monotonic()

    def connection_gone(self, conn: Any) -> None:
        """A connection (HTTP/1 or HTTP/2) of this worker closed: forget and count it, and
        accept again if the worker had stopped at its connection limit."""
        self.connections.discard(conn)
        self.worker.stats.connection_closed()
        if self.accept_paused:
            self.resume_accepting()

    def begin_shutdown(self) -> None:
        """Graceful stop: no new keep-alive, finish what is in flight."""
        self.shutting_down = True
        self.keep_alive_ok = False

    def count_request(self) -> None:
        """Count one served request; past `max_requests` the worker stops gracefully."""
        worker = self.worker
        worker.nr += 1
        if worker.nr >= self.max_requests:
            self.max_requests_reached()

    def max_requests_reached(self) -> None:
        """Stop the worker gracefully once `max_requests` requests were served."""
        if self.worker.alive:
            self.log.info("Autorestarting worker after current request.")
            self.worker.stats.exiting(ExitReason.MAX_REQUESTS)
            self.worker.alive = False
