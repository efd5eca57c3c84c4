"""Property tests (hypothesis): split invariance, random bytes, and both backends agreeing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gcorn.http import ParseError, RequestParser
from gcorn.http.fields import parse_fields, parse_fields_slowly
from gcorn.http.options import DEFAULT_OPTIONS, ParserOptions

from .conftest import HAVE_HTTPTOOLS, load_corpus, merge_bodies

CORPUS = load_corpus()
ALL_CASES = CORPUS.VALID + CORPUS.INVALID



def mostly(valid: list[bytes], invalid: list[bytes]) -> st.SearchStrategy[bytes]:
    """Mostly valid parts, so that whole requests are often valid."""
    return st.integers(0, 15).flatmap(
        lambda n: st.sampled_from(invalid if n == 0 else valid)
    )


METHODS = mostly([b"GET", b"POST", b"PUT", b"PURGE", b"CONNECT", b"OPTIONS", b"FOOBAR"],
                 [b"get", b"G#T", b"GO", b"GE T", b""])
TARGETS = mostly([b"/", b"/a?b=c", b"/%20", b"http://h/p"],
                 [b"*", b"h:80", b"/a#b", b"", b"/\xff", b"x", b"[::1]:1", b"1http://h/?q",
                  b"a:b://[x"])
VERSIONS = mostly([b"HTTP/1.1", b"HTTP/1.0"], [b"HTTP/1.2", b"HTTP/2.0", b"HTTP/1", b"http/1.1"])
NAMES = mostly([b"Host", b"Content-Length", b"Connection", b"Expect", b"Upgrade",
                b"Content-Type", b"X-A", b"x_b", b"Trailer", b"Transfer-Encoding"],
               [b"X C", b"", b"X\xff"])
VALUES = st.integers(0, 15).flatmap(lambda n: st.binary(max_size=12) if n == 0 else mostly([b"", b"1", b"5", b"0", b"chunked", b"close", b"keep-alive", b"upgrade",
            b"websocket", b"100-continue", b"gzip, chunked", b" x ", b"a\tb", b"\xff", b"a b"],
           [b"1, 1", b"a\x00b", b"a\x7f", b"a\r\n b"]))
SEPARATORS = mostly([b": ", b":", b":\t"], [b" : ", b" :"])


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    """A request made of parts that are often valid and sometimes subtly not."""
    line = b" ".join((draw(METHODS), draw(TARGETS), draw(VERSIONS)))
    fields = [
        draw(NAMES) + draw(SEPARATORS) + draw(VALUES)
        for _ in range(draw(st.integers(0, 5)))
    ]
    body_kind = draw(st.sampled_from(["none", "length", "chunked"]))
    body = b""
    if body_kind == "length":
        body = draw(st.binary(max_size=20))
        fields.append(b"Content-Length: %d" % len(body))
    elif body_kind == "chunked":
        fields.append(b"Transfer-Encoding: chunked")
        for piece in draw(st.lists(st.binary(min_size=1, max_size=10), max_size=3)):
            ext = draw(mostly([b"", b";a", b";a=b", b';a="b c"', b" ;a"], [b";", b" ", b";\x01"]))
            body += b"%x%s\r\n%s\r\n" % (len(piece), ext, piece)
        body += b"0\r\n" + b"".join(
            draw(mostly([b"X-T: 1\r\n", b"X-U:\r\n"], [b"Host: h\r\n", b"Bad Name: 1\r\n"]))
            for _ in range(draw(st.integers(0, 2)))
        ) + b"\r\n"
    if draw(st.booleans()):
        fields.insert(0, b"Host: example.com")
    return line + b"\r\n" + b"".join(f + b"\r\n" for f in fields) + b"\r\n" + body


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A corpus request with a few bytes inserted, deleted or replaced."""
    data = bytearray(draw(st.sampled_from(ALL_CASES)).data[:600])
    for _ in range(draw(st.integers(1, 3))):
        position = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        byte = draw(st.sampled_from([0, 9, 10, 13, 32, 35, 44, 58, 59, 65, 127, 255]))
        if op == "insert":
            data.insert(position, byte)
        elif position < len(data):
            if op == "delete":
                del data[position]
            else:
                data[position] = byte
    return bytes(data)


def outcome(backend: str, pieces: list[bytes], **options: object) -> tuple[str, object]:
    """("ok", merged events) or ("error", error class) for data fed in pieces, then EOF."""
    parser = RequestParser(backend, **options)
    events = []
    try:
        for piece in pieces:
            events += parser.feed(piece)
        events += parser.feed_eof()
    except ParseError as exc:
        return "error", type(exc)
    return "ok", merge_bodies(events)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


