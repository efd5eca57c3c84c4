"""The pure-Python backend: a byte-buffer state machine, no dependency.

Speed comes from doing the per-request work in a few C-level calls: one
``find`` for the end of the head, one regex to validate the whole field block
and one ``findall`` to extract it; body bytes are passed on without copies
whenever a piece of input is all body.
"""

from __future__ import annotations

from typing import Any

from .errors import (
    HeaderFieldTooLarge,
    IncompleteMessage,
    InvalidChunk,
    InvalidLineEnding,
    InvalidRequestLine,
    InvalidTrailer,
    ParseError,
    RequestLineTooLong,
)
from .events import Body, EndOfMessage, Event, Header, RequestHead
from .fields import parse_fields
from .grammar import BARE_LINE_ENDING, CHUNK_HEADER, REQUEST_LINE
from .head import FORBIDDEN_TRAILERS, build_head, parse_request_line
from .interface import RequestParser
from .options import DEFAULT_OPTIONS

# States of the machine.
HEAD = 0  # waiting for (the rest of) a request head
LENGTH = 1  # reading a Content-Length body; _remaining bytes to go
CHUNK_HEADER_LINE = 2  # waiting for a chunk-size line
CHUNK_DATA = 3  # inside a chunk; _remaining bytes to go
CHUNK_END = 4  # waiting for the CRLF after a chunk's data
TRAILERS = 5  # after the last chunk: trailer fields, then the empty line
PAUSED = 6  # after an Upgrade / CONNECT request: bytes are held for take_unparsed
CLOSED = 7  # after a request that does not keep the connection open
FAILED = 8  # a ParseError was raised; it is raised again

HTTP_11 = (1, 1)

# A chunk-size line with extensions longer than this is refused (no hanging on
# an endless extension).
MAX_CHUNK_HEADER = 4096
# A chunk size must fit in 64 bits (leading zeros do not count).
MAX_CHUNK_SIZE_DIGITS = 16
_HEX_DIGITS = b"0123456789abcdefABCDEF"


