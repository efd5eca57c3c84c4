"""H2ServerSession, the HTTP/2 connection core of both workers, driven by a real h2 client.

The session is sans-I/O below its hooks: the subclass here keeps what it would
write and the streams it would start, and a client `H2Connection` reads the
server's bytes back as events. The same behaviour over real sockets, on the
asgi and gthread workers, is tests/test_http2.py's.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("h2")

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import ConnectionTerminated, ResponseReceived, StreamReset
from hyperframe.frame import Frame

from gcorn.workers.h2session import (
    ENHANCE_YOUR_CALM,
    PROTOCOL_ERROR,
    REFUSED_STREAM,
    H2ServerSession,
)
from gcorn.workers.http2 import H2Options, RequestFields

REQUEST = [(b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"example.com"),
           (b":path", b"/up?x=1")]


class Stream:
    """The body side of a stream, as a worker's would be fed."""

    def __init__(self, fields: RequestFields, ended: bool) -> None:
        self.fields = fields
        self.body: list[bytes] = []
        self.body_complete = ended
        self.disconnected = False

    def feed_body(self, data: bytes, flow_length: int) -> None:
        self.body.append(data)

    def end_body(self) -> None:
        self.body_complete = True

    def lose_client(self) -> None:
        self.disconnected = True


class Session(H2ServerSession):
    """A worker that writes into a buffer and starts nothing but a Stream record."""

    def __init__(self, options: H2Options) -> None:
        super().__init__(options, logging.getLogger("test.h2session"), "client")
        self.out = bytearray()
        self.failed = False

    def _open(self, sid: int, fields: RequestFields, ended: bool) -> None:
        self.streams[sid] = Stream(fields, ended)

    def flush(self) -> None:
        self.out += self.h2.data_to_send()

    def _write_now(self, frame: bytes) -> None:
        self.flush()
        self.out += frame

    def _failed(self) -> None:
        self.flush()
        self.failed = True

    def _terminated(self) -> None:
        self.closed = True


def connect(options: H2Options | None = None) -> tuple[Session, Any]:
    """A session past both prefaces, and the client talking to it."""
    session = Session(options or H2Options())
    session.initiate()
    # a client that sends what it is told to: the server's checks are under test
    client = H2Connection(H2Configuration(client_side=True, header_encoding=None,
                                          validate_outbound_headers=False,
                                          normalize_outbound_headers=False))
    client.initiate_connection()
    exchange(session, client)
    return session, client


def exchange(session: Session, client: Any) -> list[Any]:
    """The client's queued frames to the session; the session's answer as client events."""
    if session.receive(client.data_to_send()):
        session.flush()
    events = client.receive_data(bytes(session.out))
    session.out.clear()
    return list(events)


def frames(data: bytes) -> list[Any]:
    """The frames in `data`, parsed."""
    out = []
    while data:
        frame, length = Frame.parse_frame_header(memoryview(data[:9]))
        frame.parse_body(memoryview(data[9:9 + length]))
        out.append(frame)
        data = data[9 + length:]
    return out


def test_a_request_opens_a_stream_fed_its_body_and_end() -> None:
    session, client = connect()
    client.send_headers(1, REQUEST + [(b"content-length", b"5")])
    client.send_data(1, b"hel")
    exchange(session, client)
    stream = session.streams[1]
    assert (stream.fields.method, stream.fields.path, stream.fields.query) == (
        "POST", b"/up", b"x=1")
    assert stream.body == [b"hel"] and not stream.body_complete
    client.send_data(1, b"lo", end_stream=True)
    exchange(session, client)
    assert stream.body == [b"hel", b"lo"] and stream.body_complete
    assert session.last_stream == 1


