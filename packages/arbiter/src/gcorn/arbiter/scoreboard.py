"""The worker scoreboard: one fixed-size shared-memory slot per HTTP worker.

The master maps it (anonymous, MAP_SHARED) before forking anything, so every
worker and side process inherits the same pages. Each field has one writer,
so no lock is needed and a reader never blocks a writer:

- ``pid``, ``age``, ``started`` (wall clock), ``heartbeat`` (monotonic, as the
  master last read it), ``rss`` (bytes, as the master last measured it) and
  ``worker class`` (an index into the header's table of names): the master;
- ``requests`` (served), ``in_flight`` and, when the detailed counters are on
  (``metrics_bind``), requests by method and status class, the duration
  histogram, connections and request timeouts, and the reason a worker gives
  for exiting on its own (``max_requests``): the worker.

When the master reaps a worker it folds the slot's counters into a per-class
"retired" block of the header before freeing the slot, so totals stay
monotonic across worker deaths; a sequence number (odd while folding) lets a
reader in another process take a snapshot that never counts a dead worker's
requests twice or misses them (`Scoreboard.snapshot`). Restarts by reason are
master-written counters of the same blocks.

The control socket reads it for ``show workers``; the metrics exporter reads
it from its side process.
"""

from __future__ import annotations

import bisect
import enum
import mmap
import struct
import time
from dataclasses import dataclass, field

MAGIC = b"gcornSB2"
SLOT_SIZE = 768
DEFAULT_SLOTS = 1024
# the header: magic, slot count, sequence, ready flag, master pid, class names,
# then one retired block (laid out as a slot) per worker class
MAX_CLASSES = 8
CLASS_NAME_SIZE = 32
_NAMES_AT = 128
_BLOCKS_AT = _NAMES_AT + MAX_CLASSES * CLASS_NAME_SIZE
HEADER_SIZE = _BLOCKS_AT + MAX_CLASSES * SLOT_SIZE
_H_SEQ, _H_READY, _H_MASTER = 2, 3, 4  # int64 indexes in the header

_HEADER = struct.Struct("=8sQ")
# pid, age, started, requests, in_flight, heartbeat, rss (the row `show workers` reads)
_SLOT = struct.Struct("=qqdqqdq")
_Q = struct.Struct("=q")
_D = struct.Struct("=d")

# int64 indexes of a slot (doubles share the same 8-byte cells through a 'd' view)
PID_I, AGE_I, STARTED_I, REQUESTS_I, IN_FLIGHT_I, HEARTBEAT_I, RSS_I = range(7)
CLASS_I = 7
EXIT_REASON_I = 8
CONN_ACCEPTED_I = 9
CONN_CLOSED_I = 10
TIMEOUTS_I = 11
DURATION_SUM_I = 12  # a double
HIST_I = 13
# Prometheus' default buckets (seconds); the last cell counts what is above them (+Inf)
BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)
BY_CODE_I = HIST_I + len(BUCKETS) + 1
METHODS: tuple[str, ...] = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "other")
STATUS_CLASSES: tuple[str, ...] = ("other", "1xx", "2xx", "3xx", "4xx", "5xx")
RESTARTS_I = BY_CODE_I + len(METHODS) * len(STATUS_CLASSES)
_FIELDS = RESTARTS_I + 8
# what is summed into the retired block of a reaped worker's class
_COUNTED = (REQUESTS_I, CONN_ACCEPTED_I, CONN_CLOSED_I, TIMEOUTS_I)
_SUMMED = slice(HIST_I, RESTARTS_I)
assert _FIELDS * 8 <= SLOT_SIZE

# byte offsets, for the struct-based readers
PID, AGE, STARTED, REQUESTS, IN_FLIGHT, HEARTBEAT, RSS = (i * 8 for i in range(7))

_METHOD_INDEX = {name: i * len(STATUS_CLASSES) for i, name in enumerate(METHODS[:-1])}
_OTHER_METHOD = (len(METHODS) - 1) * len(STATUS_CLASSES)
# the slot cell of each (method, status) pair seen, so a request costs one dict lookup;
# bounded, since a client chooses the method
_CODE_CELLS: dict[tuple[str, int], int] = {}
_CODE_CELLS_MAX = 4096
_FIRST_BUCKET = BUCKETS[0]


