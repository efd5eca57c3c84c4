"""The process-wide dirty client: ``connect``, ``get_dirty_client`` and friends."""

from __future__ import annotations

import os
import threading

from .client import SOCKET_ENV, DirtyClient
from .errors import DirtyError


def connect(path: str, timeout: float | None = None) -> DirtyClient:
    """A client for the pool listening on ``path`` (connections open on first use)."""
    return DirtyClient(path, timeout=timeout)


_shared: DirtyClient | None = None
_shared_lock = threading.Lock()


def _shared_client(timeout: float | None) -> DirtyClient:
    global _shared
    path = os.environ.get(SOCKET_ENV)
    if not path:
        raise DirtyError(f"no dirty pool socket known: {SOCKET_ENV} is not set")
    with _shared_lock:
        if _shared is None or _shared.socket_path != path or _shared._pid != os.getpid():
            _shared = DirtyClient(path, timeout=timeout)
        return _shared


def get_dirty_client(timeout: float | None = None) -> DirtyClient:
    """The process-wide client of the pool named by ``GCORN_DIRTY_SOCKET`` (thread-safe)."""
    return _shared_client(timeout)


async def get_dirty_client_async(timeout: float | None = None) -> DirtyClient:
    """The process-wide client, for asyncio code (the same object works in any loop)."""
    return _shared_client(timeout)


def close_dirty_client() -> None:
    """Close the process-wide client."""
    global _shared
    with _shared_lock:
        client, _shared = _shared, None
    if client is not None:
        client.close()


async def close_dirty_client_async() -> None:
    """Close the process-wide client from async code."""
    close_dirty_client()


def set_dirty_socket_path(path: str) -> None:
    """Point ``get_dirty_client()`` at ``path`` (sets ``GCORN_DIRTY_SOCKET``)."""
    os.environ[SOCKET_ENV] = path
