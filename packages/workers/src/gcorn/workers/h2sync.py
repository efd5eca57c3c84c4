"""HTTP/2 for the threaded WSGI worker: one I/O thread per connection, streams on a thread pool.

The gthread worker hands a connection over (`H2Threads.hand_over`) when ALPN
chose "h2" or the first bytes are the h2c preface from a trusted peer. From
then on one I/O thread owns the socket: it alone reads and writes it (an
`ssl.SSLSocket` must not be read and written from two threads at once),
feeds the `h2` state machine and wakes up when a stream has output. Each
stream's WSGI call runs on the worker's HTTP/2 thread pool (`threads`
threads), so the streams of one connection are served concurrently, and a
response body is sent as the app yields it, within the client's
flow-control windows (a stream waits for WINDOW_UPDATE, never buffers past
it). `wsgi.file_wrapper` is iterated in blocks (sendfile cannot cross h2
framing).

`request_timeout` is watched by a `ThreadWatchdog` of the stream pool's own (its
threads are not the worker's HTTP/1 threads): a stream past it is answered 504
(or reset if its response had started) from the watchdog, the stuck thread's
frame is logged and the thread interrupted; the connection and its other
streams go on.
"""

from __future__ import annotations

import os
import select
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from gcorn.arbiter import ExitReason, graceful_timeout, setting
from gcorn.workers import deadline
from gcorn.workers.deadline import RequestTimeout, ThreadWatchdog
from gcorn.workers.errors import ClientDisconnected, WorkerError
from gcorn.workers.exchange.access import AccessInfo, access_wanted
from gcorn.workers.exchange.hooks import HookRequest
from gcorn.workers.h2session import (
    ENHANCE_YOUR_CALM,
    INTERNAL_ERROR,
    REFUSED_STREAM,
    H2ServerSession,
)
from gcorn.workers.http2 import H2Options, RequestFields, date_server_fields, response_fields
from gcorn.workers.wsgi.input import BodyReader
from gcorn.workers.wsgi.response import close_iterable

__all__ = ["H2Threads"]

_RECV_SIZE = 65536
# body bytes queued in h2 for the I/O thread before a stream waits for it to write them
_QUEUE_LIMIT = 1024 * 1024
_POLL = 0.5


class H2Threads:
    """The HTTP/2 side of one gthread worker: the settings, the stream pool, the hand-over."""

    def __init__(self, worker: Any, serving: Any, options: H2Options) -> None:
        self.worker = worker
        self.serving = serving
        self.handler = serving.handler
        self.options = options
        self.log = worker.log
        threads = max(int(setting(worker.cfg, "threads", 1) or 1), 1)
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="gthread-h2")
        keepalive = float(setting(worker.cfg, "keepalive", 2) or 0)
        self.idle_limit = keepalive if keepalive > 0 else 5.0
        self.graceful = graceful_timeout(worker.cfg)
        self.watchdog: ThreadWatchdog | None = None
        limit = self.handler.request_timeout
        if limit > 0:
            # once every stream thread is stuck in C code the worker is recycled, as
            # when its HTTP/1 threads are
            self.watchdog = ThreadWatchdog(self.log, limit, threads, self.answer_from_watchdog,
                                           worker.recycle_stuck)
            self.watchdog.start()

    def takes(self, conn: Any, data: bytes | None) -> bool:
        """Whether `conn` speaks HTTP/2: ALPN h2, or (first bytes) the h2c preface."""
        if conn.is_tls:
            return bool(self.options.h2_over_tls and conn.sock.selected_alpn_protocol() == "h2")
        if data is None or not self.options.prior_knowledge:
            return False
        from gcorn.workers.http2 import PREFACE

        return (len(data) >= 3 and data[:24] == PREFACE[:len(data[:24])]
                and self.handler.policy.trusted.allows(conn.peer))

    def takes_upgrade(self, conn: Any, head: Any) -> bool:
        """RFC 7540 3.2: a body-less `Upgrade: h2c` request with HTTP2-Settings, from a
        trusted peer over cleartext, switches the connection to HTTP/2."""
        if conn.is_tls or not self.options.upgrade or head.upgrade is None:
            return False
        if b"h2c" not in [t.strip() for t in head.upgrade.lower().split(b",")]:
            return False
        settings = [v for k, v in head.headers if k == b"http2-settings"]
        return (len(settings) == 1 and not head.chunked and not head.content_length
                and self.handler.policy.trusted.allows(conn.peer))

    def upgrade(self, conn: Any, head: Any, on_close: Callable[..., None]) -> None:
        """Answer 101 and serve `conn` as HTTP/2; the upgrading request becomes stream 1."""
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                     b"Upgrade: h2c\r\n\r\n")
        rest = conn.parser.take_unparsed() if getattr(conn.parser, "paused", False) else b""
        self.hand_over(conn, rest, on_close, head)

    def hand_over(self, conn: Any, data: bytes, on_close: Callable[..., None],
                  upgrade: Any = None) -> None:
        """Serve `conn` as HTTP/2 on its own I/O thread; `on_close(conn)` when it ends."""
        session = H2Session(self, conn, data, on_close, upgrade)
        thread = threading.Thread(target=session.run, name="gthread-h2-io", daemon=True)
        thread.start()

    def shutdown(self) -> None:
        """Stop the stream pool (running streams finish)."""
        if self.watchdog is not None:
            self.watchdog.stop()
        self.pool.shutdown(wait=False, cancel_futures=True)

    def answer_from_watchdog(self, stream: Stream, resp: _Response, environ: dict[str, Any],
                             headers: Any, started: float) -> str:
        """request_timeout passed for `stream` (the watchdog thread): answer it, log its
        access line; says how it was answered."""
        deadline.count_timeout(self.worker)
        answered = stream.session.answer_timeout(stream, resp)
        if self.handler.access is not None and resp.status and access_wanted(self.log):
            stream.session._log(environ, resp, headers, time.monotonic() - started)
        return answered


