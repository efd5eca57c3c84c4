"""What the gevent and eventlet workers share: one greenlet per connection on a green hub.

The library-specific part is a `GreenHub` (ggevent.py, geventlet.py): monkey
patching, spawn, sleep, "wait until this fd is ready". Everything else is the
same as the sync and gthread workers: `WsgiServing` (TLS, PROXY header, the
gcorn.http parser) and `RequestHandler` serve each request. Sockets stay the
stdlib's, non-blocking: a read or write that would block waits in the hub
(`GreenConnection._wait`), so the common case costs one system call and no
green wrapper.

One acceptor greenlet per listener takes a slot of a semaphore of
`worker_connections` before each `accept()`: past the limit, new connections
wait in the kernel's listen backlog. The main greenlet beats the heartbeat; a
hub blocked by CPU-bound code stops that beat, the arbiter's `timeout` sends
SIGABRT, and the handler logs the frame that held the hub.
"""

from __future__ import annotations

import time
import traceback
from types import FrameType
from typing import Any, ClassVar, Protocol

from gcorn.arbiter import ExitReason, ServerLog, Worker, graceful_timeout, setting
from gcorn.http import ParseError
from gcorn.workers.deadline import GreenGuard, RequestTimeout
from gcorn.workers.draining import idle_grace
from gcorn.workers.errors import ClientDisconnected, WorkerError
from gcorn.workers.wsgi.connection import Connection
from gcorn.workers.wsgi_serving import WsgiServing, boot_serving, raw_socket

__all__ = ["GreenConnection", "GreenHub", "GreenWorker", "Wake"]

_POLLOUT = 0x004  # select.POLLOUT on every platform gcorn runs on


class Wake(Exception):
    """Thrown into an idle connection's greenlet: the worker began stopping, look again."""


class GreenHub(Protocol):
    """What a green library gives the worker (gevent and eventlet implement it)."""

    name: str
    #: the pip command that installs the library, for the one-line error
    install: str

    def patch(self) -> None:
        """Monkey patch the standard library (idempotent)."""

    def spawn(self, func: Any, *args: Any) -> Any:
        """Run `func(*args)` in a new greenlet; returns it."""

    def sleep(self, seconds: float) -> None:
        """Let other greenlets run for `seconds`."""

    def wait_fd(self, fd: int, write: bool, timeout: float | None) -> bool:
        """Wait until `fd` is readable (writable); False when `timeout` passed first."""

    def semaphore(self, value: int) -> Any:
        """A green semaphore (`acquire()`, `release()`)."""

    def current(self) -> Any:
        """The running greenlet."""

    def call_soon(self, func: Any, *args: Any) -> None:
        """Run `func(*args)` from the hub at its next turn."""

    def kill(self, green: Any) -> None:
        """End a greenlet (raises GreenletExit in it) without waiting for it."""

    def call_later(self, seconds: float, func: Any) -> Any:
        """Run `func()` from the hub in `seconds`; returns a callable that cancels it."""

    def original_socket(self) -> type:
        """The stdlib's `socket.socket` class, as it was before patching."""


class GreenConnection(Connection):
    """A `Connection` whose would-block waits yield to the hub instead of calling poll()."""

    __slots__ = ()
    hub: ClassVar[GreenHub]

    def _wait(self, events: int) -> None:
        if not self.hub.wait_fd(self.fd, bool(events & _POLLOUT), self.timeout):
            raise ClientDisconnected("client timed out")

    def _wait_readable(self, timeout: float) -> bool:
        return self.hub.wait_fd(self.fd, False, timeout)

    def recv_ready(self) -> bytes | None:
        """Bytes already there (b'' at end of stream), None if the hub must wait first.

        TLS: only what OpenSSL already decrypted counts (eventlet's TLS socket
        has no non-blocking read); once the fd is readable, `recv()` reads.
        """
        if self.is_tls:
            if not self.sock.pending():  # type: ignore[attr-defined]
                return None
            return self.recv()
        return super().recv_ready()


