"""DirtyClient: call a dirty pool from threads or from asyncio.

The client asks the arbiter for the directory once (and again only when the
scoreboard's epoch changes), then sends each call straight to the least-busy
worker that holds the app: one hop per call. A client is safe to share
between threads and between tasks; concurrent calls are multiplexed on one
connection per worker and run concurrently.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import os
import threading
import time
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import Any

from .admission import AsyncTicket, Ticket, hand_off, queues_for
from .aioconn import AsyncConn, ReplyFuture, StreamInbox
from .arbiterconn import ArbiterChannel
from .codec import check_size
from .directory import Directory
from .errors import (
    DirtyConnectionError,
    DirtyError,
    DirtyMessageTooLargeError,
    DirtyNoWorkersAvailableError,
    DirtyProtocolError,
    DirtyTimeoutError,
    error_from_wire,
)
from .protocol import (
    PAYLOAD_TYPES,
    MsgType,
    Oversize,
    payload_size,
)
from .scoreboard import Scoreboard
from .syncconn import SyncConn, Waiter

SOCKET_ENV = "GCORN_DIRTY_SOCKET"
_ids = itertools.count(1)
# While the only workers for an app are (re)booting, poll the scoreboard this often.
_BOOT_POLL = 0.005
# While no worker is ready, ask the arbiter again this often: if it died, nothing bumps the
# epoch of its scoreboard, and its successor (same socket) publishes a new one.
_DIRECTORY_RECHECK = 0.1
# Arbiter requests of a client made with timeout=None wait this long for an answer.
ARBITER_TIMEOUT = 30.0
# Frames up to this size may be sent by the thread that saw a slot free (see admission.py).
_HANDOFF_MAX = 64 * 1024


class DirtyClient:
    """A client bound to one pool's socket; ``timeout=None`` uses the pool's dirty_timeout."""

    def __init__(self, socket_path: str, timeout: float | None = None) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self._lock = threading.Lock()
        self._arbiter = ArbiterChannel(socket_path)
        self._dir: Directory | None = None
        self._board: Scoreboard | None = None
        self._conns: dict[int, SyncConn] = {}
        self._aconns: weakref.WeakKeyDictionary[Any, dict[int, AsyncConn]] = weakref.WeakKeyDictionary()
        self._refreshing: weakref.WeakKeyDictionary[Any, asyncio.Future[Directory]] = \
            weakref.WeakKeyDictionary()
        self._pid = os.getpid()
        self._queues = queues_for(socket_path)
        # app -> the connection its last batched call went to (see _batched_conn)
        self._filling: dict[str, AsyncConn] = {}

    def __repr__(self) -> str:
        return f"<DirtyClient {self.socket_path}>"

    # --------------------------------------------------------- arbiter channel
    def _arbiter_timeout(self) -> float:
        """How long an arbiter request (directory, status, manage, stash) may take."""
        t = self.timeout
        return t if t is not None and t > 0 else ARBITER_TIMEOUT

    def _arbiter_frame(self, mtype: int, value: Any) -> list[Any]:
        bufs = ArbiterChannel.frame(mtype, value)
        d = self._dir
        # A stash request's data is the value it stores; op, table and key are its envelope.
        data = value[3] if mtype == MsgType.STASH else value
        over = None if d is None else check_size(data, payload_size(bufs), d.max_size)
        if d is not None and over is not None:
            raise DirtyMessageTooLargeError(
                f"request of {over} bytes to the dirty arbiter exceeds dirty_max_message_size of "
                f"{d.max_size} bytes", size=over, limit=d.max_size)
        return bufs

    def _arbiter_request(self, mtype: int, value: Any) -> Any:
        self._check_fork()
        return self._arbiter.request(self._arbiter_frame(mtype, value), self._arbiter_timeout())

    def _install_directory(self, data: dict[str, Any]) -> Directory:
        board = self._board
        if board is None or board.path != data["scoreboard"]:
            board = self._board = Scoreboard.open_readonly(data["scoreboard"])
        new = Directory(data, board)
        with self._lock:
            old, self._dir = self._dir, new
            # A new arbiter numbers its workers from 1 again: no connection of the old pool
            # may be taken for one of the new pool with the same generation.
            restarted = old is not None and old.arbiter_pid != new.arbiter_pid
            for gen in [g for g in self._conns if restarted or g not in new.generations]:
                conn = self._conns[gen]
                if restarted or not conn.load():
                    del self._conns[gen]
                if not conn.load():
                    conn.close()  # one with calls in flight closes when they fail or finish
        return new

    def _directory(self) -> Directory:
        d = self._dir
        if d is None or d.stale() or self._pid != os.getpid():
            self._check_fork()
            d = self._install_directory(self._arbiter_request(MsgType.DIRECTORY, None))
        return d

    def _check_fork(self) -> None:
        if self._pid != os.getpid():  # inherited across fork: never share sockets with the parent
            self._pid = os.getpid()
            self._arbiter.forget()
            self._conns = {}
            self._aconns = weakref.WeakKeyDictionary()
            self._filling = {}
            self._dir = None

    def _timeout(self, d: Directory, override: float | None) -> float | None:
        # The pool's dirty_timeout is a ceiling: a caller may wait less, never longer
        # (the worker counts the call's deadline the same way).
        t = override if override is not None else self.timeout
        if t is None or t <= 0 or (d.timeout is not None and t > d.timeout):
            t = d.timeout
        return t if t and t > 0 else None

    def _encode_call(self, d: Directory, rid: int, app: str, action: str, args: tuple[Any, ...],
                     kwargs: dict[str, Any], timeout: float | None,
                     mtype: int = MsgType.CALL) -> list[Any]:
        bufs, size = d.codec.encode_call(mtype, rid, app, action, args, kwargs, timeout)
        over = check_size([args, kwargs], size, d.max_size)
        if over is not None:
            raise DirtyMessageTooLargeError(
                f"call {app}.{action} is {over} bytes, over dirty_max_message_size of {d.max_size} bytes",
                size=over, limit=d.max_size)
        return bufs  # type: ignore[no-any-return]

    # ------------------------------------------------------------- sync calls
    def _start_sync(self, app: str, rid: int, bufs: list[Any], deadline: float | None,
                    d: Directory) -> tuple[Directory, SyncConn, Waiter]:
        """Send a call to a worker with a free slot, waiting in line for one if need be."""
        queue = self._queues.sync
        ticket: Ticket | None = None
        try:
            while True:
                if ticket is not None and ticket.claimed:
                    ticket.done.wait()  # handed off: sent (or failed) by the thread that freed a slot
                    if ticket.error is not None:
                        raise ticket.error
                    return ticket.sent  # type: ignore[no-any-return]
                d, conn, choice = self._sync_pick(app, deadline, d)
                if conn is not None and queue.take(app, ticket):
                    ticket = None  # out of the queue (or never in it): ours to send
                    return d, conn, conn.start(rid, bufs)
                if ticket is None:
                    assert choice is not None
                    d.refuse_if_full(app, choice[2] + queue.waiting(app))
                    ticket = queue.join(app, rid, bufs, _small(bufs), self)
                    if conn is not None:
                        self._pump_sync()  # a slot is free: the head takes it
                    continue
                queue.wait(ticket, _slot_wait_left(app, deadline))
        except BaseException:
            if ticket is not None and not queue.leave(ticket):
                # Handed off while we gave up: it went out, so tell the worker to drop it.
                ticket.done.wait()
                if ticket.sent is not None:
                    ticket.sent[1].forget(rid, cancel=True)
            raise

    def _pump_sync(self) -> None:
        """A call of this process ended: send waiting calls to the slots now free (hand-off)."""
        hand_off(self._queues.sync, self._dir, self._conns, self._pid == os.getpid(), self)

    def _sync_pick(self, app: str, deadline: float | None, d: Directory, batched: int = 0
                   ) -> tuple[Directory, SyncConn | None, tuple[Any, int, int] | None]:
        """The least-busy worker for ``app``: its connection when it has a free slot, else None.

        ``batched``: the max_size of the @batched action called, which needs no free slot
        (the worker gathers it into a batch): the worker where a batch fills, always
        (see Directory.choose).
        """
        recheck_at = time.monotonic() + _DIRECTORY_RECHECK
        while True:
            if d.stale() or self._pid != os.getpid():
                d = self._directory()
            conns = self._conns
            choice = d.choose_for(app, conns, batched)
            if choice is None:
                now = _no_worker_by(app, deadline)
                if now >= recheck_at:
                    # DirtyConnectionError here: the arbiter is gone; say so now, not at the deadline
                    d = self._install_directory(self._arbiter_request(MsgType.DIRECTORY, None))
                    recheck_at = now + _DIRECTORY_RECHECK
                    continue
                time.sleep(_BOOT_POLL)
                continue
            target, load, _queued = choice
            if load >= d.threads and not batched:
                return d, None, choice
            conn = conns.get(target[1])
            if conn is not None and conn.alive:
                return d, conn, choice
            slot, gen, path = target
            try:
                conn = SyncConn(path, d.max_size)
            except DirtyConnectionError:
                # The worker went away after the directory was read: look again.
                d = self._install_directory(self._arbiter_request(MsgType.DIRECTORY, None))
                if deadline is not None and time.monotonic() >= deadline:
                    raise
                time.sleep(_BOOT_POLL)
                continue
            conn.on_free = self._pump_sync
            with self._lock:
                old = self._conns.get(gen)
                if old is not None and old.alive:
                    conn.close()
                    conn = old
                else:
                    self._conns[gen] = conn
            return d, conn, choice

    def execute(self, app_path: str, action: str, *args: Any, _timeout: float | None = None,
                **kwargs: Any) -> Any:
        """Run ``action`` of ``app_path`` in the pool and return its result."""
        d = self._directory()
        timeout = self._timeout(d, _timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        rid = next(_ids)
        max_size = d.batch_size(app_path, action)
        if max_size:
            bufs = self._encode_call(d, rid, app_path, action, args, kwargs, timeout, MsgType.BATCH)
            d, conn, _ = self._sync_pick(app_path, deadline, d, batched=max_size)
            assert conn is not None
            waiter = conn.start(rid, bufs, batched=True)
        else:
            bufs = self._encode_call(d, rid, app_path, action, args, kwargs, timeout)
            d, conn, waiter = self._start_sync(app_path, rid, bufs, deadline, d)
        try:
            conn.wait(waiter, deadline)
        except DirtyTimeoutError:
            conn.forget(rid, cancel=True)
            raise DirtyTimeoutError(f"dirty call {app_path}.{action} timed out after {timeout} s",
                                    timeout=timeout) from None
        mtype, payload = waiter.frames.popleft()
        return _result(d, mtype, payload)

    def stream(self, app_path: str, action: str, *args: Any, _timeout: float | None = None,
               **kwargs: Any) -> Iterator[Any]:
        """Iterate over the items a generator action yields; the timeout bounds each gap."""
        d = self._directory()
        timeout = self._timeout(d, _timeout)
        rid = next(_ids)
        bufs = self._encode_call(d, rid, app_path, action, args, kwargs, timeout)
        d, conn, waiter = self._start_sync(app_path, rid, bufs,
                                           None if timeout is None else time.monotonic() + timeout, d)
        finished = False
        decode = d.codec.decode
        frames = waiter.frames
        try:
            while True:
                try:
                    conn.wait(waiter, None if timeout is None else time.monotonic() + timeout)
                except DirtyTimeoutError:
                    raise DirtyTimeoutError(f"dirty stream {app_path}.{action}: no item for {timeout} s",
                                            timeout=timeout) from None
                while frames:
                    mtype, payload = frames.popleft()
                    if mtype == MsgType.CHUNK and isinstance(payload, PAYLOAD_TYPES):
                        yield decode(payload)
                        continue
                    finished = True
                    if mtype == MsgType.END:
                        return
                    _result(d, mtype, payload)
                    return
        finally:
            if not finished:
                conn.forget(rid, cancel=True)

    # ------------------------------------------------------------ async calls
    async def _async_start(self, app: str, rid: int, bufs: list[Any], target: Any,
                           deadline: float | None) -> tuple[Directory, AsyncConn]:
        """Send a call to a worker with a free slot, waiting in line for one if need be."""
        queue = self._queues.for_loop(asyncio.get_running_loop())
        ticket: AsyncTicket | None = None
        try:
            while True:
                if ticket is not None and (ticket.sent is not None or ticket.error is not None):
                    if ticket.error is not None:
                        raise ticket.error
                    sent: tuple[Directory, AsyncConn] = ticket.sent
                    ticket = None
                    return sent
                d, conn, choice = await self._async_pick(app, deadline)
                if ticket is not None and ticket.sent is not None:
                    continue  # handed off while we looked
                if conn is not None and queue.take(app, ticket):
                    ticket = None  # out of the queue (or never in it): ours to send
                    await conn.send(rid, bufs, target)
                    return d, conn
                if ticket is None:
                    assert choice is not None
                    d.refuse_if_full(app, choice[2] + queue.waiting(app))
                    ticket = queue.join(app, rid, bufs, target, self)
                    if conn is not None:
                        queue.kick()  # a slot is free: the head takes it
                    continue
                await queue.wait(ticket, _slot_wait_left(app, deadline))
        except BaseException:
            if ticket is not None:
                queue.leave(ticket)
                if ticket.sent is not None:  # handed off just before we gave up
                    ticket.sent[1].forget(rid, cancel=True)
            raise

    def _pump_async(self, loop: asyncio.AbstractEventLoop) -> None:
        """A call in ``loop`` ended: write waiting calls to the slots now free (hand-off)."""
        hand_off(self._queues.for_loop(loop), self._dir, self._aconns.get(loop) or {},
                 self._pid == os.getpid(), self)

    async def _async_pick(self, app: str, deadline: float | None, batched: int = 0
                          ) -> tuple[Directory, AsyncConn | None, tuple[Any, int, int] | None]:
        """The least-busy worker for ``app``: its connection when it has a free slot, else None.

        ``batched``: as in :meth:`_sync_pick`.
        """
        loop = asyncio.get_running_loop()
        conns = self._aconns.get(loop)
        if conns is None:
            conns = self._aconns[loop] = {}
        recheck_at = time.monotonic() + _DIRECTORY_RECHECK
        while True:
            d = await self._adirectory()
            for gen in [g for g, c in conns.items() if g not in d.generations and not c.load()]:
                conns.pop(gen).close()
            choice = d.choose_for(app, conns, batched)
            if choice is None:
                now = _no_worker_by(app, deadline)
                if now >= recheck_at:
                    self._dir = None  # the next _adirectory() asks the arbiter (see _sync_pick)
                    recheck_at = now + _DIRECTORY_RECHECK
                    continue
                await asyncio.sleep(_BOOT_POLL)
                continue
            target, load, _queued = choice
            if load >= d.threads and not batched:
                return d, None, choice
            slot, gen, path = target
            conn = conns.get(gen)
            if conn is None or not conn.alive:
                try:
                    conn = await AsyncConn.open(path, d.max_size)
                except DirtyConnectionError:
                    self._dir = None
                    if deadline is not None and time.monotonic() >= deadline:
                        raise
                    await asyncio.sleep(_BOOT_POLL)
                    continue
                conn.on_free = functools.partial(self._pump_async, loop)
                conn.generation = gen
                old = conns.get(gen)
                if old is not None and old.alive:
                    conn.close()
                    conn = old
                else:
                    conns[gen] = conn
            return d, conn, choice

    async def _adirectory(self) -> Directory:
        d = self._dir
        if d is not None and not d.stale() and self._pid == os.getpid():
            return d
        self._check_fork()
        loop = asyncio.get_running_loop()
        # One refresh at a time per loop: hundreds of tasks starting at once must not
        # all dial the arbiter.
        flight = self._refreshing.get(loop)
        if flight is not None:
            return await asyncio.shield(flight)
        flight = self._refreshing[loop] = loop.create_future()
        try:
            d = self._install_directory(await self._arbiter_request_async(MsgType.DIRECTORY, None))
            flight.set_result(d)
            return d
        except BaseException as exc:
            flight.set_exception(exc)
            flight.exception()  # retrieved: waiters, if any, get it too
            raise
        finally:
            self._refreshing.pop(loop, None)

    async def _arbiter_request_async(self, mtype: int, value: Any) -> Any:
        return await self._arbiter.request_async(self._arbiter_frame(mtype, value), self._arbiter_timeout())

    async def execute_async(self, app_path: str, action: str, *args: Any,
                            _timeout: float | None = None, **kwargs: Any) -> Any:
        """``await``-able :meth:`execute`."""
        d = self._dir
        if d is None or d.stale() or self._pid != os.getpid():
            d = await self._adirectory()
        timeout = self._timeout(d, _timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        rid = next(_ids)
        loop = asyncio.get_running_loop()
        fut = ReplyFuture(loop=loop)
        max_size = d.batch_size(app_path, action)
        conn: AsyncConn | None
        if max_size:
            bufs = self._encode_call(d, rid, app_path, action, args, kwargs, timeout, MsgType.BATCH)
            conn = self._batched_conn(d, loop, app_path, max_size)
            if conn is None:
                d, conn, _ = await self._async_pick(app_path, deadline, batched=max_size)
                assert conn is not None
            conn.send_batched(rid, bufs, fut)
            await conn.drained()
        else:
            bufs = self._encode_call(d, rid, app_path, action, args, kwargs, timeout)
            d, conn = await self._async_start(app_path, rid, bufs, fut, deadline)
        if deadline is not None and not fut.done():
            assert timeout is not None
            conn.expire_at(loop.time() + max(0.0, deadline - time.monotonic()), rid, fut,
                           f"{app_path}.{action}", timeout)
        try:
            mtype, payload = await fut
        except DirtyTimeoutError:
            conn.forget(rid, cancel=True)
            raise
        except asyncio.CancelledError:
            conn.forget(rid, cancel=True)
            raise
        return _result(d, mtype, payload)

    def _batched_conn(self, d: Directory, loop: asyncio.AbstractEventLoop, app: str,
                      max_size: int) -> AsyncConn | None:
        """The open connection a batched call goes to (see Directory.choose); None: ask _async_pick."""
        conns = self._aconns.get(loop)
        if not conns:
            return None
        last = self._filling.get(app)
        if last is not None and last.alive and last.corked() and last.batched_load() < max_size \
                and conns.get(last.generation) is last:
            return last  # the batch this loop turn is filling: its next call goes there too
        try:
            choice = d.choose_for(app, conns, max_size)
        except DirtyError:
            return None  # _async_pick raises it, or waits for a worker
        if choice is None:
            return None
        conn = conns.get(choice[0][1])
        if conn is None or not conn.alive:
            return None
        self._filling[app] = conn
        return conn

    async def stream_async(self, app_path: str, action: str, *args: Any,
                           _timeout: float | None = None, **kwargs: Any) -> AsyncIterator[Any]:
        """``async for`` over the items of a generator action; the timeout bounds each gap."""
        d = await self._adirectory()
        timeout = self._timeout(d, _timeout)
        rid = next(_ids)
        bufs = self._encode_call(d, rid, app_path, action, args, kwargs, timeout)
        inbox = StreamInbox()
        d, conn = await self._async_start(app_path, rid, bufs, inbox,
                                          None if timeout is None else time.monotonic() + timeout)
        loop = asyncio.get_running_loop()
        decode = d.codec.decode
        finished = False
        try:
            while True:
                while inbox.frames:
                    mtype, payload = inbox.frames.popleft()
                    if mtype == MsgType.CHUNK and isinstance(payload, PAYLOAD_TYPES):
                        yield decode(payload)
                        continue
                    finished = True
                    if mtype == -1:
                        raise payload
                    if mtype != MsgType.END:
                        _result(d, mtype, payload)
                    return
                inbox.waiter = loop.create_future()
                try:
                    await asyncio.wait_for(inbox.waiter, timeout)
                except TimeoutError:
                    raise DirtyTimeoutError(f"dirty stream {app_path}.{action}: no item for {timeout} s",
                                            timeout=timeout) from None
                finally:
                    inbox.waiter = None
        finally:
            if not finished:
                conn.forget(rid, cancel=True)

    # ------------------------------------------------------ pool management
    def status(self) -> dict[str, Any]:
        """Pool status from the arbiter."""
        return self._arbiter_request(MsgType.STATUS, None)  # type: ignore[no-any-return]

    def manage(self, op: str, count: int = 1) -> dict[str, Any]:
        """Add (``"add"``) or remove (``"remove"``) workers."""
        return self._arbiter_request(MsgType.MANAGE, [op, count])  # type: ignore[no-any-return]

    def stash_request(self, op: str, table: Any = None, key: Any = None, value: Any = None,
                      extra: Any = None) -> Any:
        """One stash operation (see gcorn.dirty.stash)."""
        return self._arbiter_request(MsgType.STASH, [op, table, key, value, extra])

    # ---------------------------------------------------------------- closing
    def close(self) -> None:
        """Close every connection of this client (sync and those of the current loop)."""
        with self._lock:
            conns, self._conns = self._conns, {}
        for conn in conns.values():
            conn.close()
        self._arbiter.close()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        for aconn in self._aconns.pop(loop, {}).values():
            aconn.close()

    async def close_async(self) -> None:
        """Close the client from async code."""
        self.close()

    def __enter__(self) -> DirtyClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    async def __aenter__(self) -> DirtyClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()


def _result(d: Directory, mtype: int, payload: Any) -> Any:
    if mtype == MsgType.RESULT and type(payload) is not Oversize:
        return d.codec.decode(payload)
    if isinstance(payload, Oversize):
        raise DirtyMessageTooLargeError(
            f"reply of {payload.size} bytes exceeds this client's dirty_max_message_size of "
            f"{payload.limit} bytes", size=payload.size, limit=payload.limit)
    if mtype == MsgType.RESULT:
        return d.codec.decode(payload)
    if mtype == MsgType.ERROR:
        raise error_from_wire(d.codec.decode(payload))
    raise DirtyProtocolError(f"unexpected frame type {mtype} in reply")


def _no_worker_by(app: str, deadline: float | None) -> float:
    """No worker of ``app`` is ready yet: the time now, or DirtyNoWorkersAvailableError past ``deadline``."""
    now = time.monotonic()
    if deadline is not None and now >= deadline:
        raise DirtyNoWorkersAvailableError(f"no dirty worker for app {app!r} became ready in time",
                                           app_path=app)
    return now


def _slot_wait_left(app: str, deadline: float | None) -> float | None:
    """How long a call in line may still wait for a slot; DirtyTimeoutError once it may not."""
    remaining = None if deadline is None else deadline - time.monotonic()
    if remaining is not None and remaining <= 0:
        raise DirtyTimeoutError(f"dirty call to {app} timed out waiting for a free slot", timeout=None)
    return remaining


def _small(bufs: list[Any]) -> bool:
    """A frame another thread may send for its caller without risk of blocking long."""
    return len(bufs) == 1 and len(bufs[0]) < _HANDOFF_MAX
