"""The worker scoreboard: one fixed-size shared-memory slot per HTTP worker.

The master maps it (anonymous, MAP_SHARED) before forking anything, so every
worker and side process inherits the same pages. Each field has one writer,
so no lock is needed and a reader never blocks a writer:

- ``pid``, ``age``, ``started`` (wall clock), ``heartbeat`` (monotonic, as the
  master last read it) and ``rss`` (bytes, as the master last measured it):
  the master;
- ``requests`` (served) and ``in_flight``: the worker.

The control socket reads it for ``show workers``; a metrics exporter can read
it from any process of the tree.
"""

from __future__ import annotations

import mmap
import struct
import time
from dataclasses import dataclass

MAGIC = b"gcornSB1"
HEADER_SIZE = 64
SLOT_SIZE = 64
DEFAULT_SLOTS = 1024

_HEADER = struct.Struct("=8sQ")
# pid, age, started, requests, in_flight, heartbeat, rss
_SLOT = struct.Struct("=qqdqqdq")
_Q = struct.Struct("=q")
_QQ = struct.Struct("=qq")
_D = struct.Struct("=d")
PID, AGE, STARTED, REQUESTS, IN_FLIGHT, HEARTBEAT, RSS = (0, 8, 16, 24, 32, 40, 48)


@dataclass(frozen=True)
class SlotView:
    """One worker's row, as read at one moment."""

    pid: int
    age: int
    started: float
    requests: int
    in_flight: int
    heartbeat: float
    rss: int


class WorkerStats:
    """The worker's side of its slot: count requests as they start and end."""

    __slots__ = ("_mm", "_base", "requests", "in_flight")

    def __init__(self, mm: mmap.mmap | None, base: int) -> None:
        self._mm = mm
        self._base = base
        self.requests = 0
        self.in_flight = 0

    def begin(self) -> None:
        """A request started (call from one thread at a time)."""
        self.in_flight += 1
        if self._mm is not None:
            _Q.pack_into(self._mm, self._base + IN_FLIGHT, self.in_flight)

    def end(self) -> None:
        """A request ended, answered or not (call from one thread at a time)."""
        self.in_flight -= 1
        self.requests += 1
        if self._mm is not None:
            # requests and in_flight are neighbours: one write for both
            _QQ.pack_into(self._mm, self._base + REQUESTS, self.requests, self.in_flight)


class Scoreboard:
    """The master's table of worker slots."""

    def __init__(self, slots: int = DEFAULT_SLOTS) -> None:
        self.slots = slots
        self.mm = mmap.mmap(-1, HEADER_SIZE + SLOT_SIZE * slots, mmap.MAP_SHARED)
        _HEADER.pack_into(self.mm, 0, MAGIC, slots)
        self._free = list(range(slots - 1, -1, -1))

    def _base(self, slot: int) -> int:
        return HEADER_SIZE + SLOT_SIZE * slot

    def claim(self, age: int) -> int:
        """Reserve a slot for a worker about to be forked; -1 when the board is full."""
        if not self._free:
            return -1
        slot = self._free.pop()
        _SLOT.pack_into(self.mm, self._base(slot), 0, age, time.time(), 0, 0, time.monotonic(), 0)
        return slot

    def stats_for(self, slot: int) -> WorkerStats:
        """The WorkerStats a worker uses to write its slot (one that writes nowhere for -1)."""
        if slot < 0:
            return WorkerStats(None, 0)
        return WorkerStats(self.mm, self._base(slot))

    def set_pid(self, slot: int, pid: int) -> None:
        """Record the forked worker's pid (master only)."""
        if slot >= 0:
            _Q.pack_into(self.mm, self._base(slot) + PID, pid)

    def set_heartbeat(self, slot: int, when: float) -> None:
        """Publish the worker's last heartbeat (monotonic) as the master read it."""
        if slot >= 0:
            _D.pack_into(self.mm, self._base(slot) + HEARTBEAT, when)

    def set_rss(self, slot: int, rss: int) -> None:
        """Publish the worker's resident set size in bytes (master only)."""
        if slot >= 0:
            _Q.pack_into(self.mm, self._base(slot) + RSS, rss)

    def read(self, slot: int) -> SlotView | None:
        """The slot's current row, or None for -1."""
        if slot < 0:
            return None
        return SlotView(*_SLOT.unpack_from(self.mm, self._base(slot)))

    def rows(self) -> list[SlotView]:
        """Every slot in use (pid set), read now: what an exporter in any process of the tree sees."""
        found = []
        for slot in range(self.slots):
            row = SlotView(*_SLOT.unpack_from(self.mm, self._base(slot)))
            if row.pid:
                found.append(row)
        return found

    def release(self, slot: int) -> None:
        """Free the slot of a reaped worker (master only)."""
        if slot < 0:
            return
        _SLOT.pack_into(self.mm, self._base(slot), 0, 0, 0.0, 0, 0, 0.0, 0)
        self._free.append(slot)

    def close(self) -> None:
        """Unmap (the master at exit)."""
        try:
            self.mm.close()
        except (BufferError, ValueError):
            pass  # still exported or already closed: the OS unmaps at exit
