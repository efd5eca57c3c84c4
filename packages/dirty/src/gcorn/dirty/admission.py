"""Where a call waits when every slot that could run it is busy: in its caller's process.

A call is sent to a worker only when that worker has a free slot. When every
READY worker holding the app is busy, the call waits here, in arrival order,
and the worker is chosen when the call leaves the queue (least busy at that
moment), not when it joined: a call can then never sit in one worker's queue
behind a slow call while a slot of another worker is free.

One queue per pool and process, shared by every client of that pool in the
process (``gcorn``'s HTTP workers use one client anyway). When a reply frees
a slot, the thread (or, in asyncio, the protocol callback) that read it sends
the head's call at once (a *hand-off*), so a freed slot waits one trip to the
worker, not also for the head's thread to be scheduled. The head polls the
scoreboard every :data:`POLL` seconds for slots that callers in other
processes free. Sync callers and each event loop have their own queue, as
their waiters cannot sleep on the same primitive.
"""

from __future__ import annotations

import asyncio
import collections
import os
import threading
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .errors import DirtyError

if TYPE_CHECKING:
    from .aioconn import AsyncConn
    from .directory import Directory
    from .syncconn import SyncConn

# How often the head of a queue re-reads the scoreboard when nothing woke it.
POLL = 0.002
# How often the others look whether they became the head without being told (a hand-off
# does not wake the next in line: the next reply that frees a slot sends its call anyway).
TURN_POLL = 0.02


class Ticket:
    """A sync caller's place in the queue of one app, with the call it will send."""

    __slots__ = ("app", "rid", "bufs", "small", "owner", "event", "claimed", "done", "sent", "error")

    def __init__(self, app: str, rid: int, bufs: list[Any], small: bool, owner: object) -> None:
        self.app = app
        self.owner = owner  # the client whose connections may carry it (see hand_off)
        self.rid = rid
        self.bufs = bufs
        self.small = small  # small enough for another thread to send it (see SlotQueue)
        self.event = threading.Event()  # wake-ups: a turn, a kick, a hand-off
        self.claimed = False  # taken out of the queue by whoever sends it
        self.done = threading.Event()  # set once a hand-off has sent it (or failed to)
        self.sent: Any = None  # (directory, connection, waiter) when another thread sent it
        self.error: BaseException | None = None


class SlotQueue:
    """The sync callers of one pool in this process waiting for a free slot, per app.

    Whoever sees a slot free may send the head's call: the thread that reads the
    reply which freed it does so at once (a *hand-off*, for small frames), without
    waiting for the head's thread to be scheduled; the head's thread itself does when
    it finds the slot on its own (polling, or a frame too large to hand off). Either
    way the call leaves the queue first (``claim``), so it is sent exactly once.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.apps: dict[str, collections.deque[Ticket]] = {}

    def waiting(self, app: str) -> int:
        """Calls of ``app`` waiting in this process."""
        q = self.apps.get(app)
        return len(q) if q else 0

    def join(self, app: str, rid: int, bufs: list[Any], small: bool, owner: object) -> Ticket:
        """Take a place at the back of ``app``'s queue (``owner``: the calling client)."""
        ticket = Ticket(app, rid, bufs, small, owner)
        with self.lock:
            self.apps.setdefault(app, collections.deque()).append(ticket)
        return ticket

    def head(self, app: str) -> Ticket | None:
        """The next call of ``app`` to leave, if any."""
        q = self.apps.get(app)
        return q[0] if q else None

    def is_head(self, ticket: Ticket) -> bool:
        """Is ``ticket`` next to leave?"""
        return self.head(ticket.app) is ticket

    def take(self, app: str, ticket: Ticket | None) -> bool:
        """A slot is free: may this caller send now? (Yes if none waits before it; it leaves the line.)"""
        if ticket is None:
            return not self.waiting(app)
        return self.claim(ticket)

    def claim(self, ticket: Ticket, wake_next: bool = True) -> bool:
        """Take ``ticket`` out of the queue to send it now; False if it is not the head any more."""
        with self.lock:
            q = self.apps.get(ticket.app)
            if not q or q[0] is not ticket or ticket.claimed:
                return False
            ticket.claimed = True
            q.popleft()
            if not q:
                del self.apps[ticket.app]
            elif wake_next:
                q[0].event.set()  # the next in line becomes the head (and the poller)
            return True

    def wait(self, ticket: Ticket, timeout: float | None) -> None:
        """Sleep until woken or ``timeout``; the head polls every :data:`POLL`, the others :data:`TURN_POLL`."""
        step = POLL if self.is_head(ticket) else TURN_POLL
        ticket.event.wait(step if timeout is None else min(timeout, step))
        ticket.event.clear()

    def leave(self, ticket: Ticket) -> bool:
        """Leave the queue unsent (timed out, failed); False if it was claimed meanwhile."""
        with self.lock:
            if ticket.claimed:
                return False
            q = self.apps.get(ticket.app)
            if q is None:
                return True
            was_head = bool(q) and q[0] is ticket
            try:
                q.remove(ticket)
            except ValueError:
                return True
            if not q:
                del self.apps[ticket.app]
            elif was_head:
                q[0].event.set()
            return True

    def kick(self) -> None:
        """A slot may have been freed: wake the head of every app's queue."""
        if not self.apps:
            return
        with self.lock:
            for q in self.apps.values():
                if q:
                    q[0].event.set()

    def send_head(self, ticket: Ticket, d: Directory, conn: SyncConn, owner: object) -> bool:
        """Hand-off: send ``ticket``'s call on ``conn`` (of client ``owner``) for its thread;
        False if it is not the head now."""
        if not self.claim(ticket, wake_next=False):  # our next reply hands off again
            return False
        try:
            ticket.sent = (d, conn, conn.start(ticket.rid, ticket.bufs, guest=ticket.owner is not owner))
        except DirtyError as exc:
            ticket.error = exc
        finally:
            ticket.done.set()
            ticket.event.set()
        return True


