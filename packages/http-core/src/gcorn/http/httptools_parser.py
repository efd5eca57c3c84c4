"""The httptools backend: the pure backend's state machine, with llhttp (C) doing
the scan of each request's header fields, and a short path for the usual head.

Why this split: framing, limits and every rule of head.py are shared code, so
both backends accept and reject the same bytes by construction. llhttp only
replaces the header-field regexes, and its verdict is never trusted alone:

- llhttp refuses a field block: the pure field parser re-reads the same bytes
  and decides (it raises our exact error, or accepts what llhttp is stricter
  about);
- llhttp accepts a field block: the shared rules run on the fields it found
  (trailing whitespace, which llhttp keeps in a value, is removed here).

llhttp never sees the request line (our regexes check its raw bytes) nor a
body: it reads each field block behind the fixed status line of a 304
response, a message that has no body whatever its fields say, so the llhttp
parser is back at its start after every block and serves the whole connection.

The usual head (a whole head at the start of a feed: HTTP/1.1, a common
method, an origin-form target, each field name once, no Upgrade or Expect)
takes a short path that builds what head.build_head would build for it
(tests/test_httptools_backend.py checks both on the same bytes); anything
else goes through the shared state machine.
"""

from __future__ import annotations

import re
from typing import Any

import httptools

from .events import Body, EndOfMessage, Event, Header, RequestHead
from .fields import parse_fields
from .python_parser import (
    CHUNK_HEADER_LINE,
    CLOSED,
    HEAD,
    HTTP_11,
    LENGTH,
    PythonParser,
)

# The status line llhttp reads before each field block: a response that can
# carry no body (RFC 9110 15.4.5), so llhttp never waits for one.
_BLOCK_PREFIX = b"HTTP/1.1 304 -\r\n"

# The usual request line: a method that passes every method rule, an
# origin-form target without a fragment, HTTP/1.1 (CONNECT needs another form).
_USUAL_REQUEST_LINE = re.compile(
    rb"(GET|POST|HEAD|PUT|DELETE|OPTIONS|PATCH|TRACE) (/[\x21\x22\x24-\x7e]*+) HTTP/1\.1\r\n"
)
_usual_request_line = _USUAL_REQUEST_LINE.match
# What llhttp reads before a chunked body it is asked to read (see _whole_chunked_body).
_CHUNKED_HEAD = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
_HEX = b"%x"
_SMALL_BODY = 16384  # up to this size, one copy costs less than a second llhttp call
_MAX_LENGTH_DIGITS = 18  # as head.build_head
# The fields head.build_head looks at (see _usual_rules).
_SPECIAL = frozenset((
    b"host", b"connection", b"content-length", b"content-type", b"transfer-encoding",
    b"upgrade", b"expect",
))


class _FieldCollector:
    """What llhttp calls back: ``on_header`` keeps each field, name lower-cased,
    and the fields the head rules look at once more in ``special``."""

    __slots__ = ("headers", "special")

    def __init__(self) -> None:
        self.headers: list[Header] = []
        self.special: list[Header] = []

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        # llhttp strips the whitespace before a value but keeps the one after it.
        field = (name, value.rstrip(b" \t"))
        self.headers.append(field)
        if name in _SPECIAL:
            self.special.append(field)


class _BodyReader:
    """What llhttp calls back while it reads a chunked body: ``on_body`` adds a
    chunk to ``chunks``, ``on_message_complete`` says the body ended."""

    __slots__ = ("chunks", "on_body", "complete")

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.on_body = self.chunks.append  # a bound C method: no Python frame per chunk
        self.complete = False

    def on_message_complete(self) -> None:
        self.complete = True


