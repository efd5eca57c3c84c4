"""The gunicorn-shaped ASGI response for `post_request`, and calling the request hooks
(the request object is gcorn.workers.hook_request's, shared with the WSGI workers)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from gcorn.arbiter import ServerLog
from gcorn.http import reason_phrase

__all__ = ["HookResponse", "active_hook", "call_hook"]


class HookResponse:
    """What `post_request(worker, req, environ, resp)` sees of the response."""

    __slots__ = ("_headers", "sent", "status_code")

    def __init__(self, status_code: int, headers: Sequence[tuple[bytes, bytes]], sent: int) -> None:
        self.status_code = status_code
        self._headers = headers
        self.sent = sent

    @property
    def status(self) -> str:
        """gunicorn's status string, e.g. "200 OK"."""
        phrase = reason_phrase(self.status_code).decode("ascii")
        return f"{self.status_code} {phrase}" if phrase else str(self.status_code)

    @property
    def headers(self) -> list[tuple[str, str]]:
        """The response headers the app set, as str pairs."""
        return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in self._headers]


def call_hook(hook: Any, log: ServerLog, name: str, *args: Any) -> None:
    """Run a server hook; an exception in it is logged, never raised into the request."""
    try:
        hook(*args)
    except Exception:
        log.exception("Exception in %s hook", name)


def _noop_with_doc(*args: Any) -> None:
    """Reference body: a function that only has a docstring."""


def _noop_bare(*args: Any) -> None:
    pass


_NOOP_CODES = frozenset((_noop_with_doc.__code__.co_code, _noop_bare.__code__.co_code))
# gcorn.cli's default pre_request only logs at debug level; named, not imported,
# because gcorn.workers must not import gcorn.cli
_DEBUG_ONLY_DEFAULTS = (("gcorn.cli.settings.hooks", "pre_request"),)


def active_hook(hook: Any, log: ServerLog) -> Any:
    """`hook`, or None when calling it per request would do nothing at all.

    Building gunicorn-shaped request and response objects costs more than the
    rest of a small request, so a hook whose body is empty (gunicorn's and
    gcorn's default post_request) or the default pre_request while debug
    logging is off is not called.
    """
    if hook is None:
        return None
    func = getattr(hook, "func", hook)  # gcorn.cli wraps short post_request hooks
    code = getattr(func, "__code__", None)
    if code is not None and code.co_code in _NOOP_CODES:
        return None
    key = (getattr(func, "__module__", None), getattr(func, "__name__", None))
    if key in _DEBUG_ONLY_DEFAULTS:
        enabled = getattr(log, "isEnabledFor", None)
        if callable(enabled) and not enabled(logging.DEBUG):
            return None
    return hook
