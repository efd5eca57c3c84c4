"""The calls in flight on one connection to a worker: the protocol core of both clients.

A client connection (syncconn.py for threads, aioconn.py for asyncio) sends
calls tagged with request ids and gets their replies back in any order. What
it does with received bytes is the same on both sides and lives here, with no
socket and no thread or event loop (sans-I/O): the :class:`FrameParser` reads
every frame, and each goes to the caller waiting for its request id, through
that caller's :class:`Reply` (a thread's waiter, an asyncio future, a stream's
inbox). The connections add only how they wait for bytes and wake callers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, Protocol

from .errors import DirtyConnectionError, DirtyError
from .protocol import Frame, FrameParser, MsgType, Oversize

# Frame types that end a call (a stream's CHUNKs do not).
FINAL = (MsgType.RESULT, MsgType.ERROR, MsgType.END)


class Reply(Protocol):
    """Where the frames of one call go."""

    def push(self, mtype: int, payload: Any, final: bool) -> None:
        """One frame of the call; ``final``: its last."""

    def fail(self, error: DirtyError) -> None:
        """The connection is lost: the call ends with ``error`` (copy it before raising)."""


class InFlight:
    """Request ids to their callers' replies, fed with the bytes a connection receives."""

    __slots__ = ("parser", "calls", "batched", "guests")

    def __init__(self, max_size: int) -> None:
        self.parser = FrameParser(max_size)
        self.calls: dict[int, Reply] = {}
        # Calls to @batched actions: they gather in the worker without taking a slot each,
        # so they are not the connection's slot load.
        self.batched: set[int] = set()
        # Calls sent here for a caller of another client of this process (a hand-off): a
        # close of this connection's own client must let them finish (see fail_own).
        self.guests: set[int] = set()

    def __len__(self) -> int:
        return len(self.calls)

    def load(self) -> int:
        """Calls in flight that hold a worker slot."""
        return len(self.calls) - len(self.batched)

    def add(self, rid: int, reply: Reply, batched: bool = False, guest: bool = False) -> None:
        """Expect the frames of request ``rid`` (``guest``: another client's caller waits)."""
        self.calls[rid] = reply
        if batched:
            self.batched.add(rid)
        if guest:
            self.guests.add(rid)

    def forget(self, rid: int) -> None:
        """Drop request ``rid`` (its caller gave up): its frames, if any come, are ignored."""
        self.calls.pop(rid, None)
        self.batched.discard(rid)
        self.guests.discard(rid)

    def feed(self, data: Any) -> bool:
        """Parse received bytes and route their frames; True when a call ended (a slot freed)."""
        return self.route(self.parser.feed(data))

    def route(self, frames: list[Frame]) -> bool:
        """Hand each frame to its caller; True when a call ended (a slot freed)."""
        calls = self.calls
        freed = False
        for mtype, rid, payload in frames:
            reply = calls.get(rid)
            if reply is None:
                continue  # its caller gave up on it
            final = mtype in FINAL or type(payload) is Oversize
            if final:
                del calls[rid]
                if self.batched:
                    self.batched.discard(rid)
                if self.guests:
                    self.guests.discard(rid)
                freed = True
            reply.push(mtype, payload, final)
        return freed

    def fail(self, error: DirtyError) -> None:
        """End every call in flight with ``error``."""
        calls, self.calls = self.calls, {}
        self.batched.clear()
        self.guests.clear()
        for reply in calls.values():
            reply.fail(error)

    def fail_own(self, error: DirtyError) -> None:
        """End the calls of this connection's own client with ``error``; its guests go on."""
        own = [rid for rid in self.calls if rid not in self.guests]
        for rid in own:
            reply = self.calls.pop(rid)
            self.batched.discard(rid)
            reply.fail(error)


class CallConnection:
    """What the thread and asyncio connections to one worker share: the calls in flight,
    the slot bookkeeping, and a close that lets other clients' hand-offs finish.

    A subclass adds how bytes arrive and callers wake, and `_fail` (mark the
    connection dead, fail its calls, call `on_free`, close the socket).
    """

    def __init__(self, path: str, max_size: int) -> None:
        self.path = path
        self.calls = InFlight(max_size)  # rid -> the caller's Reply, and the frame parser
        self.alive = True
        # its client closed it while guests were in flight: it closes after their replies
        self.closing = False
        self.lost: DirtyError | None = None
        # Called when a call of this connection ends (a slot is free): wakes callers in line.
        self.on_free: Callable[[], None] | None = None
        # held while the calls change hands: a real lock where several threads use it
        self.state_lock: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()

    def load(self) -> int:
        """Calls in flight on this connection that hold a worker slot (batched ones do not)."""
        return self.calls.load()

    def batched_load(self) -> int:
        """Calls to @batched actions in flight on this connection."""
        return len(self.calls.batched)

    def _fail(self, error: DirtyError) -> None:
        raise NotImplementedError

    def _calls_ended(self) -> None:
        """Replies ended calls: wake callers in line; a closing connection may now close."""
        if self.on_free is not None:
            self.on_free()
        if self.closing:
            self._close_when_guests_done()

    def _close_when_guests_done(self) -> None:
        if self.closing and not self.calls.guests:
            self._fail(DirtyConnectionError("dirty client closed"))

    def close(self) -> None:
        """Close the connection; pending calls fail with DirtyConnectionError.

        Calls it carries for other clients' callers (hand-offs) are not this client's
        to fail: the socket then stays open, for nothing new, until their replies are in.
        """
        with self.state_lock:
            if self.alive and self.calls.guests:
                self.closing = True
                self.calls.fail_own(DirtyConnectionError("dirty client closed"))
                return
        self._fail(DirtyConnectionError("dirty client closed"))
