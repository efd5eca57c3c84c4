"""Valid requests: what the events say, on both backends."""

from __future__ import annotations

import pytest

from gcorn.http import Body, EndOfMessage, InvalidRequestLine, RequestHead, RequestParser


def test_get_head_fields(parse_one):
    head, body, trailers = parse_one(
        b"GET /search?q=a%20b&page=2 HTTP/1.1\r\nHost: shop.example\r\nX-Two:  a b \r\n\r\n"
    )
    assert isinstance(head, RequestHead)
    assert head.method == b"GET"
    assert head.target == b"/search?q=a%20b&page=2"
    assert head.path == b"/search"
    assert head.query == b"q=a%20b&page=2"
    assert head.version == (1, 1) and head.http_version == "1.1"
    assert head.headers == [(b"host", b"shop.example"), (b"x-two", b"a b")]
    assert head.keep_alive and not head.expects_continue and head.upgrade is None
    assert head.content_length is None and not head.chunked
    assert head.get(b"host") == b"shop.example" and head.get(b"nope") is None
    assert body == b"" and trailers == []


def test_names_are_lower_cased_values_kept(parse_one):
    head, _, _ = parse_one(b"GET / HTTP/1.1\r\nX-MiXeD: VaLuE\xff\r\nACCEPT: a\r\nAccept: b\r\n\r\n")
    assert head.headers == [(b"x-mixed", b"VaLuE\xff"), (b"accept", b"a"), (b"accept", b"b")]


def test_content_length_body(parse_one):
    head, body, _ = parse_one(b"POST /u HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")
    assert head.content_length == 5 and body == b"hello"


def test_chunked_body_extensions_and_trailers(parse_one):
    data = (
        b"POST /u HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 42\r\nX-B:  z \r\n\r\n"
    )
    head, body, trailers = parse_one(data)
    assert head.chunked and head.content_length is None
    assert body == b"hello world"
    assert trailers == [(b"x-sum", b"42"), (b"x-b", b"z")]


def test_pipelined_requests_come_out_in_order(parse):
    data = (
        b"GET /1 HTTP/1.1\r\n\r\n"
        b"POST /2 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
        b"POST /3 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n"
        b"GET /4 HTTP/1.1\r\n\r\n"
    )
    events = parse(data)
    kinds = [type(e).__name__ for e in events]
    assert kinds == [
        "RequestHead", "EndOfMessage",
        "RequestHead", "Body", "EndOfMessage",
        "RequestHead", "Body", "EndOfMessage",
        "RequestHead", "EndOfMessage",
    ]
    assert [e.path for e in events if isinstance(e, RequestHead)] == [b"/1", b"/2", b"/3", b"/4"]
    assert [e.data for e in events if isinstance(e, Body)] == [b"abc", b"x"]


