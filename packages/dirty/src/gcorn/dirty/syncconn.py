"""A blocking, multiplexed connection to one dirty worker, shared by many threads.

Calls from several threads go out on the same socket with their own request
ids. No thread owns the socket for reading: whichever waiting thread finds no
reader becomes the reader ("leader"), reads frames for everybody and hands
each to its waiter, then passes the role on. One thread alone therefore
sends and receives with no thread switch at all.
"""

from __future__ import annotations

import collections
import os
import select
import socket
import struct
import threading
import time
from typing import Any

from .errors import (
    DirtyConnectionError,
    DirtyError,
    DirtyTimeoutError,
    DirtyWorkerLostError,
    unreachable,
)
from .inflight import CallConnection
from .protocol import Frame, MsgType, frame_buffers, send_buffers

_RECV = 256 * 1024
# How often a thread blocked in recv() wakes up to check its deadline.
TICK = 0.02
_TICK_TIMEVAL = struct.pack("ll", 0, int(TICK * 1e6))


class Waiter:
    """Frames received for one request, and the event its thread sleeps on (an inflight.Reply)."""

    __slots__ = ("frames", "event", "done", "sleepers", "error")

    def __init__(self, sleepers: set[Waiter]) -> None:
        self.frames: collections.deque[tuple[int, Any]] = collections.deque()
        self.event: threading.Event | None = None  # made only if this thread ever sleeps
        self.done = False
        self.sleepers = sleepers  # its connection's sleeping threads (see SyncConn.wait)
        self.error: DirtyError | None = None  # its own end, the connection going on (fail_own)

    def push(self, mtype: int, payload: Any, final: bool) -> None:
        """One frame for this request (called under the connection's state lock)."""
        self.frames.append((mtype, payload))
        if final:
            self.done = True
        if self in self.sleepers:
            # Taken out now, so a leader passing its role on never picks a thread that is
            # about to return with its answer.
            self.sleepers.discard(self)
            _wake(self)

    def fail(self, error: DirtyError) -> None:
        """The call ends with ``error``: the thread wakes and raises it."""
        self.error = error
        if self in self.sleepers:
            self.sleepers.discard(self)
        _wake(self)


