"""The stash: shared key/value tables held by the dirty arbiter.

Every function talks to the pool named by ``GCORN_DIRTY_SOCKET`` (so it works
in dirty workers and in HTTP workers beside the pool); pass ``client=`` to
use another pool.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .client import DirtyClient
from .clients import get_dirty_client
from .errors import StashKeyNotFoundError

__all__ = ["StashTable", "clear", "delete", "delete_table", "ensure", "exists", "get", "info",
           "keys", "put", "table", "tables"]


def _c(client: DirtyClient | None) -> DirtyClient:
    return client if client is not None else get_dirty_client()


def put(table: str, key: Any, value: Any, *, client: DirtyClient | None = None) -> None:
    """Store ``value`` under ``key`` (the table is created if needed)."""
    _c(client).stash_request("put", table, key, value)


def get(table: str, key: Any, default: Any = None, *, client: DirtyClient | None = None) -> Any:
    """The value under ``key``, or ``default``."""
    return _c(client).stash_request("get", table, key, None, default)


def delete(table: str, key: Any, *, client: DirtyClient | None = None) -> bool:
    """Remove ``key``; True if it was there."""
    return bool(_c(client).stash_request("delete", table, key))


def exists(table: str, key: Any = None, *, client: DirtyClient | None = None) -> bool:
    """Does the table (or, with ``key``, the key in it) exist?"""
    return bool(_c(client).stash_request("exists", table, key, None, key is not None))


def keys(table: str, pattern: str | None = None, *, client: DirtyClient | None = None) -> list[Any]:
    """Keys of the table, optionally filtered by an fnmatch glob."""
    return list(_c(client).stash_request("keys", table, None, None, pattern))


def clear(table: str, *, client: DirtyClient | None = None) -> None:
    """Remove every key of the table."""
    _c(client).stash_request("clear", table)


def info(table: str, *, client: DirtyClient | None = None) -> dict[str, Any]:
    """``{"name", "size"}`` of the table."""
    return dict(_c(client).stash_request("info", table))


def ensure(table: str, *, client: DirtyClient | None = None) -> None:
    """Create the table if it does not exist."""
    _c(client).stash_request("ensure", table)


def delete_table(table: str, *, client: DirtyClient | None = None) -> bool:
    """Drop the table; True if it existed."""
    return bool(_c(client).stash_request("delete_table", table))


def tables(*, client: DirtyClient | None = None) -> list[str]:
    """Names of every table."""
    return list(_c(client).stash_request("tables"))


def table(name: str, *, client: DirtyClient | None = None) -> StashTable:
    """A dict-like view of one table."""
    return StashTable(name, client)


class StashTable:
    """Dict-like access to one stash table (each operation is one message to the arbiter)."""

    def __init__(self, name: str, client: DirtyClient | None = None) -> None:
        self.name = name
        self._client = client

    def _req(self, op: str, key: Any = None, value: Any = None, extra: Any = None) -> Any:
        return _c(self._client).stash_request(op, self.name, key, value, extra)

    def __getitem__(self, key: Any) -> Any:
        missing = _Missing.TOKEN
        value = self._req("get", key, None, missing)
        if value == missing:
            raise KeyError(key)
        return value

    def __setitem__(self, key: Any, value: Any) -> None:
        self._req("put", key, value)

    def __delitem__(self, key: Any) -> None:
        if not self._req("delete", key):
            raise KeyError(key)

    def __contains__(self, key: Any) -> bool:
        return bool(self._req("exists", key, None, True))

    def __iter__(self) -> Iterator[Any]:
        return iter(self.keys())

    def __len__(self) -> int:
        return int(self._req("len"))

    def get(self, key: Any, default: Any = None) -> Any:
        """The value under ``key``, or ``default``."""
        return self._req("get", key, None, default)

    def keys(self, pattern: str | None = None) -> list[Any]:
        """Keys, optionally filtered by an fnmatch glob."""
        return list(self._req("keys", None, None, pattern))

    def items(self) -> list[tuple[Any, Any]]:
        """``(key, value)`` pairs."""
        if not exists(self.name, client=self._client):
            return []
        return [(k, v) for k, v in self._req("items")]

    def values(self) -> list[Any]:
        """Values."""
        return [v for _, v in self.items()]

    def clear(self) -> None:
        """Remove every key."""
        if exists(self.name, client=self._client):
            self._req("clear")

    def pop(self, key: Any, *default: Any) -> Any:
        """Remove ``key`` and return its value (or ``default``)."""
        try:
            value = self[key]
        except KeyError:
            if default:
                return default[0]
            raise
        self._req("delete", key)
        return value

    def __repr__(self) -> str:
        return f"<StashTable {self.name!r}>"


class _Missing:
    # A sentinel that survives the safe codec: a string no caller would store.
    TOKEN = "\x00gcorn-dirty-stash-missing\x00"


# Exported for callers who prefer an exception to a default.
KeyNotFound = StashKeyNotFoundError
