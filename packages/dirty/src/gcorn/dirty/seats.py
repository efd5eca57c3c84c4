"""Seats: which apps each dirty worker loads (per-app allocation).

A seat is a place in the pool with a fixed list of apps; the worker filling
it may die and be replaced, and the replacement loads the same apps.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .app import AppSpec


@dataclasses.dataclass(eq=False)
class Seat:
    """A place in the pool: its apps, its current worker, its replacement in progress."""

    apps: tuple[str, ...]
    worker: Any = None
    pending: Any = None  # replacement being booted (HUP, recycling)
    failures: int = 0  # consecutive exits before boot
    next_spawn_at: float = 0.0
    resources: dict[str, list[tuple[str, float]]] = dataclasses.field(default_factory=dict)


class SeatPlan:
    """Allocates apps to seats: every unlimited app everywhere, each ``:N`` app on N seats."""

    def __init__(self, specs: list[AppSpec]) -> None:
        self.specs = specs
        self.seats: list[Seat] = []

    def minimum(self) -> int:
        """Fewest workers the apps' N require."""
        return max([s.limit for s in self.specs if s.limit is not None] or [1])

    def holders(self, path: str) -> int:
        """How many seats load ``path``."""
        return sum(1 for seat in self.seats if path in seat.apps)

    def add_seat(self) -> Seat:
        """Append a seat with every unlimited app and each limited app still under its N."""
        apps = tuple(s.path for s in self.specs
                     if s.limit is None or self.holders(s.path) < s.limit)
        seat = Seat(apps)
        self.seats.append(seat)
        return seat

    def removable_seat(self) -> Seat | None:
        """The newest seat whose removal keeps every app at its N, or None."""
        if len(self.seats) <= self.minimum():
            return None
        limited = {s.path: s.limit for s in self.specs if s.limit is not None}
        for seat in reversed(self.seats):
            if all(self.holders(p) - 1 >= limited[p] for p in seat.apps if p in limited):
                return seat
        return None