STREAMS = st.lists(st.one_of(requests(), st.sampled_from(CORPUS.VALID).map(lambda c: c.data)),
                   min_size=1, max_size=3).map(b"".join)


@pytest.mark.parametrize("backend", ["python", pytest.param("httptools", marks=pytest.mark.skipif(
    not HAVE_HTTPTOOLS, reason="httptools is not installed"))])
@given(data=STREAMS, cuts=st.lists(st.integers(0, 10_000), max_size=8))
def test_any_split_gives_the_same_events(backend, data, cuts):
    whole = outcome(backend, [data])
    pieces = outcome(backend, split(data, cuts))
    if whole[0] == "ok":
        assert pieces == whole
    else:
        # An invalid stream is refused however it arrives (when a head breaks
        # two rules at once, which one is seen first may depend on the split).
        assert pieces[0] == "error"


@given(data=STREAMS)
def test_byte_by_byte_gives_the_same_events(data):
    whole = outcome("python", [data])
    assert outcome("python", [data[i : i + 1] for i in range(len(data))])[0] == whole[0]
    if whole[0] == "ok":
        assert outcome("python", [data[i : i + 1] for i in range(len(data))]) == whole


@given(data=st.binary(max_size=300), cuts=st.lists(st.integers(0, 400), max_size=4))
def test_random_bytes_raise_nothing_but_parse_errors(data, cuts):
    for backend in ("python", "httptools") if HAVE_HTTPTOOLS else ("python",):
        outcome(backend, split(data, cuts))
        outcome(backend, split(data, cuts), permit_obsolete_folding=True,
                strip_header_spaces=True, permit_unconventional_http_method=True,
                permit_unconventional_http_version=True, casefold_http_method=True,
                permit_unconventional_request_target=True)


@given(data=st.one_of(mutated(), requests()), cuts=st.lists(st.integers(0, 700), max_size=3))
def test_mutated_requests_raise_nothing_but_parse_errors(data, cuts):
    outcome("python", split(data, cuts))


@pytest.mark.skipif(not HAVE_HTTPTOOLS, reason="httptools is not installed")
@given(data=st.one_of(mutated(), requests(), STREAMS))
def test_both_backends_accept_and_reject_the_same_bytes(data):
    assert outcome("httptools", [data]) == outcome("python", [data])


@pytest.mark.skipif(not HAVE_HTTPTOOLS, reason="httptools is not installed")
@given(data=st.one_of(mutated(), requests()), options=st.fixed_dictionaries({
    "permit_obsolete_folding": st.booleans(), "strip_header_spaces": st.booleans(),
    "permit_unconventional_http_method": st.booleans(), "casefold_http_method": st.booleans(),
    "permit_unconventional_http_version": st.booleans(),
    "permit_unconventional_request_target": st.booleans(),
    "limit_request_fields": st.sampled_from([0, 2, 100]),
    "limit_request_field_size": st.sampled_from([0, 20, 8190]),
    "limit_request_line": st.sampled_from([0, 15, 4094]),
}))
def test_both_backends_agree_under_every_option(data, options):
    assert outcome("httptools", [data], **options) == outcome("python", [data], **options)


FIELD_LINES = st.lists(
    st.tuples(st.sampled_from([b"A", b"x-y", b"!#$%&'*+-.^_`|~", b"Host"]),
              st.sampled_from([b":", b": ", b":\t "]),
              st.binary(max_size=8).map(lambda b: bytes(c for c in b if c > 31 and c != 127)),
              st.sampled_from([b"", b" ", b"\t", b"  "])),
    max_size=6,
).map(lambda lines: b"".join(n + s + v + t + b"\r\n" for n, s, v, t in lines))


@given(block=FIELD_LINES)
def test_fast_and_slow_field_parsers_agree(block):
    assert parse_fields(block, DEFAULT_OPTIONS) == parse_fields_slowly(block, DEFAULT_OPTIONS)


@given(block=FIELD_LINES, limit=st.integers(1, 5), size=st.integers(3, 30))
def test_fast_and_slow_field_parsers_agree_on_limits(block, limit, size):
    options = ParserOptions(limit_request_fields=limit, limit_request_field_size=size)

    def result(parse):
        try:
            return parse(block, options)
        except ParseError as exc:
            return type(exc)

    assert result(parse_fields) == result(parse_fields_slowly)