class H2Input(BodyReader):
    """`wsgi.input` of one stream: reads block until the client sends more or ends."""

    __slots__ = ("stream",)

    def __init__(self, stream: Stream) -> None:
        super().__init__()
        self.stream = stream

    def _next_chunk(self) -> bytes:
        data = self.stream.take_body()
        if not data:
            self.done = True
        return data


class Stream:
    """One request stream: its body queue and its response state."""

    def __init__(self, session: H2Session, sid: int) -> None:
        self.session = session
        self.sid = sid
        self.body: deque[tuple[bytes, int]] = deque()
        self.body_complete = False
        self.disconnected = False  # RST_STREAM, the connection's end or request_timeout
        self.headers_sent = False
        self.done = False
        self.timed_out = False  # answered by the request_timeout watchdog

    # -- fed by the I/O thread, the session's lock held: its notify_all wakes the readers

    def feed_body(self, data: bytes, flow_length: int) -> None:
        """Queue a DATA frame; its window reopens when the app reads it."""
        self.body.append((data, flow_length))

    def end_body(self) -> None:
        """END_STREAM: the whole request body is here."""
        self.body_complete = True

    def lose_client(self) -> None:
        """RST_STREAM: reads end, writes raise ClientDisconnected."""
        self.disconnected = True

    def take_body(self) -> bytes:
        """The next piece of the request body (b'' at its end or when the stream is gone)."""
        session = self.session
        with session.cond:
            while not self.body and not self.body_complete and not self.disconnected \
                    and not session.closed:
                session.cond.wait(_POLL)
            if not self.body:
                return b""
            data, flow = self.body.popleft()
            if flow:
                session.ack(self.sid, flow)
            return data


class _Response:
    """What the access log and post_request see of an h2 WSGI response."""

    def __init__(self) -> None:
        self.status: str | None = None
        self.status_code = 0
        self.headers: list[tuple[str, str]] = []
        self.sent = 0


