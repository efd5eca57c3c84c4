"""The stash: shared key/value tables held by the dirty arbiter.

Every function talks to the pool named by ``set_stash_socket_path()`` or,
by default, ``GCORN_DIRTY_SOCKET`` (so it works in dirty workers and in HTTP
workers beside the pool); pass ``client=`` to use another pool, or make a
``StashClient(path)``. Each operation is atomic (the arbiter runs one at a time;
with ``dirty_stash_backend`` set, each is one Redis script); ``incr`` is the
read-modify-write that needs it. ``put(..., ttl=seconds)`` makes an entry expire.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

from .client import SOCKET_ENV, DirtyClient
from .errors import StashError, StashKeyNotFoundError
from .shared_client import get_dirty_client
from .stash_store import check_ttl

__all__ = ["StashClient", "StashTable", "clear", "delete", "delete_table", "ensure", "exists",
           "get", "get_stash_socket_path", "incr", "info", "keys", "put", "set_stash_socket_path",
           "table", "tables"]

_socket_path: str | None = None
_path_client: DirtyClient | None = None
_path_lock = threading.Lock()


def set_stash_socket_path(path: str | None) -> None:
    """Point the module-level stash functions at the pool listening on ``path`` (None: back to the default)."""
    global _socket_path, _path_client
    with _path_lock:
        _socket_path = path
        old, _path_client = _path_client, None
    if old is not None:
        old.close()


def get_stash_socket_path() -> str:
    """The socket the module-level stash functions use; StashError when none is known."""
    path = _socket_path or os.environ.get(SOCKET_ENV)
    if not path:
        raise StashError(f"no stash socket known: call set_stash_socket_path() or set {SOCKET_ENV} "
                         "(the dirty pool's socket)")
    return path


def _c(client: DirtyClient | None) -> DirtyClient:
    global _path_client
    if client is not None:
        return client
    if _socket_path is None:
        get_stash_socket_path()  # a StashError that says what to set
        return get_dirty_client()
    with _path_lock:
        if _path_client is None or _path_client.socket_path != _socket_path \
                or _path_client._pid != os.getpid():
            _path_client = DirtyClient(_socket_path)
        return _path_client


def put(table: str, key: Any, value: Any, *, ttl: float | None = None,
        client: DirtyClient | None = None) -> None:
    """Store ``value`` under ``key`` (the table is created if needed), for ``ttl`` seconds or forever."""
    _c(client).stash_request("put", table, key, value, check_ttl(ttl))


def get(table: str, key: Any, default: Any = None, *, client: DirtyClient | None = None) -> Any:
    """The value under ``key``, or ``default``."""
    return _c(client).stash_request("get", table, key, None, default)


def incr(table: str, key: Any, n: int | float = 1, *, client: DirtyClient | None = None) -> int | float:
    """Add ``n`` to the number under ``key`` (missing: 0) atomically; return the new value."""
    if type(n) not in (int, float):
        raise StashError(f"stash.incr needs an int or float, got {type(n).__name__}")
    return _c(client).stash_request("incr", table, key, n)  # type: ignore[no-any-return]


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


class StashClient:
    """The stash of one pool, gunicorn's shape: ``StashClient(socket_path, timeout=30.0)``."""

    def __init__(self, socket_path: str, timeout: float | None = 30.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self.client = DirtyClient(socket_path, timeout=timeout)

    def put(self, table: str, key: Any, value: Any, ttl: float | None = None) -> None:
        """Store ``value`` under ``key``, for ``ttl`` seconds or forever."""
        put(table, key, value, ttl=ttl, client=self.client)

    def get(self, table: str, key: Any, default: Any = None) -> Any:
        """The value under ``key``, or ``default``."""
        return get(table, key, default, client=self.client)

    def incr(self, table: str, key: Any, n: int | float = 1) -> int | float:
        """Add ``n`` to the number under ``key`` atomically; return the new value."""
        return incr(table, key, n, client=self.client)

    def delete(self, table: str, key: Any) -> bool:
        """Remove ``key``; True if it was there."""
        return delete(table, key, client=self.client)

    def exists(self, table: str, key: Any = None) -> bool:
        """Does the table (or the key in it) exist?"""
        return exists(table, key, client=self.client)

    def keys(self, table: str, pattern: str | None = None) -> list[Any]:
        """Keys of the table, optionally filtered by an fnmatch glob."""
        return keys(table, pattern, client=self.client)

    def clear(self, table: str) -> None:
        """Remove every key of the table."""
        clear(table, client=self.client)

    def info(self, table: str) -> dict[str, Any]:
        """``{"name", "size"}`` of the table."""
        return info(table, client=self.client)

    def ensure(self, table: str) -> None:
        """Create the table if it does not exist."""
        ensure(table, client=self.client)

    def delete_table(self, table: str) -> bool:
        """Drop the table; True if it existed."""
        return delete_table(table, client=self.client)

    def tables(self) -> list[str]:
        """Names of every table."""
        return tables(client=self.client)

    def table(self, name: str) -> StashTable:
        """A dict-like view of one table."""
        return StashTable(name, self.client)

    def close(self) -> None:
        """Close the connection to the arbiter."""
        self.client.close()

    def __enter__(self) -> StashClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class StashTable:
    """Dict-like access to one stash table (each operation is one message to the arbiter)."""

    def __init__(self, name: Any, client: Any = None) -> None:
        if not isinstance(name, str) and isinstance(client, str):
            name, client = client, name  # gunicorn's order: StashTable(client, name)
        if isinstance(client, StashClient):
            client = client.client
        self.name: str = name
        self._client: DirtyClient | None = client

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

    def put(self, key: Any, value: Any, ttl: float | None = None) -> None:
        """Store ``value`` under ``key``, for ``ttl`` seconds or forever."""
        self._req("put", key, value, check_ttl(ttl))

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
