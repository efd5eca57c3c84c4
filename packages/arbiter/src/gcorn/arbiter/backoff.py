"""The restart delay every supervisor here uses: exponential in the failures in a row, capped."""

from __future__ import annotations

__all__ = ["backoff_delay"]


def backoff_delay(streak: int, base: float, cap: float) -> float:
    """Seconds before the next start of a child that failed `streak` (>= 1) times in a row."""
    return min(cap, base * 2.0 ** (max(1, streak) - 1))
