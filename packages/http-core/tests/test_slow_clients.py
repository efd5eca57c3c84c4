"""Heads and trailers that arrive a byte at a time cost linear time, not quadratic."""

from __future__ import annotations

import time

import pytest

from gcorn.http import HeaderFieldTooLarge, RequestParser

FIELDS = b"".join(b"X-%d: %s\r\n" % (i, b"v" * 990) for i in range(60))


def feed_bytewise(parser: RequestParser, data: bytes) -> list[object]:
    events: list[object] = []
    for i in range(len(data)):
        events += parser.feed(data[i : i + 1])
    return events


def test_a_60_kib_head_byte_by_byte(backend):
    started = time.perf_counter()
    events = feed_bytewise(RequestParser(backend), b"GET / HTTP/1.1\r\n" + FIELDS + b"\r\n")
    assert len(events[0].headers) == 60
    # Quadratic buffering would copy and rescan ~1.8 GB here (tens of seconds).
    assert time.perf_counter() - started < 5


def test_60_kib_of_trailers_byte_by_byte(backend):
    started = time.perf_counter()
    data = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n" + FIELDS + b"\r\n"
    events = feed_bytewise(RequestParser(backend), data)
    assert len(events[-1].trailers) == 60
    assert time.perf_counter() - started < 5


def test_an_endless_field_line_is_refused_as_it_arrives(backend):
    parser = RequestParser(backend)
    parser.feed(b"GET / HTTP/1.1\r\nX: ")
    with pytest.raises(HeaderFieldTooLarge):
        for _ in range(100):
            parser.feed(b"v" * 100)
