"""Connection: the h11-shaped server connection over RequestParser and ResponseWriter.

Responses are read back with the standard library's own HTTP client parser
(http.client.HTTPResponse), so the framing is checked by a real client.
"""

from __future__ import annotations

import http.client
import io
import socket
import threading
from collections.abc import Iterator

import pytest

from gcorn.http import (
    CONTINUE,
    NEED_DATA,
    PAUSED,
    Body,
    Connection,
    ConnectionClosed,
    ConnectionState,
    Data,
    DuplicateHeader,
    EndOfMessage,
    ExpectationFailed,
    IncompleteMessage,
    InformationalResponse,
    InvalidChunk,
    InvalidMethod,
    InvalidResponse,
    LocalProtocolError,
    NoEvent,
    ParseError,
    ParserOptions,
    RequestHead,
    RequestLineTooLong,
    Response,
    TooManyHeaders,
    UnsupportedTransferCoding,
    UnsupportedVersion,
)

S = ConnectionState
GET = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"


def get(path: bytes) -> bytes:
    return b"GET %s HTTP/1.1\r\nHost: h\r\n\r\n" % path


class _Unclosed(io.BytesIO):
    def close(self) -> None:
        """http.client closes what it read from; the test reads on (what follows)."""


class _Bytes:
    """What http.client.HTTPResponse reads from: a socket-like object over bytes."""

    def __init__(self, data: bytes) -> None:
        self.file = _Unclosed(data)

    def makefile(self, mode: str) -> io.BytesIO:
        return self.file


def read_response(raw: bytes, method: str = "GET") -> tuple[http.client.HTTPResponse, bytes, bytes]:
    """(response, body, the bytes after it) as http.client reads them."""
    source = _Bytes(raw)
    response = http.client.HTTPResponse(source, method=method)  # type: ignore[arg-type]
    response.begin()
    body = response.read()
    return response, body, source.file.read()


def events_until_pause(conn: Connection) -> list[object]:
    """next_event() until NEED_DATA or PAUSED (included)."""
    events: list[object] = []
    while True:
        event = conn.next_event()
        events.append(event)
        if event is NEED_DATA or event is PAUSED or isinstance(event, ConnectionClosed):
            return events


def answer(conn: Connection, status: int = 200, body: bytes = b"ok",
           headers: list[tuple[str, str]] | None = None) -> bytes:
    """Response, Data, EndOfMessage: the bytes of a whole response."""
    fields = [("Content-Type", "text/plain")] if headers is None else headers
    return (conn.send(Response(status, fields)) + conn.send(Data(body))
            + conn.send(EndOfMessage()))


@pytest.fixture
def conn(backend: str) -> Connection:
    return Connection(backend)


# -- a whole exchange ----------------------------------------------------------------------


def test_a_whole_exchange_byte_by_byte(conn):
    request = b"POST /up?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
    assert (conn.our_state, conn.their_state) == (S.IDLE, S.IDLE)
    events: list[object] = []
    for i in range(len(request)):
        conn.receive_data(request[i : i + 1])
        events += [e for e in events_until_pause(conn) if e is not NEED_DATA]
    head = events[0]
    assert isinstance(head, RequestHead)
    assert (head.method, head.path, head.query, head.content_length) == (b"POST", b"/up", b"x=1", 5)
    assert b"".join(e.data for e in events if isinstance(e, Body)) == b"hello"
    assert isinstance(events[-1], EndOfMessage)
    assert conn.next_event() is NEED_DATA  # nothing more has come
    assert (conn.our_state, conn.their_state) == (S.SEND_RESPONSE, S.DONE)
    assert conn.request is head

    raw = conn.send(Response(201, [("Content-Type", "text/plain"), ("Content-Length", "3")]))
    assert conn.our_state is S.SEND_BODY
    raw += conn.send(Data(b"abc")) + conn.send(EndOfMessage())
    assert (conn.our_state, conn.their_state) == (S.DONE, S.DONE)
    assert conn.keep_alive
    response, body, rest = read_response(raw)
    assert (response.status, response.reason, body, rest) == (201, "Created", b"abc", b"")
    assert response.getheader("Server") == "gcorn"
    assert response.getheader("Date", "").endswith(" GMT")
    assert response.getheader("Connection") is None

    conn.start_next_cycle()
    assert (conn.our_state, conn.their_state) == (S.IDLE, S.IDLE)
    assert conn.request is None
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"")
    assert isinstance(conn.next_event(), ConnectionClosed)
    assert conn.their_state is S.CLOSED
    assert conn.send(ConnectionClosed()) == b""
    assert conn.our_state is S.CLOSED


