"""One HTTP request/response exchange with an ASGI app: `receive`, `send` and the app task."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from gcorn.http import CONTINUE, Framing, InvalidResponse, ResponseWriter, error_response
from gcorn.workers import deadline
from gcorn.workers.asgi.connection import ClientDisconnected, Connection
from gcorn.workers.asgi.errors import AppProtocolError
from gcorn.workers.asgi.receive import ReceiveSide
from gcorn.workers.exchange.access import AccessInfo
from gcorn.workers.exchange.hooks import HookRequest, HookResponse
from gcorn.workers.http2 import trailer_fields

__all__ = ["ClientDisconnected", "RequestCycle"]

Message = dict[str, Any]

# request body bytes buffered before the socket stops being read
BODY_HIGH_WATER = 256 * 1024
_LENGTH = Framing.LENGTH


class RequestCycle(ReceiveSide):
    """The state of one request: body received so far, response sent so far."""

    # Class-level defaults: a request only pays for the attributes it changes
    # (most GETs never touch the body or waiter fields).
    body: list[bytes] | tuple[()] = ()
    body_size = 0
    body_complete = False
    final_sent = False
    disconnected = False
    waiter: asyncio.Future[None] | None = None
    response_started = False
    response_complete = False
    head_pending: tuple[int, Any] | None = None
    status = 0
    writer: ResponseWriter | None = None  # the head, framing and keep-alive (gcorn.http)
    response_headers: list[tuple[bytes, bytes]] = []
    bytes_sent = 0
    start_time = 0.0
    hook_req: HookRequest | None = None
    task: asyncio.Task[None] | None = None
    timed_out = False  # ended by request_timeout
    # the ASGI HTTP trailers extension: announced in http.response.start, the response
    # ends with the last http.response.trailers instead of the last body message
    trailers = False
    body_done = False  # the last body message is out, the trailers are still to come
    trailer_list: list[tuple[bytes, bytes]] | None = None

    def __init__(self, conn: Connection, scope: Message, minor: int, keep_alive: bool,
                 expect_continue: bool, is_head: bool) -> None:
        self.conn = conn
        self.scope = scope
        self.minor = minor
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        self.is_head = is_head

    # -- fed by the connection -------------------------------------------------

    def feed_body(self, data: bytes) -> None:
        """Buffer a piece of the request body; too much unread pauses the socket."""
        if not data:
            return
        if self.body:
            self.body.append(data)
        else:
            self.body = [data]
        self.body_size += len(data)
        if self.body_size > BODY_HIGH_WATER:
            self.conn.pause_reading_for_body()
        self._wake()

    # -- the app's side -------------------------------------------------------------

    def _wait_body(self) -> asyncio.Future[None]:
        # the app asks for the body: time to tell a client that waits for our word
        if self.expect_continue:
            self.expect_continue = False
            if not self.response_started:
                self.conn.write(CONTINUE)
        return self._waiter()

    def _take_body(self) -> bytes:
        body = self.body
        if not body:
            data = b""
        else:
            data = body[0] if len(body) == 1 else b"".join(body)
            self.body = ()
        if self.body_size:
            self.body_size = 0
            self.conn.resume_reading_for_body()
        if self.body_complete:
            self.expect_continue = False
        return data

    async def send(self, message: Message) -> None:
        """ASGI `send`: `http.response.start`, then `http.response.body` pieces, then the
        `http.response.trailers` the start announced."""
        kind = message["type"]
        if self.disconnected:
            raise ClientDisconnected("the client closed the connection")
        if kind == "http.response.start" and not self.response_started:
            self.response_started = True
            if message.get("trailers"):
                self.trailers = True
            # ASGI: the server does not start the response before the first
            # body message, so head and body can leave in one write
            self.head_pending = (message["status"], message.get("headers", ()))
            return
        if kind == "http.response.body" and self.response_started and not (
                self.response_complete or self.body_done):
            more = message.get("more_body", False)
            if not more and self.trailers:
                self.body_done = True
                more = True  # the trailers end the message
            if self._send_body(message.get("body", b""), more):
                await self.conn.drain()
            return
        if kind == "http.response.trailers" and self.trailers and not self.response_complete:
            await self._send_trailers(message)
            return
        self._refuse_message(kind)

    async def _send_trailers(self, message: Message) -> None:
        try:
            fields = trailer_fields(message.get("headers", ()))
        except ValueError as exc:
            raise AppProtocolError(f"invalid http.response.trailers: {exc}") from None
        if self.trailer_list is None:
            self.trailer_list = fields
        else:
            self.trailer_list.extend(fields)
        if message.get("more_trailers", False):
            return
        if self.head_pending is not None:
            self._send_body(b"", True)  # trailers and no body message: an empty body
        elif not self.body_done:
            raise AppProtocolError("http.response.trailers before the last http.response.body")
        writer = self.writer
        assert writer is not None
        # chunked framing carries them; HTTP/1.0 or a Content-Length has no place for them
        out = writer.end(self.trailer_list)
        if out:
            self.conn.write(out)
        self._complete(writer)

    def _send_body(self, body: bytes, more: bool) -> bool:
        """Frame and write one body piece; True when the transport asks to wait (drain)."""
        conn = self.conn
        if self.head_pending is None:
            writer = self.writer
            assert writer is not None
            out = b""
        else:
            # the pending http.response.start, checked by the writer of this response
            status, headers = self.head_pending
            writer = self.writer = ResponseWriter(self.is_head, self.minor >= 1, self.keep_alive)
            try:
                writer.start(status, headers)
            except InvalidResponse as exc:
                raise AppProtocolError(f"invalid http.response.start: {exc}") from None
            self.head_pending = None
            self.status = status
            self.response_headers = headers
            if not more and len(body) < 65536:
                # the usual response, one body message: head and body in one write
                conn.write(writer.whole(body))
                self.keep_alive = writer.keep_alive
                self.bytes_sent = writer.sent
                if writer.overrun or writer.incomplete:
                    self._complete(writer)  # raises or closes
                    return False
                self.response_complete = True
                self._wake()
                conn.response_done(self)
                return False
            out = writer.head(None if more else len(body))
            self.keep_alive = writer.keep_alive
        if body:
            piece = writer.data(body)
            if not out:
                out = piece
            elif len(piece) >= 65536 and writer.framing is _LENGTH:
                conn.write(out)  # no copy of a big body: two writes
                out = piece
            else:
                out += piece
            self.bytes_sent = writer.sent
        if not more:
            out += writer.end()
        if out:
            conn.write(out)
        if not more:
            self._complete(writer)
        elif writer.overrun:
            self._complete(writer)  # raises
        else:
            return conn.write_paused
        return False

    def _complete(self, writer: ResponseWriter) -> None:
        """The last body message is out (or one broke the framing): end the exchange."""
        conn = self.conn
        if writer.overrun:
            # the bytes past Content-Length were cut: they would be read as the next response
            self.keep_alive = False
            conn.abort()
            raise AppProtocolError("response body longer than its Content-Length")
        if writer.incomplete:
            # the app declared more than it sent: the peer would wait forever
            self.keep_alive = False
            conn.abort()
        self.response_complete = True
        self._wake()
        conn.response_done(self)

    def _refuse_message(self, kind: str) -> None:
        if not self.response_started:
            raise AppProtocolError(f"expected http.response.start, got {kind!r}")
        if self.response_complete:
            raise AppProtocolError(f"{kind!r} sent after the response was complete")
        if self.body_done:
            raise AppProtocolError(f"expected http.response.trailers, got {kind!r}")
        if kind == "http.response.trailers":
            raise AppProtocolError("http.response.trailers sent, but http.response.start did "
                                   "not announce them (trailers: True)")
        raise AppProtocolError(f"expected http.response.body, got {kind!r}")

    # -- the app task -----------------------------------------------------------------

    async def run(self, app: Any) -> None:
        """Run the app for this request; turn its errors into a 500 or a closed connection."""
        conn = self.conn
        state = conn.state
        timer = None
        if state.request_timeout:
            timer = conn.loop.call_later(state.request_timeout, self._time_out)
        try:
            await app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            state.log.debug("client went away before the response was sent")
        except asyncio.CancelledError:
            if not self.disconnected and not self.timed_out:
                state.log.warning("ASGI app task cancelled before its response was complete")
                self._fail_response()
            raise
        except Exception as exc:
            state.log.exception("Exception in ASGI application")
            self._fail_response(str(exc))
        else:
            if not self.response_complete and not self.disconnected:
                if self.response_started and self.head_pending is None:
                    state.log.error("ASGI callable returned without completing the response")
                else:
                    state.log.error("ASGI callable returned without sending a response")
                self._fail_response()
        finally:
            if timer is not None:
                timer.cancel()
            state.in_flight -= 1
            state.worker.stats.end(self.scope["method"], self.status,
                                   time.monotonic() - self.start_time)
            if self.task is not None:
                state.tasks.discard(self.task)
            if self.hook_req is not None:
                state.hooks.run_post(self.hook_req, self.scope, HookResponse(
                    self.status, self.response_headers, self.bytes_sent))

    def _time_out(self) -> None:
        """request_timeout passed: log where the app task is, answer 504 (or cut), cancel it."""
        if deadline.time_out_task(self, self.conn.state, self._answer_timeout,
                                  gone="the client had gone", cut="connection closed"):
            self.timed_out = True

    def _answer_timeout(self) -> None:
        self._fail_response(status=deadline.STATUS, message=deadline.MESSAGE)

    def _fail_response(self, detail: str = "", status: int = 500,
                       message: str = "Internal Server Error") -> None:
        conn = self.conn
        if self.response_complete or self.disconnected:
            return
        if self.head_pending is not None or not self.response_started:
            self.head_pending = None
            self.response_started = True
            self.status = status
            self.keep_alive = False
            conn.write(error_response(status, message))
            self.response_complete = True
            conn.response_done(self)
        else:
            # part of the response is out: the only honest signal left is closing
            self.keep_alive = False
            self.response_complete = True
            conn.response_done(self)
            conn.abort()

    def access_info(self, peer: str, request_time: float) -> AccessInfo:
        """The access-log record of this exchange."""
        return AccessInfo.from_scope(self.scope, peer, self.status, self.bytes_sent,
                                     request_time, self.response_headers)
