"""The WSGI response: `start_response`, the `write` callable, and the bytes they send.

What PEP 3333 asks of the server is here (status and header types, a second
`start_response` only with `exc_info`, body items that are bytes); the head,
the body framing and keep-alive are decided by gcorn.http's `ResponseWriter`
(see gcorn/http/framing.py for the rules).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from gcorn.http import Framing, InvalidResponse, ResponseWriter, check_header, informational
from gcorn.workers.errors import AppResponseError, ClientDisconnected

__all__ = ["Response", "close_iterable"]

_STATUS = re.compile(r"[1-9][0-9][0-9](?: [^\r\n\x00]*)?\Z")
_CHUNKED = Framing.CHUNKED


class Response:
    """One response on a connection: also the `resp` object given to hooks."""

    __slots__ = ("body", "conn", "headers", "headers_sent", "log", "must_close", "status",
                 "status_code", "worker", "writer")

    def __init__(self, conn: Any, is_head: bool, http11: bool, keep_alive: bool,
                 server: bytes, log: Any, body: Any = None, worker: Any = None) -> None:
        self.conn = conn
        # read when the head is written: a worker stopped meanwhile answers with close
        self.worker = worker
        self.body = body
        self.log = log
        self.writer = ResponseWriter(is_head, http11, keep_alive, server)
        self.status: str | None = None
        self.status_code = 0
        self.headers: list[tuple[str, str]] = []
        self.headers_sent = False
        self.must_close = False

    @property
    def keep_alive(self) -> bool:
        """The connection may carry another request (as far as the response goes)."""
        return self.writer.keep_alive

    @property
    def sent(self) -> int:
        """Body bytes sent (the access log's)."""
        return self.writer.sent

    @sent.setter
    def sent(self, value: int) -> None:
        self.writer.sent = value

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
        for item in headers:
            try:
                name, value = item
            except (TypeError, ValueError):
                raise AppResponseError(f"invalid header {item!r}") from None
            if type(name) is not str or type(value) is not str:
                raise AppResponseError(f"header name and value must be str: {item!r}")
        code = int(status[:3])
        try:
            self.writer.start(code, headers, status[4:])
        except InvalidResponse as exc:
            raise AppResponseError(_invalid(status, headers, exc)) from None
        self.status = status
        self.status_code = code
        self.headers = list(headers)
        return self.write

    def early_hints(self, headers: list[tuple[str, str]]) -> None:
        """`wsgi.early_hints`: send a 103 response now (HTTP/1.1 clients, before the head)."""
        if self.headers_sent or not self.writer.http11:
            return
        try:
            data = informational(103, headers)
        except InvalidResponse as exc:
            raise AppResponseError(f"invalid early hint {headers!r}: {exc}") from None
        self.conn.sendall(data)

    def write(self, data: bytes) -> None:
        """Send body bytes (the `write` callable and every item of the iterable)."""
        if type(data) is not bytes:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise AppResponseError(f"body items must be bytes, not {type(data).__name__}")
            data = bytes(data)
        if not self.headers_sent:
            self.send_head(data, final=False)
            return
        if not data:
            return
        writer = self.writer
        over = writer.overrun
        if writer.framing is _CHUNKED:
            before, data, after = writer.data_parts(data)
            self.conn.send_parts(before, data, after)
            return
        data = writer.data(data)
        if writer.overrun and not over:
            self._warn_overrun()
        if data:
            self.conn.sendall(data)

    def _warn_overrun(self) -> None:
        self.log.warning("the app sent more than its Content-Length %d; extra bytes dropped",
                         self.writer.content_length)

    # -- the head and the end ----------------------------------------------------

    def send_head(self, body: bytes = b"", final: bool = False, body_length: int | None = None) -> None:
        """Send the head, with `body` in the same write; `final` when it is the whole body."""
        if self.status is None:
            raise AppResponseError("the app sent body bytes before calling start_response")
        if not self.conn.claim_response():
            # request_timeout answered this request first (gthread's watchdog)
            raise ClientDisconnected("the request ran past request_timeout: already answered")
        close = self.must_close
        if self.body is not None and self.body.continue_pending:
            # the client still waits for 100 Continue before sending its body:
            # it may never send it, so this connection cannot carry another request
            close = True
        worker = self.worker
        if worker is not None and not worker.alive:
            close = True  # a graceful stop began while the app ran
        writer = self.writer
        head = writer.head(len(body) if final else body_length, close)
        self.headers_sent = True
        if not body:
            self.conn.sendall(head)
            return
        before, body, after = writer.data_parts(body)
        if writer.overrun:
            self._warn_overrun()
        if not body:
            self.conn.sendall(head)
        elif after:
            self.conn.send_parts(head + before, body, after)
        else:
            self.conn.send_parts(head, body)

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
        writer = self.writer
        tail = writer.end()
        if tail:
            self.conn.sendall(tail)
        if writer.incomplete:
            self.log.warning("the app sent %d of its %d-byte Content-Length; closing",
                             writer.sent, writer.content_length)
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
        writer = self.writer
        before, count, after = writer.reserve(remaining)
        if count <= 0:
            return
        if before:
            self.conn.sendall(before)
        sent = self.conn.sendfile(wrapper.filelike, offset, count)
        if after:
            self.conn.sendall(after)
        if sent < count:
            writer.sent -= count - sent
            self.must_close = True


def _invalid(status: str, headers: list[tuple[str, str]], exc: InvalidResponse) -> str:
    """Name what the writer refused: the status, or the first bad header."""
    for name, value in headers:
        try:
            check_header(name, value)
        except InvalidResponse as field_exc:
            return f"invalid header {(name, value)!r}: {field_exc}"
    return f"invalid response {status!r}: {exc}"


def close_iterable(result: Any, log: Any) -> None:
    """PEP 3333: call the app's iterable's close() when it has one, whatever happened;
    its failure is logged, never raised over the request's own outcome."""
    close = getattr(result, "close", None)
    if close is not None:
        try:
            close()
        except Exception:
            log.exception("the response iterable's close() failed")
