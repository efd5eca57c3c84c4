"""How a dirty worker reads calls and hands them to its slots.

``dirty_threads + 1`` threads all wait in ``epoll_wait`` on the same epoll
set, with every connection registered EPOLLONESHOT: a readable connection is
given to exactly one thread, which reads and parses it, re-arms it, and runs
the call itself when a slot is free. A lone call therefore costs one thread
wake-up, with no hand-off between a reader thread and an executor thread;
the spare thread keeps reading (queue bound, cancellations, expired calls)
while every slot is busy. Calls that find no free slot wait in one bounded
queue and are taken by the next thread that frees a slot.

Platforms without epoll use the same threads, taking turns at a selector
under a lock.
"""

from __future__ import annotations

import collections
import errno
import logging
import os
import select
import selectors
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from . import scoreboard as sb
from .errors import DirtyBusyError, DirtyError, DirtyMessageTooLargeError
from .protocol import FrameParser, MsgType, Oversize, send_buffers

log = logging.getLogger("gcorn.dirty.worker")

_RECV = 256 * 1024
_HAS_EPOLL = hasattr(select, "epoll")
_EPOLL_READ = (select.EPOLLIN | select.EPOLLONESHOT) if _HAS_EPOLL else 0

Job = tuple[Any, int, Any, float]  # (conn, request id, payload, received at)


class WorkerConn:
    """One client connection as seen by a worker."""

    __slots__ = ("sock", "parser", "write_lock", "alive", "cancelled", "fd")

    def __init__(self, sock: socket.socket, max_size: int) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.parser = FrameParser(max_size)
        self.write_lock = threading.Lock()
        self.alive = True
        self.cancelled: set[int] = set()

    def send(self, bufs: list[Any]) -> bool:
        """Write one frame; False when the client has gone."""
        if not self.alive:
            return False
        try:
            with self.write_lock:
                send_buffers(self.sock, bufs)
            return True
        except OSError as exc:
            self.alive = False
            log.debug("client connection lost while replying: %s", exc)
            return False


