"""One server-side HTTP/2 connection, whatever runs its streams: the asgi and gthread workers' core.

`H2ServerSession` holds the `h2` state machine, the streams, the
`AbuseGuard` and the GOAWAY bookkeeping, and owns what both workers do the
same way: feeding received bytes to h2 (a protocol error or an abusive peer
ends the connection), dispatching h2's events to the streams, admitting a
new stream (refused past `http2_max_concurrent_streams` or after GOAWAY, its
header block checked by `gcorn.workers.http2.request_fields`), stream 1 of an
`Upgrade: h2c` connection, and the frames the server sends on its own
(WINDOW_UPDATE, RST_STREAM, a plain-text error answer, GOAWAY).

A worker subclasses it and supplies what its I/O model decides:
`_open` (start a stream: an asyncio task, a thread-pool job), `_lose` (a
stream's client is gone), `_window_grew` (wake a response waiting for the
client's window), `flush` (have what h2 queued written: a call_soon, a
wake-up of the I/O thread), `_write_now` (write it at once, then a frame of
its own), `_failed` (an error GOAWAY is queued: close after it) and
`_terminated` (the client sent GOAWAY). A stream is any object with the
`H2StreamBody` methods; how it wakes whoever waits for it is its own.
"""

from __future__ import annotations

from typing import Any, Protocol

from gcorn.workers.http2 import (
    AbuseGuard,
    EnhanceYourCalm,
    H2Options,
    H2RequestError,
    RequestFields,
    date_server_fields,
    goaway_frame,
    new_connection,
    request_fields,
    response_fields,
)

__all__ = [
    "CANCEL",
    "ENHANCE_YOUR_CALM",
    "INTERNAL_ERROR",
    "PROTOCOL_ERROR",
    "REFUSED_STREAM",
    "H2ServerSession",
    "H2StreamBody",
]

# RFC 9113 7: the error codes the server sends
PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
REFUSED_STREAM = 0x7
CANCEL = 0x8
ENHANCE_YOUR_CALM = 0xB
# the connection-level receive window: the streams' unread bodies share it
_CONNECTION_WINDOW_MAX = 16 * 1024 * 1024
_DEFAULT_WINDOW = 65535
# fields of an `Upgrade: h2c` request that concern the HTTP/1 connection only
_UPGRADE_ONLY = frozenset((b"connection", b"upgrade", b"http2-settings"))
_TEXT_PLAIN = ((b"content-type", b"text/plain; charset=utf-8"),)


class H2StreamBody(Protocol):
    """The request-body side of a stream, as the connection feeds it."""

    disconnected: bool

    def feed_body(self, data: bytes, flow_length: int) -> None:
        """Buffer a DATA frame; its window reopens when the app takes it."""

    def end_body(self) -> None:
        """END_STREAM: the whole request body is here."""

    def lose_client(self) -> None:
        """RST_STREAM or a lost connection: reads end, writes fail."""


