"""`gthread`: `threads` serving threads per process, with keep-alive.

Design: one epoll set holds the listeners and the idle keep-alive
connections, each registered EPOLLONESHOT, and every serving thread waits on
it. The thread that wakes up for a connection serves it directly, and keeps
serving it while requests are already there (pipelined, or arrived while it
answered); then it re-arms the connection and goes back to waiting. So a
request never hops between a selector thread and a pool thread, and the
requests of one connection are served in order by one thread at a time.
The main thread only beats the heartbeat, closes connections idle for more
than `keepalive` seconds, and runs the graceful stop.
"""

from __future__ import annotations

import os
import select
import sys
import threading
import time
from typing import Any

from gcorn.arbiter import WORKER_BOOT_ERROR, ExitReason, Worker, graceful_timeout, setting
from gcorn.http import EndOfMessage, ParseError
from gcorn.workers.deadline import RequestTimeout, ThreadWatchdog
from gcorn.workers.draining import idle_grace, take_backlog
from gcorn.workers.errors import ClientDisconnected, RequestHeadTimeout, WorkerError
from gcorn.workers.h2sync import H2Threads
from gcorn.workers.http2 import H2Options, alpn_protocols, h2_available
from gcorn.workers.wsgi.connection import Connection
from gcorn.workers.wsgi_serving import (
    boot_serving,
    drain_wakeup_fd,
    raw_socket,
    signal_wakeup_fd,
)

__all__ = ["ThreadWorker"]

_ARM = select.EPOLLIN | select.EPOLLONESHOT | select.EPOLLRDHUP
# requests served from fresh reads before a connection goes back to epoll's queue;
# more would let a few busy connections starve the others (measured: p99 x5)
_BURST = 1
_WAIT = 0.5  # seconds a serving thread sleeps in epoll before checking for stop


