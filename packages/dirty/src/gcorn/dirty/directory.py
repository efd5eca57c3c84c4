"""The client's view of a pool: the directory from the arbiter plus the live scoreboard.

Routing happens here, in the caller's process: among the workers that hold
the app and are READY, pick the one with the fewest calls in flight (ties
rotate). When every slot is taken the call waits in the caller's process
(see admission.py), or is refused with DirtyBusyError once the app's queue
is full.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any, Protocol

from .codec import get_codec
from .errors import DirtyAppNotFoundError, DirtyBusyError, DirtyNoWorkersAvailableError
from .scoreboard import BATCHED, Scoreboard

Target = tuple[int, int, str]  # (slot, generation, socket path)


class Loaded(Protocol):
    """A client's connection to a worker, as routing sees it."""

    def load(self) -> int:
        """Its calls in flight that hold a slot."""

    def batched_load(self) -> int:
        """Its calls to @batched actions in flight."""


class Directory:
    """One snapshot of the arbiter's directory, bound to the mapped scoreboard."""

    def __init__(self, data: dict[str, Any], board: Scoreboard) -> None:
        self.board = board
        self.epoch: int = data["epoch"]
        self.arbiter_pid: int = data["pid"]
        self.codec = get_codec(data["codec"])
        self.max_size: int = data["max_message_size"]
        self.timeout: float | None = data["timeout"] or None
        self.threads: int = data["threads"]
        self.queue_size: int = data["queue_size"]
        self.apps = frozenset(data["apps"])
        # app -> {action: max_size} of its @batched actions (older arbiters send none)
        self.batched: dict[str, dict[str, int]] = data.get("batched") or {}
        self.by_app: dict[str, list[Target]] = {}
        self.waiting_apps: set[str] = set()  # apps with a seat whose worker is being (re)spawned
        for seat in data["seats"]:
            for app in seat["apps"]:
                if seat["slot"] >= 0:
                    self.by_app.setdefault(app, []).append(
                        (seat["slot"], seat["generation"], seat["socket"]))
                else:
                    self.waiting_apps.add(app)
        self.generations = {t[1] for ts in self.by_app.values() for t in ts}
        self._rotation = itertools.count()

    def stale(self) -> bool:
        """True when the pool's worker set changed since this snapshot."""
        return self.board.epoch() != self.epoch

    def batch_size(self, app: str, action: str) -> int:
        """``max_size`` of a @batched action (0: not batched)."""
        b = self.batched.get(app)
        return b.get(action, 0) if b is not None else 0

    def choose_for(self, app: str, conns: Mapping[int, Loaded],
                   max_size: int = 0) -> tuple[Target, int, int] | None:
        """:meth:`choose` counting a client's open connections (generation -> connection) too.

        ``max_size``: that of the @batched action called (0: a plain call).
        """
        if max_size:
            return self.choose(app, {g: c.batched_load() for g, c in conns.items()}, True, max_size)
        return self.choose(app, {g: c.load() for g, c in conns.items()} if conns else {})

    def choose(self, app: str, local_load: dict[int, int], batched: bool = False,
               max_size: int = 1) -> tuple[Target, int, int] | None:
        """The least-busy READY worker holding ``app``, its load, and the calls queued in those workers.

        None while the only workers for ``app`` are still booting. With ``batched`` (a call
        to a @batched action of ``max_size``), ``local_load`` and the load are batched calls
        in flight, and the choice is :meth:`_choose_batched`'s.
        """
        targets = self.by_app.get(app)
        if not targets:
            if app not in self.apps:
                raise DirtyAppNotFoundError(f"dirty app {app!r} is not configured in this pool "
                                            f"(apps: {sorted(self.apps)})", {"app_path": app})
            if app in self.waiting_apps:
                return None
            raise DirtyNoWorkersAvailableError(f"no dirty worker holds app {app!r}", app_path=app)
        board = self.board
        threads = self.threads
        if batched:
            return self._choose_batched(targets, local_load, max_size)
        n = len(targets)
        start = next(self._rotation) % n if n > 1 else 0
        best: Target | None = None
        best_load = 1 << 62
        queued = 0
        for i in range(n):
            target = targets[(start + i) % n]
            load = board.load(target[0], target[1])
            if load is None:
                continue
            mine = local_load.get(target[1], 0)
            if mine > load:
                load = mine
            if load < best_load:
                best, best_load = target, load
            if load > threads:
                queued += load - threads
        if best is None:
            return None
        return best, best_load, queued

    def _choose_batched(self, targets: list[Target], local: dict[int, int],
                        max_size: int) -> tuple[Target, int, int] | None:
        """Where a batch is filling: the fullest worker with a free slot and under ``max_size``
        batched calls; when there is none, the one with the fewest.

        Spreading the callers of one moment evenly would leave every worker's batch part
        full, each waiting out ``max_wait_ms``; filling one lets it reach ``max_size`` and
        flush at once, while the next callers go to a worker whose slot is free. Ties go
        to the first in the directory's order, not in turn: callers that choose at the same
        moment, before seeing each other's calls, then still pick the same worker.
        """
        board = self.board
        threads = self.threads
        fill: Target | None = None
        fill_load = -1
        least: Target | None = None
        least_load = 1 << 62
        for target in targets:
            slot, gen = target[0], target[1]
            busy = board.load(slot, gen)
            if busy is None:
                continue
            load = board.get_i64(slot, BATCHED)
            mine = local.get(gen, 0)
            if mine > load:
                load = mine
            if load < least_load:
                least, least_load = target, load
            if busy < threads and fill_load < load < max_size:
                fill, fill_load = target, load
        if fill is not None:
            return fill, fill_load, 0
        if least is None:
            return None
        return least, least_load, 0

    def refuse_if_full(self, app: str, queued: int) -> None:
        """Raise DirtyBusyError when ``queued`` calls already wait for ``app`` (dirty_queue_size)."""
        if queued >= self.queue_size:
            raise DirtyBusyError(f"dirty app {app!r} is busy: every slot is taken and "
                                 f"{queued} calls are queued (dirty_queue_size={self.queue_size})",
                                 {"app_path": app})
