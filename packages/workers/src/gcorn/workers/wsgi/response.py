"""The WSGI response: `start_response`, the `write` callable and body framing.

Framing rules: the app's Content-Length is kept (and never exceeded); a
body of known size gets one; otherwise HTTP/1.1 gets chunked encoding and
HTTP/1.0 a body delimited by closing the connection. HEAD, 1xx, 204 and 304
carry no body. Hop-by-hop headers from the app are never sent.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from gcorn.http import HTTPProtocolError, check_header, status_line
from gcorn.workers.errors import AppResponseError, ClientDisconnected

__all__ = ["Response", "http_date", "server_header"]

_STATUS = re.compile(r"[1-9][0-9][0-9](?: [^\r\n\x00]*)?\Z")
# RFC 9110 7.6.1 hop-by-hop fields, plus the two the server owns
_DROPPED = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
    "proxy-connection", "te", "trailer", "trailers", "transfer-encoding", "upgrade",
    "server", "date",
})
_NO_BODY_STATUS = frozenset({204, 304})

_date_cache: list[Any] = [0, b""]
_DAYS = (b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun")
_MONTHS = (b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct",
           b"Nov", b"Dec")
# validated (name, value) -> bytes pair: apps send the same few headers again and again
_checked: dict[tuple[str, str], tuple[bytes, bytes]] = {}
_CHECKED_MAX = 4096


def http_date() -> bytes:
    """`Date: <HTTP-date>\\r\\n` for now, recomputed at most once a second."""
    now = int(time.time())
    cache = _date_cache
    if cache[0] != now:
        t = time.gmtime(now)
        # RFC 9110 5.6.7 IMF-fixdate (email.utils would pull in megabytes of modules)
        cache[1] = b"Date: %s, %02d %s %d %02d:%02d:%02d GMT\r\n" % (
            _DAYS[t.tm_wday], t.tm_mday, _MONTHS[t.tm_mon - 1], t.tm_year,
            t.tm_hour, t.tm_min, t.tm_sec)
        cache[0] = now
    return cache[1]  # type: ignore[no-any-return]


def server_header(software: str) -> bytes:
    """`Server: <software>\\r\\n`."""
    return b"Server: %s\r\n" % software.encode("latin-1")


class Response:
    """One response on a connection: also the `resp` object given to hooks."""

    __slots__ = ("body", "chunked", "close_delimited", "conn", "content_length", "headers",
                 "headers_sent", "http11", "is_head", "keep_alive", "log", "must_close",
                 "omit_body", "sent", "server", "status", "status_code", "worker",
                 "_status_line", "_wire_headers")

    def __init__(self, conn: Any, is_head: bool, http11: bool, keep_alive: bool,
                 server: bytes, log: Any, body: Any = None, worker: Any = None) -> None:
        self.conn = conn
        # read when the head is written: a worker stopped meanwhile answers with close
        self.worker = worker
        self.body = body
        self.is_head = is_head
        self.http11 = http11
        self.keep_alive = keep_alive
        self.server = server
        self.log = log
        self.status: str | None = None
        self.status_code = 0
        self.headers: list[tuple[str, str]] = []
        self._wire_headers: list[tuple[bytes, bytes]] = []
        self._status_line = b""
        self.headers_sent = False
        self.content_length: int | None = None
        self.chunked = False
        self.close_delimited = False
        self.must_close = False
        self.omit_body = False
        self.sent = 0

    # -- PEP 3333 ------------------------------------------------------------

    def start_response(self, status: str, headers: list[tuple[str, str]],
                       exc_info: Any = None) -> Callable[[bytes], None]:
        """PEP 3333 `start_response`: record status and headers, return `write`."""
        if exc_info:
            try:
                if self.headers_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # break the frame <-> traceback cycle
        elif self.status is not None:
            if self.conn.timed_out:  # the status is request_timeout's 504 (gthread)
                raise ClientDisconnected("the request ran past request_timeout: already answered")
            raise AppResponseError("start_response called a second time without exc_info")
        if type(status) is not str or not _STATUS.match(status):
            raise AppResponseError(f"invalid status {status!r}")
        code = int(status[:3])
        try:
            self._status_line = status_line(code, status[4:])
        except HTTPProtocolError as exc:
            raise AppResponseError(f"invalid status {status!r}: {exc}") from None
        wire: list[tuple[bytes, bytes]] = []
        content_length: int | None = None
        for item in headers:
            try:
                name, value = item
            except (TypeError, ValueError):
                raise AppResponseError(f"invalid header {item!r}") from None
            if type(name) is not str or type(value) is not str:
                raise AppResponseError(f"header name and value must be str: {item!r}")
            raw = _checked.get((name, value))
            if raw is None:
                try:
                    raw = check_header(name, value.strip(" \t"))
                except HTTPProtocolError as exc:
                    raise AppResponseError(f"invalid header {item!r}: {exc}") from None
                if len(_checked) < _CHECKED_MAX:
                    _checked[(name, value)] = raw
            lname = name.lower()
            if lname in _DROPPED:
                if lname == "connection" and "close" in value.lower():
                    self.must_close = True
                continue
            if lname == "content-length":
                value = value.strip()
                if not value.isdigit() or (content_length is not None
                                           and int(value) != content_length):
                    raise AppResponseError(f"invalid Content-Length {value!r}")
                content_length = int(value)
            wire.append(raw)
        self.status = status
        self.status_code = code
        self.headers = list(headers)
        self.content_length = content_length
        self._wire_headers = wire
        return self.write

    def early_hints(self, headers: list[tuple[str, str]]) -> None:
        """`wsgi.early_hints`: send a 103 response now (HTTP/1.1 clients, before the head)."""
        if self.headers_sent or not self.http11:
            return
        lines = [b"HTTP/1.1 103 Early Hints\r\n"]
        for name, value in headers:
            try:
                lines.append(b"%s: %s\r\n" % check_header(name, value))
            except HTTPProtocolError as exc:
                raise AppResponseError(f"invalid early hint {name!r}: {exc}") from None
        lines.append(b"\r\n")
        self.conn.sendall(b"".join(lines))

    def write(self, data: bytes) -> None:
        """Send body bytes (the `write` callable and every item of the iterable)."""
        if type(data) is not bytes:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise AppResponseError(f"body items must be bytes, not {type(data).__name__}")
            data = bytes(data)
        if not self.headers_sent:
            self.send_head(data, final=False)
            return
        self._send_body(data)

    # -- framing -------------------------------------------------------------

    def _frame(self, body_length: int | None) -> None:
        code = self.status_code
        self.omit_body = self.is_head or code < 200 or code in _NO_BODY_STATUS
        if code < 200 or code == 204:
            self.content_length = None
            self._wire_headers = [h for h in self._wire_headers
                                  if h[0].lower() != b"content-length"]
            return
        if self.content_length is None and body_length is not None and not self.omit_body:
            self.content_length = body_length
            self._wire_headers.append((b"Content-Length", b"%d" % body_length))
        if self.content_length is None and not self.omit_body:
            if self.http11:
                self.chunked = True
            else:
                self.close_delimited = True
                self.must_close = True

    def _head_bytes(self) -> bytes:
        if self.body is not None and self.body.continue_pending:
            # the client still waits for 100 Continue before sending its body:
            # it may never send it, so this connection cannot carry another request
            self.must_close = True
        parts = [self._status_line, self.server, http_date()]
        parts.extend(b"%s: %s\r\n" % field for field in self._wire_headers)
        if self.chunked:
            parts.append(b"Transfer-Encoding: chunked\r\n")
        if self.keep_alive and self.worker is not None and not self.worker.alive:
            self.must_close = True  # a graceful stop began while the app ran
        if self.must_close or not self.keep_alive:
            parts.append(b"Connection: close\r\n\r\n")
        elif not self.http11:
            parts.append(b"Connection: keep-alive\r\n\r\n")
        else:
            parts.append(b"\r\n")
        return b"".join(parts)

    def send_head(self, body: bytes = b"", final: bool = False, body_length: int | None = None) -> None:
        """Send the head, with `body` in the same write; `final` when it is the whole body."""
        if self.status is None:
            raise AppResponseError("the app sent body bytes before calling start_response")
        if not self.conn.claim_response():
            # request_timeout answered this request first (gthread's watchdog)
            raise ClientDisconnected("the request ran past request_timeout: already answered")
        self._frame(len(body) if final else body_length)
        self.headers_sent = True
        head = self._head_bytes()
        if not body or self.omit_body:
            self.conn.sendall(head)
            return
        body = self._clip(body)
        if self.chunked:
            self.conn.send_parts(b"%s%x\r\n" % (head, len(body)), body, b"\r\n")
        else:
            self.conn.send_parts(head, body)
        self.sent += len(body)

    def _clip(self, data: bytes) -> bytes:
        limit = self.content_length
        if limit is not None and self.sent + len(data) > limit:
            self.log.warning("the app sent more than its Content-Length %d; extra bytes dropped",
                             limit)
            data = data[:max(limit - self.sent, 0)]
        return data

    def _send_body(self, data: bytes) -> None:
        if self.omit_body or not data:
            return
        data = self._clip(data)
        if not data:
            return
        if self.chunked:
            self.conn.send_parts(b"%x\r\n" % len(data), data, b"\r\n")
        else:
            self.conn.sendall(data)
        self.sent += len(data)

    def write_all(self, chunks: list[bytes] | tuple[bytes, ...]) -> None:
        """Send a list/tuple body: its length is known, so one write with the head."""
        if not self.headers_sent and all(type(c) is bytes for c in chunks):
            self.send_head(b"".join(chunks), final=True)
            return
        for chunk in chunks:
            self.write(chunk)

    def finish(self) -> None:
        """End the body: send the head if not yet sent, the last chunk if chunked."""
        if not self.headers_sent:
            self.send_head(b"", final=True)
        elif self.chunked:
            self.conn.sendall(b"0\r\n\r\n")
        if (self.content_length is not None and not self.omit_body
                and self.sent < self.content_length):
            self.log.warning("the app sent %d of its %d-byte Content-Length; closing",
                             self.sent, self.content_length)
            self.must_close = True

    def send_file(self, wrapper: Any, fd: int) -> None:
        """Send a `wsgi.file_wrapper` body with `os.sendfile` from its current offset."""
        import os

        try:
            offset = wrapper.filelike.tell()
        except (AttributeError, OSError):
            offset = os.lseek(fd, 0, os.SEEK_CUR)
        remaining = max(os.fstat(fd).st_size - offset, 0)
        if not self.headers_sent:
            self.send_head(b"", final=False, body_length=remaining)
        count = remaining if self.content_length is None else min(
            remaining, self.content_length - self.sent)
        if self.omit_body or count <= 0:
            return
        if self.chunked:
            self.conn.sendall(b"%x\r\n" % count)
        sent = self.conn.sendfile(wrapper.filelike, offset, count)
        self.sent += sent
        if self.chunked:
            self.conn.sendall(b"\r\n")
        if sent < count:
            self.must_close = True