class PythonParser(RequestParser):
    """RequestParser backend written in pure Python (always available)."""

    backend = "python"
    __slots__ = (
        "_state", "_buf", "_scanned", "_line_end", "_last_line", "_remaining", "_head", "_error"
    )

    def __init__(self, backend: str = "auto", **kwargs: Any) -> None:
        if kwargs:
            RequestParser.__init__(self, backend, **kwargs)
        else:  # one parser per connection: the default case must be cheap
            self.options = DEFAULT_OPTIONS
        self._state = HEAD
        # Bytes received and not parsed yet. While a head (or trailer section)
        # is incomplete, these track what was already checked in _buf, so that
        # each received byte is examined once, however small the pieces.
        self._buf = bytearray()
        self._scanned = 0  # _buf[:_scanned] holds no end of head
        self._line_end = -1  # where the request line ends in _buf, once seen
        self._last_line = 0  # where the last (unfinished) line starts in _buf
        self._remaining = 0
        self._head: RequestHead | None = None
        self._error: ParseError | None = None

    @property
    def paused(self) -> bool:
        """True after an Upgrade or CONNECT request ended: see take_unparsed/resume."""
        return self._state == PAUSED

    @property
    def in_progress(self) -> bool:
        """True when part of a request has been received but not its end."""
        state = self._state
        if state == HEAD:
            return bool(self._buf.lstrip(b"\r\n"))
        return state < PAUSED

    def take_unparsed(self) -> bytes:
        """While paused: hand over (and forget) the bytes received after the request."""
        if self._state != PAUSED:
            raise RuntimeError("take_unparsed() is only for a paused parser")
        data = bytes(self._buf)
        self._buf.clear()
        self._state = CLOSED
        return data

    def resume(self) -> list[Event]:
        """While paused: the protocol switch was declined; parse on as HTTP/1.1."""
        if self._state != PAUSED:
            raise RuntimeError("resume() is only for a paused parser")
        self._state = HEAD if self._head is None or self._head.keep_alive else CLOSED
        data = bytes(self._buf)
        self._buf.clear()
        return self.feed(data)

    def feed(self, data: bytes) -> list[Event]:
        """Take bytes received from the peer; return the events they complete."""
        if type(data) is not bytes:  # a bytearray or memoryview must not leak into events
            data = bytes(data)
        state = self._state
        if state >= PAUSED:
            if state == PAUSED:
                self._buf += data
            elif state == FAILED:
                assert self._error is not None
                self._error.events = ()  # handed out with the first raise
                raise self._error
            return []
        pending = self._buf
        events: list[Event] = []
        try:
            if pending:
                pending += data
                if (state == HEAD or state == TRAILERS) and pending.find(
                    b"\r\n\r\n", self._scanned
                ) < 0 and not (state == TRAILERS and pending.startswith(b"\r\n")):
                    self._check_partial(pending)
                    return []
                buf = bytes(pending)
                pending.clear()
            else:
                buf = data
            self._keep_rest(buf, self._run(buf, events, 0))
        except ParseError as exc:
            self._fail(exc, events)
            raise
        return events

    def _feed_from(self, buf: bytes, pos: int, events: list[Event]) -> list[Event]:
        """Parse on from buf[pos:] (nothing pending); return events with what follows."""
        try:
            self._keep_rest(buf, self._run(buf, events, pos))
        except ParseError as exc:
            self._fail(exc, events)
            raise
        return events

    def _fail(self, exc: ParseError, events: list[Event]) -> None:
        """Fail for good; the whole requests read before the error go with it (exc.events)."""
        self._state = FAILED
        self._error = exc
        self._buf.clear()
        last = len(events)
        while last and type(events[last - 1]) is not EndOfMessage:
            last -= 1  # the request the error cut short is answered with the error
        exc.events = events[:last]

    def _keep_rest(self, buf: bytes, pos: int) -> None:
        """Hold buf[pos:], the start of what the next feed() completes."""
        if pos < len(buf) and self._state != CLOSED:  # after a closing request: dropped
            pending = self._buf
            pending += memoryview(buf)[pos:]
            self._scanned = 0
            self._line_end = -1
            self._last_line = 0
            if self._state == HEAD or self._state == TRAILERS:
                self._check_partial(pending)

    def feed_eof(self) -> list[Event]:
        """The peer closed its side: raise IncompleteMessage if a request was cut short."""
        if self._state == FAILED:
            assert self._error is not None
            self._error.events = ()
            raise self._error
        if self.in_progress:
            self._state = FAILED
            self._error = IncompleteMessage()
            raise self._error
        if self._state == HEAD:
            self._state = CLOSED
        return []

    def _run(self, buf: bytes, events: list[Event], pos: int) -> int:
        """Parse from buf[pos:] as far as it goes; return the position reached."""
        end = len(buf)
        options = self.options
        while pos < end:
            state = self._state
            if state >= PAUSED:  # paused or closed: the rest is not HTTP to parse here
                break
            if state == HEAD:
                start = pos
                # RFC 9112 2.2: one empty line before a request line is ignored;
                # a second one is an empty request line (as gunicorn).
                if buf.startswith(b"\r\n", pos):
                    pos += 2
                    if buf.startswith(b"\r\n", pos):
                        raise InvalidRequestLine("empty request line")
                head_end = buf.find(b"\r\n\r\n", pos)
                if head_end < 0:
                    return start  # feed() keeps and checks the partial head
                line_end = buf.find(b"\r\n", pos)
                match = REQUEST_LINE.fullmatch(buf, pos, line_end)
                if match is not None and line_end - pos <= options.request_line_limit and (
                    match.group(3) == b"1.1"
                ):
                    method, target, _ = match.groups()  # the common case, inline
                    version = HTTP_11
                else:
                    method, target, version = parse_request_line(buf, pos, line_end, options)
                fields = self._fields(buf, pos, line_end, head_end) if line_end < head_end else []
                head = build_head(method, target, version, fields, options)
                pos = head_end + 4
                self._head = head
                self._scanned = 0
                events.append(head)
                if head.chunked:
                    self._state = CHUNK_HEADER_LINE
                elif head.content_length:
                    self._state = LENGTH
                    self._remaining = head.content_length
                elif head.keep_alive and head.upgrade is None and method != b"CONNECT":
                    events.append(EndOfMessage([]))  # no body: the common case, inline
                else:
                    self._end_message(events, [])
            elif state == LENGTH or state == CHUNK_DATA:
                remaining = self._remaining
                available = end - pos
                if available <= remaining:
                    events.append(Body(buf[pos:] if pos else buf))
                    self._remaining = remaining - available
                    pos = end
                    if available < remaining:
                        return pos
                else:
                    pos += remaining
                    events.append(Body(buf[pos - remaining : pos]))
                    self._remaining = 0
                if state == LENGTH:
                    self._end_message(events, [])
                else:
                    self._state = CHUNK_END
            elif state == CHUNK_HEADER_LINE:
                # One pass over every chunk that is wholly in buf (the common case).
                while True:
                    match = CHUNK_HEADER.match(buf, pos)
                    if match is None:
                        self._check_partial_line(buf, pos)
                        return pos
                    size_text = match.group(1)
                    if len(size_text) > MAX_CHUNK_SIZE_DIGITS and (
                        len(size_text.lstrip(b"0")) > MAX_CHUNK_SIZE_DIGITS
                    ):
                        raise InvalidChunk("chunk size too large")
                    pos = match.end()
                    size = int(size_text, 16)
                    if not size:
                        self._state = TRAILERS
                        break
                    data_end = pos + size
                    if buf.startswith(b"\r\n", data_end):
                        events.append(Body(buf[pos:data_end]))
                        pos = data_end + 2
                    else:  # the chunk goes on in a later piece, or lacks its CRLF
                        self._state = CHUNK_DATA
                        self._remaining = size
                        break
            elif state == CHUNK_END:
                if buf.startswith(b"\r\n", pos):
                    pos += 2
                    self._state = CHUNK_HEADER_LINE
                elif end - pos == 1 and buf[pos] == 13:
                    return pos
                else:
                    raise InvalidChunk("chunk data not followed by CRLF")
            elif state == TRAILERS:
                if buf.startswith(b"\r\n", pos):
                    pos += 2
                    self._end_message(events, [])
                    continue
                trailer_end = buf.find(b"\r\n\r\n", pos)
                if trailer_end < 0:
                    return pos  # feed() keeps and checks the partial trailers
                trailers = parse_fields(buf[pos : trailer_end + 2], options)
                for name, _ in trailers:
                    if name in FORBIDDEN_TRAILERS:
                        raise InvalidTrailer("field not allowed in a trailer section")
                pos = trailer_end + 4
                self._end_message(events, trailers)
        return pos

    def _fields(self, buf: bytes, start: int, line_end: int, head_end: int) -> list[Header]:
        """The header fields of the head buf[start:head_end + 4] (a backend's hook)."""
        return parse_fields(buf[line_end + 2 : head_end + 2], self.options)

    def _end_message(self, events: list[Event], trailers: list[Header]) -> None:
        """Emit EndOfMessage and pick the state for what follows the request."""
        events.append(EndOfMessage(trailers))
        head = self._head
        assert head is not None
        if head.upgrade is not None or head.method == b"CONNECT":
            self._state = PAUSED
        elif head.keep_alive:
            self._state = HEAD
        else:
            self._state = CLOSED

    def _check_partial(self, pending: bytearray) -> None:
        """Refuse an incomplete head or trailer section as soon as it must break a rule.

        Only the bytes received since the last call are searched (plus a few
        before them, for a CRLF split between two pieces).
        """
        options = self.options
        size = len(pending)
        since = max(0, self._scanned - 1)
        limit = options.head_limit
        in_fields = True
        if self._state == HEAD:
            limit += options.request_line_limit
            start = 0
            if pending.startswith(b"\r\n"):  # the one empty line allowed before a request line
                start = 2
                if pending.startswith(b"\r\n", 2):
                    raise InvalidRequestLine("empty request line")
            if self._line_end < 0:
                self._line_end = pending.find(b"\r\n", max(start, since))
                if self._line_end < 0:
                    in_fields = False
                    if size - start > options.request_line_limit + 1:
                        raise RequestLineTooLong()
                elif self._line_end - start > options.request_line_limit:
                    raise RequestLineTooLong()
        if in_fields:
            last = pending.rfind(b"\r\n", since)
            if last >= 0:
                self._last_line = last + 2
            if size - self._last_line > options.field_size_limit or size > limit:
                raise HeaderFieldTooLarge()
        if BARE_LINE_ENDING.search(pending, since) is not None:
            raise InvalidLineEnding()
        self._scanned = max(0, size - 3)

    def _check_partial_line(self, buf: bytes, pos: int) -> None:
        """A chunk-size line did not match: raise unless it may still be completed."""
        line = buf[pos:]
        if b"\n" in line:
            raise InvalidChunk("invalid chunk-size line")
        if len(line) > MAX_CHUNK_HEADER:
            raise InvalidChunk("chunk-size line too long")
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line:
            return
        rest = line.lstrip(_HEX_DIGITS)
        digits = line[: len(line) - len(rest)]
        if (
            b"\r" in line
            or not digits
            or len(digits.lstrip(b"0")) > MAX_CHUNK_SIZE_DIGITS
            or (rest and rest[:1] not in (b";", b" ", b"\t"))
        ):
            raise InvalidChunk("invalid chunk-size line")
