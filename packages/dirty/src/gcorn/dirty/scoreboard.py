"""The scoreboard: a small shared-memory table of the pool's workers.

The dirty arbiter creates it (a file in the pool's private 0700 directory,
mapped MAP_SHARED); workers inherit the mapping across fork; clients map it
read-only. Each field has a single writer, so no locks are needed:

- header ``epoch``: bumped by the arbiter whenever the set of workers changes,
  so a client knows its cached directory is stale with one 8-byte read;
- slot ``generation``, ``pid``, ``threads``: the arbiter, at spawn;
- slot ``state``: the arbiter (BOOTING, DRAINING, EMPTY) and the worker (READY);
- slot ``inflight``, ``heartbeat``, ``overdue``, ``batched``, ``calls``: the worker
  (``inflight`` counts slot units: calls plus batches; ``batched`` the calls gathering in
  batches; ``calls`` the calls it finished).

Clients route a call to the least-busy READY worker by reading ``inflight``.
"""

from __future__ import annotations

import enum
import mmap
import os
import struct

MAGIC = b"gDscore2"
HEADER_SIZE = 64
SLOT_SIZE = 128  # 9 fields of 8 bytes, with room to grow
MAX_SLOTS = 512
SIZE = HEADER_SIZE + SLOT_SIZE * MAX_SLOTS

_U64 = struct.Struct("=Q")
_I64 = struct.Struct("=q")
_F64 = struct.Struct("=d")
_SLOT = struct.Struct("=Qqqqdqqqq")

GENERATION, PID, STATE, INFLIGHT, HEARTBEAT, OVERDUE, THREADS, BATCHED, CALLS = (
    0, 8, 16, 24, 32, 40, 48, 56, 64)


class SlotState(enum.IntEnum):
    """Life of a scoreboard slot."""

    EMPTY = 0
    BOOTING = 1
    READY = 2
    DRAINING = 3


class Scoreboard:
    """A mapped scoreboard file (read-write for the pool, read-only for clients)."""

    def __init__(self, mm: mmap.mmap, path: str) -> None:
        self.mm = mm
        self.path = path

    @classmethod
    def create(cls, path: str) -> Scoreboard:
        """Create and map a new scoreboard file (mode 0600)."""
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.ftruncate(fd, SIZE)
            mm = mmap.mmap(fd, SIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        finally:
            os.close(fd)
        mm[0:8] = MAGIC
        return cls(mm, path)

    @classmethod
    def open_readonly(cls, path: str) -> Scoreboard:
        """Map an existing scoreboard for reading (clients)."""
        fd = os.open(path, os.O_RDONLY)
        try:
            mm = mmap.mmap(fd, SIZE, mmap.MAP_SHARED, mmap.PROT_READ)
        finally:
            os.close(fd)
        if mm[0:8] != MAGIC:
            mm.close()
            raise ValueError(f"{path} is not a gcorn-dirty scoreboard")
        return cls(mm, path)

    def close(self) -> None:
        """Unmap."""
        try:
            self.mm.close()
        except (BufferError, ValueError):
            pass  # still exported by a memoryview or already closed: the OS unmaps at exit

    # header
    def epoch(self) -> int:
        """Current directory epoch."""
        return int(_U64.unpack_from(self.mm, 8)[0])

    def bump_epoch(self) -> int:
        """Announce that the worker set changed (arbiter only)."""
        value = self.epoch() + 1
        _U64.pack_into(self.mm, 8, value)
        return value

    # slots
    def _off(self, slot: int, field: int) -> int:
        return HEADER_SIZE + slot * SLOT_SIZE + field

    def claim(self, slot: int, generation: int, threads: int) -> None:
        """Initialise a slot for a worker about to be forked (arbiter only)."""
        _SLOT.pack_into(self.mm, self._off(slot, 0), generation, 0, int(SlotState.BOOTING),
                        0, 0.0, 0, threads, 0, 0)

    def release(self, slot: int) -> None:
        """Mark a slot free after its worker is reaped (arbiter only)."""
        _SLOT.pack_into(self.mm, self._off(slot, 0), 0, 0, int(SlotState.EMPTY), 0, 0.0, 0, 0, 0, 0)

    def set_i64(self, slot: int, field: int, value: int) -> None:
        """Write one integer field of a slot."""
        _I64.pack_into(self.mm, self._off(slot, field), value)

    def get_i64(self, slot: int, field: int) -> int:
        """Read one integer field of a slot."""
        return int(_I64.unpack_from(self.mm, self._off(slot, field))[0])

    def generation(self, slot: int) -> int:
        """Worker generation in a slot (0: empty)."""
        return int(_U64.unpack_from(self.mm, self._off(slot, GENERATION))[0])

    def state(self, slot: int) -> SlotState:
        """Slot state."""
        return SlotState(self.get_i64(slot, STATE))

    def set_state(self, slot: int, state: SlotState) -> None:
        """Write a slot's state."""
        self.set_i64(slot, STATE, int(state))

    def heartbeat(self, slot: int) -> float:
        """Monotonic time of the worker's last heartbeat."""
        return float(_F64.unpack_from(self.mm, self._off(slot, HEARTBEAT))[0])

    def beat(self, slot: int, now: float) -> None:
        """Record a heartbeat (worker only)."""
        _F64.pack_into(self.mm, self._off(slot, HEARTBEAT), now)

    def load(self, slot: int, generation: int) -> int | None:
        """In-flight calls of a READY worker of this generation; None when it cannot take calls."""
        g, _pid, state, inflight = _LOAD.unpack_from(self.mm, self._off(slot, 0))
        if g != generation or state != 2:
            return None
        return int(inflight)


_LOAD = struct.Struct("=Qqqq")
