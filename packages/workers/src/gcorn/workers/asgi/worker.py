"""`AsgiWorker`: one event loop per worker process serving an ASGI app on the inherited listeners."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import socket
import ssl
import time
from typing import Any

from gcorn.arbiter import Worker, setting
from gcorn.workers.asgi.errors import WORKER_BOOT_ERROR, AsgiSetupError, LifespanFailure
from gcorn.workers.asgi.http import HttpProtocol
from gcorn.workers.asgi.lifespan import LIFESPAN_CHOICES, Lifespan
from gcorn.workers.asgi.loop import new_event_loop
from gcorn.workers.asgi.state import ASGI_VERSION, ServerState
from gcorn.workers.draining import idle_grace, take_backlog
from gcorn.workers.errors import TLSSetupError
from gcorn.workers.http2 import alpn_protocols
from gcorn.workers.tls import build_context

__all__ = ["AsgiWorker"]

# connections accepted per readiness event before other work gets a turn
_ACCEPT_BATCH = 64
# seconds between ticks: heartbeat, Date header, keep-alive sweep, alive checks
_TICK = 0.5


class Acceptor:
    """Accepts connections from one inherited listening socket; pausable for `worker_connections`."""

    def __init__(self, listener: Any, state: ServerState, ssl_context: ssl.SSLContext | None,
                 limit: int) -> None:
        sock = getattr(listener, "sock", listener)
        if not isinstance(sock, socket.socket):
            sock = socket.socket(fileno=os.dup(listener.fileno()))
        sock.setblocking(False)
        self.sock = sock
        self.state = state
        self.loop = state.loop
        self.ssl_context = ssl_context
        self.limit = limit
        self.connecting = 0
        self.setups: set[asyncio.Task[None]] = set()  # connection set-ups in progress
        self.reading = False
        self.retired = False
        self.is_tcp = sock.family in (socket.AF_INET, socket.AF_INET6)

    def start(self) -> None:
        """Watch the listener for new connections (never again once retired)."""
        if not self.reading and not self.retired:
            self.loop.add_reader(self.sock.fileno(), self._accept)
            self.reading = True

    def stop(self) -> None:
        """Stop accepting (the socket stays open: it belongs to the arbiter)."""
        if self.reading:
            self.loop.remove_reader(self.sock.fileno())
            self.reading = False

    def take_backlog(self) -> None:
        """Graceful stop: set up the clients queued on the listener and close this copy of it."""
        self.stop()
        self.retired = True  # a connection closing under `worker_connections` must not resume
        for conn, _addr in take_backlog(self.sock):
            self._set_up(conn)

    def cancel_setups(self) -> None:
        """Graceful stop: drop connections still in their TLS handshake (past the grace)."""
        for task in list(self.setups):
            task.cancel()

    def _full(self) -> bool:
        return len(self.state.connections) + self.connecting >= self.limit

    def _accept(self) -> None:
        for _ in range(_ACCEPT_BATCH):
            if self._full():
                # over worker_connections: leave the rest in the kernel backlog
                self.stop()
                self.state.accept_paused = True
                return
            try:
                conn, _addr = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE, ENFILE, ECONNABORTED...: try again later
                self.state.log.warning("accept() failed: %s", exc)
                return
            self._set_up(conn)

    def _set_up(self, conn: socket.socket) -> None:
        conn.setblocking(False)
        if self.is_tcp:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.connecting += 1
        self.state.worker.stats.connection_opened()  # closed in the protocol's connection_lost
        task = self.loop.create_task(self._connect(conn))
        self.setups.add(task)
        task.add_done_callback(self.setups.discard)

    async def _connect(self, conn: socket.socket) -> None:
        state = self.state
        try:
            await self.loop.connect_accepted_socket(
                lambda: HttpProtocol(state), conn, ssl=self.ssl_context)
        except (TimeoutError, OSError, ssl.SSLError) as exc:
            state.log.debug("connection setup failed: %s", exc)
            conn.close()
            state.worker.stats.connection_closed()
        except asyncio.CancelledError:
            state.log.debug("connection setup cancelled by the graceful stop")
            conn.close()
            state.worker.stats.connection_closed()
        finally:
            self.connecting -= 1


class AsgiWorker(Worker):
    """The `asgi` worker class: asyncio (uvloop when installed), HTTP/1.1, HTTP/2, WebSocket,
    lifespan."""

    serves_http2 = True  # the cli warns when HTTP/2 is asked of a worker without this

    def run(self) -> None:
        """Serve until told to stop; a failed boot step exits with code 3."""
        cfg = self.cfg
        if getattr(self, "nr", None) is None:
            self.nr = 0
        self.request_timeouts = 0  # requests ended by request_timeout (gcorn.workers.deadline)
        if int(setting(cfg, "threads", 1) or 1) > 1:
            self.log.warning("the asgi worker ignores threads = %s", cfg.threads)
        try:
            loop, loop_name = new_event_loop(str(setting(cfg, "asgi_loop", "auto") or "auto"))
        except AsgiSetupError as exc:
            self.log.error("%s", exc)
            raise SystemExit(WORKER_BOOT_ERROR) from exc
        self.log.debug("asgi worker running on %s", loop_name)
        asyncio.set_event_loop(loop)
        try:
            code = loop.run_until_complete(self._serve(loop))
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                asyncio.set_event_loop(None)
                loop.close()
        if code:
            raise SystemExit(code)

    async def _serve(self, loop: asyncio.AbstractEventLoop) -> int:
        cfg = self.cfg
        mode = str(setting(cfg, "asgi_lifespan", "auto") or "auto")
        if mode not in LIFESPAN_CHOICES:
            self.log.error("asgi_lifespan must be one of %s", ", ".join(LIFESPAN_CHOICES))
            return WORKER_BOOT_ERROR
        lifespan_state: dict[str, Any] = {}
        try:
            state = ServerState(self, self.wsgi, loop, lifespan_state)
        except (ValueError, ImportError) as exc:  # a bad parser setting or backend
            self.log.error("Cannot set up the asgi worker: %s", exc)
            return WORKER_BOOT_ERROR
        lifespan = Lifespan(self.wsgi, mode, self.log, lifespan_state, dict(ASGI_VERSION))
        try:
            await lifespan.startup()
        except LifespanFailure as exc:
            self.log.error("Application startup failed: %s", exc)
            return WORKER_BOOT_ERROR
        try:
            ssl_context = build_context(cfg, alpn_protocols(state.h2_options)
                                        if state.h2_ready else None)
        except TLSSetupError as exc:
            self.log.error("%s", exc)
            await lifespan.shutdown(1.0)
            return WORKER_BOOT_ERROR
        stop = asyncio.Event()
        self._install_signals(loop, stop)
        limit = max(1, int(setting(cfg, "worker_connections", 1000) or 1000))
        acceptors = [Acceptor(listener, state, ssl_context, limit) for listener in self.sockets]

        def resume_accepting() -> None:
            state.accept_paused = False
            for acceptor in acceptors:
                acceptor.start()

        state.resume_accepting = resume_accepting
        # the app and its startup state live as long as the worker: keep them out
        # of the collector's full passes, which would otherwise walk them again and
        # again while requests wait
        gc.freeze()
        for acceptor in acceptors:
            acceptor.start()
        try:
            await self._tick_until_stopped(state, stop)
        finally:
            state.begin_shutdown()  # what is answered from now on says `connection: close`
            for acceptor in acceptors:
                acceptor.stop()
                acceptor.take_backlog()
            await self._finish_setups(acceptors, idle_grace(state.keepalive))
            await self._drain(state)
            await lifespan.shutdown(state.graceful_timeout)
        return 0

    def _install_signals(self, loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
        def graceful() -> None:
            self.alive = False
            stop.set()

        try:
            loop.add_signal_handler(signal.SIGTERM, graceful)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread: the tick still notices `alive`

    async def _tick_until_stopped(self, state: ServerState, stop: asyncio.Event) -> None:
        timeout = float(getattr(self, "timeout", 0) or setting(self.cfg, "timeout", 30) or 30)
        tick = min(_TICK, max(timeout / 4, 0.05))
        keepalive = state.keepalive
        self.notify()
        while self.alive:
            if self.master_gone():
                break
            self.notify()
            state.tick()
            now = state.clock
            header_timeout = state.header_timeout
            for conn in list(state.connections):
                # a head being read is held to header_timeout, not to the keep-alive wait
                conn.close_if_idle_for(now, keepalive, heads_too=header_timeout <= 0)
                if header_timeout > 0:
                    conn.close_if_head_late(header_timeout)
            if state.accept_paused:
                state.resume_accepting()
            try:
                await asyncio.wait_for(stop.wait(), tick)
            except TimeoutError:
                pass
        self.alive = False

    async def _finish_setups(self, acceptors: list[Acceptor], timeout: float) -> None:
        """Let connections already accepted finish their set-up (they are then served);
        cancel only the TLS handshakes still running after `timeout`."""
        setups = [task for acceptor in acceptors for task in acceptor.setups]
        if setups:
            await asyncio.wait(setups, timeout=timeout)
        for acceptor in acceptors:
            acceptor.cancel_setups()

    async def _drain(self, state: ServerState) -> None:
        """Graceful stop: 1012 to websockets, answer what comes with `connection: close`,
        close connections idle through the drain grace, wait for requests."""
        state.begin_shutdown()
        for conn in list(state.connections):
            conn.shutdown()
        grace = idle_grace(state.keepalive)
        graceful = state.graceful_timeout
        deadline = time.monotonic() + graceful
        while (state.tasks or state.connections) and time.monotonic() < deadline:
            self.notify()
            if state.tasks:
                await asyncio.wait(list(state.tasks), timeout=min(0.05, graceful))
            else:
                await asyncio.sleep(0.05)
            state.tick()  # idle_since is stamped from state.clock
            for conn in list(state.connections):
                conn.close_if_idle_for(state.clock, grace)
        for task in list(state.tasks):
            task.cancel()
        if state.tasks:
            await asyncio.wait(list(state.tasks), timeout=1.0)
        for conn in list(state.connections):
            conn.abort()
