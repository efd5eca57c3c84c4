"""The HTTP/1.1 connection of the ASGI worker: an asyncio.Protocol fed by gcorn.http's parser.

Requests of one connection are answered in order: while an app runs, the
next pipelined request waits (and the socket stops being read). The app of
every request runs in its own task; the connection object is the only thing
that reads the socket and writes the responses.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from gcorn.http import (
    Body,
    EndOfMessage,
    ParseError,
    ProxyHeaderReader,
    RequestHead,
    error_response,
)
from gcorn.workers.asgi.cycle import RequestCycle
from gcorn.workers.asgi.errors import ServiceUnavailable
from gcorn.workers.asgi.h2 import H2Protocol
from gcorn.workers.asgi.scope import METHODS, address, http_scope, method_str
from gcorn.workers.asgi.state import ServerState
from gcorn.workers.asgi.websocket import is_websocket_handshake, start_websocket
from gcorn.workers.errors import WorkerError
from gcorn.workers.exchange.access import AccessInfo
from gcorn.workers.exchange.hooks import HookRequest, HookResponse
from gcorn.workers.exchange.uwsgi import cgi_environ, uwsgi_scope

__all__ = ["HttpProtocol"]

_HTTP_VERSIONS = {(1, 1): "1.1", (1, 0): "1.0"}
# asyncio.Task(..., eager_start=True) exists from Python 3.12 on
EAGER_TASKS = sys.version_info >= (3, 12)


class HttpProtocol(asyncio.Protocol):
    """One client connection speaking HTTP/1.x (and, after an upgrade, WebSocket)."""

    __slots__ = (
        "client", "closed", "cycle", "error_after", "fresh", "h2_upgrade", "head_since", "idle_since",
        "loop", "parser", "peer", "pending",
        "proxy_reader", "running_pending",
        "read_paused", "scheme", "server", "state", "transport", "write_paused",
        "write_waiters", "ws",
    )

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.loop = state.loop
        self.transport: asyncio.Transport | None = None
        self.parser = state.new_parser()
        self.cycle: RequestCycle | None = None
        self.pending: deque[Any] = deque()
        self.running_pending = False
        # a bad request pipelined behind whole ones: answered once those are
        self.error_after: ParseError | None = None
        self.read_paused = 0  # bit 1: body high water, bit 2: pipelined request waiting
        self.write_paused = False
        self.write_waiters: list[asyncio.Future[None]] = []
        self.ws: Any = None
        self.closed = False
        self.fresh = state.h2_prior  # the first bytes may be the h2c preface
        self.h2_upgrade: Any = None  # (HTTP2-Settings, head) of an accepted `Upgrade: h2c`
        self.idle_since = state.clock
        self.head_since: float | None = None  # first byte of a head still incomplete
        self.client: tuple[str, int] | None = None
        self.server: tuple[str, int] | None = None
        self.peer: Any = None
        self.scheme = "http"
        # bytes of a PROXY protocol header still being read (None: not expected)
        self.proxy_reader = ProxyHeaderReader(state.proxy_mode) if state.proxy_mode != "off" \
            else None

    # -- asyncio.Protocol -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.peer = transport.get_extra_info("peername")
        self.client = address(self.peer)
        self.server = address(transport.get_extra_info("sockname"))
        if transport.get_extra_info("sslcontext") is not None:
            self.scheme = "https"
            if self.state.h2_ready:
                ssl_object = transport.get_extra_info("ssl_object")
                if ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2":
                    self._switch_to_h2(b"")
                    return
        if self.state.uwsgi_allow is not None:
            self.parser.peer = self.peer  # uwsgi_allow_ips is checked at the first bytes
        self.state.connections.add(self)

    def _switch_to_h2(self, data: bytes, upgrade: Any = None) -> None:
        """Hand the transport to an HTTP/2 connection (ALPN h2, h2c preface or upgrade)."""
        self.state.connections.discard(self)
        self.closed = True  # this object writes nothing more
        proto = H2Protocol(self.state, self.state.h2_options, self.peer, self.client,
                           self.server, self.scheme)
        proto.take_over(self.transport, data, upgrade)  # type: ignore[arg-type]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        state = self.state
        state.connection_gone(self)
        cycle = self.cycle
        if cycle is not None:
            cycle.lose_client()
            task = cycle.task
            if task is not None and not task.done():
                self.loop.call_later(self.state.disconnect_grace, _cancel_if_running, task)
        if self.ws is not None:
            self.ws.connection_lost()
        for waiter in self.write_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self.write_waiters.clear()

    def eof_received(self) -> bool | None:
        if self.ws is not None:
            self.ws.eof_received()
            return None
        if self.cycle is None and not self.pending:
            if self.proxy_reader is None:
                try:
                    self.parser.feed_eof()
                except ParseError as exc:
                    # half a head, then the end: answered as the other workers do
                    self._refuse(exc.status, str(exc))
            return None
        # A client that shuts down its sending side cannot be told apart from one
        # that went away: treat both as a disconnect (the app gets http.disconnect).
        return None

    def data_received(self, data: bytes) -> None:
        if self.ws is not None:
            self.ws.data_received(data)
            return
        if self.error_after is not None:
            return  # the next answer is that error, and the connection closes after it
        if self.proxy_reader is not None:
            rest = self._read_proxy_header(data)
            if not rest:
                return
            data = rest
        if self.fresh:
            self.fresh = False
            if self.state.is_h2c_preface(data, self.peer):
                self._switch_to_h2(data)
                return
        try:
            events = self.parser.feed(data)
        except ParseError as exc:
            if not exc.events:
                self._refuse(exc.status, str(exc))
                return
            self._serve_before_error(exc)
            return
        if not events:
            if self.head_since is None and self.cycle is None and not self.pending:
                self.head_since = time.monotonic()  # header_timeout runs from here
        elif self.head_since is not None:
            self.head_since = None
        if self.pending:
            self.pending.extend(events)
        elif (len(events) == 2 and self.cycle is None and type(events[1]) is EndOfMessage
              and type(events[0]) is RequestHead):
            # the common case, a whole body-less request: start it already complete
            self._start(events[0], (), True)
        else:
            self._dispatch(events)
        if self.parser.paused:
            self._after_upgrade_request()
        elif self.error_after is not None and self.cycle is None and not self.pending:
            self._refuse_after()

    def _serve_before_error(self, exc: ParseError) -> None:
        """Serve the whole requests that came before a bad one, then answer the error.

        As gunicorn does. The requests go through the queue: one that ends inside
        _start (an eager task, 3.12+) must not find the queue empty and answer the
        error before the requests behind it ran. Nothing read after the error counts.
        """
        self.error_after = exc
        self.head_since = None
        events = list(exc.events)
        first = next((i for i, e in enumerate(events) if type(e) is RequestHead), len(events))
        if self.pending:
            self.pending.extend(events)
        else:
            self.pending.extend(events[first:])
            if first and self.cycle is not None:
                self._dispatch(events[:first])  # the end of the body of the request in flight
            if self.cycle is None:
                self._run_pending()
        if self.pending:
            self._pause_reading(2)
        elif self.error_after is not None and self.cycle is None:
            self._refuse_after()

    def _refuse_after(self) -> None:
        """Answer the bad request that came behind the ones now served."""
        error, self.error_after = self.error_after, None
        assert error is not None
        self._refuse(error.status, str(error))

    def _read_proxy_header(self, data: bytes) -> bytes | None:
        """Consume a PROXY v1/v2 header first; the bytes after it, or None to wait."""
        try:
            found = self.proxy_reader.feed(data)  # type: ignore[union-attr]
        except ParseError as exc:
            self._refuse(exc.status, str(exc))
            return None
        if found is None:
            return None
        self.proxy_reader = None
        info, rest = found
        if info is not None:
            if not self.state.policy.proxy_allow.allows(self.peer):
                self._refuse(403, "PROXY header from a peer not in proxy_allow_ips")
                return None
            if info.command == "PROXY" and info.client_addr is not None:
                self.client = (info.client_addr, int(info.client_port or 0))
        return rest

    def _after_upgrade_request(self) -> None:
        # the parser stops after a request that asks for a protocol switch
        if self.h2_upgrade is not None:
            upgrade, self.h2_upgrade = self.h2_upgrade, None
            if self.closed:
                return
            self.transport.write(  # type: ignore[union-attr]
                b"HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: h2c\r\n\r\n")
            self._switch_to_h2(self.parser.take_unparsed() if self.parser.paused else b"",
                               upgrade)
            return
        if self.ws is not None:
            early = self.parser.take_unparsed()
            if early:
                self.ws.data_received(early)
            return
        try:
            events = self.parser.resume()  # switch declined: go on with HTTP/1.1
        except ParseError as exc:
            self._refuse(exc.status, str(exc))
            return
        if events:
            if self.pending:
                self.pending.extend(events)
            else:
                self._dispatch(events)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        for waiter in self.write_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self.write_waiters.clear()

    # -- events from the parser ---------------------------------------------------

    def _dispatch(self, events: list[Any]) -> None:
        count = len(events)
        index = 0
        while index < count:
            event = events[index]
            kind = type(event)
            if kind is RequestHead:
                if self.cycle is not None:
                    self.pending.extend(events[index:])
                    self._pause_reading(2)
                    return
                # the body pieces of this request that are already here go in
                # before its app starts
                end = index + 1
                while end < count and type(events[end]) is not RequestHead:
                    end += 1
                self._start(event, events[index + 1:end])
                if self.ws is not None:
                    return
                index = end
                continue
            if self.cycle is not None:  # more of the body of the request in flight
                if kind is Body:
                    self.cycle.feed_body(event.data)
                else:
                    self.cycle.end_body()
            index += 1

    def _run_pending(self) -> None:
        if self.running_pending:
            return  # a request finished inside _start below: the loop goes on
        self.running_pending = True
        pending = self.pending
        try:
            while pending and self.cycle is None and not self.closed and self.ws is None:
                event = pending.popleft()
                if type(event) is RequestHead:
                    body = []
                    while pending and type(pending[0]) is not RequestHead:
                        body.append(pending.popleft())
                    self._start(event, body)
        finally:
            self.running_pending = False
        if self.ws is not None:
            # a queued upgrade request took the connection over: what follows
            # it belongs to the WebSocket, not to HTTP
            pending.clear()
            if self.parser.paused:
                self._after_upgrade_request()
        if not pending:
            self._resume_reading(2)

    # -- a new request ------------------------------------------------------------------

    def _start(self, head: RequestHead, body: Sequence[Any] = (), complete: bool = False) -> None:
        state = self.state
        if self.closed or self.transport.is_closing():  # type: ignore[union-attr]
            return  # the previous response closed the connection
        minor = head.version[1]
        try:
            scheme, headers = state.policy.filter_headers(head.headers, self.peer, self.scheme)
        except WorkerError as exc:
            self._refuse(exc.status, exc.client_message, head)
            return
        if head.upgrade is not None and is_websocket_handshake(head, headers):
            self._start_websocket(head, scheme, headers)
            return
        if (head.upgrade is not None and self.state.h2_upgrade and self.cycle is None
                and self._h2c_upgrade(head, complete)):
            return
        method = METHODS.get(head.method) or method_str(head.method)
        scope = http_scope(state, _HTTP_VERSIONS.get(head.version) or head.http_version,
                           self.server, self.client, scheme, method, head.path, head.query,
                           headers)
        full_path = scope["path"]
        if minor:
            # HTTP/1.1's chunked coding can end a body with trailer fields
            scope["extensions"] = {"http.response.trailers": {}}
        if state.uwsgi_allow is not None:
            # the packet's variables, not the socket, say who and where (gcorn.workers.exchange.uwsgi);
            # the client is the access log's too (one request per connection)
            scheme, full_path, self.client = uwsgi_scope(scope, cgi_environ(
                self.parser.variables, self.peer, _text_address(self.server), state.root_path,
                self.scheme == "https"))
        cycle = RequestCycle(self, scope, minor, head.keep_alive and state.keep_alive_ok,
                             head.expects_continue, method == "HEAD")
        self.cycle = cycle
        if complete or not (head.chunked or head.content_length):
            # a request without a body is whole at its head
            cycle.body_complete = True
        cycle.start_time = time.monotonic()  # the access log's request time, and metrics
        if state.limit_concurrency and state.in_flight >= state.limit_concurrency:
            self._answer_at_once(cycle, ServiceUnavailable.status, ServiceUnavailable.reason)
            return
        hooks = state.hooks
        if hooks.wanted:
            cycle.hook_req = HookRequest(
                method, head.target.decode("latin-1"), full_path,
                head.query.decode("latin-1"), head.version, headers, scheme)
            try:
                hooks.run_pre(cycle.hook_req)
            except Exception:
                # as on the WSGI workers (and gunicorn): a failing pre_request fails the request
                state.log.exception("Error handling request %s", full_path)
                self._answer_at_once(cycle, 500, "Internal Server Error")
                hooks.run_post(cycle.hook_req, scope, HookResponse(500, (), 0))
                return
        for event in body:
            if type(event) is Body:
                cycle.feed_body(event.data)
            else:
                cycle.end_body()
        state.in_flight += 1
        state.worker.stats.begin()  # ended in RequestCycle.run's finally
        if EAGER_TASKS:
            # Python 3.12+: the app starts at once and, for most requests, ends
            # without a trip through the event loop; it still runs in a Task
            task = asyncio.Task(cycle.run(state.app), loop=self.loop,
                                eager_start=True)  # type: ignore[call-arg,unused-ignore]
        else:
            task = self.loop.create_task(cycle.run(state.app))
        if not task.done():
            cycle.task = task
            state.tasks.add(task)

    def _answer_at_once(self, cycle: RequestCycle, status: int, reason: str) -> None:
        """Answer `cycle` with a plain error, without running the app, and close after it."""
        cycle.keep_alive = False
        cycle.status = status
        cycle.response_started = cycle.response_complete = True
        self.write(error_response(status, reason))
        self.response_done(cycle)

    def _h2c_upgrade(self, head: RequestHead, complete: bool) -> bool:
        """RFC 7540 3.2: a body-less request with `Upgrade: h2c` and HTTP2-Settings from a
        trusted peer switches to HTTP/2; the request becomes stream 1."""
        tokens = [t.strip() for t in head.upgrade.lower().split(b",")]  # type: ignore[union-attr]
        if b"h2c" not in tokens:
            return False
        settings = [v for k, v in head.headers if k == b"http2-settings"]
        if (len(settings) != 1 or not (complete or not (head.chunked or head.content_length))
                or not self.state.policy.trusted.allows(self.peer) or self.pending):
            return False
        self.h2_upgrade = (settings[0].strip(), head)
        if not self.parser.paused:
            self._after_upgrade_request()
        return True

    def _start_websocket(self, head: RequestHead, scheme: str,
                         headers: Sequence[tuple[bytes, bytes]]) -> None:
        self.ws = start_websocket(self, head, scheme, headers)

    # -- called by the request cycle ------------------------------------------------

    def write(self, data: bytes) -> None:
        """Write to the client unless the connection is already gone."""
        if not self.closed:
            self.transport.write(data)  # type: ignore[union-attr]

    async def drain(self) -> None:
        """Wait until the transport's write buffer is below its high-water mark."""
        if self.write_paused and not self.closed:
            waiter = self.loop.create_future()
            self.write_waiters.append(waiter)
            await waiter

    def abort(self) -> None:
        """Close the connection at once (a broken response cannot be finished)."""
        if not self.closed and self.transport is not None:
            self.transport.close()

    def response_done(self, cycle: RequestCycle) -> None:
        """The response of `cycle` is complete: log it, then close or serve the next request."""
        state = self.state
        worker = state.worker
        worker.nr += 1
        if worker.nr >= state.max_requests:
            state.max_requests_reached()
        if state.access_enabled:
            self._log_access(cycle)
        if cycle is not self.cycle:
            return
        self.cycle = None
        # a stopping worker still honours the keep-alive this response promised: the
        # next request gets `connection: close` (keep_alive_ok is off), or the drain
        # grace closes the connection if none comes
        if not cycle.keep_alive or not cycle.body_complete:
            # an unread request body cannot be skipped safely: close instead
            if not self.closed:
                self.transport.close()  # type: ignore[union-attr]
            return
        if self.read_paused & 1:
            self._resume_reading(1)
        if self.pending:
            self._run_pending()
        if self.cycle is None:
            if self.error_after is not None and not self.pending:
                self._refuse_after()
                return
            self.idle_since = state.clock

    def _log_access(self, cycle: RequestCycle) -> None:
        peer = self.client[0] if self.client else str(self.peer or "")
        try:
            self.state.log.access(cycle.access_info(peer, time.monotonic() - cycle.start_time))
        except Exception:
            self.state.log.exception("Failed to write the access log line")

    def pause_reading_for_body(self) -> None:
        """Too much unread request body: stop reading the socket."""
        self._pause_reading(1)

    def resume_reading_for_body(self) -> None:
        """The app took the buffered body: read the socket again."""
        if self.read_paused & 1:
            self._resume_reading(1)

    def _pause_reading(self, reason: int) -> None:
        if not self.read_paused and not self.closed:
            self.transport.pause_reading()  # type: ignore[union-attr]
        self.read_paused |= reason

    def _resume_reading(self, reason: int) -> None:
        was = self.read_paused
        self.read_paused &= ~reason
        if was and not self.read_paused and not self.closed:
            self.transport.resume_reading()  # type: ignore[union-attr]

    # -- errors and shutdown ----------------------------------------------------------

    def _refuse(self, status: int, message: str, head: RequestHead | None = None) -> None:
        state = self.state
        peer = self.client[0] if self.client else "-"
        state.log.debug("Invalid request from ip=%s: %s", peer, message)
        if self.cycle is not None and not self.cycle.response_complete:
            # the request in flight still gets its answer; nothing after it
            self.pending.clear()
            self.cycle.keep_alive = False
            self._pause_reading(2)
            return
        data = error_response(status, message)
        self.write(data)
        if state.access_enabled:
            # as on the WSGI workers (and gunicorn): refused requests are logged too
            try:
                state.log.access(AccessInfo.refused(
                    str(peer), status, len(data) - data.index(b"\r\n\r\n") - 4, 0.0, head))
            except Exception:
                state.log.exception("Failed to write the access log line")
        self.closed_after_error()

    def closed_after_error(self) -> None:
        """Close after an error answer has been written."""
        if self.transport is not None and not self.closed:
            self.transport.close()
        self.pending.clear()

    def is_idle(self) -> bool:
        """No request in flight and nothing queued: safe to close."""
        return self.cycle is None and not self.pending and self.ws is None

    def close_if_idle_for(self, now: float, limit: float, heads_too: bool = True) -> None:
        """Keep-alive sweep: close a connection idle for longer than `limit` seconds.

        With `heads_too` false, one whose next request head has begun is left to
        `close_if_head_late` (header_timeout), not to the keep-alive wait.
        """
        if (self.is_idle() and now - self.idle_since > limit and self.transport is not None
                and (heads_too or self.head_since is None)):
            self.transport.close()

    def close_if_head_late(self, limit: float) -> None:
        """header_timeout: a head begun more than `limit` seconds ago gets 408, then close."""
        since = self.head_since
        if since is None or self.cycle is not None or self.closed or self.pending:
            return
        elapsed = time.monotonic() - since
        if elapsed <= limit:
            return
        self.head_since = None
        state = self.state
        body = error_response(408, "Request Timeout")
        self.write(body)
        self.closed_after_error()
        if state.access_enabled:
            # as the WSGI workers: a refused request is in the access log, '-' where unknown
            peer = self.client[0] if self.client else str(self.peer or "-")
            info = AccessInfo(
                remote_addr=peer, method="-", raw_uri="-", path="-", query="", protocol="-",
                status=408, bytes_sent=len(body) - body.index(b"\r\n\r\n") - 4,
                request_time=elapsed,
                response_headers=[("content-type", "text/plain; charset=utf-8"),
                                  ("connection", "close")])
            try:
                state.log.access(info)
            except Exception:
                state.log.exception("Failed to write the access log line")

    def shutdown(self) -> None:
        """Graceful stop: the response not yet begun says `connection: close`.

        An idle connection stays open for the drain grace (the worker's sweep
        closes it), and requests already received are still answered: closing
        under a client that has just sent one is what loses requests.
        """
        if self.ws is not None:
            self.ws.shutdown()
        elif (self.cycle is not None and not self.cycle.response_started
              and not self.pending):
            self.cycle.keep_alive = False


def _text_address(address: tuple[str, int] | None) -> tuple[str, str]:
    return ("", "") if address is None else (address[0], str(address[1]))


def _cancel_if_running(task: asyncio.Task[None]) -> None:
    if not task.done():
        task.cancel()
