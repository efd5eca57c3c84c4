"""The response side: status line, header fields and chunked framing."""

from __future__ import annotations

import pytest

from gcorn.http import (
    InvalidResponse,
    RequestParser,
    check_header,
    encode_chunk,
    encode_last_chunk,
    reason_phrase,
    serialize_headers,
    serialize_response_head,
    status_line,
)


def test_response_head():
    head = serialize_response_head(200, [("Content-Type", "text/plain"), (b"X-B", b"\xff")])
    assert head == b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-B: \xff\r\n\r\n"


def test_status_lines():
    assert status_line(404) == b"HTTP/1.1 404 Not Found\r\n"
    assert status_line(299) == b"HTTP/1.1 299 \r\n"
    assert status_line(200, "Fine") == b"HTTP/1.1 200 Fine\r\n"
    assert status_line(500, version=b"1.0") == b"HTTP/1.0 500 Internal Server Error\r\n"
    assert reason_phrase(418) == b"I'm a Teapot" or reason_phrase(418) == b"I'm a teapot"


def test_414_says_uri_too_long_on_every_python():
    """RFC 9110 15.5.15 and gunicorn: "URI Too Long" (Python before 3.13 says "Request-URI")."""
    assert reason_phrase(414) == b"URI Too Long"
    assert status_line(414) == b"HTTP/1.1 414 URI Too Long\r\n"


@pytest.mark.parametrize("status", [99, 1000, -1, True, "200", 200.0])
def test_bad_status_is_refused(status):
    with pytest.raises(InvalidResponse):
        status_line(status)


@pytest.mark.parametrize(
    "name, value",
    [
        ("X-Bad", "a\r\nSet-Cookie: evil=1"),
        ("X-Bad", "a\nb"),
        ("X-Bad", "a\rb"),
        ("X-Bad", "a\x00b"),
        ("X-Bad", "a\x7fb"),
        ("X Bad", "1"),
        ("X-Bad:", "1"),
        ("", "1"),
        ("X-Bad\r\n", "1"),
        ("X-Ünicode", "1"),
        ("X-Bad", "snow \u2603"),
        (b"X-Bad", 1),
    ],
)
def test_header_injection_is_refused(name, value):
    with pytest.raises(InvalidResponse) as info:
        serialize_response_head(200, [(name, value)])
    assert info.value.status == 500 and isinstance(info.value, ValueError)


def test_reason_injection_is_refused():
    with pytest.raises(InvalidResponse):
        status_line(200, "OK\r\nX: y")


def test_check_header_and_serialize_headers():
    assert check_header("X-A", "  spaced\t") == (b"X-A", b"  spaced\t")
    assert serialize_headers([("A", "1"), ("B", "")]) == b"A: 1\r\nB: \r\n"


def test_chunked_encoding_round_trips_through_the_parser(backend):
    pieces = [b"hello", b"", b" ", b"x" * 1000]
    body = b"".join(encode_chunk(p) for p in pieces) + encode_last_chunk([("X-Sum", "9")])
    assert encode_chunk(b"") == b""
    assert encode_chunk(b"abc") == b"3\r\nabc\r\n"
    assert encode_last_chunk() == b"0\r\n\r\n"
    parser = RequestParser(backend)
    events = parser.feed(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
    assert b"".join(e.data for e in events[1:-1]) == b"".join(pieces)
    assert events[-1].trailers == [(b"x-sum", b"9")]


def test_trailer_injection_is_refused():
    with pytest.raises(InvalidResponse):
        encode_last_chunk([("X", "1\r\n\r\nHTTP/1.1 200 OK")])
