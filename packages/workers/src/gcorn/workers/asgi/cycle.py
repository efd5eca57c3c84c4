"""One HTTP request/response exchange with an ASGI app: `receive`, `send` and the app task."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from gcorn.workers.access import AccessInfo
from gcorn.workers.asgi.errors import AppProtocolError
from gcorn.workers.asgi.hooks import HookRequest, HookResponse, call_hook
from gcorn.workers.asgi.response import Framing, build_head, error_response

if TYPE_CHECKING:
    from gcorn.workers.asgi.http import HttpProtocol

__all__ = ["ClientDisconnected", "RequestCycle"]

Message = dict[str, Any]

# request body bytes buffered before the socket stops being read
BODY_HIGH_WATER = 256 * 1024
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_DISCONNECT = {"type": "http.disconnect"}


class ClientDisconnected(OSError):
    """`send` was called after the client went away (ASGI 2.4: an OSError subclass)."""


class RequestCycle:
    """The state of one request: body received so far, response sent so far."""

    __slots__ = (
        "body", "body_complete", "body_size", "bytes_sent", "conn", "disconnected",
        "expect_continue", "final_sent", "framing", "head", "head_pending", "hook_req", "is_head",
        "keep_alive", "minor", "response_complete", "response_headers", "response_started",
        "scope", "start_time", "status", "task", "waiter",
    )

    def __init__(self, conn: HttpProtocol, scope: Message, minor: int, keep_alive: bool,
                 expect_continue: bool, is_head: bool) -> None:
        self.conn = conn
        self.scope = scope
        self.minor = minor
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        self.is_head = is_head
        self.body: list[bytes] = []
        self.body_size = 0
        self.body_complete = False
        self.final_sent = False
        self.disconnected = False
        self.waiter: asyncio.Future[None] | None = None
        self.response_started = False
        self.response_complete = False
        self.head_pending: tuple[int, Any] | None = None
        self.head: Any = None
        self.status = 0
        self.framing = Framing.LENGTH
        self.response_headers: list[tuple[bytes, bytes]] = []
        self.bytes_sent = 0
        self.start_time = 0.0
        self.hook_req: HookRequest | None = None
        self.task: asyncio.Task[None] | None = None

    # -- fed by the connection -------------------------------------------------

    def feed_body(self, data: bytes) -> None:
        """Buffer a piece of the request body; too much unread pauses the socket."""
        if not data:
            return
        self.body.append(data)
        self.body_size += len(data)
        if self.body_size > BODY_HIGH_WATER:
            self.conn.pause_reading_for_body()
        self._wake()

    def end_body(self) -> None:
        """The whole request body has been received."""
        self.body_complete = True
        self._wake()

    def lose_client(self) -> None:
        """The connection is gone: a pending or next `receive` gets `http.disconnect`."""
        self.disconnected = True
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -- the app's side -------------------------------------------------------------

    async def receive(self) -> Message:
        """ASGI `receive`: the next `http.request` piece, or `http.disconnect`."""
        if self.final_sent or self.response_complete or (self.disconnected and not self.body):
            return await self._wait_disconnect()
        if not self.body and not self.body_complete:
            if self.expect_continue:
                self.expect_continue = False
                if not self.response_started:
                    self.conn.write(_CONTINUE)
            self.waiter = self.conn.loop.create_future()
            await self.waiter
            if not self.body and not self.body_complete:
                return _DISCONNECT
        body = self.body
        if not body:
            data = b""
        elif len(body) == 1:
            data = body[0]
            body.clear()
        else:
            data = b"".join(body)
            body.clear()
        if self.body_size:
            self.body_size = 0
            self.conn.resume_reading_for_body()
        more = not self.body_complete
        if not more:
            self.final_sent = True
            self.expect_continue = False
        return {"type": "http.request", "body": data, "more_body": more}

    async def _wait_disconnect(self) -> Message:
        if not self.disconnected and not self.response_complete:
            self.waiter = self.conn.loop.create_future()
            await self.waiter
        return _DISCONNECT

    async def send(self, message: Message) -> None:
        """ASGI `send`: `http.response.start`, then `http.response.body` pieces."""
        kind = message["type"]
        if self.disconnected:
            raise ClientDisconnected("the client closed the connection")
        if not self.response_started:
            if kind != "http.response.start":
                raise AppProtocolError(f"expected http.response.start, got {kind!r}")
            self.response_started = True
            self.head_pending = (message["status"], message.get("headers", ()))
            # the head normally leaves with the first body piece, in one write;
            # if the app pauses in between, the head goes out on its own
            self.conn.loop.call_soon(self._flush_head)
            return
        if self.response_complete:
            raise AppProtocolError(f"{kind!r} sent after the response was complete")
        if kind != "http.response.body":
            raise AppProtocolError(f"expected http.response.body, got {kind!r}")
        body = message.get("body", b"")
        more = message.get("more_body", False)
        conn = self.conn
        if self.head_pending is not None:
            head = self._make_head(None if more else len(body))
            if self.framing == Framing.NONE or not body:
                out = head
            elif self.framing == Framing.CHUNKED:
                out = b"%s%x\r\n%s\r\n" % (head, len(body), body)
            else:
                out = head + body if len(body) < 65536 else None
                if out is None:
                    conn.write(head)
                    out = body
            self.bytes_sent += len(body) if self.framing != Framing.NONE else 0
            if not more and self.framing == Framing.CHUNKED:
                out += b"0\r\n\r\n"
            conn.write(out)
        elif body and self.framing != Framing.NONE:
            self.bytes_sent += len(body)
            if self.framing == Framing.CHUNKED:
                conn.write(b"%x\r\n%s\r\n" % (len(body), body) if len(body) < 65536
                           else b"%x\r\n" % len(body))
                if len(body) >= 65536:
                    conn.write(body)
                    conn.write(b"\r\n")
            else:
                conn.write(body)
            if not more and self.framing == Framing.CHUNKED:
                conn.write(b"0\r\n\r\n")
        elif not more and self.framing == Framing.CHUNKED:
            conn.write(b"0\r\n\r\n")
        if not more:
            self.response_complete = True
            self._wake()
            conn.response_done(self)
        elif conn.write_paused:
            await conn.drain()

    def _make_head(self, body_length: int | None) -> bytes:
        assert self.head_pending is not None
        status, headers = self.head_pending
        conn = self.conn
        head = build_head(status, headers, minor=self.minor, keep_alive=self.keep_alive,
                          is_head=self.is_head, body_length=body_length,
                          date_server=conn.state.date_server)
        self.head_pending = None
        self.status = status
        self.framing = head.framing
        self.keep_alive = head.keep_alive
        self.response_headers = head.headers
        return head.data

    def _flush_head(self) -> None:
        if self.head_pending is not None and not self.disconnected:
            try:
                self.conn.write(self._make_head(None))
            except AppProtocolError as exc:
                self.conn.state.log.error("Invalid ASGI response: %s", exc)
                self._fail_response()

    # -- the app task -----------------------------------------------------------------

    async def run(self, app: Any) -> None:
        """Run the app for this request; turn its errors into a 500 or a closed connection."""
        conn = self.conn
        state = conn.state
        try:
            await app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            state.log.debug("client went away before the response was sent")
        except asyncio.CancelledError:
            if not self.disconnected:
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
            state.in_flight -= 1
            state.tasks.discard(self.task)  # type: ignore[arg-type]
            if state.post_request is not None and self.hook_req is not None:
                call_hook(state.post_request, state.log, "post_request", state.worker,
                          self.hook_req, self.scope,
                          HookResponse(self.status, self.response_headers, self.bytes_sent))

    def _fail_response(self, detail: str = "") -> None:
        conn = self.conn
        if self.response_complete or self.disconnected:
            return
        if self.head_pending is not None or not self.response_started:
            self.head_pending = None
            self.response_started = True
            self.status = 500
            self.keep_alive = False
            conn.write(error_response(500, "Internal Server Error", conn.state.date_server))
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
        scope = self.scope
        query = scope["query_string"].decode("latin-1")
        path = scope["path"]
        return AccessInfo(
            remote_addr=peer,
            method=scope["method"],
            raw_uri=scope["raw_path"].decode("latin-1") + ("?" + query if query else ""),
            path=path,
            query=query,
            protocol="HTTP/" + scope["http_version"],
            status=self.status,
            bytes_sent=self.bytes_sent,
            request_time=request_time,
            request_headers=[(k.decode("latin-1"), v.decode("latin-1"))
                             for k, v in scope["headers"]],
            response_headers=[(k.decode("latin-1"), v.decode("latin-1"))
                              for k, v in self.response_headers],
            environ=None,
        )


def now() -> float:
    """Monotonic seconds, for request timing."""
    return time.monotonic()