def test_server_name_and_hop_by_hop_fields(backend):
    conn = Connection(backend, server=b"tiny/1")
    conn.receive_data(GET)
    events_until_pause(conn)
    raw = answer(conn, headers=[("Connection", "x-private"), ("X-Private", "1"),
                                ("Keep-Alive", "timeout=5"), ("Server", "app"),
                                ("X-Kept", "yes")])
    response, _, _ = read_response(raw)
    assert response.getheader("Server") == "tiny/1"
    assert response.getheader("X-Private") is None and response.getheader("Keep-Alive") is None
    assert response.getheader("X-Kept") == "yes"
    assert conn.keep_alive


def test_parser_options_are_the_parsers(backend):
    conn = Connection(backend, options=ParserOptions(limit_request_line=20))
    conn.receive_data(b"GET /" + b"a" * 40 + b" HTTP/1.1\r\n\r\n")
    with pytest.raises(RequestLineTooLong) as info:
        conn.next_event()
    assert info.value.status == 414


# -- pipelining ----------------------------------------------------------------------------


def test_pipelined_requests_wait_behind_paused(conn):
    conn.receive_data(get(b"/one") + get(b"/two"))
    first = events_until_pause(conn)
    assert [type(e) for e in first[:2]] == [RequestHead, EndOfMessage] and first[2] is PAUSED
    assert first[0].path == b"/one"
    assert conn.next_event() is PAUSED  # still, until the cycle starts again
    with pytest.raises(LocalProtocolError, match="both sides DONE"):
        conn.start_next_cycle()  # our response is not done yet
    answer(conn)
    conn.start_next_cycle()
    second = events_until_pause(conn)
    assert second[0].path == b"/two" and second[2] is NEED_DATA
    answer(conn)
    conn.start_next_cycle()
    assert conn.next_event() is NEED_DATA


def test_bytes_received_after_a_request_wait_for_the_next_cycle(conn):
    conn.receive_data(GET)
    assert events_until_pause(conn)[-1] is NEED_DATA  # nothing after it yet
    assert conn.their_state is S.DONE
    conn.receive_data(b"GET /next HTTP/1.1\r\n")
    assert conn.next_event() is PAUSED
    answer(conn)
    conn.start_next_cycle()
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"\r\n")
    assert conn.next_event().path == b"/next"


def test_a_response_may_start_before_the_body_is_read(conn):
    conn.receive_data(b"POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nab")
    assert [type(e) for e in events_until_pause(conn)[:2]] == [RequestHead, Body]
    raw = answer(conn)
    assert (conn.our_state, conn.their_state) == (S.DONE, S.SEND_BODY)
    with pytest.raises(LocalProtocolError):
        conn.start_next_cycle()
    conn.receive_data(b"cd" + GET)
    events = events_until_pause(conn)
    assert [type(e) for e in events[:2]] == [Body, EndOfMessage] and events[2] is PAUSED
    conn.start_next_cycle()
    assert isinstance(conn.next_event(), RequestHead)
    assert read_response(raw)[1] == b"ok"


