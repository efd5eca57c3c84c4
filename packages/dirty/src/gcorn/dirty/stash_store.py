"""The stash tables' store interface, and the default store: the dirty arbiter's memory.

A request is ``[op, table, key, value, extra]`` (what a STASH frame carries);
every store answers the same operations with the same results, so the caller
never knows which one holds the tables. ``put``'s ``extra`` is the entry's
time to live in seconds (None: forever; a later ``put`` without one makes it
permanent again, as Redis's SET does); ``incr`` keeps an entry's TTL.
"""

from __future__ import annotations

import fnmatch
import heapq
import itertools
import math
import time
from typing import Any, Protocol

from .errors import StashError, StashTableNotFoundError

_MISSING = object()


class StashBackend(Protocol):
    """What the arbiter needs of a store (StashStore here, RedisStashStore in stash_redis)."""

    #: True when handle() does I/O that may wait (it then runs off the arbiter's event loop).
    blocking: bool
    #: How logs and errors name the store.
    name: str

    def handle(self, request: Any) -> Any:
        """Run one request ``[op, table, key, value, extra]`` and return its result."""

    def close(self) -> None:
        """Release what the store holds (connections)."""


def check_request(request: Any) -> tuple[str, str, Any, Any, Any]:
    """The five fields of a well-formed request (StashError for anything else)."""
    if not isinstance(request, (list, tuple)) or len(request) != 5:
        raise StashError(f"malformed stash request {request!r:.100}")
    op, table, key, value, extra = request
    if not isinstance(op, str):
        raise StashError(f"unknown stash operation {op!r:.100}")
    if op != "tables" and (not isinstance(table, str) or not table):
        raise StashError(f"stash table name must be a non-empty str, got {table!r:.100}")
    return op, table, key, value, extra


def check_ttl(ttl: Any) -> float | None:
    """A put's TTL: None, or a finite number of seconds > 0."""
    if ttl is None:
        return None
    if type(ttl) not in (int, float) or not math.isfinite(ttl) or ttl <= 0:
        raise StashError(f"stash ttl must be a number of seconds > 0 (or None), got {ttl!r:.100}")
    return float(ttl)


def check_incr(n: Any) -> None:
    """An incr's amount: an int or a float (not a bool)."""
    if type(n) not in (int, float):
        raise StashError(f"stash incr needs an int or float, got {type(n).__name__}")


def not_a_number(table: str, key: Any, current: Any) -> StashError:
    """The error of an incr on a value that is not a number."""
    return StashError(f"stash incr: the value under {key!r:.100} in {table!r} is a "
                      f"{type(current).__name__}, not a number")


def missing_table(table: str) -> StashTableNotFoundError:
    """The error of an operation that needs an existing table."""
    return StashTableNotFoundError(f"stash table {table!r} does not exist", {"table_name": table})


def match_keys(keys: list[Any], pattern: Any) -> list[Any]:
    """The keys an fnmatch pattern selects (str keys only; every key without one)."""
    if pattern is None:
        return keys
    return [k for k in keys if isinstance(k, str) and fnmatch.fnmatchcase(k, str(pattern))]