def _code_cell(method: str, status: int) -> int:
    klass = status // 100
    if klass > 5 or klass < 0:
        klass = 0  # not answered (0) or not a status code
    cell = BY_CODE_I + _METHOD_INDEX.get(method, _OTHER_METHOD) + klass
    if len(_CODE_CELLS) < _CODE_CELLS_MAX:
        _CODE_CELLS[(method, status)] = cell
    return cell


class ExitReason(enum.IntEnum):
    """Why a worker stops on its own, written to its slot before it exits."""

    NONE = 0
    MAX_REQUESTS = 1
    REQUEST_TIMEOUT = 2  # gthread: every serving thread stuck past request_timeout


class Restart(enum.IntEnum):
    """Why the master replaced a worker (the index of its counter in a class block)."""

    TIMEOUT = 0
    MAX_REQUESTS = 1
    MEMORY = 2
    CRASH = 3
    BOOT_FAILURE = 4
    REQUEST_TIMEOUT = 5


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


@dataclass
class ClassTotals:
    """Every counter of one worker class: the retired block plus the live slots."""

    name: str
    requests: int = 0
    in_flight: int = 0
    connections_accepted: int = 0
    connections_open: int = 0
    request_timeouts: int = 0
    duration_sum: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    by_code: list[int] = field(default_factory=lambda: [0] * (len(METHODS) * len(STATUS_CLASSES)))
    restarts: list[int] = field(default_factory=lambda: [0] * len(Restart))
    workers: int = 0

    def requests_by(self) -> list[tuple[str, str, int]]:
        """(method, status class, count) for every pair that counted something."""
        width = len(STATUS_CLASSES)
        return [(METHODS[i // width], STATUS_CLASSES[i % width], n)
                for i, n in enumerate(self.by_code) if n]


@dataclass(frozen=True)
class LiveWorker:
    """A live worker's gauges, for per-worker series."""

    pid: int
    worker_class: str
    heartbeat: float
    rss: int
    requests: int
    in_flight: int


@dataclass(frozen=True)
class Snapshot:
    """A consistent view of the whole board (see `Scoreboard.snapshot`)."""

    ready: bool
    master_pid: int
    classes: dict[str, ClassTotals]
    workers: list[LiveWorker]
    taken_at: float  # monotonic, to compare with heartbeats


class WorkerStats:
    """The worker's side of its slot: count requests as they start and end.

    `end`, `connection_opened` and `connection_closed` do the detailed counting
    only when the board was made with it (metrics on); otherwise they are the
    cheapest calls that keep `requests` and `in_flight` for `show workers`.
    """

    __slots__ = ("_q", "_d", "end", "connection_opened", "connection_closed")

    def __init__(self, mm: mmap.mmap | None, base: int, detailed: bool = False) -> None:
        buf = memoryview(mm)[base:base + SLOT_SIZE] if mm is not None else memoryview(
            bytearray(SLOT_SIZE))
        self._q = buf.cast("q")
        self._d = buf.cast("d")
        if detailed:
            self.end = self._end_detailed
            self.connection_opened = self._connection_opened
            self.connection_closed = self._connection_closed
        else:
            self.end = self._end
            self.connection_opened = self.connection_closed = _nothing

    @property
    def requests(self) -> int:
        """Requests ended so far."""
        return int(self._q[REQUESTS_I])

    @property
    def in_flight(self) -> int:
        """Requests begun and not ended."""
        return int(self._q[IN_FLIGHT_I])

    def begin(self) -> None:
        """A request started (call from one thread at a time)."""
        self._q[IN_FLIGHT_I] += 1

    def _end(self, method: str = "", status: int = 0, duration: float = 0.0) -> None:
        q = self._q
        q[IN_FLIGHT_I] -= 1
        q[REQUESTS_I] += 1

    def _end_detailed(self, method: str = "", status: int = 0, duration: float = 0.0) -> None:
        # end(method, status, seconds): a request ended, answered (status) or not (0);
        # one thread at a time, as begin(). The hot path of every request with metrics on.
        q = self._q
        q[IN_FLIGHT_I] -= 1
        q[REQUESTS_I] += 1
        q[_CODE_CELLS.get((method, status)) or _code_cell(method, status)] += 1
        q[HIST_I if duration <= _FIRST_BUCKET else HIST_I + bisect.bisect_left(BUCKETS, duration)] += 1
        self._d[DURATION_SUM_I] += duration

    def _connection_opened(self) -> None:
        self._q[CONN_ACCEPTED_I] += 1

    def _connection_closed(self) -> None:
        self._q[CONN_CLOSED_I] += 1

    def request_timed_out(self) -> None:
        """A request ran past `request_timeout` (one thread at a time)."""
        self._q[TIMEOUTS_I] += 1

    def exiting(self, reason: ExitReason) -> None:
        """Tell the master why this worker is about to stop on its own."""
        self._q[EXIT_REASON_I] = int(reason)


def _nothing() -> None:
    return None


class Scoreboard:
    """The master's table of worker slots."""

    def __init__(self, slots: int = DEFAULT_SLOTS) -> None:
        self.slots = slots
        self.mm = mmap.mmap(-1, HEADER_SIZE + SLOT_SIZE * slots, mmap.MAP_SHARED)
        _HEADER.pack_into(self.mm, 0, MAGIC, slots)
        self._q = memoryview(self.mm).cast("q")
        self._d = memoryview(self.mm).cast("d")
        self._free = list(range(slots - 1, -1, -1))
        self._class_names: list[str] = []

    def _base(self, slot: int) -> int:
        return HEADER_SIZE + SLOT_SIZE * slot

    def _class_index(self, name: str) -> int:
        """The index of worker class `name` in the header table (the last one once full)."""
        if name in self._class_names:
            return self._class_names.index(name)
        if len(self._class_names) >= MAX_CLASSES:
            return MAX_CLASSES - 1
        index = len(self._class_names)
        self._class_names.append(name)
        raw = name.encode("utf-8", "replace")[:CLASS_NAME_SIZE]
        at = _NAMES_AT + index * CLASS_NAME_SIZE
        self.mm[at:at + CLASS_NAME_SIZE] = raw.ljust(CLASS_NAME_SIZE, b"\0")
        return index

    def claim(self, age: int, worker_class: str = "worker") -> int:
        """Reserve a slot for a worker about to be forked; -1 when the board is full."""
        if not self._free:
            return -1
        slot = self._free.pop()
        base = self._base(slot)
        self.mm[base:base + SLOT_SIZE] = bytes(SLOT_SIZE)
        _SLOT.pack_into(self.mm, base, 0, age, time.time(), 0, 0, time.monotonic(), 0)
        self._q[base // 8 + CLASS_I] = self._class_index(worker_class)
        return slot

    def stats_for(self, slot: int, detailed: bool = False) -> WorkerStats:
        """The WorkerStats a worker uses to write its slot (one that writes nowhere for -1)."""
        if slot < 0:
            return WorkerStats(None, 0, detailed)
        return WorkerStats(self.mm, self._base(slot), detailed)

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

    def set_ready(self, ready: bool, master_pid: int = 0) -> None:
        """Publish whether the master reported ready (master only)."""
        self._q[_H_READY] = 1 if ready else 0
        if master_pid:
            self._q[_H_MASTER] = master_pid

    def exit_reason(self, slot: int) -> ExitReason:
        """What a worker wrote before it stopped on its own (NONE if nothing, or unknown)."""
        if slot < 0:
            return ExitReason.NONE
        try:
            return ExitReason(self._q[self._base(slot) // 8 + EXIT_REASON_I])
        except ValueError:
            return ExitReason.NONE

    def read(self, slot: int) -> SlotView | None:
        """The slot's current row, or None for -1."""
        if slot < 0:
            return None
        return SlotView(*_SLOT.unpack_from(self.mm, self._base(slot)))

    def rows(self) -> list[SlotView]:
        """Every slot in use (pid set), read now."""
        found = []
        for slot in range(self.slots):
            row = SlotView(*_SLOT.unpack_from(self.mm, self._base(slot)))
            if row.pid:
                found.append(row)
        return found

    def release(self, slot: int, restart: Restart | None = None) -> None:
        """Free the slot of a reaped worker, folding its counters into its class (master only).

        `restart`: the reason the worker is replaced, counted in its class.
        """
        if slot < 0:
            return
        q = self._q
        d = self._d
        at = self._base(slot) // 8
        block = (_BLOCKS_AT // 8) + int(q[at + CLASS_I]) * (SLOT_SIZE // 8)
        q[_H_SEQ] += 1  # odd: a fold is under way
        for i in _COUNTED:
            q[block + i] += q[at + i]
        d[block + DURATION_SUM_I] += d[at + DURATION_SUM_I]
        for i in range(_SUMMED.start, _SUMMED.stop):
            q[block + i] += q[at + i]
        if restart is not None:
            q[block + RESTARTS_I + int(restart)] += 1
        self.mm[at * 8:at * 8 + SLOT_SIZE] = bytes(SLOT_SIZE)
        q[_H_SEQ] += 1
        self._free.append(slot)

    def class_names(self) -> list[str]:
        """The worker classes seen so far, as any process of the tree reads them."""
        names = []
        for index in range(MAX_CLASSES):
            at = _NAMES_AT + index * CLASS_NAME_SIZE
            raw = bytes(self.mm[at:at + CLASS_NAME_SIZE]).rstrip(b"\0")
            if not raw:
                break
            names.append(raw.decode("utf-8", "replace"))
        return names

    def snapshot(self, attempts: int = 100) -> Snapshot:
        """Every counter, summed per worker class; consistent with the master's folds."""
        q = self._q
        for _ in range(attempts):
            seq = q[_H_SEQ]
            if seq & 1:
                time.sleep(0.0005)
                continue
            snap = self._read_all()
            if q[_H_SEQ] == seq:
                return snap
        return self._read_all()  # a master folding non-stop: close enough

    def _read_all(self) -> Snapshot:
        q = self._q
        d = self._d
        names = self.class_names()
        classes: dict[str, ClassTotals] = {}
        by_index: list[ClassTotals] = []
        for index, name in enumerate(names):
            totals = classes.get(name) or ClassTotals(name)
            classes[name] = totals
            by_index.append(totals)
            block = (_BLOCKS_AT // 8) + index * (SLOT_SIZE // 8)
            _add(totals, q[block:block + _FIELDS].tolist(), d[block + DURATION_SUM_I], live=False)
        workers: list[LiveWorker] = []
        width = SLOT_SIZE // 8
        start = HEADER_SIZE // 8
        for slot in range(self.slots):
            at = start + slot * width
            if not q[at + PID_I]:
                continue
            cells = q[at:at + _FIELDS].tolist()
            index = cells[CLASS_I]
            if not 0 <= index < len(by_index):
                continue
            totals = by_index[index]
            _add(totals, cells, d[at + DURATION_SUM_I], live=True)
            workers.append(LiveWorker(pid=cells[PID_I], worker_class=totals.name,
                                      heartbeat=d[at + HEARTBEAT_I], rss=cells[RSS_I],
                                      requests=cells[REQUESTS_I],
                                      in_flight=cells[IN_FLIGHT_I]))
        return Snapshot(ready=bool(q[_H_READY]), master_pid=int(q[_H_MASTER]), classes=classes,
                        workers=workers, taken_at=time.monotonic())

    def close(self) -> None:
        """Unmap (the master at exit)."""
        for view in (self._q, self._d):
            view.release()
        try:
            self.mm.close()
        except (BufferError, ValueError):
            pass  # still exported (a WorkerStats) or already closed: the OS unmaps at exit


def _add(totals: ClassTotals, cells: list[int], duration_sum: float, live: bool) -> None:
    totals.requests += cells[REQUESTS_I]
    totals.connections_accepted += cells[CONN_ACCEPTED_I]
    totals.request_timeouts += cells[TIMEOUTS_I]
    totals.duration_sum += duration_sum
    buckets = totals.buckets
    for i in range(len(buckets)):
        buckets[i] += cells[HIST_I + i]
    by_code = totals.by_code
    for i in range(len(by_code)):
        by_code[i] += cells[BY_CODE_I + i]
    restarts = totals.restarts
    for i in range(len(restarts)):
        restarts[i] += cells[RESTARTS_I + i]
    if live:
        totals.workers += 1
        totals.in_flight += max(0, cells[IN_FLIGHT_I])
        totals.connections_open += max(0, cells[CONN_ACCEPTED_I] - cells[CONN_CLOSED_I])