# -- keep-alive ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_line", "fields", "keep_alive", "connection_field"),
    [
        (b"GET / HTTP/1.1", b"", True, None),
        (b"GET / HTTP/1.1", b"Connection: close\r\n", False, "close"),
        (b"GET / HTTP/1.0", b"", False, "close"),
        (b"GET / HTTP/1.0", b"Connection: keep-alive\r\n", True, "keep-alive"),
    ],
    ids=["1.1", "1.1-close", "1.0", "1.0-keep-alive"],
)
def test_keep_alive_follows_the_request(conn, request_line, fields, keep_alive,
                                        connection_field):
    conn.receive_data(request_line + b"\r\nHost: h\r\n" + fields + b"\r\n" + GET)
    events = events_until_pause(conn)
    assert events[0].keep_alive is keep_alive
    assert conn.keep_alive is keep_alive
    raw = answer(conn, headers=[("Content-Length", "2")])
    response, body, _ = read_response(raw)
    assert body == b"ok"
    assert response.getheader("Connection") == connection_field
    done = S.DONE if keep_alive else S.MUST_CLOSE
    assert (conn.our_state, conn.their_state) == (done, done)
    if keep_alive:
        conn.start_next_cycle()
        assert isinstance(conn.next_event(), RequestHead)
    else:
        with pytest.raises(LocalProtocolError, match="MUST_CLOSE"):
            conn.start_next_cycle()
        assert conn.next_event() is NEED_DATA  # the pipelined request is not read
        conn.receive_data(b"")
        assert isinstance(conn.next_event(), ConnectionClosed)
        assert conn.send(ConnectionClosed()) == b""
        assert (conn.our_state, conn.their_state) == (S.CLOSED, S.CLOSED)


def test_the_server_closes_with_connection_close(conn):
    conn.receive_data(GET + GET)
    events_until_pause(conn)
    assert conn.keep_alive
    raw = answer(conn, headers=[("Connection", "close")])
    assert read_response(raw)[0].getheader("Connection") == "close"
    assert not conn.keep_alive
    assert (conn.our_state, conn.their_state) == (S.MUST_CLOSE, S.MUST_CLOSE)
    assert conn.next_event() is NEED_DATA


