"""`wsgi.input`: the request body as a file-like object that never reads past the body.

It pulls `Body` events from the connection's parser on demand, so the bytes
of a pipelined next request stay with the parser. `Expect: 100-continue` is
answered the first time the app asks for body bytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from gcorn.http import CONTINUE, Body, EndOfMessage, ParseError
from gcorn.workers.errors import ClientDisconnected

__all__ = ["BodyReader", "InputStream"]


class BodyReader:
    """`read`, `readline`, `readlines` and iteration over body pieces (PEP 3333 `wsgi.input`).

    A subclass supplies `_next_chunk`: the next body bytes, b'' (and `done` set)
    once the body has ended. HTTP/1 reads from its parser, an HTTP/2 stream
    from its DATA frames.
    """

    __slots__ = ("_buf", "done")

    def __init__(self, done: bool = False) -> None:
        self._buf = bytearray()
        self.done = done

    def _next_chunk(self) -> bytes:
        raise NotImplementedError

    def read(self, size: int | None = -1) -> bytes:
        """Up to `size` bytes of the body (all of the rest when size is None or < 0)."""
        buf = self._buf
        if size is None or size < 0:
            while not self.done:
                buf += self._next_chunk()
            data = bytes(buf)
            buf.clear()
            return data
        if not buf and not self.done and size:
            # common case: one chunk that the app reads whole, returned without a copy
            chunk = self._next_chunk()
            if len(chunk) == size:
                return chunk
            buf += chunk
        while len(buf) < size and not self.done:
            buf += self._next_chunk()
        data = bytes(buf[:size])
        del buf[:size]
        return data

    def readline(self, size: int | None = -1) -> bytes:
        """One line (up to and including b'\\n'), at most `size` bytes when size >= 0."""
        buf = self._buf
        limit = -1 if size is None else size
        start = 0
        while True:
            end = buf.find(b"\n", start)
            if end >= 0:
                cut = end + 1
                break
            if self.done or (0 <= limit <= len(buf)):
                cut = len(buf)
                break
            start = len(buf)
            buf += self._next_chunk()
        if 0 <= limit < cut:
            cut = limit
        data = bytes(buf[:cut])
        del buf[:cut]
        return data

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        """The remaining lines; stops once `hint` bytes are collected when hint > 0."""
        lines: list[bytes] = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                return lines

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def readable(self) -> bool:
        """Always True: this is a readable stream."""
        return True

    def close(self) -> None:
        """No-op: the server owns the connection."""


class InputStream(BodyReader):
    """A read-only binary stream over one HTTP/1 request body."""

    __slots__ = ("_conn", "_want_continue", "error", "trailers")

    def __init__(self, conn: Any, done: bool, expects_continue: bool) -> None:
        # BodyReader's fields set here: one call fewer per HTTP/1 request
        self._buf = bytearray()
        self.done = done
        self._conn = conn
        self._want_continue = expects_continue and not done
        self.error: ParseError | None = None
        self.trailers: list[tuple[bytes, bytes]] = []

    @property
    def continue_pending(self) -> bool:
        """True while a 100-continue was asked for and not yet sent."""
        return self._want_continue

    def _next_chunk(self) -> bytes:
        """The next body bytes from the parser; b'' once the body has ended."""
        conn = self._conn
        if self._want_continue:
            self._want_continue = False
            conn.sendall(CONTINUE)
        while True:
            try:
                event = conn.next_event()
            except ParseError as exc:
                self.error = exc
                self.done = True
                raise
            if event is None:
                self.done = True
                raise ClientDisconnected("client closed the connection before the end of the body")
            if type(event) is Body or isinstance(event, Body):
                if event.data:
                    return bytes(event.data)
                continue
            if isinstance(event, EndOfMessage):
                self.done = True
                self.trailers = list(getattr(event, "trailers", None) or ())
                return b""
            raise ClientDisconnected(f"unexpected parser event {type(event).__name__} in a body")

    def settle(self) -> bool:
        """True when the body has ended, judged from already-parsed events only (no I/O)."""
        if self.done:
            return True
        if self._buf:
            return False
        events = self._conn.events
        while events and isinstance(events[0], Body) and not events[0].data:
            events.popleft()
        if events and isinstance(events[0], EndOfMessage):
            event = events.popleft()
            self.done = True
            self.trailers = list(getattr(event, "trailers", None) or ())
        return self.done

    def drain(self, max_bytes: int) -> bool:
        """Discard the unread body, up to `max_bytes`, without waiting for the client.

        True when the body has ended; False when the rest is not there yet or is
        too big: the connection must then be closed rather than kept.
        """
        if self._want_continue:
            return False  # the client waits for our word: its body may never come
        discarded = len(self._buf)
        self._buf.clear()
        conn = self._conn
        events = conn.events
        while not self.done:
            if discarded > max_bytes:
                return False
            if not events:
                data = conn.recv_ready()
                if not data:  # nothing yet (None) or the client closed (b"")
                    return False
                conn.feed(data)
                continue
            event = events.popleft()
            if isinstance(event, Body):
                discarded += len(event.data)
            elif isinstance(event, EndOfMessage):
                self.done = True
                self.trailers = list(getattr(event, "trailers", None) or ())
            else:
                raise ClientDisconnected(f"unexpected parser event {type(event).__name__}")
        return True
