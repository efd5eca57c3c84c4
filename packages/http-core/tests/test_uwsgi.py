"""uwsgi-protocol request reader."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gcorn.http import (
    Body,
    EndOfMessage,
    IncompleteMessage,
    InvalidUwsgiPacket,
    ParseError,
    UwsgiParser,
    UwsgiRequest,
    encode_uwsgi_vars,
    parse_uwsgi_vars,
)

VARS = {"REQUEST_METHOD": "POST", "PATH_INFO": "/caf\xe9", "QUERY_STRING": "a=1",
        "CONTENT_LENGTH": "5", "HTTP_HOST": "example.com"}


def test_request_with_body():
    parser = UwsgiParser()
    events = parser.feed(encode_uwsgi_vars(VARS) + b"hello")
    assert events == [UwsgiRequest(VARS, 0, 0, 5), Body(b"hello"), EndOfMessage([])]
    assert parser.feed(b"more") == []


def test_request_fed_byte_by_byte():
    data = encode_uwsgi_vars(VARS) + b"hello"
    parser = UwsgiParser()
    events = []
    for i in range(len(data)):
        events += parser.feed(data[i : i + 1])
    assert events[0] == UwsgiRequest(VARS, 0, 0, 5)
    assert b"".join(e.data for e in events if isinstance(e, Body)) == b"hello"
    assert events[-1] == EndOfMessage([])


def test_request_without_body():
    variables = {"REQUEST_METHOD": "GET", "PATH_INFO": "/"}
    events = UwsgiParser().feed(encode_uwsgi_vars(variables))
    assert events == [UwsgiRequest(variables, 0, 0, 0), EndOfMessage([])]


@pytest.mark.parametrize(
    "data",
    [
        encode_uwsgi_vars({"A": "1"}, modifier1=5),
        encode_uwsgi_vars({"CONTENT_LENGTH": "x"}),
        encode_uwsgi_vars({"CONTENT_LENGTH": "-1"}),
        b"\x00\x03\x00\x00\x05\x00A",
        b"\x00\x04\x00\x00\x00\x00\x01\x00",
        b"\x00\x06\x00\x00\x01\x00A\x05\x00x",
    ],
)
def test_invalid_packets(data):
    with pytest.raises(InvalidUwsgiPacket) as info:
        UwsgiParser().feed(data)
    assert info.value.status == 400


def test_limits_and_duplicates():
    block = b"".join(b"\x01\x00K\x01\x00V" for _ in range(2))
    with pytest.raises(InvalidUwsgiPacket, match="repeated"):
        parse_uwsgi_vars(block)
    many = b"".join(len(k).to_bytes(2, "little") + k + b"\x00\x00"
                    for k in (b"K%d" % i for i in range(1001)))
    with pytest.raises(InvalidUwsgiPacket, match="too many"):
        parse_uwsgi_vars(many)


def test_eof_inside_a_request():
    parser = UwsgiParser()
    parser.feed(encode_uwsgi_vars(VARS) + b"he")
    with pytest.raises(IncompleteMessage):
        parser.feed_eof()
    assert UwsgiParser().feed_eof() == []


@given(st.binary(max_size=200))
def test_random_bytes_raise_only_parse_errors(data):
    parser = UwsgiParser()
    try:
        parser.feed(data)
        parser.feed_eof()
    except ParseError:
        pass
