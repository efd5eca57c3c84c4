"""The server's side of one HTTP/1.x exchange: the response head, its body framing, keep-alive.

A `ResponseWriter` is told the request's facts (HEAD or not, HTTP/1.1 or 1.0,
whether the connection may stay open) and the application's status and header
fields; it decides how the body is delimited (RFC 9112 6.3) and turns the head,
each piece of body and the end of the body into bytes. It never touches a
socket: the caller sends what it returns, and reads `keep_alive` afterwards.

The rules (RFC 9110, RFC 9112):

- hop-by-hop fields of the application (RFC 9110 7.6.1: Connection, the fields
  it names, Keep-Alive, Proxy-Connection, TE, Transfer-Encoding, Upgrade) and
  Trailer, Date and Server are the server's: dropped; `Connection: close` still
  closes the connection after the response. Date and Server are added once. The
  one exception: a 426 (and a 101) keeps the application's Upgrade, which it
  must send (RFC 9110 15.5.22, 7.8), and the head's Connection names `upgrade`.
- 1xx and 204 carry no body and no Content-Length (RFC 9110 8.6); HEAD and 304
  carry no body but keep the application's Content-Length.
- otherwise the application's Content-Length frames the body (body bytes past
  it are cut, a body short of it closes the connection); without one, a body
  whose size is known gets a Content-Length, else HTTP/1.1 gets chunked coding
  and HTTP/1.0 a body delimited by closing the connection.
- HTTP/1.1 keeps the connection open unless someone asks to close it;
  HTTP/1.0 only when the request asked for keep-alive (then the head says so).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Iterable
from typing import Any

from .errors import InvalidResponse
from .response import HeaderLike, check_header, status_line

__all__ = [
    "CONTINUE",
    "Framing",
    "ResponseWriter",
    "date_line",
    "error_response",
    "http_date",
    "informational",
    "server_line",
]


class Framing(enum.Enum):
    """How a response body is delimited (RFC 9112 6.3)."""

    LENGTH = "length"  # Content-Length
    CHUNKED = "chunked"  # Transfer-Encoding: chunked
    CLOSE = "close"  # the server closes the connection at its end (HTTP/1.0)
    NONE = "none"  # no body at all: HEAD, 1xx, 204, 304


_LENGTH, _CHUNKED, _CLOSE, _NONE = Framing.LENGTH, Framing.CHUNKED, Framing.CLOSE, Framing.NONE

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

# RFC 9110 7.6.1's hop-by-hop fields, and the ones the server writes itself
_SERVERS = frozenset((b"connection", b"keep-alive", b"proxy-connection", b"te",
                      b"transfer-encoding", b"upgrade", b"trailer", b"date", b"server"))
_CONNECTION_OPTIONS = frozenset((b"close", b"keep-alive", b""))

# (name, value) as the application gave them -> ("name: value\r\n", its kind, value,
# the number of a Content-Length or -1): applications send the same few fields
# again and again
_Field = tuple[bytes, int, bytes, int]
_PLAIN, _CONTENT_LENGTH, _CONNECTION, _DROPPED, _UPGRADE = 0, 1, 2, 3, 4
# the statuses whose Upgrade field is the application's to send (RFC 9110 15.5.22, 7.8)
_UPGRADE_STATUSES = frozenset((101, 426))
_FIELDS: dict[tuple[object, object], _Field] = {}
_FIELDS_MAX = 4096
# status -> its line with the standard reason; (status, reason) -> the line with that one
_STATUS_LINES: dict[object, bytes] = {}

_DAYS = (b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun")
_MONTHS = (b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct",
           b"Nov", b"Dec")
_clock: list[object] = [0, b""]
_SERVER_LINES: dict[bytes, bytes] = {}
# the Server and Date lines of the last response: valid until (a time.time()), for
# which server name, the lines
_server_date: list[Any] = [0.0, b"", b""]
_time = time.time


def http_date(when: float | None = None) -> bytes:
    """An HTTP-date in the IMF-fixdate form (RFC 9110 5.6.7), for `when` or now."""
    t = time.gmtime(when)
    return b"%s, %02d %s %d %02d:%02d:%02d GMT" % (
        _DAYS[t.tm_wday], t.tm_mday, _MONTHS[t.tm_mon - 1], t.tm_year,
        t.tm_hour, t.tm_min, t.tm_sec)


def date_line() -> bytes:
    """``Date: <now>\\r\\n``, rebuilt at most once a second (the same object meanwhile)."""
    now = int(time.time())
    clock = _clock
    if clock[0] != now:
        clock[1] = b"Date: " + http_date(now) + b"\r\n"
        clock[0] = now
    return clock[1]  # type: ignore[return-value]


def server_line(server: bytes) -> bytes:
    """``Server: <server>\\r\\n`` (checked once per name)."""
    line = _SERVER_LINES.get(server)
    if line is None:
        line = b"%s: %s\r\n" % check_header(b"Server", server)
        _SERVER_LINES[server] = line
    return line


def _server_and_date(server: bytes) -> bytes:
    """``Server: ...\r\nDate: ...\r\n`` for now (head() has this test inline)."""
    cached = _server_date
    if _time() < cached[0] and cached[1] is server:
        return cached[2]  # type: ignore[no-any-return]
    now = int(_time())
    lines = server_line(server) + date_line()
    _server_date[:] = [float(now + 1), server, lines]
    return lines


def _status_line(status: int, reason: bytes | str | None) -> bytes:
    line = status_line(status, reason)  # raises InvalidResponse for a bad one
    if len(_STATUS_LINES) < 1024:
        _STATUS_LINES[status if reason is None else (status, reason)] = line
    return line


def _field(name: bytes | str, value: bytes | str) -> _Field:
    # a field value has no surrounding whitespace (RFC 9110 5.5)
    if isinstance(value, bytes):
        stripped: bytes | str = value.strip(b" \t")
    elif isinstance(value, str):
        stripped = value.strip(" \t")
    else:
        stripped = value
    name_bytes, value_bytes = check_header(name, stripped)
    lname = name_bytes.lower()
    number = -1
    if lname == b"content-length":
        if not value_bytes.isdigit():
            raise InvalidResponse("Content-Length is not one decimal number")
        number = int(value_bytes)
    if number != -1:
        kind = _CONTENT_LENGTH
    elif lname == b"connection":
        kind = _CONNECTION
    elif lname == b"upgrade":
        kind = _UPGRADE
    else:
        kind = _DROPPED if lname in _SERVERS else _PLAIN
    hit = (b"%s: %s\r\n" % (name_bytes, value_bytes), kind, value_bytes, number)
    if len(_FIELDS) >= _FIELDS_MAX:
        _FIELDS.clear()
    _FIELDS[(name, value)] = hit
    return hit


def _named_options(value: bytes) -> set[bytes]:
    """The connection options of a Connection value, but close and keep-alive."""
    return {option.strip(b" \t").lower() for option in value.split(b",")} - _CONNECTION_OPTIONS


def informational(status: int, headers: Iterable[HeaderLike] = ()) -> bytes:
    """A whole 1xx interim response (100 Continue, 103 Early Hints), for HTTP/1.1 clients."""
    if type(status) is not int or not 100 <= status <= 199 or status == 101:
        raise InvalidResponse("an interim response has a 1xx status other than 101")
    parts = [status_line(status)]
    parts.extend(b"%s: %s\r\n" % check_header(name, value) for name, value in headers)
    parts.append(b"\r\n")
    return b"".join(parts)


def error_response(status: int, message: str, server: bytes = b"gcorn") -> bytes:
    """A whole plain-text response that closes the connection (the server's own errors)."""
    body = (message.rstrip("\n") + "\n").encode("utf-8", "replace")
    return b"".join((
        status_line(status), server_line(server), date_line(),
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n"
        b"Connection: close\r\n\r\n" % len(body),
        body,
    ))


class ResponseWriter:
    """One response on an HTTP/1.x connection: `start`, `head`, `data`..., `end`.

    `is_head`: the request's method is HEAD. `http11`: the request is HTTP/1.1
    (else 1.0). `keep_alive`: the request lets the connection stay open (1.1
    without `Connection: close`, 1.0 with `Connection: keep-alive`) and the
    server is willing. After `head`, `framing`, `content_length` and
    `keep_alive` say what was decided; `sent` counts the body bytes framed.
    """

    __slots__ = ("content_length", "framing", "head_sent", "http11", "incomplete", "is_head",
                 "keep_alive", "overrun", "sent", "server", "status", "_app_close", "_fields",
                 "_length_line", "_line", "_upgrade")

    status: int
    content_length: int | None
    overrun: bool  # the application sent more than its Content-Length: the rest was cut
    incomplete: bool  # the body ended short of its Content-Length

    def __init__(self, is_head: bool = False, http11: bool = True, keep_alive: bool = True,
                 server: bytes = b"gcorn") -> None:
        self.is_head = is_head
        self.http11 = http11
        self.keep_alive = keep_alive
        self.server = server
        self.framing: Framing | None = None
        self.head_sent = False
        self.sent = 0
        self._line = b""
        # start() sets status, content_length and the private fields; head() sets
        # overrun and incomplete: a response pays for each attribute once

    def start(self, status: int, headers: Iterable[HeaderLike],
              reason: bytes | str | None = None) -> None:
        """Take the application's status and fields: checked, hop-by-hop ones set apart.

        Raises `InvalidResponse` for a bad status, reason, name or value, or a
        Content-Length that is not one decimal number. May be called again
        (with other fields) until `head`.
        """
        if self.head_sent:
            raise InvalidResponse("the response head was already sent")
        line = _STATUS_LINES.get(status) if reason is None else _STATUS_LINES.get((status, reason))
        if line is None or type(status) is not int:
            line = _status_line(status, reason)
        fields: list[bytes] = []
        length = -1
        length_line = b""
        close = False
        upgrade = False
        named: set[bytes] | None = None
        cache = _FIELDS
        try:
            for item in headers:
                # a tuple is its own key (no new one); a list (ASGI allows them) is not hashable
                hit = cache.get(item) if item.__class__ is tuple else None
                if hit is None:
                    name, value = item
                    hit = cache.get((name, value)) or _field(name, value)
                kind = hit[1]
                if not kind:
                    fields.append(hit[0])
                elif kind == _CONTENT_LENGTH:
                    if length != -1 and hit[3] != length:
                        raise InvalidResponse("two Content-Length fields that differ")
                    length, length_line = hit[3], hit[0]
                elif kind == _CONNECTION:
                    lvalue = hit[2].lower()
                    close = close or b"close" in lvalue
                    options = _named_options(lvalue)
                    if options:
                        named = options if named is None else named | options
                elif kind == _UPGRADE and status in _UPGRADE_STATUSES:
                    fields.append(hit[0])
                    upgrade = True
        except InvalidResponse:
            raise
        except (TypeError, ValueError):
            raise InvalidResponse("a header field is not a (name, value) pair") from None
        if named is not None:
            fields = _drop_named(fields, named - {b"upgrade"} if upgrade else named)
        self.status = status
        self._line = line
        self._fields = fields
        self._length_line = length_line
        self.content_length = None if length == -1 else length
        self._app_close = close
        self._upgrade = upgrade

    def head(self, body_length: int | None = None, close: bool = False) -> bytes:
        """The head's bytes; framing decided. `body_length`: the whole body's size if known.

        `close`: the server wants the connection closed after this response (a
        graceful stop began, a request body is left unread...).
        """
        if self.head_sent:
            raise InvalidResponse("the response head was already sent")
        if not self._line:
            raise InvalidResponse("head() before start()")
        self.head_sent = True
        self.overrun = self.incomplete = False
        status = self.status
        cached = _server_date
        lines = (cached[2] if _time() < cached[0] and cached[1] is self.server
                 else _server_and_date(self.server))
        parts = [self._line, lines, *self._fields]
        if status < 200 or status == 204:
            framing = _NONE
            self.content_length = None
        elif self.is_head or status == 304:
            # the Content-Length of the body a GET would get (RFC 9110 8.6), never a guess
            framing = _NONE
            if self._length_line:
                parts.append(self._length_line)
        elif self.content_length is not None:
            framing = _LENGTH
            parts.append(self._length_line)
        elif body_length is not None:
            framing = _LENGTH
            self.content_length = body_length
            parts.append(b"Content-Length: %d\r\n" % body_length)
        elif self.http11:
            framing = _CHUNKED
            parts.append(b"Transfer-Encoding: chunked\r\n")
        else:
            framing = _CLOSE
            close = True
        self.framing = framing
        keep = self.keep_alive and not close and not self._app_close
        self.keep_alive = keep
        if self._upgrade:
            parts.append(b"Connection: upgrade\r\n\r\n" if keep and self.http11
                         else b"Connection: upgrade, close\r\n\r\n" if not keep
                         else b"Connection: upgrade, keep-alive\r\n\r\n")
        elif not keep:
            parts.append(b"Connection: close\r\n\r\n")
        elif not self.http11:
            parts.append(b"Connection: keep-alive\r\n\r\n")
        else:
            parts.append(b"\r\n")
        return b"".join(parts)

    def whole(self, data: bytes, close: bool = False) -> bytes:
        """`head`, `data` and `end` at once, for a body that is all in `data` (the usual case).

        One copy of `data`: for a big body, send `head(len(data))` and `data(data)` apart.
        """
        out = self.head(len(data), close)
        if self.framing is _NONE:  # HEAD, 1xx, 204, 304
            return out
        # a known length always gives a Content-Length: the application's, or this one
        length: int = self.content_length  # type: ignore[assignment]
        if len(data) != length:
            if len(data) > length:
                self.overrun = True
                data = data[:length]
            else:
                self.keep_alive = False
                self.incomplete = True
        self.sent = len(data)
        return out + data

    def _clip(self, data: bytes) -> bytes:
        limit = self.content_length
        if limit is not None and self.sent + len(data) > limit:
            # bytes past Content-Length would be read as the next response
            self.overrun = True
            data = data[:max(limit - self.sent, 0)]
        return data

    def data(self, data: bytes) -> bytes:
        """The bytes that carry `data` as (part of) the body; b"" when there is no body."""
        framing = self.framing
        if framing is _LENGTH:
            if self.sent + len(data) > self.content_length:  # type: ignore[operator]
                data = self._clip(data)
            self.sent += len(data)
            return data
        if framing is _CHUNKED:
            if not data:
                return b""  # an empty chunk would end the body
            self.sent += len(data)
            return b"%x\r\n%s\r\n" % (len(data), data)
        if framing is _CLOSE:
            self.sent += len(data)
            return data
        if framing is None:
            raise InvalidResponse("body bytes before the response head")
        return b""

    def data_parts(self, data: bytes) -> tuple[bytes, bytes, bytes]:
        """As `data`, without a copy: (before, data, after), to send one after another."""
        if self.framing is _CHUNKED:
            if not data:
                return b"", b"", b""
            self.sent += len(data)
            return b"%x\r\n" % len(data), data, b"\r\n"
        return b"", self.data(data), b""

    def reserve(self, count: int) -> tuple[bytes, int, bytes]:
        """For `count` body bytes the caller sends itself (sendfile): (before, count, after).

        The count is cut to what Content-Length allows, 0 when there is no body.
        """
        framing = self.framing
        if framing is _NONE or count <= 0:
            return b"", 0, b""
        if framing is _LENGTH:
            count = min(count, self.content_length - self.sent)  # type: ignore[operator]
            if count <= 0:
                return b"", 0, b""
        self.sent += count
        if framing is _CHUNKED:
            return b"%x\r\n" % count, count, b"\r\n"
        return b"", count, b""

    def end(self, trailers: Iterable[HeaderLike] = ()) -> bytes:
        """The bytes that end the body (the last chunk, with `trailers` when chunked).

        A body short of its Content-Length cannot be ended: the connection must
        close (`keep_alive` turns False, `incomplete` True). Trailers are sent
        only with chunked framing; elsewhere HTTP/1.1 has no place for them.
        """
        framing = self.framing
        if framing is _CHUNKED:
            if trailers == ():
                return b"0\r\n\r\n"
            parts = [b"0\r\n"]
            parts.extend(b"%s: %s\r\n" % check_header(name, value) for name, value in trailers)
            parts.append(b"\r\n")
            return b"".join(parts)
        if framing is _LENGTH and self.sent < self.content_length:  # type: ignore[operator]
            self.keep_alive = False
            self.incomplete = True
        elif framing is None:
            raise InvalidResponse("end() before the response head")
        return b""


def _drop_named(fields: list[bytes], named: set[bytes]) -> list[bytes]:
    """Leave out the fields a Connection value names (RFC 9110 7.6.1)."""
    return [line for line in fields if line.split(b":", 1)[0].lower() not in named]
