"""One client connection: its socket, its parser and the events not yet consumed.

Plain TCP/Unix sockets are kept non-blocking and waited on with `poll` only
when a call would block, so that the common case costs one system call.
TLS sockets use the socket timeout (the ssl module needs blocking semantics).
"""

from __future__ import annotations

import select
import socket
import sys
import threading
import time
from collections import deque
from typing import Any

from gcorn.http import ParseError
from gcorn.workers.errors import ClientDisconnected, RequestHeadTimeout

__all__ = ["ClientGone", "Connection"]

ClientGone = ClientDisconnected

_RECV_SIZE = 65536
_POLLIN = select.POLLIN | select.POLLPRI
_POLLOUT = select.POLLOUT
_ERRNO_GONE = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)

# who started the response of the connection's current request (`Connection.claim`)
_FREE, _BY_APP, _BY_TIMEOUT = 0, 1, 2
# one lock for every connection of the process: taken once per response start
_CLAIM_LOCK = threading.Lock()


class Connection:
    """A client socket with its request parser and a queue of parsed events."""

    __slots__ = ("claim", "closed", "deadline", "error", "events", "fd", "head_since", "is_tls",
                 "last_active",
                 "listener", "parser", "peer", "proxy_info", "registered", "requests", "sock",
                 "timed_out", "timeout", "unread_body")

    def __init__(self, sock: socket.socket, peer: Any, listener: Any, parser: Any,
                 timeout: float | None) -> None:
        self.sock = sock
        self.peer = peer
        self.listener = listener
        self.parser = parser
        self.timeout = timeout
        self.events: deque[Any] = deque()
        # a bad request pipelined behind whole ones: raised once those are served
        self.error: ParseError | None = None
        # ssl is imported only by workers that serve TLS (it costs megabytes of RSS)
        ssl = sys.modules.get("ssl")
        self.is_tls = ssl is not None and isinstance(sock, ssl.SSLSocket)
        self.fd = sock.fileno()
        self.requests = 0
        self.last_active = time.monotonic()
        self.proxy_info: dict[str, str] | None = None
        # set when a request body was left unread: closing must then drain first
        self.unread_body = False
        self.registered = False  # in the gthread worker's epoll set
        self.closed = False
        # request_timeout (gthread): answered by the watchdog; the stuck thread's writes fail
        self.timed_out = False
        # the write guard of request_timeout: the first of the serving thread (its head or
        # error answer) and the timeout's 504 to claim the response writes it; the other's
        # bytes are dropped, so a client never sees two responses to one request
        self.claim = _FREE
        # header_timeout: reads past `deadline` raise RequestHeadTimeout (sync); gthread
        # stamps `head_since` at the first byte of a head and its reaper checks it
        self.deadline: float | None = None
        self.head_since: float | None = None
        if self.is_tls:
            sock.settimeout(timeout)
        else:
            sock.setblocking(False)

    # -- reading ------------------------------------------------------------

    def _wait(self, events: int) -> None:
        poller = select.poll()
        poller.register(self.fd, events)
        wait = self.timeout
        deadline = self.deadline if events & select.POLLIN else None
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RequestHeadTimeout()
            wait = left if wait is None else min(wait, left)
        wait_ms = None if wait is None else max(int(wait * 1000), 1)
        if not poller.poll(wait_ms):
            if deadline is not None and time.monotonic() >= deadline - 0.002:
                raise RequestHeadTimeout()
            raise ClientGone("client timed out")

    def _wait_readable(self, timeout: float) -> bool:
        """Whether the socket became readable within `timeout` seconds."""
        poller = select.poll()
        poller.register(self.fd, _POLLIN)
        return bool(poller.poll(int(timeout * 1000)))

    def recv(self) -> bytes:
        """Bytes from the peer, waiting up to `timeout`; b'' at end of stream."""
        sock = self.sock
        if self.is_tls:
            deadline = self.deadline
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RequestHeadTimeout()
                sock.settimeout(left if self.timeout is None else min(self.timeout, left))
            try:
                return sock.recv(_RECV_SIZE)
            except OSError as exc:  # timeouts, resets and ssl.SSLError alike
                if deadline is not None and time.monotonic() >= deadline - 0.002:
                    raise RequestHeadTimeout() from exc
                raise ClientGone(str(exc)) from exc
            finally:
                if deadline is not None:
                    sock.settimeout(self.timeout)
        while True:
            try:
                return sock.recv(_RECV_SIZE)
            except BlockingIOError:
                self._wait(_POLLIN)
            except _ERRNO_GONE as exc:
                raise ClientGone(str(exc)) from exc

    def recv_ready(self) -> bytes | None:
        """Bytes that are already there, b'' at end of stream, None if nothing yet."""
        sock = self.sock
        if self.is_tls:
            # OpenSSL may already hold the bytes (read with the handshake or
            # the previous record) where epoll cannot see them: try a read
            import ssl

            sock.settimeout(0.0)
            try:
                return sock.recv(_RECV_SIZE)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                return None
            except OSError as exc:
                raise ClientGone(str(exc)) from exc
            finally:
                sock.settimeout(self.timeout)
        try:
            return sock.recv(_RECV_SIZE)
        except BlockingIOError:
            return None
        except _ERRNO_GONE as exc:
            raise ClientGone(str(exc)) from exc

    def feed(self, data: bytes) -> None:
        """Give received bytes to the parser (b'' is the end of the stream)."""
        if data:
            try:
                self.events.extend(self.parser.feed(data))
            except ParseError as exc:
                if not exc.events:
                    raise
                self.events.extend(exc.events)  # served first, as gunicorn serves them
                self.error = exc
        else:
            more = self.parser.feed_eof()
            if more:
                self.events.extend(more)

    def raise_error(self) -> None:
        """Raise the ParseError of a bad request that came behind whole ones, once those
        were served (call it when no parsed event is left)."""
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    def next_event(self, answer_eof: bool = False) -> Any:
        """The next parsed event, reading as needed; None at a clean end of stream.

        Raises `ParseError` for a bad request and `ClientGone` when the peer
        vanishes in the middle of one; with `answer_eof` (reading a head), an end of
        stream in the middle of a head raises the parser's error instead, so that a
        client that half-closed gets the same answer on every worker.
        """
        events = self.events
        received = False
        while not events:
            self.raise_error()
            try:
                data = self.recv()
            except RequestHeadTimeout:
                if not received:
                    # not one byte of a request: an idle connection, closed without a word
                    raise ClientGone("no request within header_timeout") from None
                raise
            received = True
            if not data:
                try:
                    self.feed(b"")
                except ParseError as exc:
                    if answer_eof:
                        raise
                    raise ClientGone("client closed mid-request") from exc
                if not events:
                    return None
                break
            self.feed(data)
        return events.popleft()

    def has_buffered_request(self) -> bool:
        """Whether a parsed event is waiting (a pipelined request)."""
        return bool(self.events)

    # -- the response's write guard -------------------------------------------

    def begin_request(self) -> None:
        """A new request on the connection: nobody has started its response yet."""
        self.claim = _FREE

    def claim_response(self) -> bool:
        """The serving side starts the response (head or error answer): False when the
        request_timeout answer claimed it first, and nothing may be written then."""
        with _CLAIM_LOCK:
            if self.claim == _BY_TIMEOUT:
                return False
            self.claim = _BY_APP
            return True

    def claim_for_timeout(self) -> bool:
        """The request_timeout answer (another thread): True when no response had started,
        so the 504 is this request's one response; False when the app's had (the caller
        cuts the connection). From here on the serving side's writes fail."""
        with _CLAIM_LOCK:
            self.timed_out = True
            if self.claim != _FREE:
                return False
            self.claim = _BY_TIMEOUT
            return True

    def response_started(self) -> bool:
        """Whether a response (the app's or an error answer) has begun on this request."""
        return self.claim != _FREE

    # -- writing ------------------------------------------------------------

    def sendall(self, data: bytes | bytearray | memoryview) -> None:
        """Send every byte or raise `ClientGone`."""
        if self.timed_out:
            raise ClientGone("the request ran past request_timeout: already answered")
        sock = self.sock
        if self.is_tls:
            try:
                sock.sendall(data)
            except OSError as exc:  # timeouts, resets and ssl.SSLError alike
                raise ClientGone(str(exc)) from exc
            return
        try:
            sent = sock.send(data)
        except BlockingIOError:
            sent = 0
        except _ERRNO_GONE as exc:
            raise ClientGone(str(exc)) from exc
        if sent == len(data):
            return
        view = memoryview(data)[sent:]
        while view:
            try:
                sent = sock.send(view)
            except BlockingIOError:
                self._wait(_POLLOUT)
                continue
            except _ERRNO_GONE as exc:
                raise ClientGone(str(exc)) from exc
            view = view[sent:]

    def send_final(self, data: bytes) -> None:
        """A short last answer past the timed-out mark (the gthread watchdog's 504).

        Nothing of the response was sent yet, so the send buffer has room: one
        `sendall` does it even on the non-blocking socket.
        """
        try:
            self.sock.sendall(data)
        except OSError as exc:  # BlockingIOError, resets and ssl.SSLError alike
            raise ClientGone(str(exc)) from exc

    def send_parts(self, *parts: bytes) -> None:
        """Send several buffers in one system call when possible, without joining them."""
        total = sum(map(len, parts))
        if self.is_tls or total < 8192 or self.timed_out:
            self.sendall(b"".join(parts))  # a small copy is cheaper than a scatter list
            return
        try:
            sent = self.sock.sendmsg(parts)
        except BlockingIOError:
            sent = 0
        except _ERRNO_GONE as exc:
            raise ClientGone(str(exc)) from exc
        if sent == total:
            return
        for part in parts:  # a partial write: finish buffer by buffer
            if sent >= len(part):
                sent -= len(part)
                continue
            self.sendall(memoryview(part)[sent:] if sent else part)
            sent = 0

    def sendfile(self, fileobj: Any, offset: int, count: int | None) -> int:
        """Send a file with `os.sendfile` (plain sockets only); returns bytes sent."""
        import os

        if self.timed_out:
            raise ClientGone("the request ran past request_timeout: already answered")
        fd = fileobj.fileno()
        if count is None:
            count = os.fstat(fd).st_size - offset
        total = 0
        while total < count:
            try:
                n = os.sendfile(self.fd, fd, offset + total, min(count - total, 1 << 30))
            except BlockingIOError:
                self._wait(_POLLOUT)
                continue
            except _ERRNO_GONE as exc:
                raise ClientGone(str(exc)) from exc
            if n == 0:
                break  # the file is shorter than announced
            total += n
        return total

    # -- closing ------------------------------------------------------------

    def cut(self) -> None:
        """End the stream to the client now, from any thread; the socket stays open for
        the thread that still holds it (its close() releases it)."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # the peer is already gone

    def close(self, linger: bool = False) -> None:
        """Close the socket; with `linger`, half-close and drain first (RFC 9112 §9.6)."""
        if self.closed:
            return
        self.closed = True
        sock = self.sock
        try:
            if linger and not self.is_tls:
                # unread request bytes at close() make the kernel send a RST,
                # which can destroy the response still in flight to the client
                sock.shutdown(socket.SHUT_WR)
                deadline = time.monotonic() + 0.5
                drained = 0
                while drained < (1 << 20) and time.monotonic() < deadline:
                    try:
                        chunk = sock.recv(_RECV_SIZE)
                    except BlockingIOError:
                        if not self._wait_readable(0.1):
                            break
                        continue
                    if not chunk:
                        break
                    drained += len(chunk)
        except OSError:
            pass  # the peer is already gone: nothing left to protect
        finally:
            sock.close()
