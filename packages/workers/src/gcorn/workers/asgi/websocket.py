"""ASGI WebSocket sessions over the sans-I/O `websockets.server.ServerProtocol`.

The `websockets` library owns the wire (handshake checks, frame codec,
masking, permessage-deflate, close codes for invalid frames); this module
owns the ASGI side: the scope, `websocket.connect/receive/disconnect`,
`accept/send/close`, the denial-response extension, keepalive pings, and
the 1012 close of a graceful stop.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
from collections import deque
from collections.abc import Sequence
from typing import Any

from gcorn.http import InvalidResponse, RequestHead, ResponseWriter, error_response
from gcorn.workers.asgi.connection import ClientDisconnected, Connection
from gcorn.workers.asgi.errors import AppProtocolError, ServiceUnavailable
from gcorn.workers.asgi.scope import decode_path

try:
    from websockets.datastructures import Headers
    from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
    from websockets.frames import Opcode
    from websockets.http11 import Request
    from websockets.protocol import State
    from websockets.server import ServerProtocol
except ImportError:  # the `websockets` extra is not installed
    HAVE_WEBSOCKETS = False
else:
    HAVE_WEBSOCKETS = True

__all__ = ["HAVE_WEBSOCKETS", "WebSocketSession", "is_websocket_handshake", "start_websocket"]

Message = dict[str, Any]

INSTALL_HINT = "pip install 'gcorn-workers[websockets]'"
# queued incoming messages before the socket stops being read
_INBOX_HIGH_WATER = 64
# seconds a peer gets to answer our close frame before the socket is dropped
_CLOSE_TIMEOUT = 5.0
_wire_logger = logging.getLogger("gcorn.workers.asgi.websocket.wire")
_wire_logger.setLevel(logging.WARNING)


def is_websocket_handshake(head: RequestHead, headers: Sequence[tuple[bytes, bytes]]) -> bool:
    """Whether `head` opens a WebSocket (RFC 6455 4.2.1: GET, Upgrade websocket, a key).

    Anything else that asks for an upgrade is an upgrade this worker does not
    speak: it is served as a plain request (RFC 9110 7.8), never refused with a 5xx.
    """
    if head.method != b"GET" or head.upgrade is None or head.upgrade.lower() != b"websocket":
        return False
    return any(name.lower() == b"sec-websocket-key" for name, _ in headers)


def start_websocket(conn: Connection, head: RequestHead, scheme: str,
                    headers: Sequence[tuple[bytes, bytes]]) -> WebSocketSession | None:
    """Take over `conn` for a WebSocket upgrade, or refuse it (501) without the library."""
    state = conn.state
    if not HAVE_WEBSOCKETS:
        state.log.error("WebSocket upgrade refused: the websockets library is not installed"
                        " (%s)", INSTALL_HINT)
        conn.write(error_response(501, "WebSocket support is not installed on this server"))
        conn.closed_after_error()
        return None
    if state.limit_concurrency and state.in_flight >= state.limit_concurrency:
        conn.write(error_response(ServiceUnavailable.status, ServiceUnavailable.reason))
        conn.closed_after_error()
        return None
    return WebSocketSession(conn, head, scheme, headers)


def _subprotocols(headers: Sequence[tuple[bytes, bytes]]) -> list[str]:
    offered: list[str] = []
    for name, value in headers:
        if name == b"sec-websocket-protocol":
            offered.extend(p.strip() for p in value.decode("latin-1").split(",") if p.strip())
    return offered


class Phase(enum.Enum):
    """Where a websocket session is: HANDSHAKE -> OPEN -> CLOSED, or HANDSHAKE -> DENIED."""

    HANDSHAKE = "handshake"  # the app has not accepted yet
    OPEN = "open"  # accepted: messages flow both ways
    CLOSED = "closed"  # a close was sent or received, or the connection is gone
    DENIED = "denied"  # the app refused the handshake (an HTTP answer, no websocket)


class WebSocketSession:
    """One upgraded connection: the app task on one side, the `websockets` protocol on the other."""

    def __init__(self, conn: Connection, head: RequestHead, scheme: str,
                 headers: Sequence[tuple[bytes, bytes]]) -> None:
        state = conn.state
        self.conn = conn
        self.state = state
        self.loop = conn.loop
        root_path = state.root_path
        self.scope: Message = {
            "type": "websocket",
            "asgi": state.asgi,
            "http_version": head.http_version,
            "scheme": "wss" if scheme == "https" else "ws",
            "server": conn.server,
            "client": conn.client,
            "root_path": root_path,
            "path": root_path + decode_path(head.path),
            "raw_path": head.path,
            "query_string": head.query,
            "headers": headers,
            "subprotocols": _subprotocols(headers),
            "state": state.lifespan_state.copy(),
            "extensions": {"websocket.http.response": {}},
        }
        self.request = Request(
            path=head.target.decode("latin-1"),
            headers=Headers([(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers]))
        self.protocol: Any = None
        self.inbox: deque[Message] = deque([{"type": "websocket.connect"}])
        self.waiter: asyncio.Future[None] | None = None
        self.early = bytearray()  # bytes that arrived before the app accepted
        self.phase = Phase.HANDSHAKE
        self.disconnect_sent = False
        self.fragments: list[bytes] = []
        self.fragment_opcode: Any = None
        self.ping_handle: asyncio.TimerHandle | None = None
        self.ping_payload: bytes | None = None
        self.close_handle: asyncio.TimerHandle | None = None
        self.denial: tuple[int, Any] | None = None
        self.denial_body: list[bytes] = []
        self.status = 0
        state.in_flight += 1
        self.task = self.loop.create_task(self._run(state.app))
        state.tasks.add(self.task)

    # -- bytes from the connection ----------------------------------------------------

    def data_received(self, data: bytes) -> None:
        """Feed client bytes to the protocol and deliver what they complete."""
        if self.phase == Phase.HANDSHAKE:
            self.early += data
            return
        if self.protocol is None:
            return
        self.protocol.receive_data(data)
        self._process()

    def eof_received(self) -> bool | None:
        """The client half-closed: let the protocol decide, the socket then closes."""
        if self.protocol is not None and self.phase == Phase.OPEN:
            self.protocol.receive_eof()
            self._process()
        return None

    def connection_lost(self) -> None:
        """The TCP connection is gone: the app gets `websocket.disconnect` (1006 if unclean)."""
        self._cancel_timers()
        code = 1006
        if self.protocol is not None and self.protocol.close_rcvd is not None:
            code = self.protocol.close_rcvd.code
        self._disconnect(code, "")
        self.phase = Phase.CLOSED
        task = self.task
        if not task.done():
            self.loop.call_later(self.state.disconnect_grace, _cancel_if_running, task)

    def _process(self) -> None:
        protocol = self.protocol
        # only control frames and errors make the protocol write (pong, close):
        # data frames alone need no flush
        control = False
        for frame in protocol.events_received():
            opcode = frame.opcode
            if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
                if frame.fin:
                    control |= self._deliver(opcode, frame.data)
                else:
                    self.fragment_opcode = opcode
                    self.fragments = [frame.data]
            elif opcode is Opcode.CONT:
                self.fragments.append(frame.data)
                if frame.fin:
                    data = b"".join(self.fragments)
                    self.fragments = []
                    control |= self._deliver(self.fragment_opcode, data)
            else:
                control = True
                if opcode is Opcode.PONG:
                    if self.ping_payload is not None and frame.data == self.ping_payload:
                        self.ping_payload = None
                        self._schedule_ping()
                elif opcode is Opcode.CLOSE:
                    close = protocol.close_rcvd
                    self._disconnect(close.code if close is not None else 1005,
                                     close.reason if close is not None else "")
        if protocol.parser_exc is not None:
            control = True
            if protocol.close_sent is not None:
                # an invalid frame: the library chose the RFC's close code
                self._disconnect(protocol.close_sent.code, protocol.close_sent.reason)
        if control:
            self._flush()
        if len(self.inbox) > _INBOX_HIGH_WATER:
            self.conn._pause_reading(1)

    def _deliver(self, opcode: Any, data: bytes) -> bool:
        """Queue one whole message for the app; True when the protocol has to write."""
        message: Message
        if opcode is Opcode.TEXT:
            try:
                message = {"type": "websocket.receive", "text": data.decode("utf-8")}
            except UnicodeDecodeError:
                self.protocol.fail(1007, "invalid UTF-8 in a text message")
                self._disconnect(1007, "")
                return True
        else:
            message = {"type": "websocket.receive", "bytes": data}
        self.inbox.append(message)
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)
        return False

    def _disconnect(self, code: int, reason: str) -> None:
        if not self.disconnect_sent:
            self.disconnect_sent = True
            self._push({"type": "websocket.disconnect", "code": code, "reason": reason})

    def _push(self, message: Message) -> None:
        self.inbox.append(message)
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _flush(self) -> None:
        if self.protocol is None:
            return
        out = self.protocol.data_to_send()
        if not out:
            return
        close_after = out[-1] == b""
        data = b"".join(out)
        if data:
            self.conn.write(data)
        if close_after:
            self._cancel_timers()
            self.conn.abort()

    # -- keepalive pings ----------------------------------------------------------------

    def _schedule_ping(self) -> None:
        interval = self.state.ws_ping_interval
        if interval > 0 and self.phase == Phase.OPEN:
            self.ping_handle = self.loop.call_later(interval, self._ping)

    def _ping(self) -> None:
        if self.phase != Phase.OPEN or self.protocol.state is not State.OPEN:
            return
        self.ping_payload = os.urandom(4)
        self.protocol.send_ping(self.ping_payload)
        self._flush()
        timeout = self.state.ws_ping_timeout
        if timeout > 0:
            self.ping_handle = self.loop.call_later(timeout, self._ping_timeout,
                                                    self.ping_payload)

    def _ping_timeout(self, payload: bytes) -> None:
        if self.ping_payload == payload and self.phase == Phase.OPEN:
            self.state.log.info("WebSocket keepalive ping timed out; closing")
            self.protocol.fail(1011, "keepalive ping timeout")
            self._disconnect(1011, "keepalive ping timeout")
            self._flush()

    def _cancel_timers(self) -> None:
        for handle in (self.ping_handle, self.close_handle):
            if handle is not None:
                handle.cancel()
        self.ping_handle = self.close_handle = None

    # -- the app's side ---------------------------------------------------------------

    async def receive(self) -> Message:
        """ASGI `receive` for the websocket scope."""
        while not self.inbox:
            if self.phase == Phase.CLOSED or self.disconnect_sent:
                return {"type": "websocket.disconnect", "code": 1006, "reason": ""}
            waiter = self.waiter
            if waiter is None or waiter.done():
                # shared by every receive() waiting at the same time
                waiter = self.waiter = self.loop.create_future()
            await waiter
        message = self.inbox.popleft()
        if self.conn.read_paused & 1 and len(self.inbox) <= _INBOX_HIGH_WATER // 2:
            self.conn._resume_reading(1)
        return message

    async def send(self, message: Message) -> None:
        """ASGI `send` for the websocket scope."""
        kind = message["type"]
        protocol = self.protocol
        if (kind == "websocket.send" and self.phase == Phase.OPEN and not self.disconnect_sent
                and protocol.state is State.OPEN and not self.conn.closed):
            data = message.get("bytes")
            if data is not None:
                protocol.send_binary(data)
            else:
                text = message.get("text")
                if text is None:
                    raise AppProtocolError("websocket.send needs 'bytes' or 'text'")
                protocol.send_text(text.encode("utf-8"))
            self.conn.write(b"".join(protocol.data_to_send()))
            if self.conn.write_paused:
                await self.conn.drain()
            return
        if self.phase == Phase.HANDSHAKE:
            if kind == "websocket.accept":
                self._accept(message)
            elif kind == "websocket.close":
                self._deny(403, "Forbidden")
            elif kind == "websocket.http.response.start":
                self.phase = Phase.DENIED
                self.denial = (message["status"], message.get("headers", ()))
            else:
                raise AppProtocolError(f"{kind!r} sent before websocket.accept")
            return
        if self.phase == Phase.DENIED:
            if kind != "websocket.http.response.body" or self.denial is None:
                raise AppProtocolError(f"{kind!r} sent during a denial response")
            self.denial_body.append(message.get("body", b""))
            if not message.get("more_body", False):
                self._send_denial()
            return
        if self.phase == Phase.CLOSED or self.disconnect_sent or self.conn.closed:
            raise ClientDisconnected("the WebSocket is closed")
        if protocol.state is not State.OPEN:
            raise ClientDisconnected("the WebSocket is closing")
        if kind == "websocket.close":
            protocol.send_close(message.get("code") or 1000, message.get("reason") or "")
            self._flush()
            self._arm_close_timeout()
        else:
            raise AppProtocolError(f"unexpected ASGI message {kind!r} on an open WebSocket")

    def _accept(self, message: Message) -> None:
        state = self.state
        chosen = message.get("subprotocol")
        protocol = ServerProtocol(
            extensions=[ServerPerMessageDeflateFactory()] if state.ws_per_message_deflate else None,
            subprotocols=[chosen] if chosen else None,
            select_subprotocol=(lambda _protocol, _offered: chosen) if chosen else None,
            max_size=state.ws_max_size or None,
            logger=_wire_logger,
        )
        response = protocol.accept(self.request)
        self.protocol = protocol
        if response.status_code != 101:
            # the handshake itself is invalid (bad key, version...): the library's answer
            self.status = response.status_code
            protocol.send_response(response)
            self.phase = Phase.CLOSED
            self._disconnect(1006, "")
            self._flush()
            return
        for name, value in message.get("headers", ()):
            key = name.decode("latin-1") if isinstance(name, bytes) else str(name)
            if key.lower() in ("sec-websocket-protocol", "upgrade", "connection",
                               "sec-websocket-accept", "sec-websocket-extensions"):
                continue
            response.headers[key] = value.decode("latin-1") if isinstance(value, bytes) else value
        protocol.send_response(response)
        # gcorn.http parsed the handshake request, so the protocol's own parser
        # is still waiting for one: restart it now that the state is OPEN, where
        # it reads frames only
        protocol.parser = protocol.parse()
        next(protocol.parser)
        self.status = 101
        self.phase = Phase.OPEN
        self._flush()
        if self.early:
            early, self.early = bytes(self.early), bytearray()
            protocol.receive_data(early)
            self._process()
        self._schedule_ping()

    def _deny(self, status: int, text: str) -> None:
        self.status = status
        self.phase = Phase.CLOSED
        self.conn.write(error_response(status, text))
        self.conn.abort()
        self._disconnect(1006, "")

    def _send_denial(self) -> None:
        assert self.denial is not None
        status, headers = self.denial
        body = b"".join(self.denial_body)
        writer = ResponseWriter(keep_alive=False)
        try:
            writer.start(status, headers)
        except InvalidResponse as exc:
            raise AppProtocolError(f"invalid websocket.http.response.start: {exc}") from None
        self.status = status
        self.phase = Phase.CLOSED
        self.conn.write(writer.head(len(body)) + writer.data(body) + writer.end())
        self.conn.abort()
        self._disconnect(1006, "")

    def _arm_close_timeout(self) -> None:
        if self.close_handle is None:
            self.close_handle = self.loop.call_later(_CLOSE_TIMEOUT, self.conn.abort)

    # -- the app task ---------------------------------------------------------------

    async def _run(self, app: Any) -> None:
        state = self.state
        try:
            await app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            state.log.debug("WebSocket client went away")
        except asyncio.CancelledError:
            self._abort_from_server()
            raise
        except Exception:
            state.log.exception("Exception in ASGI application (websocket)")
            self._abort_from_server(error=True)
        else:
            if self.phase == Phase.HANDSHAKE:
                # an app that does not speak WebSocket denies it: the ASGI denial
                # status (as websocket.close before accept), not a 5xx for the client
                state.log.info("ASGI callable returned without accepting the WebSocket: 403")
                self._deny(403, "Forbidden")
            elif self.phase == Phase.DENIED:
                state.log.error("ASGI callable returned without finishing the denial response")
                self.conn.abort()
            elif self.phase == Phase.OPEN and self.protocol.state is State.OPEN:
                self.protocol.send_close(1000, "")
                self._flush()
                self._arm_close_timeout()
        finally:
            state.in_flight -= 1
            state.tasks.discard(self.task)
            state.count_request()

    def _abort_from_server(self, error: bool = False) -> None:
        if self.phase in (Phase.HANDSHAKE, Phase.DENIED):
            if self.phase == Phase.HANDSHAKE:
                self._deny(500, "Internal Server Error")
            else:
                self.conn.abort()
        elif self.phase == Phase.OPEN and self.protocol.state is State.OPEN:
            self.protocol.send_close(1011 if error else 1012, "")
            self._flush()
            self._arm_close_timeout()

    def shutdown(self) -> None:
        """Graceful stop: tell the client the server is restarting (close 1012)."""
        if self.phase == Phase.OPEN and self.protocol.state is State.OPEN:
            self.protocol.send_close(1012, "server restarting")
            self._flush()
            self._arm_close_timeout()
        elif self.phase == Phase.HANDSHAKE and self.task.done():
            self.conn.abort()


def _cancel_if_running(task: asyncio.Task[None]) -> None:
    if not task.done():
        task.cancel()