def test_an_http10_body_of_unknown_size_is_closed(conn):
    conn.receive_data(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    events_until_pause(conn)
    raw = conn.send(Response(200, [])) + conn.send(Data(b"all")) + conn.send(EndOfMessage())
    assert b"Transfer-Encoding" not in raw and b"Content-Length" not in raw
    assert raw.endswith(b"Connection: close\r\n\r\nall")
    assert conn.our_state is S.MUST_CLOSE


# -- HEAD, 204, 304 ------------------------------------------------------------------------


def test_head_keeps_content_length_and_drops_the_body(conn):
    conn.receive_data(b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n")
    events_until_pause(conn)
    raw = conn.send(Response(200, [("Content-Length", "12")]))
    assert conn.send(Data(b"not sent")) == b""
    raw += conn.send(EndOfMessage())
    assert raw.endswith(b"Content-Length: 12\r\n\r\n")
    response, body, rest = read_response(raw, method="HEAD")
    assert (response.status, body, rest) == (200, b"", b"")
    assert conn.our_state is S.DONE


@pytest.mark.parametrize(("status", "length"), [(204, None), (304, "7")])
def test_204_and_304_have_no_body(conn, status, length):
    conn.receive_data(GET)
    events_until_pause(conn)
    raw = answer(conn, status, b"dropped", [("Content-Length", "7")])
    assert raw.endswith(b"\r\n\r\n")
    assert b"dropped" not in raw and b"Transfer-Encoding" not in raw
    response, body, rest = read_response(raw)
    assert (response.status, body, rest) == (status, b"", b"")
    assert response.getheader("Content-Length") == length
    assert conn.our_state is S.DONE


# -- bodies and trailers -------------------------------------------------------------------


def test_chunked_request_body_and_its_trailers(conn):
    conn.receive_data(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"3\r\nabc\r\n2\r\nde\r\n0\r\nX-Sum: 5\r\n\r\n")
    events = events_until_pause(conn)
    assert events[0].chunked
    assert b"".join(e.data for e in events if isinstance(e, Body)) == b"abcde"
    end = events[-2]
    assert isinstance(end, EndOfMessage) and end.trailers == [(b"x-sum", b"5")]


def test_chunked_response_with_trailers(conn):
    conn.receive_data(GET)
    events_until_pause(conn)
    raw = conn.send(Response(200, [("Trailer", "X-Sum")]))  # Trailer is the server's: dropped
    assert b"Transfer-Encoding: chunked\r\n" in raw and b"Trailer" not in raw
    raw += conn.send(Data(b"abc")) + conn.send(Data(b"")) + conn.send(Data(b"de"))
    raw += conn.send(EndOfMessage([(b"X-Sum", b"5")]))
    assert raw.endswith(b"3\r\nabc\r\n2\r\nde\r\n0\r\nX-Sum: 5\r\n\r\n")
    assert read_response(raw)[1:] == (b"abcde", b"")
    assert conn.our_state is S.DONE


def test_content_length_response_body_in_pieces(conn):
    conn.receive_data(GET)
    events_until_pause(conn)
    raw = conn.send(Response(200, [("Content-Length", "6")]))
    raw += conn.send(Data(b"abc")) + conn.send(Data(b"def")) + conn.send(EndOfMessage())
    assert b"Transfer-Encoding" not in raw
    assert read_response(raw)[1:] == (b"abcdef", b"")
    assert conn.keep_alive


# -- 100-continue --------------------------------------------------------------------------


EXPECT = b"PUT /f HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"


def test_100_continue_is_sent_on_request(conn):
    conn.receive_data(EXPECT)
    assert isinstance(conn.next_event(), RequestHead)
    assert conn.they_are_waiting_for_100_continue
    assert conn.next_event() is NEED_DATA  # never sent by the Connection itself
    assert conn.send(InformationalResponse(100)) == CONTINUE
    assert not conn.they_are_waiting_for_100_continue
    assert conn.our_state is S.SEND_RESPONSE
    conn.receive_data(b"abc")
    events = events_until_pause(conn)
    assert events[0] == Body(b"abc") and isinstance(events[1], EndOfMessage)
    answer(conn)
    assert conn.keep_alive and conn.our_state is S.DONE


def test_a_body_sent_without_waiting_ends_the_wait(conn):
    conn.receive_data(EXPECT + b"ab")
    assert isinstance(conn.next_event(), RequestHead)
    assert conn.they_are_waiting_for_100_continue
    assert isinstance(conn.next_event(), Body)
    assert not conn.they_are_waiting_for_100_continue


def test_a_final_response_instead_of_100_closes(conn):
    conn.receive_data(EXPECT)
    conn.next_event()
    raw = answer(conn, 413, b"too big")
    assert read_response(raw)[0].getheader("Connection") == "close"
    assert not conn.keep_alive and conn.our_state is S.MUST_CLOSE


def test_interim_responses(conn):
    conn.receive_data(GET)
    events_until_pause(conn)
    hints = conn.send(InformationalResponse(103, [("Link", "</s.css>; rel=preload")]))
    assert hints == b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
    with pytest.raises(InvalidResponse):
        conn.send(InformationalResponse(101))
    with pytest.raises(InvalidResponse):
        conn.send(InformationalResponse(200))
    assert conn.our_state is S.SEND_RESPONSE
    raw = hints + answer(conn)
    assert raw.count(b"HTTP/1.1 ") == 2


def test_no_interim_response_to_http10(conn):
    conn.receive_data(b"GET / HTTP/1.0\r\n\r\n")
    events_until_pause(conn)
    assert conn.send(InformationalResponse(103, [("Link", "</a>")])) == b""
    assert conn.our_state is S.SEND_RESPONSE


# -- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "error", "status"),
    [
        (b"get / HTTP/1.1\r\n\r\n", InvalidMethod, 400),
        (b"GET / HTTP/2.0\r\n\r\n", UnsupportedVersion, 505),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", DuplicateHeader, 400),
        (b"GET / HTTP/1.1\r\nExpect: magic\r\n\r\n", ExpectationFailed, 417),
        (b"GET / HTTP/1.1\r\n" + b"X-A: 1\r\n" * 101 + b"\r\n", TooManyHeaders, 431),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: br, chunked\r\n\r\n",
         UnsupportedTransferCoding, 501),
    ],
    ids=["method", "version", "duplicate-host", "expect", "too-many-fields", "coding"],
)
def test_a_bad_request_raises_with_its_status(conn, data, error, status):
    conn.receive_data(data)
    with pytest.raises(error) as info:
        conn.next_event()
    assert isinstance(info.value, ParseError) and info.value.status == status
    assert conn.their_state is S.ERROR and not conn.keep_alive
    with pytest.raises(error):
        conn.next_event()  # final
    # the answer can still go out, and closes
    raw = answer(conn, status, info.value.message.encode())
    response, body, _ = read_response(raw)
    assert response.status == status and body == info.value.message.encode()
    assert response.getheader("Connection") == "close"
    assert conn.our_state is S.MUST_CLOSE


