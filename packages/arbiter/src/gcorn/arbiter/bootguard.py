"""Crash-loop protection: back off after workers fail to boot, give up past a limit.

Like an OTP supervisor's restart intensity: at most `limit` boot failures in
`window` seconds; past that the master stops. Between failures, spawning is
delayed exponentially so a broken app never makes the master fork in a hot loop.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable

from gcorn.arbiter.backoff import backoff_delay


class BootGuard:
    """Counts worker boot failures and says when the next spawn may happen."""

    def __init__(
        self,
        limit: int = 5,
        window: float = 60.0,
        backoff_base: float = 0.1,
        backoff_max: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._clock = clock
        self._failures: collections.deque[float] = collections.deque()
        self._streak = 0  # failures since a worker last booted
        self.next_spawn_at = 0.0

    def record_failure(self) -> bool:
        """Count one boot failure; True when the limit is now exceeded."""
        now = self._clock()
        self._failures.append(now)
        while self._failures and now - self._failures[0] > self.window:
            self._failures.popleft()
        self._streak += 1
        self.next_spawn_at = now + backoff_delay(self._streak, self.backoff_base, self.backoff_max)
        return self.limit > 0 and len(self._failures) >= self.limit

    def record_boot(self) -> None:
        """A worker booted: the app is loadable again, so stop backing off."""
        self._streak = 0
        self.next_spawn_at = 0.0

    @property
    def recent_failures(self) -> int:
        """Failures counted in the current window."""
        now = self._clock()
        return sum(1 for t in self._failures if now - t <= self.window)

    def may_spawn(self) -> bool:
        """False while backing off after a failure."""
        return self._clock() >= self.next_spawn_at
