"""Per-worker call counters in shared memory, and the arbiter's totals of retired workers.

The dirty arbiter maps one anonymous shared region per worker before forking
it (:meth:`CallStats.create`); the worker is its only writer (its threads
take one lock), and the arbiter reads it without stopping the worker. The
region survives the worker's death, so when the arbiter reaps a worker it
folds the final counts into :class:`RetiredTotals` (which only the arbiter
touches) and drops the region. The arbiter answers a METRICS request in the
same event loop that folds, so a reader never sees a worker counted twice
(live and retired) or not at all.

A region holds one record per (app, action): the calls started, their
outcomes, and three histograms (call duration; for @batched actions, batch
size and the time a call gathered). Calls started but never finished on a
worker that died are counted ``lost`` at the fold.
"""

from __future__ import annotations

import mmap
import struct
import threading
from typing import Any

# Outcomes a worker records. "lost" is added by the arbiter when it folds a dead worker.
OK, ERROR, TIMEOUT, CANCELLED, REJECTED = range(5)
OUTCOMES = ("ok", "error", "timeout", "cancelled", "rejected")
ALL_OUTCOMES = (*OUTCOMES, "lost")
UNKNOWN = "(unknown)"  # label of a call whose app or action this worker does not have
OTHER = "(other)"  # label of every series past MAX_SERIES

DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0, 30.0, 60.0, 120.0, 300.0)
BATCH_SIZE_BUCKETS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0)
BATCH_WAIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                      2.5, 5.0)

MAGIC = b"gDstats1"
HEADER_SIZE = 64  # magic, series count
KEY_SIZE = 256  # u64 length + "app\0action" in UTF-8
MAX_SERIES = 256

_U64 = struct.Struct("=Q")
_F64 = struct.Struct("=d")

# Record layout after the key, in 8-byte fields.
_STARTED = 0
_OUTCOME = 1
_DUR = _OUTCOME + len(OUTCOMES)  # one count per bucket plus +Inf, then the sum
_SIZE = _DUR + len(DURATION_BUCKETS) + 2
_WAIT = _SIZE + len(BATCH_SIZE_BUCKETS) + 2
_FIELDS = _WAIT + len(BATCH_WAIT_BUCKETS) + 2
RECORD_SIZE = KEY_SIZE + 8 * _FIELDS
SIZE = HEADER_SIZE + RECORD_SIZE * MAX_SERIES


def _bucket(bounds: tuple[float, ...], value: float) -> int:
    for i, bound in enumerate(bounds):
        if value <= bound:
            return i
    return len(bounds)