class StashStore:
    """Named key/value tables in the arbiter's memory (no persistence; per-key TTLs)."""

    blocking = False
    name = "the dirty arbiter's memory"

    def __init__(self, tables: list[str] | None = None) -> None:
        self.tables: dict[str, dict[Any, Any]] = {name: {} for name in tables or []}
        # table -> key -> monotonic deadline, for the entries put with a TTL; and per table a
        # heap of (deadline, seq, key), so expiring costs O(log n) per entry, not a scan (an
        # entry whose deadline changed since it was pushed is skipped when it surfaces)
        self.deadlines: dict[str, dict[Any, float]] = {}
        self._heaps: dict[str, list[tuple[float, int, Any]]] = {}
        self._seq = itertools.count()

    def handle(self, request: Any) -> Any:
        """Run one operation ``[op, table, key, value, extra]`` and return its result."""
        op, table, key, value, extra = check_request(request)
        if op == "tables":
            return sorted(self.tables)
        method = getattr(self, "op_" + op, None)
        if method is None:
            raise StashError(f"unknown stash operation {op!r}")
        self._expire(table)
        return method(table, key, value, extra)

    def close(self) -> None:
        """Nothing to release."""

    def _expire(self, table: str) -> None:
        # Expired entries go before any operation sees the table, so none reads them.
        heap = self._heaps.get(table)
        if not heap:
            return
        now = time.monotonic()
        deadlines = self.deadlines.get(table, {})
        values = self.tables.get(table, {})
        while heap and heap[0][0] <= now:
            when, _, key = heapq.heappop(heap)
            if deadlines.get(key) == when:
                del deadlines[key]
                values.pop(key, None)
        if not heap:
            del self._heaps[table]

    def _table(self, table: str) -> dict[Any, Any]:
        try:
            return self.tables[table]
        except KeyError:
            raise missing_table(table) from None

    def op_put(self, table: str, key: Any, value: Any, ttl: Any) -> None:
        """Store a value (creating the table), for ``ttl`` seconds or forever."""
        seconds = check_ttl(ttl)
        self.tables.setdefault(table, {})[key] = value
        if seconds is None:
            self.deadlines.get(table, {}).pop(key, None)
        else:
            when = time.monotonic() + seconds
            self.deadlines.setdefault(table, {})[key] = when
            heapq.heappush(self._heaps.setdefault(table, []), (when, next(self._seq), key))

    def op_get(self, table: str, key: Any, _value: Any, default: Any) -> Any:
        """A value, or the default."""
        return self.tables.get(table, {}).get(key, default)

    def op_incr(self, table: str, key: Any, n: Any, _extra: Any) -> int | float:
        """Add ``n`` to the number under ``key`` (missing: 0); return the new value."""
        check_incr(n)
        values = self.tables.setdefault(table, {})
        current = values.get(key, 0)
        if type(current) not in (int, float):
            raise not_a_number(table, key, current)
        values[key] = current + n
        return values[key]  # type: ignore[no-any-return]

    def op_delete(self, table: str, key: Any, _value: Any, _extra: Any) -> bool:
        """Remove a key; True if it was there."""
        self.deadlines.get(table, {}).pop(key, None)
        return self.tables.get(table, {}).pop(key, _MISSING) is not _MISSING

    def op_exists(self, table: str, key: Any, _value: Any, check_key: Any) -> bool:
        """Does the table (or the key) exist?"""
        if table not in self.tables:
            return False
        return key in self.tables[table] if check_key else True

    def op_keys(self, table: str, _key: Any, _value: Any, pattern: Any) -> list[Any]:
        """Keys, optionally matching an fnmatch pattern."""
        return match_keys(list(self.tables.get(table, {})), pattern)

    def op_items(self, table: str, _key: Any, _value: Any, _extra: Any) -> list[Any]:
        """[key, value] pairs of an existing table."""
        return [[k, v] for k, v in self._table(table).items()]

    def op_clear(self, table: str, _key: Any, _value: Any, _extra: Any) -> None:
        """Empty an existing table."""
        self._table(table).clear()
        self.deadlines.pop(table, None)
        self._heaps.pop(table, None)

    def op_info(self, table: str, _key: Any, _value: Any, _extra: Any) -> dict[str, Any]:
        """Name and size of an existing table."""
        return {"name": table, "size": len(self._table(table))}

    def op_len(self, table: str, _key: Any, _value: Any, _extra: Any) -> int:
        """Number of keys (0 for a missing table)."""
        return len(self.tables.get(table, {}))

    def op_ensure(self, table: str, _key: Any, _value: Any, _extra: Any) -> None:
        """Create the table if missing."""
        self.tables.setdefault(table, {})

    def op_delete_table(self, table: str, _key: Any, _value: Any, _extra: Any) -> bool:
        """Drop a table; True if it existed."""
        self.deadlines.pop(table, None)
        self._heaps.pop(table, None)
        return self.tables.pop(table, None) is not None