class H2ServerSession:
    """The h2 connection, its streams and the server's own frames; the I/O is a subclass's."""

    def __init__(self, options: H2Options, log: Any, who: Any) -> None:
        self.options = options
        self.log = log
        self.who = who  # the client as the log lines name it
        self.h2 = new_connection(options)
        # h2 is an optional dependency: imported once a connection exists, kept at hand
        from h2 import events
        from h2.exceptions import H2Error, ProtocolError

        self.ev = events
        self.protocol_error = ProtocolError
        self.h2_error = H2Error
        self.guard = AbuseGuard(options)
        self.streams: dict[int, Any] = {}  # H2StreamBody objects by stream id
        self.closed = False
        self.goaway_sent = False
        self.last_stream = 0

    # -- what a worker supplies -----------------------------------------------------------

    def _open(self, sid: int, fields: RequestFields, ended: bool) -> None:
        """Start serving admitted stream `sid` (`ended`: it has no body)."""
        raise NotImplementedError

    def _lose(self, stream: Any) -> None:
        """The client of `stream` is gone (RST_STREAM)."""
        stream.lose_client()

    def _window_grew(self, sid: int) -> None:
        """The send window of stream `sid` (0: of every stream) may have grown; nothing by
        default (a worker whose writers wait on one condition wakes them after `receive`)."""

    def flush(self) -> None:
        """Have what h2 has queued written soon."""
        raise NotImplementedError

    def _write_now(self, frame: bytes) -> None:
        """Write what h2 has queued now, then `frame` (one sent outside h2)."""
        raise NotImplementedError

    def _failed(self) -> None:
        """h2 has queued an error GOAWAY: the connection ends after it."""
        raise NotImplementedError

    def _terminated(self) -> None:
        """The client sent GOAWAY."""
        raise NotImplementedError

    # -- starting ----------------------------------------------------------------------------

    def initiate(self, upgrade: Any = None) -> None:
        """The server preface (SETTINGS) and a connection window for every stream's body;
        `upgrade` is the HTTP/1 head of an `Upgrade: h2c` request, which becomes stream 1."""
        h2 = self.h2
        if upgrade is not None:
            settings = next(v for k, v in upgrade.headers if k == b"http2-settings")
            h2.initiate_upgrade_connection(settings.strip())
        else:
            h2.initiate_connection()
        options = self.options
        wanted = min(options.max_concurrent_streams * options.initial_window_size,
                     _CONNECTION_WINDOW_MAX)
        if wanted > _DEFAULT_WINDOW:
            h2.increment_flow_control_window(wanted - _DEFAULT_WINDOW)
        if upgrade is not None:
            self._start_upgraded(upgrade)

    def _start_upgraded(self, head: Any) -> None:
        """Stream 1 of an upgraded connection: the HTTP/1 request that asked for it."""
        headers = [(k, v) for k, v in head.headers if k not in _UPGRADE_ONLY]
        host = next((v for k, v in headers if k == b"host"), b"")
        fields = RequestFields(method=head.method.decode("latin-1"), scheme="http",
                               authority=host, path=head.path, query=head.query,
                               target=head.target, headers=headers, content_length=None)
        self.last_stream = 1
        self._open(1, fields, True)

    # -- input -------------------------------------------------------------------------------

    def receive(self, data: bytes) -> bool:
        """Feed bytes read from the client to h2 and dispatch its events; False when the
        connection ends in error (a protocol error, an abusive peer: GOAWAY is queued)."""
        try:
            events = self.h2.receive_data(data)
        except self.protocol_error as exc:
            # h2 has queued its GOAWAY (CONTINUATION flood, HPACK bomb, too many streams...)
            self.log.debug("h2 protocol error from %s: %s", self.who, exc)
            self._failed()
            return False
        try:
            for event in events:
                self._event(event)
        except EnhanceYourCalm as exc:
            self.log.warning("h2 client %s: %s; closing", self.who, exc)
            self.h2.close_connection(error_code=ENHANCE_YOUR_CALM,
                                     last_stream_id=self.last_stream)
            self._failed()
            return False
        return True

    def _event(self, event: Any) -> None:
        ev = self.ev
        kind = type(event)
        if kind is ev.RequestReceived:
            self._request(event.stream_id, event.headers, event.stream_ended is not None)
        elif kind is ev.DataReceived:
            stream = self.streams.get(event.stream_id)
            if stream is None or stream.disconnected:
                # a stream that no longer has an app: give its window back at once
                self.ack(event.stream_id, event.flow_controlled_length)
            else:
                stream.feed_body(event.data, event.flow_controlled_length)
            if event.stream_ended is not None and stream is not None:
                stream.end_body()
        elif kind is ev.StreamEnded:
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.end_body()
        elif kind is ev.StreamReset:
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                self._lose(stream)
            if event.remote_reset:
                self.guard.stream_reset()
        elif kind is ev.WindowUpdated:
            self._window_grew(event.stream_id)
        elif kind is ev.RemoteSettingsChanged:
            self.guard.control_frame()
            self._window_grew(0)  # INITIAL_WINDOW_SIZE may have grown
        elif kind is ev.PingReceived:
            self.guard.control_frame()
        elif kind is ev.ConnectionTerminated:
            self._terminated()

    def _request(self, sid: int, raw: Any, ended: bool) -> None:
        if (self.goaway_sent and sid > self.last_stream) or (
                len(self.streams) >= self.options.max_concurrent_streams):
            # streams reset by the client whose apps still run count too: a rapid
            # reset cannot pile up apps beyond the stream limit
            self.reset(sid, REFUSED_STREAM)
            return
        self.last_stream = max(self.last_stream, sid)
        try:
            fields = request_fields(raw, self.options)
        except H2RequestError as exc:
            self.log.debug("Invalid h2 request from %s: %s", self.who, exc)
            if exc.status == 400:
                self.reset(sid, PROTOCOL_ERROR)
            else:
                self.answer_error(sid, exc.status, str(exc))
            return
        self._open(sid, fields, ended)

    # -- the server's own frames ----------------------------------------------------------------

    def ack(self, sid: int, length: int) -> None:
        """The app took `length` flow-controlled bytes of `sid`: reopen the windows."""
        if self.closed or not length:
            return
        try:
            self.h2.acknowledge_received_data(length, sid)
        except self.h2_error as exc:  # the connection is closing: nothing to reopen
            self.log.debug("h2 window update for %d not sent: %s", sid, exc)
        self.flush()

    def reset(self, sid: int, code: int) -> None:
        """RST_STREAM `sid` with `code` (ignored when the stream is already closed)."""
        if self.closed:
            return
        try:
            self.h2.reset_stream(sid, error_code=code)
        except self.h2_error:
            pass
        self.flush()

    def answer_error(self, sid: int, status: int, message: str) -> int:
        """A plain-text error response on `sid`; says its body's length."""
        body = (message + "\n").encode("utf-8", "replace")
        if self.closed:
            return len(body)
        fields = response_fields(status, _TEXT_PLAIN, date_server_fields(), len(body))
        try:
            self.h2.send_headers(sid, fields, end_stream=False)
            window = self.h2.local_flow_control_window(sid)
            self.h2.send_data(sid, body[:window], end_stream=True)
        except self.h2_error as exc:
            self.log.debug("cannot answer h2 stream %d: %s", sid, exc)
        self.flush()
        return len(body)

    def goaway(self) -> None:
        """GOAWAY (no new streams past the last one admitted), once."""
        if self.goaway_sent or self.closed:
            return
        self.goaway_sent = True
        # outside h2's state machine: it would refuse the frames of the streams let finish
        self._write_now(goaway_frame(self.last_stream))
