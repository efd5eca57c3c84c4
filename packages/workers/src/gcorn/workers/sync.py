"""`sync`: one request at a time per process, the connection closed after each response.

That is gunicorn's sync worker behaviour (no keep-alive): with several
workers the kernel spreads the accepts between them.
"""

from __future__ import annotations

import select
import time
from typing import Any

from gcorn.arbiter import ExitReason, Worker
from gcorn.http import ParseError
from gcorn.workers.deadline import AlarmGuard, RequestTimeout
from gcorn.workers.draining import SHUTDOWN_IDLE_GRACE, take_backlog
from gcorn.workers.errors import ClientDisconnected, WorkerError
from gcorn.workers.wsgi_serving import (
    WsgiServing,
    boot_serving,
    drain_wakeup_fd,
    raw_socket,
    signal_wakeup_fd,
)

__all__ = ["SyncWorker"]


class SyncWorker(Worker):
    """The gunicorn-compatible synchronous WSGI worker."""

    def run(self) -> None:
        """Accept and serve until told to stop or orphaned."""
        serving = boot_serving(self, multithread=False)
        self.request_timeouts = 0  # requests ended by request_timeout
        if serving.handler.request_timeout > 0:
            # SIGALRM in the main thread: raised in the app's frame, a busy loop included
            serving.handler.guard = AlarmGuard(serving.handler.request_timeout)
        listeners = [raw_socket(s) for s in self.sockets]
        for sock in listeners:
            sock.setblocking(False)
        poller = select.poll()
        for sock in listeners:
            poller.register(sock.fileno(), select.POLLIN)
        wakeup, _ = signal_wakeup_fd()
        poller.register(wakeup, select.POLLIN)
        wait_ms = int(min(self.timeout / 2.0, 1.0) * 1000) if self.timeout > 0 else 1000
        next_parent_check = 0.0
        while self.alive:
            self.notify()
            accepted = False
            for index, sock in enumerate(listeners):
                try:
                    client, addr = sock.accept()
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as exc:
                    self.log.error("accept() failed on %s: %s", self.sockets[index], exc)
                    continue
                accepted = True
                self.serve_client(serving, client, addr, self.sockets[index])
                if self.nr >= self.max_requests:
                    self.log.info("Autorestarting worker after current request.")
                    self.stats.exiting(ExitReason.MAX_REQUESTS)
                    self.alive = False
                    break
                if not self.alive:
                    break
            if accepted:
                continue  # more clients may be waiting: accept again before polling
            now = time.monotonic()
            if now >= next_parent_check:
                next_parent_check = now + 1.0
                if self.master_gone():
                    return
            for fd, _ in poller.poll(wait_ms):
                if fd == wakeup:
                    drain_wakeup_fd(wakeup)
        self.serve_backlog(serving, listeners)

    def serve_backlog(self, serving: WsgiServing, listeners: list[Any]) -> None:
        """Graceful stop: serve the clients already queued on the listeners, then exit."""
        for sock in listeners:
            serving.handler.environ.remember_listener(sock)
        taken = [(entry, self.sockets[index]) for index, sock in enumerate(listeners)
                 for entry in take_backlog(sock)]
        for (client, addr), listener in taken:
            self.notify()
            # a queued client has sent its request or is about to: wait a short grace only
            self.serve_client(serving, client, addr, listener, first_byte_wait=SHUTDOWN_IDLE_GRACE)

    def serve_client(self, serving: WsgiServing, client: Any, addr: Any, listener: Any,
                     first_byte_wait: float = 0.0) -> None:
        """Serve the one request of a connection, then close it."""
        stats = self.stats
        stats.connection_opened()
        conn = serving.open(client, addr, raw_socket(listener))
        if conn is None:
            stats.connection_closed()
            return
        linger = False
        try:
            limit = serving.header_timeout
            if first_byte_wait > 0:
                limit = min(limit, first_byte_wait) if limit > 0 else first_byte_wait
            if limit > 0:
                # from the accept: an idle or dribbling client holds the only thread
                conn.deadline = time.monotonic() + limit
            head = serving.first_request(conn)
            conn.deadline = None
            if head is None:
                return
            serving.handler.serve(conn, head, closing=True)
            linger = conn.unread_body
        except ClientDisconnected as exc:
            self.log.debug("client %s went away: %s", addr, exc)
        except RequestTimeout:
            # the alarm fired between the app's end and its disarming: nothing to answer
            self.log.debug("request_timeout fired as the request of %s ended", addr)
        except (ParseError, WorkerError) as exc:
            conn.deadline = None
            serving.refuse(conn, exc)
            linger = True
        except Exception:
            # a bug below us (parser, hook) must cost one connection, not the worker
            self.log.exception("unexpected error serving %s", addr)
            serving.handler.send_error(conn, 500, "Internal Server Error")
        finally:
            conn.close(linger=linger)
            stats.connection_closed()
