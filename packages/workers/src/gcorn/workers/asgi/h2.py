"""HTTP/2 connections of the ASGI worker: every stream is its own ASGI http scope, run concurrently.

`H2Protocol` takes a transport over from `HttpProtocol` (ALPN "h2" after the
TLS handshake, the h2c preface, or `Upgrade: h2c`). The connection itself
(h2's state machine, event dispatch, stream admission, the server's own
frames) is `gcorn.workers.h2session.H2ServerSession`; this module supplies
the asyncio side: one task per stream, writes through the transport once per
loop iteration, futures that wake a stream. Flow control runs both ways:
request DATA is acknowledged (the window reopened) only once the app has
received it, and a response waits for the client's window (up to `timeout`
seconds) rather than being buffered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from gcorn.workers import deadline
from gcorn.workers.asgi.connection import ClientDisconnected
from gcorn.workers.asgi.errors import AppProtocolError
from gcorn.workers.asgi.receive import ReceiveSide
from gcorn.workers.asgi.scope import http_scope
from gcorn.workers.asgi.state import ServerState
from gcorn.workers.errors import WorkerError
from gcorn.workers.exchange.access import AccessInfo
from gcorn.workers.exchange.hooks import HookRequest, HookResponse
from gcorn.workers.h2session import ENHANCE_YOUR_CALM, INTERNAL_ERROR, H2ServerSession
from gcorn.workers.http2 import (
    H2Options,
    RequestFields,
    date_server_fields,
    response_fields,
    trailer_fields,
)

__all__ = ["H2Protocol"]

Message = dict[str, Any]

# bytes queued in the transport past which the peer counts as not reading (a safety
# net: input is not read while output is paused, and each stream queues at most
# _SEND_BATCH before it waits for the transport to drain)
_OUTPUT_LIMIT = 16 * 1024 * 1024
_SEND_BATCH = 64 * 1024


class H2Stream(ReceiveSide):
    """One request/response exchange on a stream: body in, response out, the app task."""

    __slots__ = (
        "body", "body_complete", "bytes_sent", "disconnected", "final_body_sent", "final_sent",
        "head_pending",
        "hook_req", "is_head", "proto", "response_complete", "response_headers",
        "response_started", "scope", "sid", "start_time", "status", "task", "timer",
        "trailers", "waiter", "window_waiter",
    )

    def __init__(self, proto: H2Protocol, sid: int, scope: Message, is_head: bool) -> None:
        self.proto = proto
        self.sid = sid
        self.scope = scope
        self.is_head = is_head
        self.body: list[tuple[bytes, int]] = []  # (data, flow-controlled length)
        self.body_complete = False
        self.final_sent = False
        self.final_body_sent = False
        self.disconnected = False
        self.waiter: asyncio.Future[None] | None = None
        self.window_waiter: asyncio.Future[None] | None = None
        self.response_started = False
        self.response_complete = False
        self.head_pending: tuple[int, Any] | None = None
        self.trailers = False
        self.status = 0
        self.response_headers: Sequence[tuple[bytes, bytes]] = []
        self.bytes_sent = 0
        self.start_time = 0.0
        self.hook_req: HookRequest | None = None
        self.task: asyncio.Task[None] | None = None
        self.timer: asyncio.TimerHandle | None = None  # request_timeout's, while the app runs

    # -- fed by the connection -----------------------------------------------------

    def feed_body(self, data: bytes, flow_length: int) -> None:
        """Buffer a DATA frame; its window reopens when the app takes it."""
        self.body.append((data, flow_length))
        self._wake()

    def lose_client(self) -> None:
        """RST_STREAM or a lost connection: `receive` says http.disconnect, `send` raises."""
        super().lose_client()
        self.wake_window()

    def wake_window(self) -> None:
        """The send window may have grown (WINDOW_UPDATE, SETTINGS) or the stream ended."""
        waiter = self.window_waiter
        if waiter is not None:
            self.window_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -- the app's side -------------------------------------------------------------

    def _take_body(self) -> bytes:
        pieces = self.body
        self.body = []
        data = b"".join(piece for piece, _ in pieces)
        flow = sum(length for _, length in pieces)
        if flow:
            self.proto.ack(self.sid, flow)
        return data

    async def send(self, message: Message) -> None:
        """ASGI `send`: response start, body pieces and (when announced) trailers."""
        kind = message["type"]
        if self.disconnected:
            raise ClientDisconnected("the client reset the stream")
        proto = self.proto
        if kind == "http.response.start" and not self.response_started:
            self.response_started = True
            self.trailers = bool(message.get("trailers", False))
            self.head_pending = (message["status"], message.get("headers", ()))
            return
        if kind == "http.response.body" and self.response_started and not self.final_body_sent:
            body = message.get("body", b"")
            more = bool(message.get("more_body", False))
            end = not more and not self.trailers
            if self.head_pending is not None:
                self._send_head(None if more else len(body), end and (self.is_head or not body))
            if self.is_head:
                body = b""
                if end and not self.response_complete:
                    self._complete()
                elif not more:
                    self.final_body_sent = True
                return
            if body or end:
                await proto.send_data(self, body, end)
            self.bytes_sent += len(body)
            if end:
                self._complete()
            elif not more:
                self.final_body_sent = True
            return
        if kind == "http.response.trailers" and self.trailers and not self.response_complete:
            if self.head_pending is not None:
                self._send_head(None, False)
            more = bool(message.get("more_trailers", False))
            try:
                fields = trailer_fields(message.get("headers", ()))
            except ValueError as exc:
                raise AppProtocolError(str(exc)) from None
            if fields or not more:
                proto.send_trailers(self, fields, not more)
            if not more:
                self._complete()
            return
        if not self.response_started:
            raise AppProtocolError(f"expected http.response.start, got {kind!r}")
        if self.response_complete:
            raise AppProtocolError(f"{kind!r} sent after the response was complete")
        raise AppProtocolError(f"unexpected {kind!r}")

    def _send_head(self, length: int | None, end: bool) -> None:
        assert self.head_pending is not None
        status, headers = self.head_pending
        self.head_pending = None
        try:
            fields = response_fields(status, headers, date_server_fields(), length)
        except ValueError as exc:
            raise AppProtocolError(str(exc)) from None
        self.status = status
        self.response_headers = [(bytes(k).lower(), bytes(v)) for k, v in headers]
        self.proto.send_headers(self, fields, end)

    def _complete(self) -> None:
        self.response_complete = True
        self._wake()
        self.proto.stream_done(self)

    # -- the app task ---------------------------------------------------------------

    async def run(self, app: Any) -> None:
        """Run the app for this stream; an error becomes a 500 or a reset stream."""
        proto = self.proto
        state = proto.state
        try:
            await app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            state.log.debug("h2 stream %d reset before its response was sent", self.sid)
        except asyncio.CancelledError:
            if not self.disconnected:
                state.log.warning("ASGI app task cancelled before its response was complete")
                self._fail()
            raise
        except Exception as exc:
            state.log.exception("Exception in ASGI application")
            self._fail(str(exc))
        else:
            if not self.response_complete and not self.disconnected:
                state.log.error("ASGI callable returned without completing the response")
                self._fail()
        finally:
            state.in_flight -= 1
            state.worker.stats.end(self.scope["method"], self.status,
                                   time.monotonic() - self.start_time)
            if self.task is not None:
                state.tasks.discard(self.task)
            proto.task_done(self)
            if self.hook_req is not None:
                state.hooks.run_post(self.hook_req, self.scope, HookResponse(
                    self.status, self.response_headers, self.bytes_sent))

    def _fail(self, detail: str = "", status: int = 500,
              message: str = "Internal Server Error") -> None:
        if self.response_complete or self.disconnected:
            return
        proto = self.proto
        if self.head_pending is not None or not self.response_started:
            self.head_pending = None
            self.response_started = True
            self.status = status
            proto.send_error(self, status, message)
            self._complete()
        else:
            # part of the response is out: resetting the stream is the honest signal
            self.response_complete = True
            proto.reset(self.sid, INTERNAL_ERROR)
            proto.stream_done(self)

    def time_out(self) -> None:
        """request_timeout passed: log where the app task is, answer 504 on this stream (or
        reset it if the response had started), cancel the task; the other streams go on."""
        self.timer = None
        if deadline.time_out_task(self, self.proto.state, self._answer_timeout,
                                  gone="the client had reset the stream", cut="stream reset"):
            # what the app still sends is dropped (send raises ClientDisconnected), and the
            # cancellation is not taken for an app failure
            self.lose_client()

    def _answer_timeout(self) -> None:
        # part of the response is out: only this stream is reset, not the connection
        self._fail(status=deadline.STATUS, message=deadline.MESSAGE)

    def access_info(self, peer: str, request_time: float) -> AccessInfo:
        """The access-log record of this exchange (`%(H)s` is HTTP/2.0)."""
        return AccessInfo.from_scope(self.scope, peer, self.status, self.bytes_sent,
                                     request_time, self.response_headers, protocol="HTTP/2.0")


class H2Protocol(H2ServerSession, asyncio.Protocol):
    """One client connection speaking HTTP/2, its streams served by asyncio tasks."""

    streams: dict[int, H2Stream]  # streams whose app task still runs

    def __init__(self, state: ServerState, options: H2Options, peer: Any,
                 client: tuple[str, int] | None, server: tuple[str, int] | None,
                 scheme: str) -> None:
        super().__init__(options, state.log, client)
        self.state = state
        self.loop = state.loop
        self.peer = peer
        self.client = client
        self.server = server
        self.scheme = scheme
        self.transport: asyncio.Transport | None = None
        self.write_paused = False
        self.write_waiters: list[asyncio.Future[None]] = []
        self.idle_since = state.clock
        self.head_since: float | None = None
        self.read_paused = 0
        self.discarding = False  # after an error GOAWAY: input is read and dropped
        self.flush_scheduled = False

    # -- taking the transport over ---------------------------------------------------

    def take_over(self, transport: asyncio.Transport, data: bytes = b"",
                  upgrade: tuple[bytes, Any] | None = None) -> None:
        """Serve `transport` from now on; `data` is what was read already; `upgrade` is
        (HTTP2-Settings, the HTTP/1 request head) of an `Upgrade: h2c` request."""
        self.transport = transport
        transport.set_protocol(self)
        self.state.connections.add(self)
        self.initiate(None if upgrade is None else upgrade[1])
        self.flush()
        if data:
            self.data_received(data)

    # -- asyncio.Protocol -------------------------------------------------------------

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        state = self.state
        state.connection_gone(self)
        for stream in list(self.streams.values()):
            self._lose(stream)
        for waiter in self.write_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self.write_waiters.clear()

    def eof_received(self) -> bool | None:
        return None

    def pause_writing(self) -> None:
        self.write_paused = True
        # a peer that does not read what it is sent is not read either: the answers to
        # its frames (PING ACKs, SETTINGS ACKs, RSTs) cannot pile up in the worker
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()
        for waiter in self.write_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self.write_waiters.clear()

    def data_received(self, data: bytes) -> None:
        if self.closed or self.discarding:
            return
        if self.receive(data):
            self.flush()

    # -- what H2ServerSession leaves to the worker ------------------------------------------

    def _failed(self) -> None:
        self.flush_now()
        self._close_after_error()

    def _terminated(self) -> None:
        self.flush_now()
        self._close()

    def _write_now(self, frame: bytes) -> None:
        if self.transport is not None:
            self.flush_now()
            self.transport.write(frame)

    def _window_grew(self, sid: int) -> None:
        if sid == 0:
            for stream in self.streams.values():
                stream.wake_window()
        else:
            one = self.streams.get(sid)
            if one is not None:
                one.wake_window()

    def _lose(self, stream: H2Stream) -> None:
        stream.lose_client()
        task = stream.task
        if task is not None and not task.done():
            # as on HTTP/1: the app hears http.disconnect first, then is cancelled
            self.loop.call_later(self.state.disconnect_grace, _cancel_if_running, task)

    def _open(self, sid: int, fields: RequestFields, ended: bool) -> None:
        try:
            scheme, headers = self.state.policy.filter_headers(fields.headers, self.peer,
                                                               self.scheme)
        except WorkerError as exc:
            self.answer_error(sid, exc.status, exc.client_message)
            return
        self._start(sid, fields.method, scheme, fields.path, fields.query, fields.target,
                    headers, ended)

    def _start(self, sid: int, method: str, scheme: str, raw_path: bytes, query: bytes,
               target: bytes, headers: Sequence[tuple[bytes, bytes]], ended: bool) -> None:
        state = self.state
        scope = http_scope(state, "2", self.server, self.client, scheme, method, raw_path,
                           query, headers)
        scope["extensions"] = {"http.response.trailers": {}}
        full_path = scope["path"]
        stream = H2Stream(self, sid, scope, method == "HEAD")
        if ended:
            stream.body_complete = True
        stream.start_time = time.monotonic()  # the access log's request time, and metrics
        if state.limit_concurrency and state.in_flight >= state.limit_concurrency:
            stream.status = 503
            self.send_error(stream, 503, "Service Unavailable")
            stream.response_started = stream.response_complete = True
            self._log(stream)
            return
        hooks = state.hooks
        if hooks.wanted:
            stream.hook_req = HookRequest(method, target.decode("latin-1"), full_path,
                                          query.decode("latin-1"), (2, 0), headers, scheme)
            try:
                hooks.run_pre(stream.hook_req)
            except Exception:
                # as on HTTP/1 and the WSGI workers: a failing pre_request fails the request
                state.log.exception("Error handling request %s", full_path)
                stream.status = 500
                self.send_error(stream, 500, "Internal Server Error")
                stream.response_started = stream.response_complete = True
                self._log(stream)
                hooks.run_post(stream.hook_req, stream.scope, HookResponse(500, (), 0))
                return
        self.streams[sid] = stream
        state.in_flight += 1
        state.worker.stats.begin()  # ended in H2Stream.run's finally: a stream is a request
        task = self.loop.create_task(stream.run(state.app))
        stream.task = task
        state.tasks.add(task)
        if state.request_timeout and not task.done():
            stream.timer = self.loop.call_later(state.request_timeout, stream.time_out)

    # -- output -------------------------------------------------------------------------

    def flush(self) -> None:
        """Write what h2 has queued, once per loop iteration: the frames of every stream
        that answered meanwhile leave in one write."""
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self.flush_now)

    def flush_now(self) -> None:
        """Write what h2 has queued now; a peer that stops reading is cut off."""
        self.flush_scheduled = False
        data = self.h2.data_to_send()
        if data and not self.closed and self.transport is not None:
            self.transport.write(data)
            if self.transport.get_write_buffer_size() > _OUTPUT_LIMIT:
                self.state.log.warning("h2 client %s does not read; closing", self.client)
                self.abort()

    def send_headers(self, stream: H2Stream, fields: list[tuple[bytes, bytes]],
                     end: bool) -> None:
        """The response head of `stream`."""
        if self.closed or stream.disconnected:
            raise ClientDisconnected("the client went away")
        self.h2.send_headers(stream.sid, fields, end_stream=end)
        self.flush()

    def send_trailers(self, stream: H2Stream, fields: list[tuple[bytes, bytes]],
                      end: bool) -> None:
        """Trailers of `stream` (a HEADERS frame after the body)."""
        if self.closed or stream.disconnected:
            raise ClientDisconnected("the client went away")
        if fields:
            self.h2.send_headers(stream.sid, fields, end_stream=end)
        elif end:
            self.h2.end_stream(stream.sid)
        self.flush()

    async def send_data(self, stream: H2Stream, data: bytes, end: bool) -> None:
        """Send body bytes as the peer's windows allow; `end` closes the stream."""
        from h2.exceptions import StreamClosedError

        h2 = self.h2
        sid = stream.sid
        view = memoryview(data)
        stalled_at: float | None = None  # when the window closed, for the stall limit
        batch = 0
        try:
            while True:
                if self.closed or stream.disconnected:
                    raise ClientDisconnected("the client went away")
                if not view:
                    if end:
                        h2.end_stream(sid)
                    break
                window = h2.local_flow_control_window(sid)
                if window <= 0:
                    self.flush()
                    if stalled_at is None:
                        stalled_at = time.monotonic()
                    await self._wait_window(stream, stalled_at)
                    continue
                stalled_at = None
                size = min(window, h2.max_outbound_frame_size, len(view))
                last = end and size == len(view)
                h2.send_data(sid, view[:size].tobytes(), end_stream=last)
                view = view[size:]
                if last:
                    break
                batch += size
                if batch >= _SEND_BATCH:
                    # a big body leaves in slices, each after the transport drained
                    batch = 0
                    self.flush_now()
                    await self._drained()
        except StreamClosedError:
            raise ClientDisconnected("the stream is closed") from None
        self.flush()
        await self._drained()

    async def _drained(self) -> None:
        if self.write_paused and not self.closed:
            waiter = self.loop.create_future()
            self.write_waiters.append(waiter)
            await waiter

    async def _wait_window(self, stream: H2Stream, stalled_at: float) -> None:
        waiter = stream.window_waiter
        if waiter is None or waiter.done():
            waiter = stream.window_waiter = self.loop.create_future()
        # the limit runs from when the window closed: frames that do not open it
        # (a connection-level update, a PING) do not restart it
        left = stalled_at + self.options.stall_timeout - time.monotonic()
        try:
            if left <= 0:
                raise TimeoutError
            await asyncio.wait_for(asyncio.shield(waiter), left)
        except TimeoutError:
            # zero-window stall: the client keeps the response (and a task) hanging
            self.state.log.info("h2 stream %d stalled on a closed window; reset", stream.sid)
            self.reset(stream.sid, ENHANCE_YOUR_CALM)
            self._lose(stream)
            raise ClientDisconnected("flow-control window stalled") from None

    def send_error(self, stream: H2Stream, status: int, message: str) -> None:
        """A plain-text error response on `stream`."""
        stream.bytes_sent = self.answer_error(stream.sid, status, message)
        stream.response_headers = [(b"content-type", b"text/plain; charset=utf-8")]

    # -- bookkeeping ----------------------------------------------------------------------

    def stream_done(self, stream: H2Stream) -> None:
        """The response of `stream` is complete: log and count it."""
        self.state.count_request()
        self._log(stream)

    def task_done(self, stream: H2Stream) -> None:
        """The app task of `stream` ended: forget the stream."""
        if stream.timer is not None:
            stream.timer.cancel()
            stream.timer = None
        self.streams.pop(stream.sid, None)
        if not self.streams:
            self.idle_since = self.state.clock
            if self.goaway_sent:
                self._close()

    def _log(self, stream: H2Stream) -> None:
        state = self.state
        if not state.access_enabled:
            return
        peer = self.client[0] if self.client else str(self.peer or "")
        try:
            state.log.access(stream.access_info(peer, time.monotonic() - stream.start_time))
        except Exception:
            state.log.exception("Failed to write the access log line")

    def _close_after_error(self) -> None:
        """Close a second after an error GOAWAY, reading meanwhile: closing with unread
        input makes the kernel send a RST, which can destroy the GOAWAY on its way."""
        self.discarding = True
        for stream in list(self.streams.values()):
            self._lose(stream)
        self.loop.call_later(1.0, self._close)

    def _close(self) -> None:
        if self.transport is not None and not self.closed:
            self.flush_now()
            self.transport.close()

    def abort(self) -> None:
        """Close the connection at once."""
        if self.transport is not None and not self.closed:
            self.transport.abort()
        self.closed = True

    def is_idle(self) -> bool:
        """No stream has an app running."""
        return not self.streams

    def close_if_idle_for(self, now: float, limit: float, heads_too: bool = True) -> None:
        """Idle sweep: GOAWAY and close after `limit` seconds without a stream."""
        if not self.streams and now - self.idle_since > limit and not self.closed:
            self.goaway()
            self._close()

    def close_if_head_late(self, limit: float) -> None:
        """header_timeout concerns HTTP/1 heads only (h2 header blocks come whole)."""

    def shutdown(self) -> None:
        """Graceful stop: GOAWAY (no new streams); open streams finish, then close."""
        self.goaway()
        if not self.streams:
            self._close()


def _cancel_if_running(task: asyncio.Task[None]) -> None:
    if not task.done():
        task.cancel()
