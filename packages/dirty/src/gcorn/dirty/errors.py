"""The DirtyError family: every failure a dirty-pool caller can see.

Each class names the HTTP status an HTTP app should answer with (``status``)
and the exit code the ``gcorn-dirty`` command uses (``exit_code``). Errors
cross the wire as a dict ``{type, message, details}`` and are rebuilt on the
other side by :func:`error_from_wire`, so a worker-side failure surfaces in
the caller as the same class.
"""

from __future__ import annotations

import logging
import os
import traceback
from typing import Any


class DirtyError(Exception):
    """Base class of every dirty-pool error."""

    status = 500
    exit_code = 1

    def __init__(self, message: str = "", details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = dict(details or {})

    def copy(self) -> DirtyError:
        """A fresh instance with the same class, message and details (one per raising caller)."""
        return type(self)(self.message, self.details)

    def to_wire(self) -> dict[str, Any]:
        """Return the dict that travels in an ERROR frame."""
        return {"type": type(self).__name__, "message": self.message, "details": self.details}


class DirtyConfigError(DirtyError):
    """The pool configuration is invalid (bad app spec, bad setting)."""

    exit_code = 2


class DirtyProtocolError(DirtyError):
    """A peer sent bytes that are not a valid frame or value."""

    status = 502


class DirtyConnectionError(DirtyError):
    """The pool's socket could not be reached or the connection broke."""

    status = 503

    def __init__(self, message: str = "", details: dict[str, Any] | None = None,
                 socket_path: str | None = None) -> None:
        details = dict(details or {})
        if socket_path is not None:
            details.setdefault("socket_path", socket_path)
        super().__init__(message, details)
        self.socket_path = details.get("socket_path")


_reported: set[tuple[str, int | None]] = set()
_client_log = logging.getLogger("gcorn.dirty.client")


def unreachable(path: str, exc: OSError, what: str = "dirty pool") -> DirtyConnectionError:
    """The error for a failed connect to ``path``; logged once per path and errno (error level).

    A caller sees the exception every time; the log (gcorn's error log) says it
    once, so a pool refused to every request of an HTTP worker (EACCES when the
    pool runs as another user, ENOENT, ECONNREFUSED) is visible without flooding it.
    """
    key = (path, exc.errno)
    if key not in _reported:
        _reported.add(key)
        _client_log.error("cannot connect to the %s at %s: [Errno %s] %s (pid %s, uid %s)", what, path,
                          exc.errno, exc.strerror or exc, os.getpid(), os.getuid())
    return DirtyConnectionError(f"cannot connect to the {what} at {path}: {exc}", socket_path=path)


class DirtyTimeoutError(DirtyError):
    """A call did not finish before its deadline."""

    status = 504

    def __init__(self, message: str = "", details: dict[str, Any] | None = None,
                 timeout: float | None = None) -> None:
        details = dict(details or {})
        if timeout is not None:
            details.setdefault("timeout", timeout)
        super().__init__(message, details)
        self.timeout = details.get("timeout")


class DirtyWorkerError(DirtyError):
    """A dirty worker failed outside of the app's own code."""

    status = 502


class DirtyWorkerLostError(DirtyWorkerError):
    """The worker running a call died (or its connection broke) before it answered."""


class DirtyBusyError(DirtyError):
    """Every slot and the app's queue are full: retry later (HTTP 503 with Retry-After)."""

    status = 503
    retry_after = 1


class DirtyNoWorkersAvailableError(DirtyError):
    """No live worker holds the requested app."""

    status = 503

    def __init__(self, message: str = "", details: dict[str, Any] | None = None,
                 app_path: str | None = None) -> None:
        details = dict(details or {})
        if app_path is not None:
            details.setdefault("app_path", app_path)
        super().__init__(message, details)
        self.app_path = details.get("app_path")


class DirtyMessageTooLargeError(DirtyError):
    """A frame exceeds ``dirty_max_message_size``; the message names both numbers."""

    status = 413

    def __init__(self, message: str = "", details: dict[str, Any] | None = None,
                 size: int | None = None, limit: int | None = None) -> None:
        details = dict(details or {})
        if size is not None:
            details.setdefault("size", size)
        if limit is not None:
            details.setdefault("limit", limit)
        if not message:
            message = (f"message of {details.get('size')} bytes exceeds "
                       f"dirty_max_message_size of {details.get('limit')} bytes")
        super().__init__(message, details)
        self.size = details.get("size")
        self.limit = details.get("limit")


class DirtyAppError(DirtyError):
    """The app raised: carries the remote exception type, message and traceback text."""

    def __init__(self, message: str = "", details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details)
        self.app_path = self.details.get("app_path")
        self.action = self.details.get("action")
        self.remote_type = self.details.get("remote_type")
        self.remote_message = self.details.get("remote_message")
        self.traceback = self.details.get("traceback")

    def __str__(self) -> str:
        return self.message


class DirtyAppNotFoundError(DirtyAppError):
    """The app path is not one the pool was configured with."""

    status = 404


class StashError(DirtyError):
    """A stash operation failed."""


class StashTableNotFoundError(StashError):
    """The stash table does not exist."""

    status = 404


class StashKeyNotFoundError(StashError):
    """The key is not in the stash table."""

    status = 404


class DirtyStashError(StashError):
    """The stash backend (``dirty_stash_backend``, e.g. Redis) cannot be reached or refused.

    ``details["backend"]`` names it (password hidden). Nothing needs restarting: the next
    call after the backend is back goes through.
    """

    status = 503


def app_error(app_path: str, action: str, exc: BaseException) -> DirtyError:
    """Wrap an exception raised by app code as a DirtyAppError with its traceback text."""
    if isinstance(exc, DirtyError):
        return exc
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    where = f" in {app_path}.{action}" if app_path else ""
    return DirtyAppError(f"{type(exc).__name__}{where}: {exc}", {
        "app_path": app_path, "action": action, "remote_type": type(exc).__name__,
        "remote_message": str(exc), "traceback": tb})


_BY_NAME: dict[str, type[DirtyError]] = {
    cls.__name__: cls
    for cls in (
        DirtyError, DirtyConfigError, DirtyProtocolError, DirtyConnectionError,
        DirtyTimeoutError, DirtyWorkerError, DirtyWorkerLostError, DirtyBusyError,
        DirtyNoWorkersAvailableError, DirtyMessageTooLargeError, DirtyAppError,
        DirtyAppNotFoundError, StashError, StashTableNotFoundError, StashKeyNotFoundError,
        DirtyStashError,
    )
}


def error_from_wire(data: Any) -> DirtyError:
    """Rebuild a DirtyError from the dict of an ERROR frame (unknown types become DirtyError)."""
    if not isinstance(data, dict):
        return DirtyProtocolError(f"malformed error payload: {data!r:.200}")
    cls = _BY_NAME.get(str(data.get("type")), DirtyError)
    details = data.get("details")
    return cls(str(data.get("message", "")), details if isinstance(details, dict) else None)
