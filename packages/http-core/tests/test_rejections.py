"""Every rule that refuses a request: the error class, its status, a safe message."""

from __future__ import annotations

import pytest

from gcorn.http import (
    Body,
    EndOfMessage,
    HTTPProtocolError,
    IncompleteMessage,
    InvalidChunk,
    InvalidMethod,
    ParseError,
    RequestHead,
    RequestParser,
)

from .conftest import HAVE_HTTPTOOLS, load_corpus, merge_bodies

CORPUS = load_corpus()


@pytest.mark.parametrize("case", CORPUS.INVALID, ids=lambda c: c.name)
def test_invalid_request_is_refused_with_its_status(backend, case):
    parser = RequestParser(backend)
    with pytest.raises(case.error) as info:
        parser.feed(case.data)
        parser.feed_eof()
    error = info.value
    assert isinstance(error, ParseError) and isinstance(error, HTTPProtocolError)
    assert error.status in (400, 414, 417, 431, 501, 505)
    assert str(error) == error.message and error.message
    # The message never echoes what the client sent.
    assert not any(ord(c) < 32 or ord(c) > 126 for c in error.message)


@pytest.mark.parametrize("case", CORPUS.VALID, ids=lambda c: c.name)
def test_valid_request_is_accepted(parse, case):
    events = parse(case.data)
    assert type(events[-1]).__name__ == "EndOfMessage"


def test_statuses_of_the_error_family():
    from gcorn import http

    expected = {
        "UnsupportedVersion": 505, "UnsupportedTransferCoding": 501, "ExpectationFailed": 417,
        "RequestLineTooLong": 414, "TooManyHeaders": 431, "HeaderFieldTooLarge": 431,
        "InvalidResponse": 500, "LocalProtocolError": 500,
    }
    for name in http.__all__:
        cls = getattr(http, name)
        if isinstance(cls, type) and issubclass(cls, HTTPProtocolError):
            assert cls().status == expected.get(name, 400), name


def test_an_error_is_final(backend):
    parser = RequestParser(backend)
    with pytest.raises(InvalidMethod):
        parser.feed(b"get / HTTP/1.1\r\n\r\n")
    with pytest.raises(InvalidMethod):
        parser.feed(b"GET / HTTP/1.1\r\n\r\n")
    with pytest.raises(InvalidMethod):
        parser.feed_eof()


@pytest.mark.parametrize("first", [b"", b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n"])
def test_whole_requests_before_a_bad_one_come_with_its_error(backend, first):
    """Pipelined in one feed: a server serves the whole requests (error.events), then refuses."""
    parser = RequestParser(backend)
    good = b"POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi"
    with pytest.raises(InvalidMethod) as info:
        parser.feed(first + good + b"get / HTTP/1.1\r\n\r\n")
    events = merge_bodies(info.value.events)
    heads = [event for event in events if isinstance(event, RequestHead)]
    assert [head.path for head in heads] == ([b"/a"] if first else []) + [b"/b"]
    assert isinstance(events[-1], EndOfMessage)
    with pytest.raises(InvalidMethod) as again:
        parser.feed(b"GET / HTTP/1.1\r\n\r\n")
    assert again.value is info.value and not again.value.events  # handed out once
    # the request that the error cuts short is left out: it is the one refused
    with pytest.raises(InvalidChunk) as chunk:
        RequestParser(backend).feed(good + b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked"
                                    b"\r\n\r\n2\r\nab\r\nzz\r\n")
    assert [type(event) for event in merge_bodies(chunk.value.events)] == [
        RequestHead, Body, EndOfMessage]
    with pytest.raises(InvalidMethod) as alone:
        RequestParser(backend).feed(b"get / HTTP/1.1\r\n\r\n")
    assert not alone.value.events


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\nHost: a",
        b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nabc",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: 1\r\n",
    ],
)
def test_eof_inside_a_request(backend, data):
    parser = RequestParser(backend)
    parser.feed(data)
    assert parser.in_progress
    with pytest.raises(IncompleteMessage) as info:
        parser.feed_eof()
    assert info.value.status == 400


def test_eof_between_requests_is_clean(backend):
    parser = RequestParser(backend)
    assert len(parser.feed(b"GET / HTTP/1.1\r\n\r\n\r\n")) == 2
    assert parser.feed_eof() == []


@pytest.mark.parametrize(
    "prefix, error",
    [
        (b"GET / HTTP/1.1\nHost", "InvalidLineEnding"),
        (b"GET /" + b"a" * 5000, "RequestLineTooLong"),
        (b"GET / HTTP/1.1\r\nX: " + b"a" * 9000, "HeaderFieldTooLarge"),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz", "InvalidChunk"),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n12345678901234567", "InvalidChunk"),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;" + b"a" * 5000, "InvalidChunk"),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXY", "InvalidChunk"),
    ],
)
def test_incomplete_input_that_cannot_become_valid_is_refused_at_once(backend, prefix, error):
    parser = RequestParser(backend)
    with pytest.raises(ParseError) as info:
        parser.feed(prefix)
    assert type(info.value).__name__ == error


@pytest.mark.skipif(not HAVE_HTTPTOOLS, reason="httptools is not installed")
@pytest.mark.parametrize("case", CORPUS.VALID + CORPUS.INVALID, ids=lambda c: c.name)
def test_both_backends_agree_on_the_corpus(case):
    def outcome(backend: str) -> object:
        parser = RequestParser(backend)
        try:
            return merge_bodies(parser.feed(case.data) + parser.feed_eof())
        except ParseError as exc:
            return type(exc), exc.status

    assert outcome("httptools") == outcome("python")
