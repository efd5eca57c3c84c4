"""A corpus of HTTP/1.1 requests, valid and invalid, that covers every parser rule.

Each case names what it tests, the error class expected from gcorn (None when
the request is valid) and, when h11 deliberately gets a different verdict, the
gcorn rule responsible (``differs``). Used by the h11 differential tests and by
the backend-agreement tests.
"""

from __future__ import annotations

from typing import NamedTuple

from gcorn.http import (
    DuplicateHeader,
    ExpectationFailed,
    HeaderFieldTooLarge,
    InvalidChunk,
    InvalidFraming,
    InvalidHeaderName,
    InvalidHeaderValue,
    InvalidLineEnding,
    InvalidMethod,
    InvalidRequestLine,
    InvalidTarget,
    InvalidTrailer,
    ObsoleteFolding,
    ParseError,
    RequestLineTooLong,
    TooManyHeaders,
    UnsupportedTransferCoding,
    UnsupportedVersion,
)


class Case(NamedTuple):
    name: str
    data: bytes
    error: type[ParseError] | None = None
    differs: str | None = None  # the gcorn rule when h11's verdict differs


def req(line: bytes, *headers: bytes, body: bytes = b"", host: bool = True) -> bytes:
    """A request from its line, header lines and body (Host added unless host=False)."""
    lines = [line] + ([b"Host: example.com"] if host else []) + list(headers)
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def chunked(line: bytes, body: bytes, *headers: bytes) -> bytes:
    return req(line, b"Transfer-Encoding: chunked", *headers, body=body)


GET = b"GET / HTTP/1.1"
POST = b"POST /upload HTTP/1.1"
TCHARS = b"!#$%&'*+-.^_`|~09azAZ"

# Rules that gcorn applies on purpose and h11 does not (or the other way round).
CONVENTIONAL_METHOD = "method: 3-20 characters, no lower case, no '#' (gunicorn)"
TARGET_FORMS = "request-target form must suit the method (RFC 9112 3.2)"
IDENTITY = "identity before chunked is skipped (gunicorn); h11 knows only chunked"
BAD_AUTHORITY = "an absolute-form authority with a broken IP literal is refused (gunicorn)"
CRLF_ONLY = "lines end with CRLF; bare LF refused (RFC 9112 2.2 allows either)"
NO_OBS_FOLD = "obsolete line folding refused unless permitted (RFC 9112 5.2)"
SINGLETONS = "Host, Content-Type and Content-Length appear at most once"
ONE_CONTENT_LENGTH = "Content-Length is one plain decimal number (no list form)"
EXPECT_417 = "Expect other than 100-continue is answered 417 (gunicorn)"
MISSING_HOST_OK = "a missing Host on HTTP/1.1 is accepted (gunicorn)"
CONTENT_CODINGS = "gzip/deflate/compress before chunked accepted, connection closed (gunicorn)"
CHUNK_LINE = "no whitespace after a chunk size (RFC 9112 7.1 grammar)"
TRAILER_FIELDS = "trailers may not carry framing, routing or auth fields"
LIMIT_LINE = "limit_request_line 4094 (414)"
LIMIT_FIELDS = "limit_request_fields 100 (431)"
LIMIT_FIELD_SIZE = "limit_request_field_size 8190 (431)"
TE_HTTP10 = "Transfer-Encoding on HTTP/1.0 refused (RFC 9112 6.1)"
EMPTY_EXTENSION = "chunk extension needs a name"
VERSION_505 = "versions other than 1.0/1.1 answered 505"
LEADING_EMPTY_LINES = "one empty line before a request line is skipped (RFC 9112 2.2)"
NO_CTL_IN_VALUES = "no control character but HTAB in a field value (RFC 9110 5.5)"
NO_CL_WITH_TE = "Content-Length with Transfer-Encoding refused, not ignored (no smuggling)"
CHUNK_EXT_GRAMMAR = "chunk extensions follow the RFC 9112 7.1.1 grammar"