def test_a_bad_chunk_mid_body(conn):
    conn.receive_data(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert isinstance(conn.next_event(), RequestHead)
    assert conn.our_state is S.SEND_RESPONSE
    conn.receive_data(b"zz\r\n")
    with pytest.raises(InvalidChunk):
        conn.next_event()
    raw = answer(conn, 400, b"bad chunk")
    assert read_response(raw)[0].getheader("Connection") == "close"


def test_whole_requests_before_a_bad_one_are_served_first(conn):
    conn.receive_data(GET + b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
    events = events_until_pause(conn)
    assert isinstance(events[0], RequestHead) and events[-1] is PAUSED
    answer(conn)
    conn.start_next_cycle()
    with pytest.raises(DuplicateHeader):
        conn.next_event()
    assert conn.our_state is S.IDLE
    raw = answer(conn, 400, b"bad")
    assert read_response(raw)[0].getheader("Connection") == "close"
    assert (conn.our_state, conn.their_state) == (S.MUST_CLOSE, S.ERROR)


@pytest.mark.parametrize("data", [b"GET / HT", GET[:-2],
                                  b"POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\nabc",
                                  b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab"],
                         ids=["request-line", "head", "length-body", "chunked-body"])
def test_eof_mid_request_is_incomplete(conn, data):
    conn.receive_data(data)
    events = events_until_pause(conn)
    assert events[-1] is NEED_DATA
    conn.receive_data(b"")
    with pytest.raises(IncompleteMessage) as info:
        conn.next_event()
    assert info.value.status == 400
    assert conn.their_state is S.ERROR


def test_eof_after_a_request_while_answering(conn):
    conn.receive_data(GET)
    events_until_pause(conn)
    conn.receive_data(b"")
    assert isinstance(conn.next_event(), ConnectionClosed)
    assert conn.their_state is S.CLOSED and not conn.keep_alive
    answer(conn)  # the answer can still be written (a half-closed client reads it)
    assert conn.our_state is S.MUST_CLOSE


def test_an_answer_with_no_request_closes(conn):
    conn.receive_data(b"GET /slow")  # a timeout before the head was complete
    assert conn.next_event() is NEED_DATA
    raw = answer(conn, 408, b"timeout")
    response, body, _ = read_response(raw)
    assert (response.status, body, response.getheader("Connection")) == (408, b"timeout", "close")
    assert (conn.our_state, conn.their_state) == (S.MUST_CLOSE, S.MUST_CLOSE)


# -- sends out of order --------------------------------------------------------------------


def test_sends_out_of_order(conn):
    with pytest.raises(LocalProtocolError, match="Data goes after a Response"):
        conn.send(Data(b"x"))
    with pytest.raises(LocalProtocolError, match="EndOfMessage goes after a Response"):
        conn.send(EndOfMessage())
    with pytest.raises(LocalProtocolError, match="InformationalResponse"):
        conn.send(InformationalResponse(100))
    conn.receive_data(GET)
    events_until_pause(conn)
    with pytest.raises(LocalProtocolError, match="1xx status is an InformationalResponse"):
        conn.send(Response(100))
    with pytest.raises(LocalProtocolError, match="1xx"):
        conn.send(Response(101, [("Upgrade", "websocket")]))
    with pytest.raises(LocalProtocolError, match="cannot send a Body"):
        conn.send(Body(b"x"))  # type: ignore[arg-type]
    conn.send(Response(200, [("Content-Length", "3")]))
    with pytest.raises(LocalProtocolError, match="once per request"):
        conn.send(Response(200))
    with pytest.raises(LocalProtocolError, match="InformationalResponse goes"):
        conn.send(InformationalResponse(103))
    with pytest.raises(LocalProtocolError, match="more body than the Content-Length of 3"):
        conn.send(Data(b"abcd"))
    assert conn.send(Data(b"ab")) == b"ab"
    with pytest.raises(LocalProtocolError, match="short of its Content-Length"):
        conn.send(EndOfMessage())
    with pytest.raises(LocalProtocolError, match="send_failed"):
        conn.send(ConnectionClosed())
    assert conn.our_state is S.SEND_BODY  # nothing of that changed a state
    conn.send_failed()
    assert conn.our_state is S.ERROR and not conn.keep_alive
    assert conn.send(ConnectionClosed()) == b""
    assert conn.our_state is S.CLOSED


def test_a_bad_response_can_be_replaced_by_a_500(conn):
    conn.receive_data(GET)
    events_until_pause(conn)
    with pytest.raises(InvalidResponse) as info:
        conn.send(Response(200, [("X-Bad", "a\r\nInjected: 1")]))
    assert info.value.status == 500
    assert conn.our_state is S.SEND_RESPONSE
    raw = answer(conn, 500, b"oops")
    assert read_response(raw)[0].status == 500
    assert b"Injected" not in raw


def test_receive_data_after_eof(conn):
    conn.receive_data(b"")
    with pytest.raises(LocalProtocolError, match="after the end"):
        conn.receive_data(b"GET")


def test_connect_gets_no_tunnel_and_upgrade_is_declined(conn):
    conn.receive_data(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
    events = events_until_pause(conn)
    assert events[0].method == b"CONNECT"
    with pytest.raises(LocalProtocolError, match="no tunnels"):
        conn.send(Response(200))
    answer(conn, 405, b"no")
    conn.start_next_cycle()
    upgrade = (b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n")
    conn.receive_data(upgrade + GET)
    events = events_until_pause(conn)
    assert events[0].upgrade == b"websocket" and events[-1] is PAUSED
    answer(conn, 426, b"plain HTTP only")
    conn.start_next_cycle()  # the switch is declined: the next request is read
    assert conn.next_event().path == b"/"


# -- over real sockets ---------------------------------------------------------------------


def serve_connection(sock: socket.socket) -> None:
    """A blocking server for one accepted socket, using nothing but Connection."""
    conn = Connection()
    body: list[bytes] = []
    while True:
        try:
            event = conn.next_event()
        except ParseError as exc:
            sock.sendall(answer(conn, exc.status, exc.message.encode(),
                                [("Content-Type", "text/plain")]))
            return
        if event is NEED_DATA:
            conn.receive_data(sock.recv(65536))
        elif isinstance(event, ConnectionClosed):
            return
        elif isinstance(event, Body):
            body.append(event.data)
        elif isinstance(event, EndOfMessage):
            head = conn.request
            assert head is not None
            payload = b"%s %s %d\n" % (head.method, head.target, len(b"".join(body)))
            body.clear()
            sock.sendall(answer(conn, 200, payload, [("Content-Type", "text/plain")]))
            if conn.our_state is not S.DONE:
                return
            conn.start_next_cycle()


@pytest.fixture
def server() -> Iterator[tuple[int, list[int]]]:
    """A tiny threaded server on a free 127.0.0.1 port: (port, accepted connection count)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)  # to see `stop` soon
    accepted: list[int] = []
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            try:
                sock, _ = listener.accept()
            except TimeoutError:
                continue
            accepted.append(1)
            with sock:
                sock.settimeout(10)
                try:
                    serve_connection(sock)
                except BaseException as exc:  # the test fails on it below
                    failures.append(exc)

    failures: list[BaseException] = []
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], accepted
    finally:
        stop.set()
        thread.join(10)
        listener.close()
    assert not thread.is_alive()
    assert failures == []


def test_serves_http_client_over_a_real_socket(server):
    port, accepted = server
    client = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        client.request("GET", "/a?b=1")
        response = client.getresponse()
        assert (response.status, response.read()) == (200, b"GET /a?b=1 0\n")
        assert response.getheader("Transfer-Encoding") == "chunked"

        client.request("POST", "/up", body=b"x" * 100_000)
        response = client.getresponse()
        assert response.read() == b"POST /up 100000\n"

        client.request("POST", "/chunks", body=iter([b"ab", b"cde"]),
                       headers={"Transfer-Encoding": "chunked"}, encode_chunked=True)
        assert client.getresponse().read() == b"POST /chunks 5\n"

        client.request("HEAD", "/h")
        response = client.getresponse()
        assert (response.status, response.read()) == (200, b"")

        client.request("GET", "/last", headers={"Connection": "close"})
        response = client.getresponse()
        assert response.read() == b"GET /last 0\n"
        assert response.getheader("Connection") == "close"
    finally:
        client.close()
    assert len(accepted) == 1  # all five on one kept-alive connection

    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
        answer_bytes = b""
        while chunk := raw.recv(65536):
            answer_bytes += chunk
    response, body, _ = read_response(answer_bytes)
    assert response.status == 400 and body  # the error's message
    assert response.getheader("Connection") == "close"


# -- the same states as h11 ----------------------------------------------------------------

# Not here, on purpose: HTTP/1.0 with Connection: keep-alive (h11 never keeps 1.0 alive;
# gcorn does, as gunicorn) and a final response to a request waiting for 100 Continue
# (h11 reads on; gcorn closes, as the body may or may not come).
_H11_NAMES = {"Request": "RequestHead", "Data": "Body"}
POST = b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\n"
SCENARIOS = {
    "keep-alive": [("recv", GET), "next", ("respond", []), "cycle", ("recv", b""), "next",
                   "close"],
    "request-close": [("recv", b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"),
                      "next", ("respond", []), ("recv", b""), "next", "close"],
    "http10": [("recv", b"GET / HTTP/1.0\r\n\r\n"), "next", ("respond", []), "close"],
    "pipelined": [("recv", GET + get(b"/2")), "next", ("respond", []), "cycle", "next",
                  ("respond", []), "cycle", "next"],
    "response-first": [("recv", POST + b"ab"), "next", ("respond", []), ("recv", b"cd"),
                       "next", "cycle", "next"],
    "server-close": [("recv", GET + GET), "next", ("respond", [("Connection", "close")]),
                     "close"],
    "100-continue": [("recv", POST.replace(b"\r\n\r\n", b"\r\nExpect: 100-continue\r\n\r\n")),
                     "next", "continue", ("recv", b"abcd"), "next", ("respond", []), "cycle"],
}


def _run(scenario: list, ours: bool) -> list[tuple[str, ...]]:
    """Play a scenario on a gcorn Connection or an h11 one; what each step saw."""
    import h11

    conn = Connection() if ours else h11.Connection(h11.SERVER)
    seen: list[tuple[str, ...]] = []
    for step in scenario:
        kinds: list[str] = []
        if step == "next":
            while True:
                event = conn.next_event()
                name = event.name if isinstance(event, NoEvent) else type(event).__name__
                kinds.append(_H11_NAMES.get(name, name))
                if name in ("NEED_DATA", "PAUSED", "ConnectionClosed"):
                    break
        elif step == "cycle":
            conn.start_next_cycle()
        elif step == "close":
            conn.send(ConnectionClosed() if ours else h11.ConnectionClosed())
        elif step == "continue":
            kinds.append(str(conn.they_are_waiting_for_100_continue))
            conn.send(InformationalResponse(100) if ours else h11.InformationalResponse(
                status_code=100, headers=[]))
            kinds.append(str(conn.they_are_waiting_for_100_continue))
        elif step[0] == "recv":
            conn.receive_data(step[1])
        else:
            headers = step[1]
            if ours:
                answer(conn, 200, b"ok", headers)
            else:
                conn.send(h11.Response(status_code=200, headers=headers))
                conn.send(h11.Data(data=b"ok"))
                conn.send(h11.EndOfMessage())
        seen.append((*kinds, _state_name(conn.our_state), _state_name(conn.their_state)))
    return seen


def _state_name(state: object) -> str:
    return state.name if isinstance(state, ConnectionState) else repr(state)


@pytest.mark.parametrize("name", SCENARIOS)
def test_states_and_events_match_h11(name):
    pytest.importorskip("h11", reason="h11 is the reference for the states")
    assert _run(SCENARIOS[name], ours=True) == _run(SCENARIOS[name], ours=False)


def test_nothing_is_kept_after_a_request_that_closes(conn):
    conn.receive_data(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
    events_until_pause(conn)
    assert conn.their_state is S.MUST_CLOSE
    conn.receive_data(GET * 1000)
    assert conn.next_event() is NEED_DATA
    assert conn._pending == []  # not buffered for nothing
