"""An asyncio connection to one dirty worker, multiplexed by request id."""

from __future__ import annotations

import asyncio
import collections
import heapq
from typing import Any

from .errors import (
    DirtyConnectionError,
    DirtyError,
    DirtyTimeoutError,
    DirtyWorkerLostError,
    unreachable,
)
from .inflight import CallConnection, Reply
from .protocol import MsgType, frame_buffers


class ReplyFuture(asyncio.Future[tuple[int, Any]]):
    """What an execute_async call awaits (an inflight.Reply): its reply frame, or the error."""

    def push(self, mtype: int, payload: Any, final: bool) -> None:
        """The call's reply frame."""
        if not self.done():
            self.set_result((mtype, payload))

    def fail(self, error: DirtyError) -> None:
        """The connection is lost."""
        if not self.done():
            self.set_exception(error.copy())


class StreamInbox:
    """Frames of one streamed call, waiting to be consumed (an inflight.Reply)."""

    __slots__ = ("frames", "waiter", "done")

    def __init__(self) -> None:
        self.frames: collections.deque[tuple[int, Any]] = collections.deque()
        self.waiter: asyncio.Future[None] | None = None
        self.done = False

    def push(self, mtype: int, payload: Any, final: bool) -> None:
        """Queue one frame; ``final`` ends the stream."""
        self.frames.append((mtype, payload))
        if final:
            self.done = True
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    def fail(self, error: DirtyError) -> None:
        """The connection is lost: the stream ends with ``error``."""
        self.push(-1, error.copy(), True)


class AsyncConn(CallConnection, asyncio.Protocol):
    """Protocol for one worker socket; futures and inboxes keyed by request id."""

    def __init__(self, path: str, max_size: int) -> None:
        super().__init__(path, max_size)  # calls: rid -> ReplyFuture (execute) or StreamInbox
        self.transport: asyncio.Transport | None = None
        self._corked: list[Any] = []  # frames of batched calls written at the end of this loop turn
        self.generation = 0  # of the worker, set by the client that opened it
        self._drain: asyncio.Future[None] | None = None
        # Deadlines of the calls in flight, (at, rid, future, what): one loop timer for them all,
        # at the earliest (see expire_at).
        self._deadlines: list[tuple[float, int, asyncio.Future[Any], tuple[str, float]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    @classmethod
    async def open(cls, path: str, max_size: int) -> AsyncConn:
        """Connect to a worker socket."""
        loop = asyncio.get_running_loop()
        try:
            _, proto = await loop.create_unix_connection(lambda: cls(path, max_size), path)
        except OSError as exc:
            raise unreachable(path, exc, "dirty worker") from exc
        return proto

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport."""
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        """Parse frames and hand each to its future or stream inbox."""
        try:
            freed = self.calls.feed(data)
        except DirtyError as exc:
            self._fail(exc)
            return
        if freed:
            self._calls_ended()

    def connection_lost(self, exc: Exception | None) -> None:
        """Fail every call still waiting on this worker."""
        self._fail(DirtyWorkerLostError(
            "dirty worker died or closed the connection before answering", {"socket_path": self.path}))

    def pause_writing(self) -> None:
        """The socket is full: senders wait for resume_writing."""
        if self._drain is None:
            self._drain = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        """The socket drained: release waiting senders."""
        d, self._drain = self._drain, None
        if d is not None and not d.done():
            d.set_result(None)

    def expire_at(self, at: float, rid: int, fut: asyncio.Future[Any], what: str, timeout: float) -> None:
        """Fail ``fut`` with DirtyTimeoutError at ``at`` (loop time) unless it is done by then.

        A timer handle per call costs a heap push and a cancel in the loop's heap, whose
        entries compare in Python; here one timer serves every call of the connection, and
        entries of calls already done are dropped when they reach the top or pile up.
        """
        heap = self._deadlines
        heapq.heappush(heap, (at, rid, fut, (what, timeout)))
        if len(heap) > 2 * len(self.calls) + 64:
            heap[:] = [e for e in heap if not e[2].done()]
            heapq.heapify(heap)
        if self._timer is None or at < self._timer_at:
            self._arm(at)

    def _arm(self, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = asyncio.get_running_loop().call_at(at, self._expire)

    def _expire(self) -> None:
        self._timer = None
        heap = self._deadlines
        now = asyncio.get_running_loop().time()
        while heap and (heap[0][0] <= now or heap[0][2].done()):
            _at, _rid, fut, (what, timeout) = heapq.heappop(heap)
            if not fut.done():
                fut.set_exception(DirtyTimeoutError(f"dirty call {what} timed out after {timeout} s",
                                                    timeout=timeout))
        if heap:
            self._arm(heap[0][0])

    def _fail(self, error: DirtyError) -> None:
        if not self.alive:
            return
        self.alive = False
        self.lost = error
        self.calls.fail(error)
        self.resume_writing()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._deadlines.clear()
        if self.on_free is not None:
            self.on_free()
        if self.transport is not None:
            self.transport.close()

    async def send(self, rid: int, bufs: list[Any], target: Reply) -> None:
        """Register ``target`` for ``rid`` and write the frame (waiting when the socket is full)."""
        self.send_now(rid, bufs, target)
        if self._drain is not None:
            await self._drain

    def send_batched(self, rid: int, bufs: list[Any], target: Reply) -> None:
        """Register a call to a @batched action; its frame goes out with the others of this loop turn.

        Many tasks calling a batched action at once would cost one system call each; they
        are waiting to be gathered into one batch anyway, so one write carries them all.
        """
        if not self.alive or self.transport is None:
            raise self.lost.copy() if self.lost else DirtyWorkerLostError("dirty worker connection closed")
        if self.closing:
            raise DirtyConnectionError("dirty client closed")
        self.calls.add(rid, target, True)
        if not self._corked:
            asyncio.get_running_loop().call_soon(self._uncork)
        self._corked.extend(bufs)

    def corked(self) -> bool:
        """Are batched calls waiting to be written at the end of this loop turn?"""
        return bool(self._corked)

    async def drained(self) -> None:
        """Wait while the socket is full (writers of large calls must not outrun the worker)."""
        if self._drain is not None:
            await self._drain

    def _uncork(self) -> None:
        bufs, self._corked = self._corked, []
        if bufs and self.alive and self.transport is not None:
            self.transport.writelines(bufs)

    def send_now(self, rid: int, bufs: list[Any], target: Reply, guest: bool = False) -> None:
        """Register ``target`` and write the frame without waiting for the socket to drain
        (``guest``: for another client's caller)."""
        if not self.alive or self.transport is None:
            raise self.lost.copy() if self.lost else DirtyWorkerLostError("dirty worker connection closed")
        if self.closing:
            raise DirtyConnectionError("dirty client closed")
        self.calls.add(rid, target, guest=guest)
        if len(bufs) == 1:
            self.transport.write(bufs[0])
        else:
            self.transport.writelines(bufs)

    def forget(self, rid: int, cancel: bool) -> None:
        """Stop waiting for ``rid``; send CANCEL when asked."""
        self.calls.forget(rid)
        if cancel and self.alive and self.transport is not None:
            self.transport.write(frame_buffers(MsgType.CANCEL, rid, [])[0])
        self._close_when_guests_done()