class SyncConn(CallConnection):
    """One socket to one worker, safe for concurrent use by many threads."""

    def __init__(self, path: str, max_size: int, connect_timeout: float = 5.0) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(connect_timeout)
            sock.connect(path)
        except OSError as exc:
            sock.close()
            raise unreachable(path, exc, "dirty worker") from exc
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        # Blocking mode with a kernel receive timeout: each send and recv is one system
        # call (Python's own socket timeouts add a poll() and fcntl() calls to each).
        sock.settimeout(None)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _TICK_TIMEVAL)
        # A green socket (gevent, eventlet) keeps its descriptor non-blocking and waits in
        # the hub with its own timeout, so the kernel tick above never fires: the reader
        # then waits for data through the (patched) select with the tick as its timeout.
        # Not settimeout(TICK): that is shared with a sender of another greenlet, and would
        # cut its long sendall.
        self.green = not os.get_blocking(sock.fileno())
        super().__init__(path, max_size)
        self.sock = sock
        self.write_lock = threading.Lock()
        self.state_lock = threading.Lock()
        self.reading = False
        self.sleepers: set[Waiter] = set()

    def start(self, rid: int, bufs: list[Any], batched: bool = False, guest: bool = False) -> Waiter:
        """Register a request and send its frame (``guest``: for another client's caller)."""
        waiter = Waiter(self.sleepers)
        with self.state_lock:
            if not self.alive or self.closing:
                raise _lost(self.lost) if not self.alive else DirtyConnectionError("dirty client closed")
            self.calls.add(rid, waiter, batched, guest)
        try:
            with self.write_lock:
                send_buffers(self.sock, bufs)
        except OSError as exc:
            self._fail(DirtyWorkerLostError(f"dirty worker connection lost while sending: {exc}",
                                            {"socket_path": self.path}))
            raise _lost(self.lost) from exc
        return waiter

    def forget(self, rid: int, cancel: bool) -> None:
        """Stop waiting for ``rid`` (timed out or abandoned); tell the worker when asked."""
        with self.state_lock:
            self.calls.forget(rid)
        self._close_when_guests_done()
        if cancel and self.alive:
            try:
                with self.write_lock:
                    self.sock.sendall(frame_buffers(MsgType.CANCEL, rid, [])[0])
            except OSError as exc:
                self._fail(DirtyWorkerLostError(f"dirty worker connection lost: {exc}"))

    def wait(self, waiter: Waiter, deadline: float | None) -> None:
        """Block until ``waiter`` has at least one frame (or raise)."""
        while True:
            with self.state_lock:
                if waiter.frames:
                    return
                if waiter.error is not None:
                    raise waiter.error.copy()
                if not self.alive:
                    raise _lost(self.lost)
                lead = not self.reading
                if lead:
                    self.reading = True
                else:
                    if waiter.event is None:
                        waiter.event = threading.Event()
                    else:
                        waiter.event.clear()
                    self.sleepers.add(waiter)
            if lead:
                try:
                    self._read_until(waiter, deadline)
                finally:
                    with self.state_lock:
                        self.reading = False
                        if self.sleepers:
                            _wake(self.sleepers.pop())
                continue
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                with self.state_lock:
                    self.sleepers.discard(waiter)
                    if not self.reading and self.sleepers:
                        _wake(self.sleepers.pop())  # we may have been chosen to read: pass it on
                raise DirtyTimeoutError("dirty call timed out", timeout=None)
            waiter.event.wait(remaining)  # type: ignore[union-attr]
            with self.state_lock:
                self.sleepers.discard(waiter)

    def _read_until(self, waiter: Waiter, deadline: float | None) -> None:
        sock = self.sock
        parser = self.calls.parser
        while not waiter.frames and waiter.error is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise DirtyTimeoutError("dirty call timed out", timeout=None)
            try:
                if self.green and not select.select([sock], [], [], TICK)[0]:
                    continue  # the tick: look at the deadline again
                if parser.wants_body():
                    n, frames = parser.recv_body(sock)
                else:
                    data = sock.recv(_RECV)
                    n = len(data)
                    frames = parser.feed(data) if n else []
            except (BlockingIOError, TimeoutError):
                continue  # a receive-timeout tick: look at the deadline again
            except OSError as exc:
                self._fail(DirtyWorkerLostError(f"dirty worker connection lost: {exc}",
                                                {"socket_path": self.path}))
                return
            except DirtyError as exc:  # garbage on the wire: nothing more can be trusted
                self._fail(exc)
                return
            if not n:
                self._fail(DirtyWorkerLostError(
                    "dirty worker died or closed the connection before answering",
                    {"socket_path": self.path}))
                return
            if frames:
                self._dispatch(frames)

    def _dispatch(self, frames: list[Frame]) -> None:
        with self.state_lock:
            freed = self.calls.route(frames)
        if freed:
            self._calls_ended()

    def _fail(self, error: DirtyError) -> None:
        with self.state_lock:
            if not self.alive:
                return
            self.alive = False
            self.lost = error
            self.calls.fail(error)
        if self.on_free is not None:
            self.on_free()  # callers in line re-read the directory and find another worker
        try:
            self.sock.close()
        except OSError:
            pass  # already closed


def _wake(waiter: Waiter) -> None:
    if waiter.event is not None:
        waiter.event.set()


def _lost(error: DirtyError | None) -> DirtyError:
    # Each caller raises its own instance: one shared exception object would collect
    # the tracebacks of every thread that raised it.
    return error.copy() if error is not None else DirtyWorkerLostError("dirty worker connection closed")
