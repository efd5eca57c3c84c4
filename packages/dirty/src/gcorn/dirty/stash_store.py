"""The stash tables, held in the dirty arbiter and reached by STASH frames."""

from __future__ import annotations

import fnmatch
from typing import Any

from .errors import StashError, StashTableNotFoundError

_MISSING = object()


class StashStore:
    """Named key/value tables in the arbiter's memory (no persistence, no TTL)."""

    def __init__(self, tables: list[str] | None = None) -> None:
        self.tables: dict[str, dict[Any, Any]] = {name: {} for name in tables or []}

    def handle(self, request: Any) -> Any:
        """Run one operation ``[op, table, key, value, extra]`` and return its result."""
        if not isinstance(request, (list, tuple)) or len(request) != 5:
            raise StashError(f"malformed stash request {request!r:.100}")
        op, table, key, value, extra = request
        if op == "tables":
            return sorted(self.tables)
        if not isinstance(table, str) or not table:
            raise StashError(f"stash table name must be a non-empty str, got {table!r:.100}")
        method = getattr(self, "op_" + str(op), None)
        if method is None:
            raise StashError(f"unknown stash operation {op!r}")
        return method(table, key, value, extra)

    def _table(self, table: str) -> dict[Any, Any]:
        try:
            return self.tables[table]
        except KeyError:
            raise StashTableNotFoundError(f"stash table {table!r} does not exist",
                                          {"table_name": table}) from None

    def op_put(self, table: str, key: Any, value: Any, _extra: Any) -> None:
        """Store a value (creating the table)."""
        self.tables.setdefault(table, {})[key] = value

    def op_get(self, table: str, key: Any, _value: Any, default: Any) -> Any:
        """A value, or the default."""
        return self.tables.get(table, {}).get(key, default)

    def op_incr(self, table: str, key: Any, n: Any, _extra: Any) -> int | float:
        """Add ``n`` to the number under ``key`` (missing: 0); return the new value."""
        if type(n) not in (int, float):
            raise StashError(f"stash incr needs an int or float, got {type(n).__name__}")
        values = self.tables.setdefault(table, {})
        current = values.get(key, 0)
        if type(current) not in (int, float):
            raise StashError(f"stash incr: the value under {key!r:.100} in {table!r} is a "
                             f"{type(current).__name__}, not a number")
        values[key] = current + n
        return values[key]  # type: ignore[no-any-return]

    def op_delete(self, table: str, key: Any, _value: Any, _extra: Any) -> bool:
        """Remove a key; True if it was there."""
        return self.tables.get(table, {}).pop(key, _MISSING) is not _MISSING

    def op_exists(self, table: str, key: Any, _value: Any, check_key: Any) -> bool:
        """Does the table (or the key) exist?"""
        if table not in self.tables:
            return False
        return key in self.tables[table] if check_key else True

    def op_keys(self, table: str, _key: Any, _value: Any, pattern: Any) -> list[Any]:
        """Keys, optionally matching an fnmatch pattern."""
        keys = list(self.tables.get(table, {}))
        if pattern is None:
            return keys
        return [k for k in keys if isinstance(k, str) and fnmatch.fnmatchcase(k, str(pattern))]

    def op_items(self, table: str, _key: Any, _value: Any, _extra: Any) -> list[Any]:
        """[key, value] pairs of an existing table."""
        return [[k, v] for k, v in self._table(table).items()]

    def op_clear(self, table: str, _key: Any, _value: Any, _extra: Any) -> None:
        """Empty an existing table."""
        self._table(table).clear()

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
        return self.tables.pop(table, None) is not None