class ThreadWorker(Worker):
    """The gunicorn-compatible threaded WSGI worker (gthread), HTTP/1.1 and HTTP/2."""

    serves_http2 = True  # the cli warns when HTTP/2 is asked of a worker without this

    def run(self) -> None:
        """Start the serving threads, beat, reap idle connections, stop gracefully."""
        if not hasattr(select, "epoll"):
            self.log.error("the gthread worker needs epoll (Linux); use -k sync or -k asgi here")
            sys.exit(int(WORKER_BOOT_ERROR))
        self.serving = boot_serving(self, multithread=True)
        cfg = self.cfg
        self.h2 = self.boot_http2()
        self.keepalive = float(setting(cfg, "keepalive", 2) or 0)
        self.header_timeout = self.serving.header_timeout
        self.max_conns = max(int(setting(cfg, "worker_connections", 1000) or 1000), 1)
        nthreads = max(int(setting(cfg, "threads", 1) or 1), 1)
        self.epoll = select.epoll()
        self.listeners: dict[int, Any] = {}
        for listener in self.sockets:
            sock = raw_socket(listener)
            sock.setblocking(False)
            self.listeners[sock.fileno()] = (sock, listener)
            self.epoll.register(sock.fileno(), _ARM)
        # level-triggered: once written, it wakes every thread waiting in epoll
        self.stop_r, self.stop_w = os.pipe()
        self.epoll.register(self.stop_r, select.EPOLLIN)
        self.parked: dict[int, Connection] = {}
        self.fresh: set[int] = set()  # parked fds whose first serve still reads the PROXY header
        self.nconns = 0
        self.lock = threading.Lock()
        self.accepting = True
        self.running = True
        # before the threads start: a thread that reaches max_requests writes to it
        self.wakeup, self.wake_w = signal_wakeup_fd()
        self.request_timeouts = 0  # requests ended by request_timeout
        self.watchdog: ThreadWatchdog | None = None
        limit = self.serving.handler.request_timeout
        if limit > 0:
            # one thread for the worker, however many serving threads (gcorn.workers.deadline)
            self.watchdog = ThreadWatchdog(self.log, limit, nthreads,
                                           self.serving.handler.answer_from_watchdog,
                                           self.recycle_stuck)
            self.serving.handler.guard = self.watchdog
            self.watchdog.start()
        threads = [threading.Thread(target=self.serve_forever, name=f"gthread-{i}", daemon=True)
                   for i in range(nthreads)]
        for thread in threads:
            thread.start()
        try:
            self.main_loop()
        except BaseException:
            # INT/QUIT (SystemExit from the handler) or a crash: a quick stop,
            # nothing waits for the requests in flight
            self.running = False
            os.write(self.stop_w, b"q")
            raise
        self.stop(threads)

    def boot_http2(self) -> H2Threads | None:
        """HTTP/2 when the settings ask for it and h2 is installed: ALPN and the stream pool."""
        try:
            options = H2Options.from_cfg(self.cfg)
        except ValueError as exc:
            self.log.error("Worker failed to boot: %s", exc)
            sys.exit(int(WORKER_BOOT_ERROR))
        if not options.enabled or not h2_available():
            return None
        context = self.serving.ssl_context
        alpn = alpn_protocols(options)
        if context is not None and alpn:
            context.set_alpn_protocols(alpn)
        return H2Threads(self, self.serving, options)

    # -- main thread ---------------------------------------------------------

    def main_loop(self) -> None:
        """Heartbeat and keep-alive reaping until the worker must stop."""
        tick = min(max(self.timeout / 4.0, 0.05), 1.0) if self.timeout > 0 else 1.0
        tick = min(tick, max(self.keepalive / 2.0, 0.05)) if self.keepalive > 0 else tick
        wakeup = self.wakeup
        poller = select.poll()
        poller.register(wakeup, select.POLLIN)
        while self.alive:
            self.notify()
            if self.master_gone():
                break
            now = time.monotonic()
            # a head being read is held to header_timeout, not to the keep-alive wait
            self.reap_idle(now - self.keepalive, heads_too=self.header_timeout <= 0)
            if self.header_timeout > 0:
                self.reap_slow_heads(now - self.header_timeout)
            for fd, _ in poller.poll(int(tick * 1000)):
                if fd == wakeup:
                    drain_wakeup_fd(wakeup)

    def recycle_stuck(self) -> None:
        """Every serving thread is stuck past request_timeout: stop gracefully (the arbiter
        starts a new worker), so that the capacity does not drain away unnoticed."""
        self.stats.exiting(ExitReason.REQUEST_TIMEOUT)
        self.alive = False
        self.stop_accepting()
        os.write(self.wake_w, b"s")  # wake the main thread now

    def stuck(self) -> int:
        """How many serving threads are stuck in a timed-out request (never waited for)."""
        return self.watchdog.stuck_count() if self.watchdog is not None else 0

    def reap_idle(self, older_than: float, heads_too: bool = True) -> None:
        """Close parked connections whose last activity is before `older_than`."""
        for fd, conn in list(self.parked.items()):
            if conn.last_active >= older_than or (not heads_too and conn.head_since is not None):
                continue
            taken = self.parked.pop(fd, None)
            if taken is None:
                continue  # a serving thread has it now
            if taken.last_active < older_than:
                self.close(taken)
                continue
            # served and parked again since the snapshot (or a newer connection on a
            # reused fd): put it back, re-armed in case its wake-up came meanwhile
            self.parked[fd] = taken
            try:
                self.epoll.modify(fd, _ARM)
            except OSError as exc:
                self.log.debug("cannot re-arm %s: %s", taken.peer, exc)

    def reap_slow_heads(self, started_before: float) -> None:
        """Answer 408 and close parked connections whose request head began before the limit."""
        for fd, conn in list(self.parked.items()):
            since = conn.head_since
            if since is None or since >= started_before:
                continue
            if self.parked.pop(fd, None) is not conn:
                continue  # a serving thread took it meanwhile
            if conn.head_since is None or conn.head_since >= started_before:
                self.park(conn)  # served and parked again since the snapshot
                continue
            try:
                conn.recv_ready()  # what came since: unread bytes at close() would send a RST
            except ClientDisconnected:
                self.close(conn)
                continue
            self.serving.refuse(conn, RequestHeadTimeout())
            self.close(conn)

    def stop_accepting(self) -> None:
        """Take the listeners out of the epoll set (idempotent)."""
        with self.lock:
            if not self.accepting:
                return
            self.accepting = False
        for fd in list(self.listeners):
            try:
                self.epoll.unregister(fd)
            except OSError as exc:
                self.log.debug("listener %d already out of epoll: %s", fd, exc)

    def stop(self, threads: list[threading.Thread]) -> None:
        """Graceful stop: no more accepts; every connection ends after a `Connection: close`
        answer, or once idle through the drain grace (see `gcorn.workers.draining`)."""
        self.stop_accepting()
        if self.watchdog is None or not self.watchdog.exhausted:
            self.take_backlog()
        # else no thread is left to serve them: the queued clients stay in the kernel's
        # backlog, for the worker the arbiter starts next
        grace = idle_grace(self.keepalive)
        deadline = time.monotonic() + graceful_timeout(self.cfg)
        # the serving threads still answer what arrives on parked connections
        self.reap_idle(time.monotonic() - grace)
        # a connection held by a thread stuck past request_timeout was answered already
        while self.nconns > self.stuck() and time.monotonic() < deadline:
            self.notify()
            time.sleep(0.05)
            self.reap_idle(time.monotonic() - grace)
        self.running = False
        os.write(self.stop_w, b"x")
        stuck = self.watchdog.stuck_threads() if self.watchdog is not None else set()
        for thread in threads:
            if thread.ident not in stuck:
                thread.join(max(deadline - time.monotonic(), 0.1))
        if self.watchdog is not None:
            self.watchdog.stop()
        self.reap_idle(float("inf"))
        if self.h2 is not None:
            self.h2.shutdown()
        self.epoll.close()
        os.close(self.stop_r)
        os.close(self.stop_w)

    def take_backlog(self) -> None:
        """Graceful stop: take the clients queued on the listeners, close them, serve those."""
        with self.lock:
            entries = list(self.listeners.values())
            self.listeners.clear()
        for sock, _listener in entries:
            self.serving.handler.environ.remember_listener(sock)
            for client, addr in take_backlog(sock):
                with self.lock:
                    self.nconns += 1
                    self.stats.connection_opened()
                conn = self.serving.open(client, addr, sock)
                if conn is None:
                    self.forget()
                    continue
                if self.serving.proxy.enabled:
                    self.fresh.add(conn.fd)
                self.park(conn)  # a serving thread answers it (with close) once it is readable

    # -- serving threads -------------------------------------------------------

    def serve_forever(self) -> None:
        """One serving thread: wait for a ready socket, serve it, repeat."""
        poll = self.epoll.poll
        listeners = self.listeners
        parked = self.parked
        while self.running:
            try:
                events = poll(_WAIT, 1)
            except (OSError, ValueError):
                if not self.running:
                    return
                raise
            for fd, _ in events:
                if fd == self.stop_r:
                    return
                entry = listeners.get(fd)
                if entry is not None:
                    self.accept(fd, entry)
                    continue
                conn = parked.pop(fd, None)
                if conn is not None:  # None: the reaper took it first
                    try:
                        first = bool(self.fresh) and fd in self.fresh
                        if first:
                            self.fresh.discard(fd)
                        self.serve(conn, first=first)
                    except Exception:
                        self.log.exception("unexpected error serving a connection")
                        self.close(conn)

    def accept(self, fd: int, entry: tuple[Any, Any]) -> None:
        """Accept one client, re-arm the listener, then serve the client."""
        sock, listener = entry
        # under the lock, and only while accepting: once `stop_accepting` returns no
        # thread takes a connection that `stop` would not count and wait for
        with self.lock:
            if not self.accepting:
                return
            try:
                client, addr = sock.accept()
            except (BlockingIOError, InterruptedError):
                client = None
            except OSError as exc:
                self.log.error("accept() failed on %s: %s", listener, exc)
                client = None
            if client is not None:
                self.nconns += 1
                self.stats.connection_opened()
        self.rearm_listener(fd)
        if client is None:
            return
        conn = self.serving.open(client, addr, sock)
        if conn is None:
            self.forget()
            return
        try:
            self.serve(conn, first=True)
        except Exception:
            self.log.exception("unexpected error serving a connection")
            self.close(conn)

    def rearm_listener(self, fd: int) -> None:
        """Let the listener wake a thread again, unless stopping or full."""
        if not self.accepting or self.nconns >= self.max_conns:
            return
        try:
            self.epoll.modify(fd, _ARM)
        except (OSError, ValueError):
            pass  # stopped meanwhile: the listener was unregistered

    def forget(self) -> None:
        """Count one connection less, and accept again if the limit had stopped it."""
        with self.lock:
            self.nconns -= 1
            self.stats.connection_closed()
            was_full = self.nconns == self.max_conns - 1
        if was_full:
            for fd in self.listeners:
                self.rearm_listener(fd)

    def serve(self, conn: Connection, first: bool = False) -> None:
        """Serve the requests of `conn` that are there; park it when it has none."""
        serving = self.serving
        try:
            if first and serving.proxy.enabled:
                serving.proxy.read(conn)
            if first and self.h2 is not None and conn.is_tls and self.h2.takes(conn, None):
                self.h2.hand_over(conn, b"", self.close)  # ALPN chose h2
                return
            served = 0
            while True:
                if not conn.events:
                    conn.raise_error()
                    if served >= _BURST:
                        # fairness: other connections are waiting in epoll's ready list
                        self.park(conn)
                        return
                    data = conn.recv_ready()
                    if data is None:
                        self.park(conn)
                        return
                    if (self.h2 is not None and not conn.requests and conn.head_since is None
                            and self.h2.takes(conn, data)):
                        self.h2.hand_over(conn, data, self.close)  # the h2c preface
                        return
                    conn.feed(data)
                    if not data:
                        self.close(conn)
                        return
                    if not conn.events:
                        if conn.head_since is None:
                            conn.head_since = time.monotonic()  # header_timeout runs from here
                        continue
                head = conn.events.popleft()
                conn.head_since = None
                if (self.h2 is not None and head.upgrade is not None
                        and all(type(e) is EndOfMessage for e in conn.events)
                        and self.h2.takes_upgrade(conn, head)):
                    self.h2.upgrade(conn, head, self.close)  # `Upgrade: h2c`
                    return
                keep = serving.handler.serve(conn, head, closing=not self.alive)
                conn.requests += 1
                served += 1
                if conn.timed_out:  # answered by the request_timeout watchdog: never kept
                    self.close(conn)
                    return
                if self.nr >= self.max_requests and self.alive:
                    self.log.info("Autorestarting worker after current request.")
                    self.stats.exiting(ExitReason.MAX_REQUESTS)
                    self.alive = False
                    self.stop_accepting()
                    os.write(self.wake_w, b"m")  # wake the main thread now
                # a response that promised keep-alive is honoured even if the worker
                # began stopping meanwhile: the next request is answered (with close)
                if not keep or self.keepalive <= 0:
                    self.close(conn, linger=conn.unread_body)
                    return
        except ClientDisconnected as exc:
            self.log.debug("client %s went away: %s", conn.peer, exc)
            self.close(conn)
        except RequestTimeout:
            # the watchdog's interruption arrived outside the app call: already answered
            if self.watchdog is not None:
                self.watchdog.release_current()
            self.close(conn)
        except (ParseError, WorkerError) as exc:
            serving.refuse(conn, exc)
            self.close(conn, linger=True)
        except Exception:
            # a bug below us (parser, hook) must cost one connection, not a thread
            self.log.exception("unexpected error serving %s", conn.peer)
            serving.handler.send_error(conn, 500, "Internal Server Error")
            self.close(conn)

    def park(self, conn: Connection) -> None:
        """Hand an idle connection back to epoll until its next bytes arrive."""
        conn.last_active = time.monotonic()
        fd = conn.fd
        self.parked[fd] = conn
        try:
            if conn.registered:
                self.epoll.modify(fd, _ARM)
            else:
                # flag first: once registered, another thread may serve and park it
                # again before this one runs its next line
                conn.registered = True
                try:
                    self.epoll.register(fd, _ARM)
                except FileExistsError:
                    self.epoll.modify(fd, _ARM)
        except (OSError, ValueError) as exc:
            if self.parked.pop(fd, None) is conn:
                self.log.debug("cannot park %s: %s", conn.peer, exc)
                self.close(conn)

    def close(self, conn: Connection, linger: bool = False) -> None:
        """Forget and close a connection (once: later calls do nothing)."""
        if conn.closed:
            return
        if conn.registered:
            conn.registered = False
            try:
                self.epoll.unregister(conn.fd)
            except (OSError, ValueError):
                pass  # the epoll set is already closed (worker stopping)
        conn.close(linger=linger)
        self.forget()