class HttptoolsParser(PythonParser):
    """RequestParser backend that uses httptools (llhttp) for header fields."""

    backend = "httptools"
    __slots__ = ("_collector", "_llhttp", "_lenient_fields", "_body_reader", "_body_llhttp")

    def __init__(self, backend: str = "auto", **kwargs: Any) -> None:
        PythonParser.__init__(self, backend, **kwargs)
        self._collector = _FieldCollector()
        self._llhttp = httptools.HttpResponseParser(self._collector)
        # llhttp for chunked bodies, made when one comes.
        self._body_reader: _BodyReader | None = None
        self._body_llhttp: httptools.HttpRequestParser | None = None
        # llhttp has no obs-fold nor "space before colon" leniency: those
        # settings are served by the pure field parser.
        options = self.options
        self._lenient_fields = options.permit_obsolete_folding or options.strip_header_spaces

    def feed(self, data: bytes) -> list[Event]:
        """Take bytes received from the peer; return the events they complete."""
        # The short path: a whole usual head at the start of a fresh buffer.
        if self._state != HEAD or self._buf or type(data) is not bytes or self._lenient_fields:
            return PythonParser.feed(self, data)
        match = _usual_request_line(data)
        if match is None:
            return PythonParser.feed(self, data)
        fields_start = match.end()
        head_end = data.find(b"\r\n\r\n", fields_start - 2)
        options = self.options
        if (
            head_end < fields_start  # no field, or no end of head yet
            or fields_start - 2 > options.request_line_limit
            or head_end + 2 - fields_start > options.field_size_limit  # a line may be too long
        ):
            return PythonParser.feed(self, data)
        collector = self._collector
        headers = collector.headers = []
        special = collector.special = []
        try:
            self._llhttp.feed_data(_BLOCK_PREFIX + data[fields_start : head_end + 4])
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            self._llhttp = httptools.HttpResponseParser(collector)
            return PythonParser.feed(self, data)  # the pure field parser decides
        if len(headers) > options.fields_limit:
            return PythonParser.feed(self, data)
        if special:
            rules = _usual_rules(special)
            if rules is None:
                return PythonParser.feed(self, data)  # build_head decides
            keep_alive, content_length, chunked = rules
        else:
            keep_alive = True
            content_length = None
            chunked = False
        method, target = match.groups()
        path, _, query = target.partition(b"?")
        head = self._head = RequestHead(
            method, target, path, query, HTTP_11, headers, keep_alive, False, None,
            content_length, chunked,
        )
        end = head_end + 4
        if chunked:
            if end < len(data):
                events = self._whole_chunked_body(data, end, head)
                if events is not None:
                    return events
            self._state = CHUNK_HEADER_LINE
        elif content_length:
            self._state = LENGTH
            self._remaining = content_length
        elif keep_alive:
            if end == len(data):
                return [head, EndOfMessage([])]
            return self._feed_from(data, end, [head, EndOfMessage([])])
        else:
            events = [head]
            self._end_message(events, [])
            return events
        return self._feed_from(data, end, [head])

    def _whole_chunked_body(
        self, data: bytes, start: int, head: RequestHead
    ) -> list[Event] | None:
        """The events of a chunked body that fills data[start:] exactly in the plainest
        encoding (sizes in shortest hex, no extension, no trailer), read by llhttp;
        None for anything else (the shared state machine reads it then).

        llhttp calls on_body once per chunk of a contiguous buffer, so the body is
        in the plainest encoding exactly when its length is the plainest encoding's
        length for those chunks: any extension, leading zero, trailer, or byte after
        the body makes it longer. That encoding is one the pure chunk parser reads
        into the same pieces, so both backends still agree on every body.
        """
        reader = self._body_reader
        if reader is None:
            reader = self._body_reader = _BodyReader()
        chunks = reader.chunks
        llhttp = self._body_llhttp
        if llhttp is None:
            llhttp = self._body_llhttp = httptools.HttpRequestParser(reader)
        reader.complete = False
        try:
            if len(data) - start <= _SMALL_BODY:
                llhttp.feed_data(_CHUNKED_HEAD + data[start:])
            else:  # no copies of a large body
                llhttp.feed_data(_CHUNKED_HEAD)
                llhttp.feed_data(memoryview(data)[start:])
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            reader.complete = False
        if reader.complete:
            sizes = list(map(len, chunks))
            plainest = sum(sizes) + len(b"".join(map(_HEX.__mod__, sizes))) + 4 * len(sizes) + 5
            if len(data) - start == plainest:
                events: list[Event] = [head, *map(Body, chunks), EndOfMessage([])]
                chunks.clear()
                if not head.keep_alive:
                    self._state = CLOSED
                return events
        chunks.clear()
        self._body_llhttp = None  # it may be inside a message: start afresh
        return None


    def _scan(self, buf: bytes, line_end: int, head_end: int) -> list[Header] | None:
        """The fields of buf[line_end + 2:head_end + 2] as llhttp reads them, or None
        when only the pure field parser can tell (llhttp refused, a limit is near)."""
        options = self.options
        if head_end - line_end > options.field_size_limit:
            return None  # a line may be too long: the pure parser checks each one
        collector = self._collector
        headers = collector.headers = []
        try:
            self._llhttp.feed_data(_BLOCK_PREFIX + buf[line_end + 2 : head_end + 4])
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            self._llhttp = httptools.HttpResponseParser(collector)  # start afresh
            return None  # the pure parser decides
        if len(headers) > options.fields_limit:
            return None
        return headers

    def _fields(self, buf: bytes, start: int, line_end: int, head_end: int) -> list[Header]:
        """The header fields of the head buf[start:head_end + 4], scanned by llhttp."""
        if not self._lenient_fields:
            headers = self._scan(buf, line_end, head_end)
            if headers is not None:
                return headers
        return parse_fields(buf[line_end + 2 : head_end + 2], self.options)


def _usual_rules(special: list[Header]) -> tuple[bool, int | None, bool] | None:
    """(keep_alive, content_length, chunked) of an HTTP/1.1 head from its special
    fields, as head.build_head finds them; None when build_head must decide (a
    repeated Host, Content-Type or Content-Length, codings, Upgrade, Expect)."""
    keep_alive = True
    content_length: int | None = None
    chunked = host = content_type = False
    for name, value in special:
        if name == b"host":
            if host:
                return None
            host = True
        elif name == b"connection":
            value = value.lower()
            if value == b"close" or (
                value != b"keep-alive"
                and b"close" in [part.strip(b" \t") for part in value.split(b",")]
            ):
                keep_alive = False
        elif name == b"content-length":
            if content_length is not None or not value.isdigit() or len(value) > _MAX_LENGTH_DIGITS:
                return None
            content_length = int(value)
        elif name == b"content-type":
            if content_type:
                return None
            content_type = True
        elif name == b"transfer-encoding" and value == b"chunked" and not chunked:
            chunked = True
        else:  # other codings, Upgrade, Expect
            return None
    if chunked and content_length is not None:
        return None
    return keep_alive, content_length, chunked