VALID = [
    Case("simple GET", req(GET)),
    Case("query string", req(b"GET /search?q=headphones&page=2 HTTP/1.1")),
    Case("absolute-form", req(b"GET http://example.com/a/b?c=d HTTP/1.1")),
    Case("absolute-form with port", req(b"GET https://example.com:8443/x HTTP/1.1")),
    Case("absolute-form without path", req(b"GET http://example.com HTTP/1.1")),
    Case("asterisk-form for OPTIONS", req(b"OPTIONS * HTTP/1.1")),
    Case("authority-form for CONNECT", req(b"CONNECT example.com:443 HTTP/1.1")),
    Case("CONNECT to an IPv6 literal", req(b"CONNECT [::1]:8080 HTTP/1.1")),
    Case("HEAD", req(b"HEAD /index.html HTTP/1.1")),
    Case("PATCH", req(b"PATCH /item/1 HTTP/1.1", b"Content-Length: 2", body=b"{}")),
    Case("TRACE", req(b"TRACE / HTTP/1.1")),
    Case("DELETE with a body", req(b"DELETE /x HTTP/1.1", b"Content-Length: 3", body=b"abc")),
    Case("extension method PURGE", req(b"PURGE /cache HTTP/1.1")),
    Case("extension method M-SEARCH", req(b"M-SEARCH /upnp HTTP/1.1")),
    Case("extension method of 20 characters", req(b"ABCDEFGHIJKLMNOPQRST / HTTP/1.1")),
    Case("POST with Content-Length", req(POST, b"Content-Length: 11", body=b"hello world")),
    Case("Content-Length 0", req(POST, b"Content-Length: 0")),
    Case("Content-Length with leading zeros", req(POST, b"Content-Length: 005", body=b"abcde")),
    Case("binary body", req(POST, b"Content-Length: 6", body=b"\x00\r\n\xff\r\n")),
    Case("64 KiB body", req(POST, b"Content-Length: 65536", body=b"z" * 65536)),
    Case("one chunk", chunked(POST, b"5\r\nhello\r\n0\r\n\r\n")),
    Case("several chunks", chunked(POST, b"3\r\nabc\r\n4\r\ndefg\r\n1\r\nh\r\n0\r\n\r\n")),
    Case("upper-case hex size", chunked(POST, b"A\r\n0123456789\r\n0\r\n\r\n")),
    Case("chunk size with leading zeros", chunked(POST, b"0005\r\nhello\r\n000\r\n\r\n")),
    Case("chunk extension", chunked(POST, b"5;name=value\r\nhello\r\n0\r\n\r\n")),
    Case("quoted chunk extension", chunked(POST, b'5;n="a b;c"\r\nhello\r\n0\r\n\r\n')),
    Case("several chunk extensions", chunked(POST, b"5;a;b=c;d=\"e\"\r\nhello\r\n0;x=y\r\n\r\n")),
    Case("chunk data holding CRLF", chunked(POST, b"4\r\n\r\n\r\n\r\n0\r\n\r\n")),
    Case("trailers", chunked(POST, b"5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n")),
    Case("declared trailer", chunked(POST, b"1\r\na\r\n0\r\nX-T: 1\r\n\r\n", b"Trailer: X-T")),
    Case("Transfer-Encoding in mixed case", req(POST, b"Transfer-Encoding: Chunked",
                                                  body=b"1\r\na\r\n0\r\n\r\n")),
    Case("HTTP/1.0 GET", req(b"GET / HTTP/1.0", host=False)),
    Case("HTTP/1.0 keep-alive", req(b"GET / HTTP/1.0", b"Connection: keep-alive")),
    Case("HTTP/1.0 POST", req(b"POST / HTTP/1.0", b"Content-Length: 2", body=b"ok")),
    Case("Connection: close", req(GET, b"Connection: close")),
    Case("Connection token list", req(GET, b"Connection: keep-alive, x-custom",
                                      b"X-Custom: 1")),
    Case("Expect: 100-continue", req(POST, b"Expect: 100-continue", b"Content-Length: 2",
                                     body=b"ok")),
    Case("Expect: 100-continue in another case", req(POST, b"Expect: 100-Continue",
                                                     b"Content-Length: 1", body=b"x")),
    Case("websocket upgrade", req(b"GET /chat HTTP/1.1", b"Connection: Upgrade",
                                  b"Upgrade: websocket", b"Sec-WebSocket-Version: 13",
                                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==")),
    Case("Upgrade without Connection: upgrade", req(GET, b"Upgrade: h2c")),
    Case("repeated field", req(GET, b"Accept: text/html", b"Accept: application/json")),
    Case("obs-text in a value", req(GET, b"X-Name: caf\xe9 \xff")),
    Case("HTAB inside a value", req(GET, b"X-Tab: a\tb")),
    Case("empty value", req(GET, b"X-Empty:")),
    Case("value padded with spaces", req(GET, b"X-Pad:    spaced out   ")),
    Case("value padded with tabs", req(GET, b"X-Pad:\t\tx\t")),
    Case("name made of every tchar", req(GET, TCHARS + b": 1")),
    Case("field name in upper case", req(GET, b"CONTENT-TYPE: text/plain")),
    Case("50 fields", req(GET, *[b"X-F%d: %d" % (i, i) for i in range(50)])),
    Case("100 fields", req(GET, *[b"X-F%d: %d" % (i, i) for i in range(99)])),
    Case("request line of 4094 bytes", req(b"GET /" + b"a" * 4080 + b" HTTP/1.1")),
    Case("field line of 8190 bytes", req(GET, b"X-Long: " + b"v" * 8180)),
    Case("an empty line before the request line", b"\r\n" + req(GET),
         differs=LEADING_EMPTY_LINES),
    Case("percent-encoded path", req(b"GET /a%20b/%C3%A9?x=%2F HTTP/1.1")),
    Case("path with ; @ : characters", req(b"GET /a;b=c/@user:1/x HTTP/1.1")),
    Case("query holding / and ?", req(b"GET /p?next=/a/b?c HTTP/1.1")),
    Case("sub-delims in the target", req(b"GET /!$&'()*+,;=?!$&'()*+,;= HTTP/1.1")),
    Case("Host with a port", b"GET / HTTP/1.1\r\nHost: example.com:8080\r\n\r\n"),
    Case("Host as IPv6 literal", b"GET / HTTP/1.1\r\nHost: [::1]:8000\r\n\r\n"),
    Case("long cookie", req(GET, b"Cookie: " + b"; ".join(b"k%d=v%d" % (i, i) for i in range(200)))),
    Case("quotes and backslashes in a value", req(GET, b'X-Q: "a\\"b", \'c\'')),
    Case("authorization with padding", req(GET, b"Authorization: Basic dXNlcjpwYXNz==")),
    Case("X-Forwarded-For list", req(GET, b"X-Forwarded-For: 203.0.113.7, 10.0.0.1")),
    Case("POST with Connection: close and a body", req(POST, b"Connection: close",
                                                       b"Content-Length: 3", body=b"abc")),
    Case("missing Host on HTTP/1.1", b"GET / HTTP/1.1\r\n\r\n", differs=MISSING_HOST_OK),
    Case("gzip then chunked", req(POST, b"Transfer-Encoding: gzip, chunked",
                                  body=b"2\r\nzz\r\n0\r\n\r\n"), differs=CONTENT_CODINGS),
    Case("lower-case hex size", chunked(POST, b"a\r\n0123456789\r\n0\r\n\r\n")),
    Case("OPTIONS with an absolute-form target", req(b"OPTIONS http://example.com/ HTTP/1.1")),
    Case("HTTP/1.2, read as 1.1", req(b"GET / HTTP/1.2")),
    Case("fragment in the target, dropped", req(b"GET /a?b=c#frag HTTP/1.1")),
    Case("fragment in an absolute-form target", req(b"GET http://example.com/a#f HTTP/1.1")),
    Case("IPv6 literal in an absolute-form target", req(b"GET http://[::1]:80/ HTTP/1.1")),
    Case("identity before chunked", req(POST, b"Transfer-Encoding: identity, chunked",
                                        body=b"1\r\na\r\n0\r\n\r\n"), differs=IDENTITY),
    Case("identity, then chunked in a second field", req(
        POST, b"Transfer-Encoding: identity", b"Transfer-Encoding: chunked",
        body=b"1\r\na\r\n0\r\n\r\n"), differs=IDENTITY),
    Case("Content-Type in a trailer", chunked(POST, b"0\r\nContent-Type: text/plain\r\n\r\n")),
]

INVALID = [
    Case("lower-case method", req(b"get / HTTP/1.1"), InvalidMethod, CONVENTIONAL_METHOD),
    Case("method holding '#'", req(b"GE#T / HTTP/1.1"), InvalidMethod, CONVENTIONAL_METHOD),
    Case("method of 21 characters", req(b"ABCDEFGHIJKLMNOPQRSTU / HTTP/1.1"), InvalidMethod,
         CONVENTIONAL_METHOD),
    Case("method of 2 characters", req(b"GO / HTTP/1.1"), InvalidMethod, CONVENTIONAL_METHOD),
    Case("method not a token", req(b"GE(T / HTTP/1.1"), InvalidMethod),
    Case("empty method", req(b" / HTTP/1.1"), InvalidMethod),
    Case("two spaces after the method", req(b"GET  / HTTP/1.1"), InvalidRequestLine),
    Case("HTAB as separator", req(b"GET\t/ HTTP/1.1"), InvalidRequestLine),
    Case("no version", req(b"GET /"), InvalidRequestLine),
    Case("space after the version", req(b"GET / HTTP/1.1 "), InvalidRequestLine),
    Case("lower-case protocol name", req(b"GET / http/1.1"), InvalidRequestLine),
    Case("one-digit version", req(b"GET / HTTP/1"), InvalidRequestLine),
    Case("HTTP/2.0", req(b"GET / HTTP/2.0"), UnsupportedVersion, VERSION_505),
    Case("HTTP/0.9", req(b"GET / HTTP/0.9"), UnsupportedVersion, VERSION_505),
    Case("empty target", req(b"GET  HTTP/1.1"), InvalidTarget),
    Case("control character in the target", req(b"GET /a\x01b HTTP/1.1"), InvalidTarget),
    Case("non-ASCII byte in the target", req(b"GET /caf\xe9 HTTP/1.1"), InvalidTarget),
    Case("NUL in the target", req(b"GET /a\x00 HTTP/1.1"), InvalidTarget),
    Case("relative target", req(b"GET index.html HTTP/1.1"), InvalidTarget, TARGET_FORMS),
    Case("broken IP literal in an absolute-form target", req(b"PUT s://]ufd/: HTTP/1.1"),
         InvalidTarget, BAD_AUTHORITY),
    Case("IPv4 in brackets in an absolute-form target", req(b"GET http://[1.2.3.4]/ HTTP/1.1"),
         InvalidTarget, BAD_AUTHORITY),
    Case("asterisk-form for GET", req(b"GET * HTTP/1.1"), InvalidTarget, TARGET_FORMS),
    Case("CONNECT with origin-form", req(b"CONNECT /x HTTP/1.1"), InvalidTarget, TARGET_FORMS),
    Case("CONNECT without a port", req(b"CONNECT example.com HTTP/1.1"), InvalidTarget,
         TARGET_FORMS),
    Case("authority-form for GET", req(b"GET example.com:80 HTTP/1.1"), InvalidTarget,
         TARGET_FORMS),
    Case("bare LF line endings", b"GET / HTTP/1.1\nHost: example.com\n\n", InvalidLineEnding,
         CRLF_ONLY),
    Case("bare LF after one field", b"GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n",
         InvalidLineEnding, CRLF_ONLY),
    Case("bare CR in the head", b"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", InvalidLineEnding),
    Case("space before the colon", req(GET, b"X-Bad : 1"), InvalidHeaderName),
    Case("space inside a name", req(GET, b"X Bad: 1"), InvalidHeaderName),
    Case("empty field name", req(GET, b": value"), InvalidHeaderName),
    Case("name not a token", req(GET, b"X(a): 1"), InvalidHeaderName),
    Case("obs-text in a name", req(GET, b"X\xe9: 1"), InvalidHeaderName),
    Case("field line without a colon", req(GET, b"NoColonHere"), InvalidHeaderName),
    Case("control character in a value", req(GET, b"X: a\x01b"), InvalidHeaderValue,
         NO_CTL_IN_VALUES),
    Case("NUL in a value", req(GET, b"X: a\x00b"), InvalidHeaderValue),
    Case("DEL in a value", req(GET, b"X: a\x7fb"), InvalidHeaderValue, NO_CTL_IN_VALUES),
    Case("ESC in a value", req(GET, b"X: \x1b[31m"), InvalidHeaderValue, NO_CTL_IN_VALUES),
    Case("obsolete line folding", req(GET, b"X-Fold: a", b" b"), ObsoleteFolding, NO_OBS_FOLD),
    Case("folding with HTAB", req(GET, b"X-Fold: a", b"\tb"), ObsoleteFolding, NO_OBS_FOLD),
    Case("continuation before any field", b"GET / HTTP/1.1\r\n x\r\nHost: a\r\n\r\n",
         ObsoleteFolding),
    Case("two Host fields", req(GET, b"Host: other.example"), DuplicateHeader),
    Case("two Content-Type fields", req(GET, b"Content-Type: a/b", b"Content-Type: c/d"),
         DuplicateHeader, SINGLETONS),
    Case("two equal Content-Length fields", req(POST, b"Content-Length: 1",
                                                b"Content-Length: 1", body=b"x"),
         DuplicateHeader, SINGLETONS),
    Case("two different Content-Length fields", req(POST, b"Content-Length: 1",
                                                    b"Content-Length: 2", body=b"xy"),
         DuplicateHeader),
    Case("Content-Length list of equal values", req(POST, b"Content-Length: 1, 1", body=b"x"),
         InvalidFraming, ONE_CONTENT_LENGTH),
    Case("Content-Length list of different values", req(POST, b"Content-Length: 1, 2",
                                                        body=b"xy"), InvalidFraming),
    Case("negative Content-Length", req(POST, b"Content-Length: -1"), InvalidFraming),
    Case("Content-Length with a sign", req(POST, b"Content-Length: +1", body=b"x"),
         InvalidFraming),
    Case("hexadecimal Content-Length", req(POST, b"Content-Length: 0x1", body=b"x"),
         InvalidFraming),
    Case("Content-Length with a space inside", req(POST, b"Content-Length: 1 2", body=b"x"),
         InvalidFraming),
    Case("Content-Length of 19 digits", req(POST, b"Content-Length: 1" + b"0" * 18),
         InvalidFraming),
    Case("Content-Length with Transfer-Encoding", req(POST, b"Content-Length: 3",
                                                      b"Transfer-Encoding: chunked",
                                                      body=b"0\r\n\r\n"), InvalidFraming,
         NO_CL_WITH_TE),
    Case("Transfer-Encoding without chunked", req(POST, b"Transfer-Encoding: gzip"),
         InvalidFraming),
    Case("unknown transfer coding", req(POST, b"Transfer-Encoding: foo, chunked",
                                        body=b"0\r\n\r\n"), UnsupportedTransferCoding),
    Case("identity transfer coding alone", req(POST, b"Transfer-Encoding: identity"),
         InvalidFraming),
    Case("identity after chunked", req(POST, b"Transfer-Encoding: chunked, identity",
                                       body=b"0\r\n\r\n"), InvalidFraming),
    Case("chunked twice", req(POST, b"Transfer-Encoding: chunked, chunked", body=b"0\r\n\r\n"),
         InvalidFraming),
    Case("chunked not last", req(POST, b"Transfer-Encoding: chunked, gzip", body=b"0\r\n\r\n"),
         InvalidFraming),
    Case("Transfer-Encoding on HTTP/1.0", req(b"POST / HTTP/1.0", b"Transfer-Encoding: chunked",
                                              body=b"0\r\n\r\n"), InvalidFraming, TE_HTTP10),
    Case("Expect other than 100-continue", req(GET, b"Expect: the-unexpected"),
         ExpectationFailed, EXPECT_417),
    Case("chunk size not hex", chunked(POST, b"zz\r\nhello\r\n0\r\n\r\n"), InvalidChunk),
    Case("chunk size with 0x", chunked(POST, b"0x5\r\nhello\r\n0\r\n\r\n"), InvalidChunk),
    Case("chunk size with a sign", chunked(POST, b"+5\r\nhello\r\n0\r\n\r\n"), InvalidChunk),
    Case("empty chunk size", chunked(POST, b"\r\nhello\r\n0\r\n\r\n"), InvalidChunk),
    Case("chunk size of 17 digits", chunked(POST, b"10000000000000000\r\nx\r\n0\r\n\r\n"),
         InvalidChunk),
    Case("chunk data not followed by CRLF", chunked(POST, b"3\r\nabcX\r\n0\r\n\r\n"),
         InvalidChunk),
    Case("chunk data followed by LF only", chunked(POST, b"3\r\nabc\n0\r\n\r\n"), InvalidChunk),
    Case("control character in a chunk extension", chunked(POST, b"3;\x01\r\nabc\r\n0\r\n\r\n"),
         InvalidChunk, CHUNK_EXT_GRAMMAR),
    Case("chunk extension without a name", chunked(POST, b"3;\r\nabc\r\n0\r\n\r\n"),
         InvalidChunk, EMPTY_EXTENSION),
    Case("space after the chunk size", chunked(POST, b"3 \r\nabc\r\n0\r\n\r\n"), InvalidChunk,
         CHUNK_LINE),
    Case("bare LF after the chunk size", chunked(POST, b"3\nabc\r\n0\r\n\r\n"), InvalidChunk),
    Case("Content-Length in a trailer", chunked(POST, b"0\r\nContent-Length: 5\r\n\r\n"),
         InvalidTrailer, TRAILER_FIELDS),
    Case("Host in a trailer", chunked(POST, b"0\r\nHost: evil.example\r\n\r\n"), InvalidTrailer,
         TRAILER_FIELDS),
    Case("Transfer-Encoding in a trailer", chunked(POST, b"0\r\nTransfer-Encoding: gzip\r\n\r\n"),
         InvalidTrailer),
    Case("malformed trailer", chunked(POST, b"0\r\nX Bad: 1\r\n\r\n"), InvalidHeaderName),
    Case("request line of 4095 bytes", req(b"GET /" + b"a" * 4081 + b" HTTP/1.1"),
         RequestLineTooLong, LIMIT_LINE),
    Case("101 fields", req(GET, *[b"X-F%d: %d" % (i, i) for i in range(100)]), TooManyHeaders,
         LIMIT_FIELDS),
    Case("field line of 8191 bytes", req(GET, b"X-Long: " + b"v" * 8181), HeaderFieldTooLarge,
         LIMIT_FIELD_SIZE),
    Case("space before the method", req(b" GET / HTTP/1.1"), InvalidRequestLine),
    Case("two empty lines before the request line", b"\r\n\r\n" + req(GET),
         InvalidRequestLine),
    Case("x-gzip transfer coding", req(POST, b"Transfer-Encoding: x-gzip, chunked",
                                       body=b"0\r\n\r\n"), UnsupportedTransferCoding),
    Case("CR without LF after the request line", b"GET / HTTP/1.1\rHost: a\r\n\r\n",
         InvalidLineEnding),
]
