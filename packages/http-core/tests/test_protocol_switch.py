"""Upgrade and CONNECT: the parser stops after the request and hands the rest back."""

from __future__ import annotations

import pytest

from gcorn.http import EndOfMessage, RequestHead, RequestParser

WEBSOCKET = (
    b"GET /chat HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\n"
    b"Upgrade: WebSocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)


def test_upgrade_pauses_and_hands_back_the_following_bytes(backend):
    parser = RequestParser(backend)
    events = parser.feed(WEBSOCKET + b"\x81\x85frame")
    assert [type(e) for e in events] == [RequestHead, EndOfMessage]
    assert events[0].upgrade == b"websocket"
    assert parser.paused
    assert parser.feed(b"more") == []
    assert parser.take_unparsed() == b"\x81\x85framemore"
    assert not parser.paused
    assert parser.feed(b"GET / HTTP/1.1\r\n\r\n") == []  # the connection is no longer HTTP


def test_upgrade_request_with_a_body_pauses_after_the_body(backend):
    parser = RequestParser(backend)
    data = (b"POST /up HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: h2c\r\n"
            b"Content-Length: 3\r\n\r\nabcPRI")
    events = parser.feed(data)
    assert [type(e).__name__ for e in events] == ["RequestHead", "Body", "EndOfMessage"]
    assert events[1].data == b"abc" and parser.take_unparsed() == b"PRI"


def test_declined_upgrade_resumes_http(backend):
    parser = RequestParser(backend)
    parser.feed(WEBSOCKET + b"GET /next HTTP/1.1\r\n")
    assert parser.paused
    events = parser.resume()
    assert events == []
    events = parser.feed(b"\r\n")
    assert [e.path for e in events if isinstance(e, RequestHead)] == [b"/next"]


def test_connect_opens_a_tunnel(backend):
    parser = RequestParser(backend)
    events = parser.feed(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
                         b"\x16\x03\x01tls")
    assert events[0].method == b"CONNECT" and events[0].upgrade is None
    assert parser.paused and parser.take_unparsed() == b"\x16\x03\x01tls"


def test_upgrade_is_ignored_without_connection_upgrade_or_on_http10(parse):
    events = parse(b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\nGET /2 HTTP/1.1\r\n\r\n")
    assert events[0].upgrade is None and events[2].path == b"/2"
    events = parse(b"GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n")
    assert events[0].upgrade is None


def test_take_unparsed_needs_a_paused_parser(backend):
    parser = RequestParser(backend)
    with pytest.raises(RuntimeError):
        parser.take_unparsed()
    with pytest.raises(RuntimeError):
        parser.resume()
