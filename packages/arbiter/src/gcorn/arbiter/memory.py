"""Resident memory of a child, and the memory cap: N checks in a row above it recycle a worker.

RSS comes from /proc/PID/status (VmRSS) on Linux, else from psutil when it is
installed; None when neither can tell (the cap is then never applied).
"""

from __future__ import annotations

import importlib

from gcorn.arbiter.contracts import setting

MIB = 1024 * 1024


def rss_bytes(pid: int) -> int | None:
    """The resident set size of `pid` in bytes, or None when it cannot be read."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmRSS:"):
                    # "VmRSS:     12345 kB"
                    return int(line.split()[1]) * 1024
        return None  # a zombie has no VmRSS line
    except FileNotFoundError:
        return _psutil_rss(pid)
    except (OSError, ValueError, IndexError):
        return None


def _psutil_rss(pid: int) -> int | None:
    try:
        psutil = importlib.import_module("psutil")  # optional, not a dependency
    except ImportError:
        return None
    try:
        return int(psutil.Process(pid).memory_info().rss)
    except Exception:  # psutil.Error and friends: the process is gone or hidden
        return None


class MemoryCap:
    """Counts consecutive over-cap checks per pid; says when a worker must be recycled."""

    def __init__(self, limit_mib: float = 0, checks: int = 3) -> None:
        self.limit = int(limit_mib * MIB)
        self.checks = max(1, int(checks))
        self._over: dict[int, int] = {}

    @classmethod
    def from_cfg(cls, cfg: object, limit_name: str = "max_worker_memory",
                 checks_name: str = "max_worker_memory_checks") -> MemoryCap:
        """A cap from cfg.<limit_name> (MiB, 0 = off) and cfg.<checks_name>.

        Any settings object: the names are the caller's (the dirty pool has its own).
        """
        limit = setting(cfg, limit_name, 0)
        checks = setting(cfg, checks_name, 3) or 3
        return cls(float(limit), int(checks))

    @property
    def enabled(self) -> bool:
        """True when a cap is set."""
        return self.limit > 0

    def check(self, pid: int, rss: int | None) -> bool:
        """Record one measurement; True when `pid` has been over the cap `checks` times in a row."""
        if rss is None or rss <= self.limit:
            self._over.pop(pid, None)
            return False
        count = self._over.get(pid, 0) + 1
        self._over[pid] = count
        return count >= self.checks

    def forget(self, pid: int) -> None:
        """Drop the count of a worker that is gone or being replaced."""
        self._over.pop(pid, None)
