"""Where a call waits when every slot that could run it is busy: in its caller's process.

A call is sent to a worker only when that worker has a free slot. When every
READY worker holding the app is busy, the call waits here, in arrival order,
and the worker is chosen when the call leaves the queue (least busy at that
moment), not when it joined: a call can then never sit in one worker's queue
behind a slow call while a slot of another worker is free.

One queue per pool and process, shared by every client of that pool in the
process (``gcorn``'s HTTP workers use one client anyway). Only the head of an
app's queue looks at the scoreboard; it is woken when a call of this process
finishes (its slot is free) and polls every :data:`POLL` seconds for slots
that callers in other processes free. Sync callers and each event loop have
their own queue, as their waiters cannot sleep on the same primitive.
"""

from __future__ import annotations

import asyncio
import collections
import os
import threading
import weakref
from typing import Any

# How often the head of a queue re-reads the scoreboard when nothing woke it.
POLL = 0.002


class Ticket:
    """A sync caller's place in the queue of one app."""

    __slots__ = ("app", "event")

    def __init__(self, app: str) -> None:
        self.app = app
        self.event = threading.Event()


class SlotQueue:
    """The sync callers of one pool in this process waiting for a free slot, per app."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.apps: dict[str, collections.deque[Ticket]] = {}

    def waiting(self, app: str) -> int:
        """Calls of ``app`` waiting in this process."""
        q = self.apps.get(app)
        return len(q) if q else 0

    def busy(self) -> bool:
        """True when any call waits (a newcomer must then queue, not overtake)."""
        return any(self.apps.values())

    def join(self, app: str) -> Ticket:
        """Take a place at the back of ``app``'s queue."""
        ticket = Ticket(app)
        with self.lock:
            self.apps.setdefault(app, collections.deque()).append(ticket)
        return ticket

    def is_head(self, ticket: Ticket) -> bool:
        """Is ``ticket`` next to leave?"""
        q = self.apps.get(ticket.app)
        if not q:
            return False
        return q[0] is ticket

    def wait(self, ticket: Ticket, timeout: float | None) -> None:
        """Sleep until woken, or ``timeout`` (the head sleeps :data:`POLL` at most)."""
        if self.is_head(ticket):
            timeout = POLL if timeout is None else min(timeout, POLL)
        ticket.event.wait(timeout)
        ticket.event.clear()

    def leave(self, ticket: Ticket) -> None:
        """Leave the queue (sent, timed out or failed); wake the next in line."""
        with self.lock:
            q = self.apps.get(ticket.app)
            if q is None:
                return
            try:
                q.remove(ticket)
            except ValueError:
                return
            if q:
                q[0].event.set()
            else:
                del self.apps[ticket.app]

    def kick(self) -> None:
        """A slot may have been freed: wake the head of every app's queue."""
        if not self.apps:
            return
        with self.lock:
            for q in self.apps.values():
                if q:
                    q[0].event.set()


class AsyncTicket:
    """An async caller's place in the queue of one app."""

    __slots__ = ("app", "fut")

    def __init__(self, app: str) -> None:
        self.app = app
        self.fut: asyncio.Future[None] | None = None


class AsyncSlotQueue:
    """The async callers of one pool in one event loop waiting for a free slot, per app."""

    def __init__(self) -> None:
        self.apps: dict[str, collections.deque[AsyncTicket]] = {}

    def waiting(self, app: str) -> int:
        """Calls of ``app`` waiting in this loop."""
        q = self.apps.get(app)
        return len(q) if q else 0

    def busy(self) -> bool:
        """True when any call waits."""
        return any(self.apps.values())

    def join(self, app: str) -> AsyncTicket:
        """Take a place at the back of ``app``'s queue."""
        ticket = AsyncTicket(app)
        self.apps.setdefault(app, collections.deque()).append(ticket)
        return ticket

    def is_head(self, ticket: AsyncTicket) -> bool:
        """Is ``ticket`` next to leave?"""
        q = self.apps.get(ticket.app)
        if not q:
            return False
        return q[0] is ticket

    async def wait(self, ticket: AsyncTicket, timeout: float | None) -> None:
        """Sleep until woken, or ``timeout`` (the head sleeps :data:`POLL` at most)."""
        if self.is_head(ticket):
            timeout = POLL if timeout is None else min(timeout, POLL)
        fut = ticket.fut = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait([fut], timeout=timeout)
        finally:
            ticket.fut = None

    def leave(self, ticket: AsyncTicket) -> None:
        """Leave the queue; wake the next in line."""
        q = self.apps.get(ticket.app)
        if q is None:
            return
        try:
            q.remove(ticket)
        except ValueError:
            return
        if q:
            _wake(q[0])
        else:
            del self.apps[ticket.app]

    def kick(self) -> None:
        """A slot may have been freed: wake the head of every app's queue."""
        for q in self.apps.values():
            if q:
                _wake(q[0])


def _wake(ticket: AsyncTicket) -> None:
    fut = ticket.fut
    if fut is not None and not fut.done():
        fut.set_result(None)


class PoolQueues:
    """Every queue of one pool in this process: one for threads, one per event loop."""

    def __init__(self) -> None:
        self.sync = SlotQueue()
        self._loops: weakref.WeakKeyDictionary[Any, AsyncSlotQueue] = weakref.WeakKeyDictionary()

    def for_loop(self, loop: asyncio.AbstractEventLoop) -> AsyncSlotQueue:
        """The queue of the async callers in ``loop``."""
        q = self._loops.get(loop)
        if q is None:
            q = self._loops[loop] = AsyncSlotQueue()
        return q


_pools: dict[str, PoolQueues] = {}
_pools_lock = threading.Lock()


def queues_for(socket_path: str) -> PoolQueues:
    """The queues of the pool at ``socket_path`` in this process (shared by its clients)."""
    with _pools_lock:
        q = _pools.get(socket_path)
        if q is None:
            q = _pools[socket_path] = PoolQueues()
        return q


def forget_queues_after_fork() -> None:
    """In a forked child: the parent's waiters are not ours."""
    global _pools_lock
    _pools.clear()
    _pools_lock = threading.Lock()


os.register_at_fork(after_in_child=forget_queues_after_fork)
