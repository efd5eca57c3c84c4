"""gunicorn's parsing settings: limits and the compatibility switches."""

from __future__ import annotations

import pytest

from gcorn.http import (
    HeaderFieldTooLarge,
    InvalidHeaderName,
    InvalidMethod,
    InvalidTarget,
    ObsoleteFolding,
    ParserOptions,
    RequestLineTooLong,
    RequestParser,
    TooManyHeaders,
    UnsupportedVersion,
)


def fields(n: int) -> bytes:
    return b"".join(b"X-%d: v\r\n" % i for i in range(n))


def test_defaults_are_gunicorns():
    options = RequestParser().options
    assert options == ParserOptions()
    assert (options.limit_request_line, options.limit_request_fields,
            options.limit_request_field_size) == (4094, 100, 8190)
    assert not any((options.permit_obsolete_folding, options.strip_header_spaces,
                    options.permit_unconventional_http_method,
                    options.permit_unconventional_http_version, options.casefold_http_method))
    # gcorn's own switch: off in the parser alone, on in gcorn's server (as gunicorn serves)
    assert not options.permit_unconventional_request_target


@pytest.mark.parametrize("limit", [20, 4094])
def test_limit_request_line_boundary(parse, limit):
    line = b"GET /" + b"a" * (limit - 14) + b" HTTP/1.1"
    assert len(line) == limit
    assert parse(line + b"\r\n\r\n", limit_request_line=limit)[0].target.startswith(b"/a")
    with pytest.raises(RequestLineTooLong) as info:
        parse(b"GET /a" + line[5:] + b"\r\n\r\n", limit_request_line=limit)
    assert info.value.status == 414


def test_limit_request_line_above_8190_is_8190_as_in_gunicorn(parse):
    line = b"GET /" + b"a" * (8190 - 14) + b" HTTP/1.1"
    assert parse(line + b"\r\n\r\n", limit_request_line=20000)[0].target.startswith(b"/a")
    with pytest.raises(RequestLineTooLong):
        parse(b"GET /a" + line[5:] + b"\r\n\r\n", limit_request_line=20000)


def test_limit_request_line_zero_means_large(parse):
    line = b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\n\r\n"
    assert parse(line, limit_request_line=0)[0].path == b"/" + b"a" * 100_000


@pytest.mark.parametrize("limit", [1, 5, 100])
def test_limit_request_fields_boundary(parse, limit):
    head = parse(b"GET / HTTP/1.1\r\n" + fields(limit) + b"\r\n", limit_request_fields=limit)[0]
    assert len(head.headers) == limit
    with pytest.raises(TooManyHeaders) as info:
        parse(b"GET / HTTP/1.1\r\n" + fields(limit + 1) + b"\r\n", limit_request_fields=limit)
    assert info.value.status == 431


def test_limit_request_fields_zero_means_32768(parse):
    head = parse(b"GET / HTTP/1.1\r\n" + fields(500) + b"\r\n", limit_request_fields=0)[0]
    assert len(head.headers) == 500


@pytest.mark.parametrize("limit", [30, 8190])
def test_limit_request_field_size_counts_the_crlf(parse, limit):
    line = b"X-Long: " + b"v" * (limit - 10)
    assert len(line) + 2 == limit
    head = parse(b"GET / HTTP/1.1\r\n" + line + b"\r\n\r\n", limit_request_field_size=limit)[0]
    assert head.headers == [(b"x-long", b"v" * (limit - 10))]
    with pytest.raises(HeaderFieldTooLarge) as info:
        parse(b"GET / HTTP/1.1\r\n" + line + b"v\r\n\r\n", limit_request_field_size=limit)
    assert info.value.status == 431


def test_limits_apply_to_trailers(parse):
    data = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n" + fields(3) + b"\r\n"
    with pytest.raises(TooManyHeaders):
        parse(data, limit_request_fields=2)


def test_negative_limit_is_a_clear_error():
    with pytest.raises(ValueError, match="limit_request_line"):
        RequestParser(limit_request_line=-1)


def test_permit_obsolete_folding(parse):
    data = b"GET / HTTP/1.1\r\nX-Fold: a\r\n  b\r\n\tc\r\nHost: h\r\n\r\n"
    with pytest.raises(ObsoleteFolding):
        parse(data)
    head = parse(data, permit_obsolete_folding=True)[0]
    assert head.headers == [(b"x-fold", b"a b c"), (b"host", b"h")]


def test_folded_lines_count_against_the_field_size(parse):
    data = b"GET / HTTP/1.1\r\nX: aaaa\r\n bbbbbbbb\r\n cccccccc\r\n\r\n"
    assert parse(data, permit_obsolete_folding=True, limit_request_field_size=40)
    with pytest.raises(HeaderFieldTooLarge):
        parse(data, permit_obsolete_folding=True, limit_request_field_size=30)


def test_strip_header_spaces(parse):
    data = b"GET / HTTP/1.1\r\nHost \t: h\r\n\r\n"
    with pytest.raises(InvalidHeaderName):
        parse(data)
    assert parse(data, strip_header_spaces=True)[0].headers == [(b"host", b"h")]