class GreenWorker(Worker):
    """A WSGI worker serving every connection in its own greenlet (subclasses give the hub)."""

    hub: ClassVar[GreenHub]

    # -- boot ----------------------------------------------------------------

    @classmethod
    def patch_master(cls, log: ServerLog, dirty_pool: bool = False) -> None:
        """With `preload_app`: patch in the master before the app is imported.

        Not with a dirty pool: the master forks the dirty arbiter, whose asyncio
        loop does not run on a monkey-patched standard library.
        """
        if dirty_pool:
            log.warning("%s worker with preload_app and a dirty pool: the master is not "
                        "monkey-patched (the dirty arbiter it forks runs asyncio, which "
                        "patching breaks); each worker patches after the fork, so objects the "
                        "app built at import time may still block", cls.hub.name)
            return
        log.info("%s worker with preload_app: monkey-patching the master before "
                 "importing the app", cls.hub.name)
        cls.hub.patch()

    def init_process(self) -> None:
        """Patch the standard library before anything else (the app included) runs."""
        self.hub.patch()
        super().init_process()

    def handle_abort(self, sig: int, frame: FrameType | None) -> None:
        """ABRT from the arbiter's timeout: say which code held the hub, then exit."""
        stack = "".join(traceback.format_stack(frame)) if frame is not None else "(unknown)\n"
        self.log.critical(
            "worker timeout: the %s hub was blocked for more than %ss (CPU-bound code, or a "
            "blocking call that monkey patching does not cover); it was running:\n%s",
            self.hub.name, self.timeout, stack.rstrip())
        super().handle_abort(sig, frame)

    # -- serving -------------------------------------------------------------

    def run(self) -> None:
        """Accept in one greenlet per listener, serve each connection in its own greenlet."""
        hub = self.hub
        GreenConnection.hub = hub
        # greenlets switch only where they would block, so `worker.nr += 1` needs no lock;
        # and wsgi.multithread stays False, as gunicorn's gevent worker has it
        self.serving = serving = boot_serving(self, multithread=False)
        serving.connection_class = GreenConnection
        self.request_timeouts = 0  # requests ended by request_timeout
        if serving.handler.request_timeout > 0:
            # a hub timer throws RequestTimeout into the request's greenlet
            serving.handler.guard = GreenGuard(hub, serving.handler.request_timeout)
        cfg = self.cfg
        self.keepalive = float(setting(cfg, "keepalive", 2) or 0)
        max_conns = max(int(setting(cfg, "worker_connections", 1000) or 1000), 1)
        self.slots = hub.semaphore(max_conns)
        self.conns: set[Connection] = set()
        self.nconns = 0  # accepted and not closed yet (a TLS handshake under way included)
        # idle connection -> the greenlet waiting on it (woken when the stop begins)
        self.idle: dict[Connection, Any] = {}
        self.stopping_since: float | None = None
        self.grace = idle_grace(self.keepalive)
        self.socket_class = hub.original_socket()
        acceptors = []
        for listener in self.sockets:
            sock = raw_socket(listener)
            sock.setblocking(False)
            acceptors.append(hub.spawn(self.accept_loop, sock))
        try:
            self.beat()
        except BaseException:
            # INT/QUIT (SystemExit from the handler) or a crash: a quick stop
            for green in acceptors:
                hub.kill(green)
            raise
        self.stop(acceptors)

    def beat(self) -> None:
        """The heartbeat: notify the arbiter until the worker must stop."""
        tick = min(max(self.timeout / 4.0, 0.05), 0.5) if self.timeout > 0 else 0.5
        while self.alive:
            self.notify()
            if self.master_gone():
                break
            self.hub.sleep(tick)

    def stop(self, acceptors: list[Any]) -> None:
        """Graceful stop: no more accepts; idle connections get the drain grace
        (see `gcorn.workers.draining`), busy ones `graceful_timeout` to finish."""
        hub = self.hub
        for green in acceptors:
            hub.kill(green)
        now = time.monotonic()
        self.stopping_since = now
        deadline = now + graceful_timeout(self.cfg)
        for conn, green in list(self.idle.items()):
            hub.call_soon(self._wake, conn, green)
        while self.nconns > 0 and time.monotonic() < deadline:
            self.notify()
            hub.sleep(0.05)
        for conn in list(self.conns):
            conn.close()

    def _wake(self, conn: Connection, green: Any) -> None:
        # from the hub: only a greenlet still idle on this connection may be interrupted
        current = self.idle.get(conn)
        if current is not None and current is green:
            current.throw(Wake)

    def accept_loop(self, listener: Any) -> None:
        """Take a slot, accept one client, serve it in a new greenlet; repeat."""
        hub = self.hub
        fd = listener.fileno()
        family, type_, proto = listener.family, listener.type, listener.proto
        make_socket = self.socket_class
        slots = self.slots
        while self.alive:
            slots.acquire()
            while True:
                try:
                    client_fd, addr = listener._accept()
                except (BlockingIOError, InterruptedError):
                    hub.wait_fd(fd, False, None)
                    continue
                except OSError as exc:
                    self.log.error("accept() failed on %s: %s", listener, exc)
                    hub.sleep(0.1)
                    continue
                break
            client = make_socket(family, type_, proto, fileno=client_fd)
            hub.spawn(self.serve_client, client, addr, listener)

    def serve_client(self, client: Any, addr: Any, listener: Any) -> None:
        """One connection's greenlet: TLS handshake, requests, close."""
        self.nconns += 1
        self.stats.connection_opened()
        try:
            conn = self.serving.open(client, addr, listener)
            if conn is None:
                return
            self.conns.add(conn)
            try:
                self.serve(conn)
            finally:
                self.conns.discard(conn)
                conn.close()
        finally:
            self.nconns -= 1
            self.stats.connection_closed()
            self.slots.release()

    def serve(self, conn: Connection) -> None:
        """Serve the requests of `conn` in order until it closes or must close."""
        serving: WsgiServing = self.serving
        try:
            if serving.proxy.enabled:
                serving.proxy.read(conn)
            partial = False
            while True:
                if not conn.events:
                    conn.raise_error()
                    data = conn.recv_ready()
                    if data is None:
                        if not self.wait_next(conn, first=partial or conn.requests == 0):
                            return
                        data = conn.recv()
                    conn.feed(data)
                    if not data:
                        return
                    partial = True
                    continue
                head = conn.events.popleft()
                keep = serving.handler.serve(conn, head, closing=not self.alive)
                conn.requests += 1
                conn.last_active = time.monotonic()
                partial = bool(conn.events)
                if self.nr >= self.max_requests and self.alive:
                    self.log.info("Autorestarting worker after current request.")
                    self.stats.exiting(ExitReason.MAX_REQUESTS)
                    self.alive = False
                # a response that promised keep-alive is honoured even if the worker began
                # stopping meanwhile: the next request is answered (with close)
                if not keep or self.keepalive <= 0:
                    conn.close(linger=conn.unread_body)
                    return
        except ClientDisconnected as exc:
            self.log.debug("client %s went away: %s", conn.peer, exc)
        except (ParseError, WorkerError) as exc:
            serving.refuse(conn, exc)
            conn.close(linger=True)
        except Wake:
            return  # woken while not idle: nothing to answer any more
        except RequestTimeout:
            return  # thrown as the request ended, after its answer: nothing left to say
        except Exception:
            # a bug below us (parser, hook) must cost one connection, not the worker
            self.log.exception("unexpected error serving %s", conn.peer)
            serving.handler.send_error(conn, 500, "Internal Server Error")

    def wait_next(self, conn: Connection, first: bool) -> bool:
        """Wait for the next bytes of `conn`: False once it stayed idle too long.

        A request under way (or the first one) gets the I/O timeout; an idle
        keep-alive connection `keepalive` seconds, or the drain grace once the
        worker is stopping.
        """
        hub = self.hub
        limit_for = conn.timeout if first else self.keepalive
        self.idle[conn] = hub.current()
        try:
            while True:
                now = time.monotonic()
                limit = conn.last_active + limit_for if limit_for is not None else None
                if self.stopping_since is not None:
                    drain = max(conn.last_active, self.stopping_since) + self.grace
                    limit = drain if limit is None else min(limit, drain)
                if limit is not None and now >= limit:
                    return False
                try:
                    if hub.wait_fd(conn.fd, False, None if limit is None else limit - now):
                        conn.last_active = time.monotonic()
                        return True
                except Wake:
                    continue  # the stop began: the limit changed
        finally:
            self.idle.pop(conn, None)