class Dispatcher:
    """Reads frames on every connection and runs calls on at most ``slots`` threads at once."""

    def __init__(self, listener: socket.socket, slots: int, queue_size: int, max_size: int,
                 codec: Any, run_call: Callable[[WorkerConn, int, Any, float], None],
                 board: sb.Scoreboard | None, slot: int) -> None:
        self.listener = listener
        self.slots = slots
        self.queue_size = queue_size
        self.max_size = max_size
        self.codec = codec
        self.run_call = run_call
        self.board = board
        self.board_slot = slot
        self.conns: dict[int, WorkerConn] = {}
        self.pending: collections.deque[Job] = collections.deque()
        self.lock = threading.Lock()
        self.inflight = 0  # accepted calls: running + pending
        self.calls = 0  # calls finished, for `gcorn ctl show dirty`
        self.running = 0
        self.exiting = False
        self.accepting = True
        self._held = threading.local()
        # Set by the worker: takes a BATCH frame (conn, rid, payload, received) to its batcher.
        self.on_batch: Callable[[WorkerConn, int, Any, float], None] | None = None
        # Set by the worker: counts a CALL refused before it ran (its payload; None: unread).
        self.on_refuse: Callable[[Any], None] | None = None
        self._kick_r, self._kick_w = os.pipe()
        os.set_blocking(self._kick_r, False)
        os.set_blocking(self._kick_w, False)
        self._turn = threading.Lock()  # selector fallback: one poller at a time
        if _HAS_EPOLL:
            self.ep = select.epoll()
            self.ep.register(listener.fileno(), _EPOLL_READ)
            # level-triggered, not one-shot: a kick or the exit flag must reach every thread
            self.ep.register(self._kick_r, select.EPOLLIN)
        else:
            self.sel = selectors.DefaultSelector()
            self.sel.register(listener, selectors.EVENT_READ, None)
            self.sel.register(self._kick_r, selectors.EVENT_READ, "kick")
        self.threads = [threading.Thread(target=self._thread_main, name=f"dirty-slot-{i}", daemon=True)
                        for i in range(slots + 1)]

    def start(self) -> None:
        """Start the threads."""
        for t in self.threads:
            t.start()

    # ----------------------------------------------------------- accounting
    def _publish(self) -> None:
        if self.board is not None:
            self.board.set_i64(self.board_slot, sb.INFLIGHT, self.inflight)

    def release(self) -> None:
        """Free the calling thread's slot (before a call's final frame goes out; idempotent)."""
        # A caller that sends its next call as soon as it has the answer must already
        # see this worker as free.
        if not getattr(self._held, "on", False):
            return
        self._held.on = False
        with self.lock:
            self.running -= 1
            self.inflight -= 1
            self.calls += 1
            self._publish()
            if self.board is not None:
                self.board.set_i64(self.board_slot, sb.CALLS, self.calls)

    def _take(self) -> Job | None:
        with self.lock:
            if self.pending and self.running < self.slots:
                self.running += 1
                job = self.pending.popleft()
                more = self.pending and self.running < self.slots
            else:
                return None
        self._held.on = True
        if more:
            self.kick()
        return job

    def submit(self, job: Callable[[], None]) -> None:
        """Queue ``job`` (a batch) for the next free slot; it counts as one call in flight."""
        with self.lock:
            self.inflight += 1
            self._publish()
            self.pending.append((None, 0, job, time.monotonic()))
        if not getattr(self._held, "reading", False):
            self.kick()  # a dispatch thread that is reading takes it itself once it has read

    def kick(self) -> None:
        """Wake one waiting thread (work is queued, or the workers must exit)."""
        try:
            os.write(self._kick_w, b"k")
        except BlockingIOError:
            pass  # the pipe is full of kicks already

    def stop_accepting(self) -> None:
        """Graceful stop: close the listening socket."""
        with self.lock:
            if not self.accepting:
                return
            self.accepting = False
        if _HAS_EPOLL:
            try:
                self.ep.unregister(self.listener.fileno())
            except OSError:
                pass  # already gone
        else:
            self.sel.unregister(self.listener)
        self.listener.close()

    def exit(self, timeout: float) -> None:
        """Make every thread return, waiting at most ``timeout`` for running calls."""
        self.exiting = True
        self.kick()
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))

    # ---------------------------------------------------------------- loop
    def _thread_main(self) -> None:
        while not self.exiting:
            try:
                self._poll_once()
            except Exception:  # keep the worker serving; the error is logged
                log.exception("dirty worker I/O error")
                time.sleep(0.01)
            while not self.exiting:
                job = self._take()
                if job is None:
                    break
                conn, rid, payload, received = job
                try:
                    self.run_call(conn, rid, payload, received)
                except Exception:  # a bug here must not kill the thread
                    log.exception("dirty worker failed to run call %s", rid)
                finally:
                    if conn is not None:
                        conn.cancelled.discard(rid)
                    self.release()
        self.kick()  # pass the exit on to the next thread

    def _poll_once(self) -> None:
        held = self._held
        if _HAS_EPOLL:
            for fd, _ in self.ep.poll(-1, 1):
                held.reading = True  # what it submits, it takes next (see submit)
                try:
                    self._ready(fd)
                finally:
                    held.reading = False
            return
        with self._turn:
            for key, _ in self.sel.select(None):
                held.reading = True
                try:
                    self._ready(key.fd)
                finally:
                    held.reading = False

    def _ready(self, fd: int) -> None:
        if fd == self._kick_r:
            try:
                os.read(self._kick_r, 1)
            except BlockingIOError:
                pass  # another thread took this kick
            return
        if self.accepting and fd == self.listener.fileno():
            self._accept()
            if _HAS_EPOLL and self.accepting:
                self.ep.modify(fd, _EPOLL_READ)
            return
        conn = self.conns.get(fd)
        if conn is not None:
            self._readable(conn)

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.EBADF):
                    log.error("dirty worker cannot accept: %s", exc)
                    return
                raise
            sock.setblocking(True)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
            conn = WorkerConn(sock, self.max_size)
            self.conns[conn.fd] = conn
            if _HAS_EPOLL:
                self.ep.register(conn.fd, _EPOLL_READ)
            else:
                self.sel.register(sock, selectors.EVENT_READ, conn)

    def _readable(self, conn: WorkerConn) -> None:
        parser = conn.parser
        try:
            if parser.wants_body():
                n, frames = parser.recv_body(conn.sock)
                # A large body: keep reading what is already there instead of going
                # back to epoll for every socket-buffer's worth.
                while n and not frames and parser.wants_body():
                    try:
                        k, frames = parser.recv_body(conn.sock, socket.MSG_DONTWAIT)
                    except BlockingIOError:
                        break
                    if not k:
                        n = 0
                        break
            else:
                data = conn.sock.recv(_RECV)
                n = len(data)
                frames = parser.feed(data) if n else []
        except BlockingIOError:
            n, frames = -1, []
        except DirtyError as exc:  # a bad header: nothing after it on this stream can be trusted
            log.warning("dirty worker %s: closing a client connection: %s", os.getpid(), exc)
            n, frames = 0, []
        except OSError as exc:
            log.debug("dropping client connection: %s", exc)
            n, frames = 0, []
        if not n:
            self._drop(conn)
            return
        if _HAS_EPOLL:
            self.ep.modify(conn.fd, _EPOLL_READ)  # re-arm: the next frames may go to another thread
        for mtype, rid, payload in frames or ():
            if mtype == MsgType.CALL:
                self.accept_call(conn, rid, payload)
            elif mtype == MsgType.BATCH and self.on_batch is not None \
                    and not isinstance(payload, Oversize):
                self.on_batch(conn, rid, payload, time.monotonic())
            elif mtype == MsgType.BATCH:
                self.accept_call(conn, rid, payload)  # refused there (oversize) or run as a call
            elif mtype == MsgType.CANCEL:
                conn.cancelled.add(rid)
            else:
                self.reply_error(conn, rid, DirtyError(f"unexpected frame type {mtype} sent to a worker"))

    def _drop(self, conn: WorkerConn) -> None:
        conn.alive = False
        if self.conns.pop(conn.fd, None) is None:
            return
        if _HAS_EPOLL:
            try:
                self.ep.unregister(conn.fd)
            except OSError:
                pass  # closed already
        else:
            self.sel.unregister(conn.sock)
        conn.sock.close()

    def accept_call(self, conn: WorkerConn, rid: int, payload: Any) -> None:
        """Queue a CALL for a slot (or refuse it: oversize, queue full)."""
        if isinstance(payload, Oversize):
            log.warning("dirty worker %s: refusing an oversized call of %d bytes (limit %d)",
                        os.getpid(), payload.size, payload.limit)
            self.reply_error(conn, rid, DirtyMessageTooLargeError(
                f"request of {payload.size} bytes exceeds dirty_max_message_size of {payload.limit} bytes",
                size=payload.size, limit=payload.limit))
            if self.on_refuse is not None:
                self.on_refuse(None)
            return
        with self.lock:
            busy = len(self.pending) >= self.queue_size and self.running >= self.slots
            if not busy:
                self.inflight += 1
                self._publish()
                self.pending.append((conn, rid, payload, time.monotonic()))
        if busy:
            self.reply_error(conn, rid, DirtyBusyError(
                f"dirty worker {os.getpid()} is busy: {self.slots} slots and "
                f"{self.queue_size} queued calls"))
            if self.on_refuse is not None:
                self.on_refuse(payload)

    def reply_error(self, conn: WorkerConn, rid: int, err: DirtyError) -> None:
        """Send an ERROR frame (the call's final frame)."""
        bufs, _ = self.codec.encode_frame(MsgType.ERROR, rid, err.to_wire())
        self.release()
        conn.send(bufs)

    def close(self) -> None:
        """Close every client connection."""
        for conn in list(self.conns.values()):
            conn.alive = False
            conn.sock.close()
        self.conns.clear()