def test_keep_alive_rules(parse_one):
    def keep(request: bytes) -> bool:
        return parse_one(request)[0].keep_alive

    assert keep(b"GET / HTTP/1.1\r\n\r\n")
    assert not keep(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert not keep(b"GET / HTTP/1.1\r\nConnection: foo, CLOSE\r\n\r\n")
    assert not keep(b"GET / HTTP/1.0\r\n\r\n")
    assert keep(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
    assert not keep(b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n")
    # A content coding under chunked: the body is passed on, the connection closes.
    assert not keep(
        b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"
    )


def test_nothing_is_parsed_after_a_closing_request(backend):
    parser = RequestParser(backend)
    events = parser.feed(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\nGET /next HTTP/1.1\r\n\r\n")
    assert [type(e) for e in events] == [RequestHead, EndOfMessage]
    assert parser.feed(b"GET /more HTTP/1.1\r\n\r\n") == []
    assert not parser.in_progress


@pytest.mark.parametrize("split", [None, 1])
def test_nothing_is_parsed_after_a_closing_chunked_request(backend, split):
    data = (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nzz\r\n0\r\n\r\n"
            b"GET / HTTP/1.1\r\n\r\n")
    parser = RequestParser(backend)
    pieces = [data] if split is None else [data[i : i + 1] for i in range(len(data))]
    events = [e for piece in pieces for e in parser.feed(piece)]
    assert [type(e).__name__ for e in events if not isinstance(e, Body)] == [
        "RequestHead", "EndOfMessage"]
    assert parser.feed_eof() == []


def test_expect_100_continue(parse_one):
    head, _, _ = parse_one(
        b"POST / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\nx"
    )
    assert head.expects_continue
    head, _, _ = parse_one(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx")
    assert not head.expects_continue  # only HTTP/1.1 clients wait for it


def test_expect_100_continue_head_comes_before_the_body(backend):
    parser = RequestParser(backend)
    events = parser.feed(b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
    assert len(events) == 1 and events[0].expects_continue and parser.in_progress
    assert [type(e) for e in parser.feed(b"ok")] == [Body, EndOfMessage]


def test_target_forms(parse_one):
    head = parse_one(b"GET http://example.com:8080/a/b?c=d HTTP/1.1\r\n\r\n")[0]
    assert (head.target, head.path, head.query) == (b"http://example.com:8080/a/b?c=d", b"/a/b",
                                                    b"c=d")
    head = parse_one(b"GET https://example.com HTTP/1.1\r\n\r\n")[0]
    assert (head.path, head.query) == (b"/", b"")
    head = parse_one(b"OPTIONS * HTTP/1.1\r\n\r\n")[0]
    assert (head.target, head.path, head.query) == (b"*", b"*", b"")
    head = parse_one(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")[0]
    assert (head.target, head.path, head.query) == (b"example.com:443", b"", b"")
    head = parse_one(b"GET /a?b?c=/d HTTP/1.1\r\n\r\n")[0]
    assert (head.path, head.query) == (b"/a", b"b?c=/d")
    head = parse_one(b"GET /empty? HTTP/1.1\r\n\r\n")[0]
    assert (head.path, head.query) == (b"/empty", b"")


def test_raw_bytes_are_kept(parse_one):
    head = parse_one(b"GET /caf%C3%A9/%2F?x=%26 HTTP/1.1\r\n\r\n")[0]
    assert head.path == b"/caf%C3%A9/%2F" and head.query == b"x=%26"


def test_http10_without_host(parse_one):
    head, _, _ = parse_one(b"GET /old HTTP/1.0\r\n\r\n")
    assert head.version == (1, 0) and head.http_version == "1.0" and head.headers == []


def test_missing_host_on_http11_is_accepted(parse_one):
    head, _, _ = parse_one(b"GET / HTTP/1.1\r\n\r\n")
    assert head.get(b"host") is None


def test_one_empty_line_before_a_request_is_skipped(parse):
    events = parse(b"\r\nGET / HTTP/1.1\r\n\r\n\r\nGET /2 HTTP/1.1\r\n\r\n")
    assert [e.path for e in events if isinstance(e, RequestHead)] == [b"/", b"/2"]


@pytest.mark.parametrize("cut", range(1, 8))
def test_a_second_empty_line_is_an_empty_request_line_however_the_bytes_arrive(backend, cut):
    # As gunicorn: RFC 9112 2.2 asks to skip at least one; skipping one per
    # request, however split, gives both servers the same verdict.
    data = b"\r\n\r\nGET / HTTP/1.1\r\n\r\n"
    parser = RequestParser(backend)
    with pytest.raises(InvalidRequestLine):
        parser.feed(data[:cut])
        parser.feed(data[cut:])


def test_large_body_is_not_copied_when_it_is_all_body(backend):
    parser = RequestParser(backend)
    parser.feed(b"POST / HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n")
    piece = b"x" * 1_000_000
    events = parser.feed(piece)
    assert len(events) == 1 and events[0].data is piece
    events = parser.feed(piece)
    assert events[0].data is piece and isinstance(events[1], EndOfMessage)


def test_body_arriving_byte_by_byte(backend):
    parser = RequestParser(backend)
    data = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;a=\"q\"\r\nabc\r\n0\r\nT: 1\r\n\r\n"
    events = []
    for i in range(len(data)):
        events += parser.feed(data[i : i + 1])
    assert b"".join(e.data for e in events if isinstance(e, Body)) == b"abc"
    assert events[-1] == EndOfMessage([(b"t", b"1")])


def test_in_progress(backend):
    parser = RequestParser(backend)
    assert not parser.in_progress
    parser.feed(b"\r\n")
    assert not parser.in_progress
    parser.feed(b"GET / HT")
    assert parser.in_progress
    parser.feed(b"TP/1.1\r\n\r\n")
    assert not parser.in_progress


def test_backend_names(backend):
    assert RequestParser(backend).backend == backend
    assert RequestParser(backend="python").backend == "python"