@pytest.mark.parametrize("method", [b"get", b"GO", b"G#T", b"A" * 21, b"Purge"])
def test_permit_unconventional_http_method(parse, method):
    data = method + b" / HTTP/1.1\r\n\r\n"
    with pytest.raises(InvalidMethod):
        parse(data)
    assert parse(data, permit_unconventional_http_method=True)[0].method == method


def test_a_method_must_be_a_token_even_when_permissive(parse):
    with pytest.raises(InvalidMethod):
        parse(b"G(T / HTTP/1.1\r\n\r\n", permit_unconventional_http_method=True)


def test_casefold_http_method(parse):
    # As gunicorn: the method rules come first, then the method is upper-cased.
    with pytest.raises(InvalidMethod):
        parse(b"get / HTTP/1.1\r\n\r\n", casefold_http_method=True)
    lenient = {"casefold_http_method": True, "permit_unconventional_http_method": True}
    assert parse(b"get / HTTP/1.1\r\n\r\n", **lenient)[0].method == b"GET"
    assert parse(b"Purge / HTTP/1.1\r\n\r\n", **lenient)[0].method == b"PURGE"
    assert parse(b"get / HTTP/1.1\r\n\r\n", permit_unconventional_http_method=True)[
        0
    ].method == b"get"


def test_a_higher_http_1_minor_version_is_read_as_1_1(parse):
    head = parse(b"GET / HTTP/1.2\r\n\r\n")[0]
    assert head.version == (1, 2) and head.keep_alive


@pytest.mark.parametrize("version", [(2, 0), (0, 9), (3, 1)])
def test_permit_unconventional_http_version(parse, version):
    data = b"GET / HTTP/%d.%d\r\n\r\n" % version
    with pytest.raises(UnsupportedVersion) as info:
        parse(data)
    assert info.value.status == 505
    head = parse(data, permit_unconventional_http_version=True)[0]
    assert head.version == version and head.keep_alive == (version >= (1, 1))


UNCONVENTIONAL_TARGETS = [
    # (request line, path and query with permit_unconventional_request_target: gunicorn's)
    (b"GET 1http://h/?a#b HTTP/1.1", b"1http://h/", b"a"),
    (b"POST &s://h/x HTTP/1.1", b"&s://h/x", b""),
    (b"GET a:b://h/?q HTTP/1.1", b"b://h/", b"q"),
    (b"GET x#://y HTTP/1.1", b"x", b""),
    (b"CONNECT /x?a#b HTTP/1.1", b"/x", b"a"),
    (b"CONNECT example.com HTTP/1.1", b"example.com", b""),
    (b"CONNECT http://h/p?q HTTP/1.1", b"/p", b"q"),
    (b"CONNECT //a/b?c HTTP/1.1", b"//a/b", b"c"),
]


@pytest.mark.parametrize(("line", "path", "query"), UNCONVENTIONAL_TARGETS)
def test_permit_unconventional_request_target(parse, line, path, query):
    data = line + b"\r\nHost: h\r\n\r\n"
    with pytest.raises(InvalidTarget) as info:
        parse(data)
    assert info.value.status == 400
    with pytest.raises(InvalidTarget):
        parse(data, permit_unconventional_request_target=False)
    head = parse(data, permit_unconventional_request_target=True)[0]
    assert (head.target, head.path, head.query) == (line.split(b" ")[1], path, query)


@pytest.mark.parametrize(("line", "strict", "lenient"), [
    (b"CONNECT example.com:443 HTTP/1.1", (b"", b""), (b"443", b"")),
    (b"CONNECT [::1]:8080 HTTP/1.1", (b"", b""), (b"[::1]:8080", b"")),
    (b"GET http://h/a?b HTTP/1.1", (b"/a", b"b"), (b"/a", b"b")),
    (b"GET /a?b#c HTTP/1.1", (b"/a", b"b"), (b"/a", b"b")),
])
def test_conventional_targets_under_both_values(parse, line, strict, lenient):
    """A CONNECT host:port gets gunicorn's path ("443") only with the switch on."""
    data = line + b"\r\nHost: h\r\n\r\n"
    for value, expected in ((False, strict), (True, lenient)):
        head = parse(data, permit_unconventional_request_target=value)[0]
        assert (head.path, head.query) == expected


@pytest.mark.parametrize("line", [b"CONNECT * HTTP/1.1", b"CONNECT s://]ufd/: HTTP/1.1",
                                  b"GET s://]ufd/: HTTP/1.1", b"GET 1http HTTP/1.1",
                                  b"GET example.com:80 HTTP/1.1", b"GET * HTTP/1.1"])
def test_targets_refused_under_both_values(parse, line):
    """What gunicorn refuses too stays refused with the switch on."""
    for value in (False, True):
        with pytest.raises(InvalidTarget):
            parse(line + b"\r\nHost: h\r\n\r\n", permit_unconventional_request_target=value)


def test_options_object_is_used_as_given():
    options = ParserOptions(limit_request_fields=1)
    parser = RequestParser(options=options)
    assert parser.options is options
    with pytest.raises(TooManyHeaders):
        parser.feed(b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n")


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown parser backend 'c'"):
        RequestParser(backend="c")


def test_fast_is_a_synonym_for_httptools():
    pytest.importorskip("httptools")
    assert RequestParser(backend="fast").backend == "httptools"
    assert RequestParser().backend == "httptools"  # auto picks it when installed