class AsyncTicket:
    """An async caller's place in the queue of one app, with the call it will send."""

    __slots__ = ("app", "rid", "bufs", "target", "owner", "fut", "sent", "error")
    small = True  # written from the loop's own thread, never blocking: any size hands off

    def __init__(self, app: str, rid: int, bufs: list[Any], target: Any, owner: object) -> None:
        self.app = app
        self.owner = owner  # the client whose connections may carry it (see hand_off)
        self.rid = rid
        self.bufs = bufs
        self.target = target  # the future or stream inbox its replies go to
        self.fut: asyncio.Future[None] | None = None
        self.sent: Any = None  # (directory, connection) once a hand-off sent it
        self.error: BaseException | None = None


class AsyncSlotQueue:
    """The async callers of one pool in one event loop waiting for a free slot, per app.

    Everything runs in the loop's thread, so a hand-off (in ``data_received``, when
    a reply frees a slot) takes the head and writes its frame in one step.
    """

    def __init__(self) -> None:
        self.apps: dict[str, collections.deque[AsyncTicket]] = {}

    def waiting(self, app: str) -> int:
        """Calls of ``app`` waiting in this loop."""
        q = self.apps.get(app)
        return len(q) if q else 0

    def join(self, app: str, rid: int, bufs: list[Any], target: Any, owner: object) -> AsyncTicket:
        """Take a place at the back of ``app``'s queue (``owner``: the calling client)."""
        ticket = AsyncTicket(app, rid, bufs, target, owner)
        self.apps.setdefault(app, collections.deque()).append(ticket)
        return ticket

    def head(self, app: str) -> AsyncTicket | None:
        """The next call of ``app`` to leave, if any."""
        q = self.apps.get(app)
        return q[0] if q else None

    def is_head(self, ticket: AsyncTicket) -> bool:
        """Is ``ticket`` next to leave?"""
        return self.head(ticket.app) is ticket

    def take(self, app: str, ticket: AsyncTicket | None) -> bool:
        """A slot is free: may this caller send now? (Yes if none waits before it; it leaves the line.)"""
        if ticket is None:
            return not self.waiting(app)
        if not self.is_head(ticket):
            return False
        self.leave(ticket)
        return True

    async def wait(self, ticket: AsyncTicket, timeout: float | None) -> None:
        """Sleep until woken or ``timeout``; the head polls every :data:`POLL`, the others :data:`TURN_POLL`."""
        step = POLL if self.is_head(ticket) else TURN_POLL
        fut = ticket.fut = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait([fut], timeout=step if timeout is None else min(timeout, step))
        finally:
            ticket.fut = None

    def leave(self, ticket: AsyncTicket, wake_next: bool = True) -> None:
        """Leave the queue (sent or given up); wake the next in line unless told not to."""
        q = self.apps.get(ticket.app)
        if q is None:
            return
        was_head = bool(q) and q[0] is ticket
        try:
            q.remove(ticket)
        except ValueError:
            return
        if not q:
            del self.apps[ticket.app]
        elif was_head and wake_next:
            wake(q[0])

    def kick(self) -> None:
        """A slot may have been freed: wake the head of every app's queue."""
        for q in self.apps.values():
            if q:
                wake(q[0])

    def send_head(self, ticket: AsyncTicket, d: Directory, conn: AsyncConn, owner: object) -> bool:
        """Hand-off: write ``ticket``'s call on ``conn`` (of client ``owner``) for its task."""
        self.leave(ticket, wake_next=False)  # our next reply hands off again
        try:
            conn.send_now(ticket.rid, ticket.bufs, ticket.target, guest=ticket.owner is not owner)
            ticket.sent = (d, conn)
        except DirtyError as exc:
            ticket.error = exc
        wake(ticket)
        return True


def wake(ticket: AsyncTicket) -> None:
    """Wake the task waiting on ``ticket``."""
    fut = ticket.fut
    if fut is not None and not fut.done():
        fut.set_result(None)


def hand_off(queue: SlotQueue | AsyncSlotQueue, d: Directory | None,
             conns: Mapping[int, SyncConn] | Mapping[int, AsyncConn], fresh: bool,
             owner: object) -> None:
    """A call of this process ended: send waiting calls to the slots now free, head first.

    Called by whoever read the reply (a thread, or the loop's protocol callback), with
    the directory ``d`` (``fresh``: it is this process's own, not inherited across a fork)
    and the connections of that thread's or loop's client, ``owner``. What it cannot do
    here (a stale directory, no open connection, a frame too large to send for another
    thread) is left to the head's own caller, woken to do it. A call of another client
    goes out as a guest of ``owner``'s connection: ``owner`` closing it does not fail it.
    """
    if not queue.apps:
        return
    for app in list(queue.apps):
        while True:
            head = queue.head(app)
            if head is None:
                break
            if d is None or not fresh or d.stale() or not head.small:
                queue.kick()
                break
            try:
                choice = d.choose_for(app, conns)
            except DirtyError:
                queue.kick()
                break
            if choice is None or choice[1] >= d.threads:
                break
            conn = conns.get(choice[0][1])
            if conn is None or not conn.alive:
                queue.kick()
                break
            queue.send_head(head, d, conn, owner)  # type: ignore[arg-type]  # each queue, its own conns


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
