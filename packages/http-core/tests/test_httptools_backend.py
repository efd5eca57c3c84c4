"""The httptools backend's own splits of the work, checked against the pure code.

The backend reads field blocks with llhttp (behind a fixed 304 status line)
and builds usual heads on a short path; each split must give what the pure
field parser and head.build_head give for the same bytes.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gcorn.http import EndOfMessage, ParseError, RequestHead, RequestParser
from gcorn.http.fields import parse_fields
from gcorn.http.options import DEFAULT_OPTIONS

from .conftest import HAVE_HTTPTOOLS, merge_bodies

pytestmark = pytest.mark.skipif(not HAVE_HTTPTOOLS, reason="httptools is not installed")


def outcome(backend: str, pieces: list[bytes]) -> tuple[str, object]:
    """("ok", merged events) or ("error", (error class, status)) for the pieces, then EOF."""
    parser = RequestParser(backend)
    events = []
    try:
        for piece in pieces:
            events += parser.feed(piece)
        events += parser.feed_eof()
    except ParseError as exc:
        return "error", (type(exc), exc.status)
    return "ok", merge_bodies(events)


# Field lines aimed at the rules the short path applies itself (framing,
# Connection, repeats in any letter case) and at what llhttp hands over
# differently (trailing whitespace, obs-text, empty values).
FIELD = st.sampled_from([
    b"Host: example.com", b"host: other", b"HOST: x", b"Connection: close",
    b"Connection: keep-alive", b"connection: Keep-Alive, Upgrade", b"Connection: foo, close ",
    b"Connection: ,close,", b"Connection: closed", b"Content-Length: 3", b"content-length: 0",
    b"Content-Length: 03", b"Content-Length: 3 ", b"Content-Length: 1234567890123456789",
    b"Content-Length: +3", b"Transfer-Encoding: chunked", b"transfer-encoding: Chunked",
    b"Transfer-Encoding: gzip, chunked", b"Transfer-Encoding: chunked ", b"Expect: 100-continue",
    b"Upgrade: websocket", b"Content-Type: text/plain", b"content-type: a/b", b"Accept: */*",
    b"Accept: */*", b"X-Trailing: value \t", b"X-Obs: \x80\xff", b"X-Empty:", b"X-Tab:\tv",
    b"X-Space : v", b"X-Ctl: a\x01b", b"X-Del: a\x7f", b"X-Fold: a\r\n b",
])
LINE = st.sampled_from([
    b"GET / HTTP/1.1", b"POST /a?b=c HTTP/1.1", b"PUT /x HTTP/1.1", b"DELETE /%7e HTTP/1.1",
    b"OPTIONS / HTTP/1.1", b"GET /a#b HTTP/1.1", b"GET / HTTP/1.0", b"GET  / HTTP/1.1",
    b"GET /\"{}|\\^` HTTP/1.1",
])
# Bodies, chunked ones in the plainest encoding (which llhttp reads on the
# short path) and in every other shape (which the shared machine reads).
BODY = st.sampled_from([
    b"", b"abc", b"GET / HTTP/1.1\r\n\r\n", b"3\r\nabc\r\n0\r\n\r\n",
    b"3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n", b"3\r\nabc\r\n0\r\n\r\n\r\n",
    b"3\r\nabc\r\n0\r\n\r\n\r", b"3\r\nabc\r\n0\r\n\r\n\n", b"A\r\n0123456789\r\n0\r\n\r\n",
    b"a\r\n0123456789\r\n1\r\nx\r\n0\r\n\r\n", b"03\r\nabc\r\n0\r\n\r\n", b"3;x=y\r\nabc\r\n0\r\n\r\n",
    b"3 ;x\r\nabc\r\n0\r\n\r\n", b"3\r\nabc\r\n0;e\r\n\r\n", b"3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n",
    b"3\r\nabc\r\n0\r\nHost: h\r\n\r\n", b"3\r\nabc\r\n0\r\n", b"3\r\nabcd\r\n0\r\n\r\n",
    b"3\r\nab\r\n0\r\n\r\n", b"3\r\nabc\n0\r\n\r\n", b"0\r\n\r\n", b"1\r\n\r\r\n0\r\n\r\n",
    b"100\r\n" + b"x" * 256 + b"\r\n0\r\n\r\n", b"10000000000000000\r\nx\r\n0\r\n\r\n",
])


@st.composite
def usual_heads(draw: st.DrawFn) -> bytes:
    """A head that often takes the short path, and a body or a pipelined request."""
    fields = draw(st.lists(FIELD, max_size=5))
    head = draw(LINE) + b"\r\n" + b"".join(f + b"\r\n" for f in fields) + b"\r\n"
    return head + draw(BODY)


@given(data=usual_heads(), cut=st.integers(0, 400))
def test_short_path_gives_what_the_pure_backend_gives(data, cut):
    expected = outcome("python", [data])
    assert outcome("httptools", [data]) == expected
    # Split: the head no longer arrives whole, so the shared machine reads it.
    pieces = [data[:cut], data[cut:]]
    if expected[0] == "ok":
        assert outcome("httptools", pieces) == expected
    else:
        assert outcome("httptools", pieces)[0] == "error"


FIELD_BLOCKS = st.lists(
    st.tuples(
        st.sampled_from([b"A", b"x-y", b"!#$%&'*+-.^_`|~", b"Host", b"A B", b"", b"\xff"]),
        st.sampled_from([b":", b": ", b":\t ", b" :"]),
        st.binary(max_size=8),
        st.sampled_from([b"", b" ", b"\t", b"  "]),
        st.sampled_from([b"\r\n", b"\r\n", b"\n", b"\r\n "]),
    ),
    min_size=1,
    max_size=6,
).map(lambda lines: b"".join(n + s + v + t + e for n, s, v, t, e in lines))


@given(block=FIELD_BLOCKS)
def test_llhttp_field_scan_accepts_only_what_the_pure_parser_accepts(block):
    parser = RequestParser("httptools")
    head = b"GET / HTTP/1.1\r\n" + block + b"\r\n"
    line_end = head.find(b"\r\n")
    head_end = head.find(b"\r\n\r\n")
    if head_end < 0 or head_end <= line_end:
        return
    scanned = parser._scan(head, line_end, head_end)  # type: ignore[attr-defined]
    if scanned is None:
        return  # llhttp refused or could not tell: the pure parser decides
    assert scanned == parse_fields(head[line_end + 2 : head_end + 2], DEFAULT_OPTIONS)


def test_the_llhttp_scanner_is_reused_across_keep_alive_requests():
    parser = RequestParser("httptools")
    request = b"GET / HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n"
    scanner = parser._llhttp  # type: ignore[attr-defined]
    for _ in range(3):
        events = parser.feed(request)
        assert isinstance(events[0], RequestHead) and isinstance(events[1], EndOfMessage)
    assert parser._llhttp is scanner  # type: ignore[attr-defined]


def test_a_refused_field_block_does_not_spoil_the_next_request():
    # "Space before colon" is refused by llhttp and, by default, by our rules too;
    # with strip_header_spaces it is accepted, and the pure field parser reads it.
    parser = RequestParser("httptools", strip_header_spaces=True)
    events = parser.feed(b"GET / HTTP/1.1\r\nHost : a\r\n\r\nGET /b HTTP/1.1\r\nHost: b\r\n\r\n")
    heads = [e for e in events if isinstance(e, RequestHead)]
    assert [h.headers for h in heads] == [[(b"host", b"a")], [(b"host", b"b")]]
    # The default parser: llhttp's refusal is confirmed by the pure parser.
    parser = RequestParser("httptools")
    with pytest.raises(ParseError) as caught:
        parser.feed(b"GET / HTTP/1.1\r\nHost : a\r\n\r\n")
    assert caught.value.status == 400


@pytest.mark.parametrize("field, expected", [
    (b"X-A: v \t", [(b"x-a", b"v")]),  # llhttp keeps trailing whitespace; we do not
    (b"Accept: a\r\nAccept: b", [(b"accept", b"a"), (b"accept", b"b")]),  # repeats kept
    (b"X-Obs: \x80\xff", [(b"x-obs", b"\x80\xff")]),
])
def test_fields_that_llhttp_hands_over_differently(field, expected):
    data = b"GET / HTTP/1.1\r\n" + field + b"\r\n\r\n"
    for backend in ("python", "httptools"):
        head = RequestParser(backend).feed(data)[0]
        assert isinstance(head, RequestHead)
        assert head.headers == expected


@pytest.mark.parametrize("connection, keep_alive", [
    (b"close", False), (b"Keep-Alive", True), (b"foo, close", False), (b"closed", True),
    (b"upgrade", True), (b" , CLOSE ,", False),
])
def test_connection_tokens_on_the_short_path(connection, keep_alive):
    data = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: " + connection + b"\r\n\r\n"
    for backend in ("python", "httptools"):
        head = RequestParser(backend).feed(data)[0]
        assert isinstance(head, RequestHead)
        assert head.keep_alive is keep_alive


def test_llhttp_hands_over_one_body_piece_per_chunk_of_a_whole_buffer():
    # _whole_chunked_body relies on it: more pieces than chunks could make an
    # encoding with extensions look as long as the plainest one.
    import httptools

    chunks: list[bytes] = []

    class Reader:
        on_body = chunks.append

    sizes = [1, 15, 16, 255, 4096, 70000]
    body = b"".join(b"%x\r\n%s\r\n" % (n, b"y" * n) for n in sizes) + b"0\r\n\r\n"
    httptools.HttpRequestParser(Reader()).feed_data(
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + body
    )
    assert [len(c) for c in chunks] == sizes


@pytest.mark.parametrize("connection", [b"keep-alive", b"close"])
def test_a_whole_chunked_request_on_the_short_path(connection):
    data = (b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: "
            + connection + b"\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    for backend in ("python", "httptools"):
        parser = RequestParser(backend)
        events = parser.feed(data)
        assert [type(e).__name__ for e in events] == ["RequestHead", "Body", "Body", "EndOfMessage"]
        assert b"".join(e.data for e in events[1:3]) == b"abcde"  # type: ignore[union-attr]
        # After "Connection: close" the parser ignores what follows.
        assert parser.feed(data) == ([] if connection == b"close" else events)


SPECIAL_FIELDS = st.lists(
    st.tuples(
        st.sampled_from([b"host", b"connection", b"content-length", b"content-type",
                         b"transfer-encoding", b"upgrade", b"expect", b"accept"]),
        st.sampled_from([b"", b"1", b"0", b"01", b"+1", b"1 2", b"12345678901234567890", b"chunked",
                         b"Chunked", b"gzip, chunked", b"close", b"keep-alive", b"Close, foo",
                         b" , close", b"closed", b"upgrade", b"websocket", b"100-continue", b"a"]),
    ),
    max_size=6,
)


@given(fields=SPECIAL_FIELDS)
def test_usual_rules_agree_with_build_head(fields):
    from gcorn.http.head import build_head
    from gcorn.http.httptools_parser import _SPECIAL, _usual_rules

    rules = _usual_rules([field for field in fields if field[0] in _SPECIAL])
    try:
        head = build_head(b"GET", b"/", (1, 1), fields, DEFAULT_OPTIONS)
    except ParseError:
        assert rules is None  # the short path never accepts what the rules refuse
        return
    if rules is not None:
        assert rules == (head.keep_alive, head.content_length, head.chunked)
        assert head.upgrade is None and not head.expects_continue


@pytest.mark.parametrize("sizes, tail", [
    ([70000], b""), ([20000, 1], b""), ([20000], b"GET / HTTP/1.1\r\n\r\n"), ([20000], b"\r\n"),
])
def test_a_large_chunked_body_on_both_backends(sizes, tail):
    body = b"".join(b"%x\r\n%s\r\n" % (n, b"z" * n) for n in sizes) + b"0\r\n\r\n"
    data = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + body + tail
    assert outcome("httptools", [data]) == outcome("python", [data])
    assert outcome("httptools", [data])[0] == "ok"


def test_pipelined_bodyless_requests_each_end():
    data = b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n" * 2 + b"GET /b HTTP/1.1\r\nHost: a\r\n\r\n"
    events = RequestParser("httptools").feed(data)
    assert [type(e).__name__ for e in events] == ["RequestHead", "EndOfMessage"] * 3
    assert [e.target for e in events if isinstance(e, RequestHead)] == [b"/a", b"/a", b"/b"]