class CallStats:
    """One worker's counters: written by the worker, read by the arbiter."""

    def __init__(self, mm: mmap.mmap) -> None:
        self.mm = mm
        self.lock = threading.Lock()
        self._index: dict[tuple[str, str], int] = {}

    @classmethod
    def create(cls) -> CallStats:
        """A fresh anonymous shared region (the arbiter, before fork; the child inherits it)."""
        mm = mmap.mmap(-1, SIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        mm[0:8] = MAGIC
        return cls(mm)

    def close(self) -> None:
        """Unmap the region."""
        try:
            self.mm.close()
        except (BufferError, ValueError):
            pass  # still exported or already closed: the OS unmaps at exit

    # ------------------------------------------------------------ writer (worker)
    def series(self, app: str, action: str) -> int:
        """The offset of the record of (app, action), created on first use."""
        key = (app, action)
        off = self._index.get(key)
        if off is not None:
            return off
        with self.lock:
            off = self._index.get(key)
            if off is not None:
                return off
            count = int(_U64.unpack_from(self.mm, 8)[0])
            if count >= MAX_SERIES - 1:
                key = (OTHER, OTHER)  # the last record gathers the rest: the region stays bounded
                off = self._index.get(key)
                if off is None:
                    off = self._write_key(MAX_SERIES - 1, key)
                    _U64.pack_into(self.mm, 8, MAX_SERIES)
                self._index[(app, action)] = off
                return off
            off = self._write_key(count, key)
            _U64.pack_into(self.mm, 8, count + 1)  # published after its key: readers see whole records
            self._index[key] = off
            return off

    def _write_key(self, index: int, key: tuple[str, str]) -> int:
        off = HEADER_SIZE + index * RECORD_SIZE
        raw = f"{key[0]}\0{key[1]}".encode()[:KEY_SIZE - 8]
        _U64.pack_into(self.mm, off, len(raw))
        self.mm[off + 8:off + 8 + len(raw)] = raw
        return off + KEY_SIZE

    def _add(self, off: int, n: int = 1) -> None:
        _U64.pack_into(self.mm, off, _U64.unpack_from(self.mm, off)[0] + n)

    def _addf(self, off: int, x: float) -> None:
        _F64.pack_into(self.mm, off, _F64.unpack_from(self.mm, off)[0] + x)

    def begin(self, rec: int) -> None:
        """A call of this series started (it will end with an outcome, or be lost)."""
        with self.lock:
            self._add(rec + 8 * _STARTED)

    def end(self, rec: int, outcome: int, seconds: float) -> None:
        """A started call ended with ``outcome`` after ``seconds`` in the worker."""
        with self.lock:
            self._add(rec + 8 * (_OUTCOME + outcome))
            self._add(rec + 8 * (_DUR + _bucket(DURATION_BUCKETS, seconds)))
            self._addf(rec + 8 * (_DUR + len(DURATION_BUCKETS) + 1), seconds)

    def refuse(self, rec: int) -> None:
        """A call of this series was refused before it started (outcome ``rejected``)."""
        with self.lock:
            self._add(rec + 8 * _STARTED)
            self._add(rec + 8 * (_OUTCOME + REJECTED))

    def batch(self, rec: int, waits: list[float]) -> None:
        """A batch of ``len(waits)`` calls started; each waited that long to be gathered."""
        with self.lock:
            size = len(waits)
            self._add(rec + 8 * (_SIZE + _bucket(BATCH_SIZE_BUCKETS, size)))
            self._addf(rec + 8 * (_SIZE + len(BATCH_SIZE_BUCKETS) + 1), float(size))
            for w in waits:
                self._add(rec + 8 * (_WAIT + _bucket(BATCH_WAIT_BUCKETS, w)))
            self._addf(rec + 8 * (_WAIT + len(BATCH_WAIT_BUCKETS) + 1), sum(waits))

    # ------------------------------------------------------------ reader (arbiter)
    def snapshot(self) -> dict[tuple[str, str], list[float]]:
        """Every record: (app, action) -> its fields (counts as ints, sums as floats)."""
        out: dict[tuple[str, str], list[float]] = {}
        mm = self.mm
        count = min(int(_U64.unpack_from(mm, 8)[0]), MAX_SERIES)
        sums = {_DUR + len(DURATION_BUCKETS) + 1, _SIZE + len(BATCH_SIZE_BUCKETS) + 1,
                _WAIT + len(BATCH_WAIT_BUCKETS) + 1}
        for i in range(count):
            off = HEADER_SIZE + i * RECORD_SIZE
            n = int(_U64.unpack_from(mm, off)[0])
            app, _, action = bytes(mm[off + 8:off + 8 + n]).decode(errors="replace").partition("\0")
            base = off + KEY_SIZE
            out[(app, action)] = [(_F64 if j in sums else _U64).unpack_from(mm, base + 8 * j)[0]
                                  for j in range(_FIELDS)]
        return out


def add_into(total: list[float], fields: list[float]) -> None:
    """Add one record's fields into a running total of the same shape."""
    for j, v in enumerate(fields):
        total[j] += v


class RetiredTotals:
    """What the reaped workers counted, kept by the arbiter so totals never go down."""

    def __init__(self) -> None:
        self.series: dict[tuple[str, str], list[float]] = {}
        self.lost: dict[tuple[str, str], int] = {}
        self.restarts: dict[str, int] = {}

    def fold(self, snap: dict[tuple[str, str], list[float]]) -> None:
        """Add a dead worker's final counts; its unfinished calls count as lost."""
        for key, fields in snap.items():
            total = self.series.setdefault(key, [0] * _FIELDS)
            add_into(total, fields)
            ended = sum(fields[_OUTCOME:_OUTCOME + len(OUTCOMES)])
            lost = int(fields[_STARTED] - ended)
            if lost > 0:
                self.lost[key] = self.lost.get(key, 0) + lost

    def restart(self, reason: str) -> None:
        """Count one replaced worker."""
        self.restarts[reason] = self.restarts.get(reason, 0) + 1


def wire_series(retired: RetiredTotals, live: list[dict[tuple[str, str], list[float]]]) -> list[Any]:
    """The pool's series as plain lists for a METRICS reply (retired plus live workers)."""
    sums: dict[tuple[str, str], list[float]] = {k: list(v) for k, v in retired.series.items()}
    for snap in live:
        for key, fields in snap.items():
            add_into(sums.setdefault(key, [0] * _FIELDS), fields)
    out: list[Any] = []
    nd, ns, nw = len(DURATION_BUCKETS) + 1, len(BATCH_SIZE_BUCKETS) + 1, len(BATCH_WAIT_BUCKETS) + 1
    for (app, action), f in sorted(sums.items()):
        outcomes = {name: int(f[_OUTCOME + i]) for i, name in enumerate(OUTCOMES)}
        outcomes["lost"] = retired.lost.get((app, action), 0)
        out.append({"app": app, "action": action, "calls": outcomes,
                    "duration": [int(x) for x in f[_DUR:_DUR + nd]], "duration_sum": float(f[_DUR + nd]),
                    "batch_size": [int(x) for x in f[_SIZE:_SIZE + ns]], "batch_size_sum": float(f[_SIZE + ns]),
                    "batch_wait": [int(x) for x in f[_WAIT:_WAIT + nw]], "batch_wait_sum": float(f[_WAIT + nw])})
    return out