def test_streams_past_the_limit_and_after_goaway_are_refused() -> None:
    session, client = connect(H2Options(max_concurrent_streams=2))
    client.send_headers(1, REQUEST, end_stream=True)
    client.reset_stream(1)
    exchange(session, client)
    # the client reset stream 1 but its app still runs: it counts (rapid reset cannot
    # pile up apps past the limit), so the client's second open stream is refused
    assert session.streams[1].disconnected
    client.send_headers(3, REQUEST, end_stream=True)
    client.send_headers(5, REQUEST, end_stream=True)
    resets = [e for e in exchange(session, client) if isinstance(e, StreamReset)]
    assert [(e.stream_id, e.error_code) for e in resets] == [(5, REFUSED_STREAM)]
    assert sorted(session.streams) == [1, 3]
    del session.streams[1], session.streams[3]
    session.goaway()
    assert session.goaway_sent
    # a stream the client opened before it read the GOAWAY
    client.send_headers(7, REQUEST, end_stream=True)
    assert session.receive(client.data_to_send())
    session.flush()
    sent = frames(bytes(session.out))
    assert [(type(f).__name__, f.stream_id) for f in sent] == [("GoAwayFrame", 0),
                                                               ("RstStreamFrame", 7)]
    # stream 5 was refused: the last stream the server took is 3
    assert sent[0].last_stream_id == 3 and sent[1].error_code == REFUSED_STREAM
    assert not session.streams


def test_bad_header_blocks_are_reset_or_answered() -> None:
    session, client = connect(H2Options(limit_request_fields=2))
    client.send_headers(1, REQUEST + [(b"X-Upper", b"1")], end_stream=True)
    client.send_headers(3, REQUEST + [(b"a", b"1"), (b"b", b"2"), (b"c", b"3")],
                        end_stream=True)
    events = exchange(session, client)
    assert [(e.stream_id, e.error_code) for e in events if isinstance(e, StreamReset)] == [
        (1, PROTOCOL_ERROR)]
    answers = [e for e in events if isinstance(e, ResponseReceived)]
    assert [(e.stream_id, dict(e.headers)[b":status"]) for e in answers] == [(3, b"431")]
    assert not session.streams


def test_data_for_a_stream_without_an_app_gives_its_window_back() -> None:
    session, client = connect()
    client.send_headers(1, REQUEST)
    exchange(session, client)
    session.streams[1].lose_client()
    for _ in range(3):
        client.send_data(1, b"x" * 16000)
    assert client.local_flow_control_window(1) == 65535 - 48000
    exchange(session, client)
    # nobody will read it: the window is reopened at once, not when an app takes it
    assert client.local_flow_control_window(1) == 65535
    assert session.streams[1].body == []


def test_rapid_reset_ends_the_connection_with_enhance_your_calm() -> None:
    session, client = connect()
    terminated = []
    for sid in range(1, 2 * session.guard.reset_limit + 6, 2):
        client.send_headers(sid, REQUEST)
        client.reset_stream(sid)
        session.streams.pop(sid, None)  # the app ended at once
        terminated += [e for e in exchange(session, client)
                       if isinstance(e, ConnectionTerminated)]
        if session.failed:
            break
    assert session.failed
    assert [e.error_code for e in terminated] == [ENHANCE_YOUR_CALM]


def test_a_protocol_error_fails_the_connection() -> None:
    session, _client = connect()
    # a SETTINGS frame of 4 bytes (a setting is 6): FRAME_SIZE_ERROR
    assert session.receive(b"\x00\x00\x04\x04\x00\x00\x00\x00\x00" + bytes(4)) is False
    assert session.failed


def test_the_upgrading_request_is_stream_1_without_its_http1_fields() -> None:
    session = Session(H2Options())
    head = SimpleNamespace(
        method=b"GET", path=b"/", query=b"", target=b"/",
        headers=[(b"host", b"example.com"), (b"connection", b"Upgrade, HTTP2-Settings"),
                 (b"upgrade", b"h2c"), (b"http2-settings", b"AAMAAABkAAQAAP__"),
                 (b"accept", b"*/*")])
    session.initiate(head)
    stream = session.streams[1]
    assert stream.body_complete and session.last_stream == 1
    assert stream.fields.headers == [(b"host", b"example.com"), (b"accept", b"*/*")]
    assert (stream.fields.method, stream.fields.authority) == ("GET", b"example.com")
