"""`SideProcess`: a named non-worker child the arbiter supervises (e.g. the dirty arbiter).

The arbiter forks it after binding, restarts it with exponential backoff when
it dies, forwards TERM/HUP/USR1 to it, and stops it after the workers.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gcorn.arbiter.backoff import backoff_delay


class SideProcess:
    """What to run in the child (`target(*args, **kwargs)`) and its supervision state."""

    def __init__(
        self,
        name: str,
        target: Callable[..., Any],
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        stable_after: float = 10.0,
        parent_death_signal: int | None = signal.SIGTERM,
    ) -> None:
        if not name:
            raise ValueError("a side process needs a name")
        self.name = name
        self.target = target
        self.args = tuple(args)
        self.kwargs = dict(kwargs or {})
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        # a run longer than this resets the backoff: the crash was not a loop
        self.stable_after = stable_after
        # sent by the kernel if the master dies without stopping it (Linux; None: off)
        self.parent_death_signal = parent_death_signal
        self.pid = 0
        self.started_at = 0.0
        self.restarts = 0
        self.next_start_at = 0.0
        self._streak = 0

    def __repr__(self) -> str:
        return f"<SideProcess {self.name} pid={self.pid}>"

    def started(self, pid: int) -> None:
        """Record a fresh start (called by the arbiter after fork)."""
        self.pid = pid
        self.started_at = time.monotonic()

    def exited(self) -> float:
        """Record an exit; returns the delay before the next start."""
        now = time.monotonic()
        if now - self.started_at >= self.stable_after:
            self._streak = 0
        self._streak += 1
        self.restarts += 1
        self.pid = 0
        delay = backoff_delay(self._streak, self.backoff_base, self.backoff_max)
        self.next_start_at = now + delay
        return delay

    def due(self) -> bool:
        """True when it is not running and its backoff has passed."""
        return self.pid == 0 and time.monotonic() >= self.next_start_at
