"""Dynamic batching: many concurrent calls of one action run as one call on a list.

``@batched(max_size=32, max_wait_ms=5)`` marks an action that takes a list of
argument tuples and returns a list of results of the same length. Inside a
dirty worker a :class:`Batcher` gathers the calls of each batched action,
whatever connection or process they come from, and flushes a batch when
``max_size`` calls wait or the oldest has waited ``max_wait_ms``. A batch runs
on one of the worker's ``dirty_threads`` slots like any call; batches of
different actions run side by side, and while a batch waits for a slot or
runs, the next one keeps gathering.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import inspect
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from . import callstats as cs
from . import scoreboard as sb
from .errors import DirtyAppError, DirtyBusyError, DirtyConfigError, DirtyError, DirtyTimeoutError

log = logging.getLogger("gcorn.dirty.worker")

F = TypeVar("F", bound=Callable[..., Any])
_MARK = "__gcorn_batched__"


@dataclasses.dataclass(frozen=True)
class BatchSpec:
    """How one batched action gathers its calls."""

    max_size: int
    max_wait: float  # seconds


def batched(max_size: int = 32, max_wait_ms: float = 5) -> Callable[[F], F]:
    """Mark a DirtyApp action as batched: it gets ``[args, ...]`` and returns ``[result, ...]``."""
    if not isinstance(max_size, int) or isinstance(max_size, bool) or max_size < 1:
        raise DirtyConfigError(f"@batched max_size must be an int >= 1, got {max_size!r}")
    if isinstance(max_wait_ms, bool) or not isinstance(max_wait_ms, (int, float)) \
            or not 0 <= max_wait_ms < 60_000:
        raise DirtyConfigError(f"@batched max_wait_ms must be a number in [0, 60000), got {max_wait_ms!r}")
    spec = BatchSpec(max_size, max_wait_ms / 1000.0)

    def mark(fn: F) -> F:
        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            raise DirtyConfigError(f"@batched action {fn.__name__!r} cannot be a generator")
        setattr(fn, _MARK, spec)
        return fn
    return mark


def mark_batched(fn: F, spec: BatchSpec) -> F:
    """Give ``fn`` the mark of @batched with ``spec`` (a stand-in for an app's batched action)."""
    setattr(fn, _MARK, spec)
    return fn


def batch_spec(obj: Any) -> BatchSpec | None:
    """The BatchSpec of a (bound) method marked with @batched, else None."""
    spec = getattr(obj, _MARK, None)
    return spec if isinstance(spec, BatchSpec) else None


def batched_actions(cls: type) -> dict[str, int]:
    """The batched actions of an app class, with their max_size."""
    out: dict[str, int] = {}
    for name in dir(cls):
        if name.startswith("_"):
            continue
        spec = batch_spec(getattr(cls, name, None))
        if spec is not None:
            out[name] = spec.max_size
    return out


class Item:
    """One caller waiting in a batch."""

    __slots__ = ("conn", "rid", "args", "deadline", "timeout", "queued")

    def __init__(self, conn: Any, rid: int, args: tuple[Any, ...], deadline: float,
                 timeout: float | None) -> None:
        self.conn = conn
        self.rid = rid
        self.args = args
        self.deadline = deadline
        self.timeout = timeout
        self.queued = time.monotonic()


class ActionQueue:
    """The callers gathering for one batched action of one app."""

    def __init__(self, app: str, action: str, fn: Callable[[list[Any]], Any], spec: BatchSpec,
                 rec: int) -> None:
        self.app = app
        self.rec = rec  # its record in the worker's CallStats
        self.action = action
        self.fn = fn
        self.spec = spec
        self.items: collections.deque[Item] = collections.deque()
        self.starting = False  # a batch was handed to a slot and has not taken its items yet


class Batcher:
    """Gathers the calls of every batched action of one worker and runs them on its slots."""

    def __init__(self, submit: Callable[[Callable[[], None]], None], reply_error: Callable[..., None],
                 reply: Callable[..., list[Any] | None], running: dict[int, float], queue_size: int, threads: int,
                 board: sb.Scoreboard | None, slot: int, run_coro: Callable[[Any], Any],
                 app_error: Callable[[str, str, BaseException], DirtyError],
                 stats: cs.CallStats | None = None) -> None:
        self.submit = submit  # queue a job for the next free slot
        self.reply_error = reply_error  # (conn, rid, DirtyError)
        self.reply = reply  # (conn, rid, value, app, action) -> the encoded frame, or None if refused
        self.running = running  # thread ident -> deadline, watched by the heartbeat
        # Callers one action may have waiting before DirtyBusyError: a full batch for every
        # slot plus the pool's queue bound.
        self.queue_size = queue_size
        self.threads = threads
        self.board = board
        self.board_slot = slot
        self.run_coro = run_coro
        self.app_error = app_error  # wraps an exception of app code with its traceback
        self.callstats = stats or cs.CallStats.create()  # outcomes, batch sizes and waits, per action
        self.cond = threading.Condition()
        self.queues: dict[tuple[str, str], ActionQueue] = {}
        self.count = 0  # batched calls accepted and not yet answered
        self.batches = 0
        self.sizes: collections.Counter[int] = collections.Counter()  # batch size histogram
        self.wait_total = 0.0  # seconds callers spent gathering, summed
        self.stopped = False
        self.thread = threading.Thread(target=self._loop, name="dirty-batcher", daemon=True)

    def start(self) -> None:
        """Start the thread that flushes batches when they are full or old enough."""
        self.thread.start()

    def stop(self) -> None:
        """Stop the flushing thread."""
        with self.cond:
            self.stopped = True
            self.cond.notify()

    def idle(self) -> bool:
        """True when no batched call waits or runs."""
        return self.count == 0

    def _publish(self) -> None:
        if self.board is not None:
            self.board.set_i64(self.board_slot, sb.BATCHED, self.count)

    def add(self, conn: Any, rid: int, app: str, action: str, fn: Callable[[list[Any]], Any],
            spec: BatchSpec, args: tuple[Any, ...], deadline: float, timeout: float | None) -> None:
        """Put one call in its action's batch (or refuse it when too many wait)."""
        key = (app, action)
        full = False
        with self.cond:
            q = self.queues.get(key)
            if q is None:
                q = self.queues[key] = ActionQueue(app, action, fn, spec, self.callstats.series(app, action))
            bound = self.queue_size + self.threads * spec.max_size
            if len(q.items) >= bound:
                busy = True
            else:
                busy = False
                q.items.append(Item(conn, rid, args, deadline, timeout))
                self.callstats.begin(q.rec)
                self.count += 1
                self._publish()
                n = len(q.items)
                if n >= spec.max_size and not q.starting:
                    # Full: to a slot now, from this thread (which takes it at once when a slot
                    # is free), not through the flushing thread: two thread switches fewer.
                    q.starting = full = True
                elif n == 1:
                    self.cond.notify()  # the flushing thread times the new batch
        if full:
            self.submit(functools.partial(self._run, q))
        if busy:
            self.reply_error(conn, rid, DirtyBusyError(
                f"batched action {app}.{action} has {bound} calls waiting", {"app_path": app}))
            self.callstats.refuse(q.rec)

    # ---------------------------------------------------------- flushing
    def _loop(self) -> None:
        while True:
            expired: list[tuple[ActionQueue, Item]] = []
            due: list[ActionQueue] = []
            with self.cond:
                if self.stopped:
                    return
                now = time.monotonic()
                wake: float | None = None
                for q in self.queues.values():
                    if not q.items:
                        continue
                    if any(it.deadline <= now for it in q.items):
                        keep: collections.deque[Item] = collections.deque()
                        for it in q.items:
                            (expired.append((q, it)) if it.deadline <= now else keep.append(it))
                        q.items = keep
                    for it in q.items:
                        wake = it.deadline if wake is None else min(wake, it.deadline)
                    if not q.items or q.starting:
                        continue
                    flush_at = q.items[0].queued + q.spec.max_wait
                    if len(q.items) >= q.spec.max_size or flush_at <= now:
                        q.starting = True
                        due.append(q)
                    else:
                        wake = flush_at if wake is None else min(wake, flush_at)
                if expired:
                    self.count -= len(expired)
                    self._publish()
                if not due and not expired:
                    self.cond.wait(None if wake is None else max(0.0, wake - now))
                    continue
            for q, it in expired:
                self._expire(q, it)
            for q in due:
                self.submit(functools.partial(self._run, q))

    def _expire(self, q: ActionQueue, it: Item) -> None:
        # The caller gave up (or is about to): answer now and never compute its slot.
        self.reply_error(it.conn, it.rid, DirtyTimeoutError(
            f"batched call {q.app}.{q.action} expired after {it.timeout} s while waiting for its batch",
            timeout=it.timeout))
        self.callstats.end(q.rec, cs.TIMEOUT, time.monotonic() - it.queued)

    def _run(self, q: ActionQueue) -> None:
        """Run one batch of ``q`` (on a slot thread): take up to max_size callers, call, answer each."""
        now = time.monotonic()
        take: list[Item] = []
        expired: list[Item] = []
        with self.cond:
            q.starting = False
            while q.items and len(take) < q.spec.max_size:
                it = q.items.popleft()
                if it.deadline <= now:
                    expired.append(it)
                elif it.rid in it.conn.cancelled or not it.conn.alive:
                    self.count -= 1
                    it.conn.cancelled.discard(it.rid)
                    self.callstats.end(q.rec, cs.CANCELLED, now - it.queued)
                else:
                    take.append(it)
            self.count -= len(expired)
            if take:
                self.batches += 1
                self.sizes[len(take)] += 1
                waits = [now - it.queued for it in take]
                self.wait_total += sum(waits)
                self.callstats.batch(q.rec, waits)
            self._publish()
            self.cond.notify()  # what is left may make the next batch already
        for it in expired:
            self._expire(q, it)
        if not take:
            return
        ident = threading.get_ident()
        self.running[ident] = max(it.deadline for it in take)
        settled = False

        def settle() -> None:
            # Before the answers go out: a caller that sends its next call as soon as it has
            # its answer must already see these calls gone from the scoreboard (routing).
            nonlocal settled
            if not settled:
                settled = True
                with self.cond:
                    self.count -= len(take)
                    self._publish()
        try:
            self._call(q, take, settle)
        finally:
            self.running.pop(ident, None)
            settle()

    def _call(self, q: ActionQueue, take: list[Item], settle: Callable[[], None]) -> None:
        app_error = self.app_error
        try:
            results = q.fn([it.args for it in take])
            if inspect.iscoroutine(results):
                results = self.run_coro(results)
        except Exception as exc:  # the whole batch failed: every caller gets the traceback
            settle()
            for it in take:
                self.reply_error(it.conn, it.rid, app_error(q.app, q.action, exc))
            self._ended(q, take, cs.ERROR)
            return
        if not isinstance(results, (list, tuple)) or len(results) != len(take):
            got = f"{len(results)} results" if isinstance(results, (list, tuple)) else \
                f"a {type(results).__name__}"
            err = DirtyAppError(f"batched action {q.app}.{q.action} returned {got} for a batch of "
                                f"{len(take)} calls (it must return a list of the same length)",
                                {"app_path": q.app, "action": q.action})
            settle()
            for it in take:
                self.reply_error(it.conn, it.rid, err)
            self._ended(q, take, cs.ERROR)
            return
        # The results for one connection go out in one write: a batch of 64 callers from
        # a few processes costs a few system calls, not 64.
        out: dict[Any, list[Any]] = {}
        failed: list[Item] = []
        for it, result in zip(take, results, strict=True):
            if isinstance(result, BaseException):  # this caller alone fails
                self.reply_error(it.conn, it.rid, app_error(q.app, q.action, result))
                failed.append(it)
                continue
            bufs = self.reply(it.conn, it.rid, result, q.app, q.action)
            if bufs is not None:
                out.setdefault(it.conn, []).extend(bufs)
            else:
                failed.append(it)  # refused (cannot encode, too large): an ERROR went instead
        settle()
        for conn, bufs in out.items():
            conn.send(bufs)
        self._ended(q, failed, cs.ERROR)
        if failed:
            ids = {id(it) for it in failed}
            take = [it for it in take if id(it) not in ids]
        self._ended(q, take, cs.OK)

    def _ended(self, q: ActionQueue, items: list[Item], outcome: int) -> None:
        """Count the end of these callers' calls (an OK past its deadline is a timeout)."""
        now = time.monotonic()
        for it in items:
            late = outcome == cs.OK and now > it.deadline
            self.callstats.end(q.rec, cs.TIMEOUT if late else outcome, now - it.queued)

    def stats(self) -> dict[str, Any]:
        """Batch count, size histogram and mean queue wait, for the status output."""
        with self.cond:
            return {"batches": self.batches, "sizes": dict(sorted(self.sizes.items())),
                    "mean_wait_ms": round(1000 * self.wait_total / max(1, sum(
                        k * v for k, v in self.sizes.items())), 3),
                    "waiting": self.count}