class H2Session(H2ServerSession):
    """One HTTP/2 connection of the gthread worker: its I/O thread, its streams on the pool."""

    streams: dict[int, Stream]

    def __init__(self, owner: H2Threads, conn: Any, data: bytes,
                 on_close: Callable[..., None], upgrade: Any = None) -> None:
        super().__init__(owner.options, owner.log, conn.peer)
        self.owner = owner
        self.upgrade = upgrade  # the HTTP/1 head of an `Upgrade: h2c` request
        self.conn = conn
        self.initial = data
        self.on_close = on_close
        self.cond = threading.Condition(threading.RLock())
        self.failed = False  # ended by an error GOAWAY: linger before closing
        self.wake_pending = False
        self.queued = 0  # body bytes handed to h2 since the I/O thread last wrote
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        self.idle_since = time.monotonic()

    # -- the I/O thread -------------------------------------------------------------------

    def run(self) -> None:
        """Serve the connection until it ends, then hand it back to the worker to close."""
        conn = self.conn
        try:
            with self.cond:
                self.initiate(self.upgrade)
            self._write_out()
            if self.initial:
                self._receive(self.initial)
            self._loop()
        except (ClientDisconnected, OSError) as exc:
            self.log.debug("h2 client %s went away: %s", conn.peer, exc)
        except Exception:
            self.log.exception("unexpected error serving h2 client %s", conn.peer)
        finally:
            with self.cond:
                self.closed = True
                for stream in self.streams.values():
                    stream.disconnected = True
                self.cond.notify_all()
            os.close(self.wake_r)
            os.close(self.wake_w)
            # after an error GOAWAY, unread input at close() would make the kernel send
            # a RST that can destroy the GOAWAY on its way: half-close and drain first
            self.on_close(conn, linger=self.failed)

    def _loop(self) -> None:
        conn = self.conn
        sock = conn.sock
        worker = self.owner.worker
        stop_deadline: float | None = None
        while not self.closed:
            if not worker.alive and not self.goaway_sent:
                self.goaway()
                stop_deadline = time.monotonic() + self.owner.graceful
            with self.cond:
                idle = not self.streams
            if idle and (self.goaway_sent or
                         time.monotonic() - self.idle_since > self.owner.idle_limit):
                self.goaway()
                self._write_out()
                return
            if stop_deadline is not None and time.monotonic() > stop_deadline:
                return
            pending = conn.is_tls and sock.pending()
            if not pending:
                ready, _, _ = select.select([sock, self.wake_r], [], [], _POLL)
                if self.wake_r in ready:
                    try:
                        os.read(self.wake_r, 4096)
                    except BlockingIOError:
                        pass
                    self.wake_pending = False
                    self._write_out()
                if sock not in ready:
                    continue
            try:
                data = sock.recv(_RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as exc:
                if type(exc).__name__ == "SSLWantReadError":
                    continue
                raise ClientDisconnected(str(exc)) from exc
            if not data:
                return
            self._receive(data)

    def _receive(self, data: bytes) -> None:
        with self.cond:
            self.receive(data)
            self.cond.notify_all()
        self._write_out()

    # -- what H2ServerSession leaves to the worker (the I/O thread) ----------------------------

    def _open(self, sid: int, fields: RequestFields, ended: bool) -> None:
        stream = Stream(self, sid)
        stream.body_complete = ended
        self.streams[sid] = stream
        try:
            self.owner.pool.submit(self._serve, stream, fields)
        except RuntimeError:  # the pool is shut down: the worker is stopping
            self.streams.pop(sid, None)
            self.reset(sid, REFUSED_STREAM)

    def _failed(self) -> None:
        self.closed = self.failed = True

    def _terminated(self) -> None:
        self.closed = True

    def _write_now(self, frame: bytes) -> None:
        self._write_out()
        self.conn.sendall(frame)

    # -- output (any thread; the I/O thread writes) ------------------------------------------

    def flush(self) -> None:
        """Wake the I/O thread to write what h2 has queued (any thread)."""
        # one byte in the pipe is enough: the I/O thread clears the flag before it
        # collects the output, so what is queued after that writes a new byte
        if self.wake_pending:
            return
        self.wake_pending = True
        try:
            os.write(self.wake_w, b"x")
        except (BlockingIOError, OSError):
            pass  # a wake-up is already pending, or the session ended

    def _write_out(self) -> None:
        """Write what h2 has queued (the I/O thread only)."""
        with self.cond:
            data = self.h2.data_to_send()
            if self.queued:
                self.queued = 0
                self.cond.notify_all()
        if data:
            self.conn.sendall(data)

    def answer_timeout(self, stream: Stream, resp: _Response) -> str:
        """request_timeout (the watchdog thread): 504 on `stream` unless its response has
        started, else RST_STREAM; the app's later writes fail. Under the session's lock,
        as every write of the stream: its head and the 504 cannot both go out."""
        with self.cond:
            stream.timed_out = True
            if stream.disconnected or self.closed:
                answered = "the client had gone"
            elif stream.done:
                answered = "the response was complete"
            elif not stream.headers_sent:
                resp.status = f"{deadline.STATUS} {deadline.REASON}"
                resp.status_code = deadline.STATUS
                resp.headers = [("Content-Type", "text/plain; charset=utf-8")]
                resp.sent = len(deadline.MESSAGE) + 1
                self.answer_error(stream.sid, deadline.STATUS, deadline.MESSAGE)
                answered = f"answered {deadline.STATUS}"
            else:
                self.reset(stream.sid, INTERNAL_ERROR)
                answered = "response already started: stream reset"
            stream.disconnected = True
            # the stream is over for the connection: a graceful stop does not wait for
            # its thread, which may be stuck in C code
            self.streams.pop(stream.sid, None)
            if not self.streams:
                self.idle_since = time.monotonic()
            self.cond.notify_all()  # a body read or a window wait of its thread ends now
        return answered

    def send_headers(self, stream: Stream, fields: list[tuple[bytes, bytes]], end: bool) -> None:
        """The response head of `stream` (a pool thread)."""
        with self.cond:
            if stream.disconnected or self.closed:
                raise ClientDisconnected("the client reset the stream")
            self.h2.send_headers(stream.sid, fields, end_stream=end)
            stream.headers_sent = True
        self.flush()

    def send_data(self, stream: Stream, data: bytes, end: bool) -> None:
        """Body bytes within the client's windows; waits (up to `timeout`) for WINDOW_UPDATE."""
        from h2.exceptions import StreamClosedError

        h2 = self.h2
        view = memoryview(data)
        stalled_at: float | None = None  # when the window closed, for the stall limit
        with self.cond:
            try:
                while True:
                    if stream.disconnected or self.closed:
                        raise ClientDisconnected("the client reset the stream")
                    if not view:
                        if end:
                            h2.end_stream(stream.sid)
                        break
                    window = h2.local_flow_control_window(stream.sid)
                    if window <= 0:
                        self.flush()
                        now = time.monotonic()
                        if stalled_at is None:
                            stalled_at = now
                        left = stalled_at + self.options.stall_timeout - now
                        if left <= 0:
                            # zero-window stall: the client holds a pool thread hostage
                            self.log.info("h2 stream %d stalled on a closed window; reset",
                                          stream.sid)
                            stream.disconnected = True
                            self.reset(stream.sid, ENHANCE_YOUR_CALM)
                            raise ClientDisconnected("flow-control window stalled")
                        self.cond.wait(left)
                        continue
                    stalled_at = None
                    size = min(window, h2.max_outbound_frame_size, len(view))
                    last = end and size == len(view)
                    h2.send_data(stream.sid, view[:size].tobytes(), end_stream=last)
                    view = view[size:]
                    if last:
                        break
                    self.queued += size
                    if self.queued >= _QUEUE_LIMIT:
                        # a client with huge windows: memory is bounded by the queue,
                        # not by the body (the I/O thread writes, then notifies)
                        self.flush()
                        self.cond.wait(_POLL)
                    elif len(view) and size == window:
                        self.flush()
            except StreamClosedError:
                raise ClientDisconnected("the stream is closed") from None
        self.flush()

    # -- one stream, on a pool thread ----------------------------------------------------------

    def _serve(self, stream: Stream, fields: Any) -> None:
        try:
            if not stream.disconnected and not self.closed:
                self._run_app(stream, fields)
        except ClientDisconnected as exc:
            self.log.debug("h2 stream %d: client went away: %s", stream.sid, exc)
        except RequestTimeout:
            # the watchdog's interruption arrived outside the app call: already answered
            watchdog = self.owner.watchdog
            if watchdog is not None:
                watchdog.release_current()
        except Exception:
            self.log.exception("unexpected error serving h2 stream %d", stream.sid)
        finally:
            with self.cond:
                self.streams.pop(stream.sid, None)
                if not self.streams:
                    self.idle_since = time.monotonic()
            self.flush()

    def _run_app(self, stream: Stream, fields: Any) -> None:
        owner = self.owner
        handler = owner.handler
        conn = self.conn
        started = time.monotonic()
        try:
            scheme, headers = handler.policy.filter_headers(
                fields.headers, conn.peer, "https" if conn.is_tls else fields.scheme)
        except WorkerError as exc:
            with self.cond:
                self.answer_error(stream.sid, exc.status, exc.client_message)
            return
        query = fields.query.decode("latin-1")
        target = fields.target.decode("latin-1")
        body = H2Input(stream)
        try:
            environ = handler.environ.build(fields.method, target, fields.path, query,
                                            "HTTP/2.0", headers, scheme, conn.peer,
                                            conn.listener, conn.sock, body)
        except WorkerError as exc:
            with self.cond:
                self.answer_error(stream.sid, exc.status, str(exc))
            return
        environ["HTTP_VERSION"] = "2"
        resp = _Response()
        state: dict[str, Any] = {"head": None}
        is_head = fields.method == "HEAD"

        def send_head(length: int | None, end: bool) -> None:
            head = state["head"]
            state["head"] = None
            fields_out = response_fields(resp.status_code, head, date_server_fields(), length)
            self.send_headers(stream, fields_out, end)

        def write(data: bytes) -> None:
            if not data:
                return
            if state["head"] is not None:
                send_head(None, False)
            if not is_head:
                self.send_data(stream, bytes(data), False)
                resp.sent += len(data)

        def start_response(status: str, headers: list[tuple[str, str]],
                           exc_info: Any = None) -> Callable[[bytes], None]:
            if exc_info is not None and stream.headers_sent:
                raise exc_info[1].with_traceback(exc_info[2])
            if stream.timed_out:  # resp holds the watchdog's 504 now
                raise ClientDisconnected("the stream ran past request_timeout: already answered")
            code = int(str(status).split(" ", 1)[0])
            resp.status, resp.status_code, resp.headers = status, code, list(headers)
            state["head"] = [(n.lower().encode("latin-1"), str(v).encode("latin-1"))
                             for n, v in headers]
            return write

        req = HookRequest(fields.method, target, environ["PATH_INFO"], query, (2, 0), headers,
                          scheme, conn.peer, body) if handler.hooks.wanted else None
        worker = owner.worker
        stats = worker.stats  # a stream is a request for the scoreboard and metrics
        lock = handler._nr_lock
        if lock is None:
            worker.nr += 1
            stats.begin()
        else:
            with lock:
                worker.nr += 1
                stats.begin()
        if worker.nr >= getattr(worker, "max_requests", 0) > 0 and worker.alive:
            self.log.info("Autorestarting worker after current request.")
            worker.stats.exiting(ExitReason.MAX_REQUESTS)
            worker.alive = False
        result: Any = None
        watchdog = owner.watchdog
        disarm = None if watchdog is None else watchdog.arm(stream, resp, environ, headers)
        try:
            if req is not None:
                handler.hooks.run_pre(req)
            result = handler.app(environ, start_response)
            if type(result) in (list, tuple) and state["head"] is not None:
                # the whole body is known: one HEADERS with content-length, then DATA
                payload = b"".join(result)
                send_head(len(payload), is_head or not payload)
                if payload and not is_head:
                    self.send_data(stream, payload, True)
                    resp.sent += len(payload)
            else:
                for chunk in _iterate(result):
                    write(chunk)
                if state["head"] is not None:
                    send_head(0, True)  # nothing was written: an empty body
                else:
                    self.send_data(stream, b"", True)
            stream.done = True
        except RequestTimeout:
            # the watchdog answered and logged where it was stuck; this is its interruption
            self.log.debug("the timed-out h2 stream %d was interrupted", stream.sid)
        except ClientDisconnected:
            if stream.timed_out:
                return  # a write after the watchdog's answer
            raise
        except Exception:
            self.log.exception("Error handling request %s", target)
            with self.cond:
                if not stream.headers_sent and not stream.disconnected:
                    resp.status, resp.status_code = "500 Internal Server Error", 500
                    resp.headers = [("Content-Type", "text/plain; charset=utf-8")]
                    self.answer_error(stream.sid, 500, "Internal Server Error")
                else:
                    self.reset(stream.sid, INTERNAL_ERROR)
        finally:
            if disarm is not None:
                disarm()
            close_iterable(result, self.log)
            if lock is None:
                stats.end(fields.method, resp.status_code, time.monotonic() - started)
            else:
                with lock:
                    stats.end(fields.method, resp.status_code, time.monotonic() - started)
            if req is not None:
                handler.hooks.run_post(req, environ, resp)
            if (handler.access is not None and resp.status and not stream.timed_out
                    and access_wanted(self.log)):
                # timed_out: the watchdog has written this stream's line already
                self._log(environ, resp, headers, time.monotonic() - started)

    def _log(self, environ: dict[str, Any], resp: _Response, headers: Any,
             elapsed: float) -> None:
        try:
            self.owner.handler.access(AccessInfo.from_environ(
                environ, resp.status_code, resp.sent, elapsed, headers, resp.headers,
                protocol="HTTP/2.0"))
        except Exception:
            self.log.exception("writing the access log failed")


def _iterate(result: Iterable[bytes]) -> Iterator[bytes]:
    for chunk in result:
        if chunk:
            yield chunk
