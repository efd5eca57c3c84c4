"""The request hooks (`pre_request`, `post_request`), the same for every worker (WSGI,
ASGI, HTTP/1 and HTTP/2): the gunicorn-shaped `req` and `resp` objects they are given,
and which hooks are worth calling per request."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from gcorn.arbiter import ServerLog
from gcorn.http import reason_phrase

__all__ = ["HookRequest", "HookResponse", "RequestHooks", "active_hook"]


class HookRequest:
    """What hooks see of a request: method, uri, path, query, version, headers, scheme.

    `raw_headers` are the parser's (name, value) bytes pairs; `peer_addr` and `body` (the
    WSGI input) are None where the worker has none to give (ASGI).
    """

    __slots__ = ("_headers", "_raw_headers", "body", "method", "path", "peer_addr", "query",
                 "remote_addr", "scheme", "trailers", "uri", "version")

    def __init__(self, method: str, uri: str, path: str, query: str, version: tuple[int, int],
                 raw_headers: Any, scheme: str, peer_addr: Any = None, body: Any = None) -> None:
        self.method = method
        self.uri = uri
        self.path = path
        self.query = query
        self.version = version
        self._raw_headers = raw_headers
        self._headers: list[tuple[str, str]] | None = None
        self.scheme = scheme
        self.peer_addr = peer_addr
        self.remote_addr = peer_addr
        self.body = body
        self.trailers: list[tuple[str, str]] = []

    @property
    def headers(self) -> list[tuple[str, str]]:
        """(NAME, value) str pairs, names upper-cased as gunicorn gives them."""
        if self._headers is None:
            self._headers = [(name.decode("latin-1").upper(), value.decode("latin-1"))
                             for name, value in self._raw_headers]
        return self._headers

    @property
    def fragment(self) -> str:
        """The URI fragment (always empty: clients do not send it)."""
        _, _, fragment = self.uri.partition("#")
        return fragment

    def should_close(self) -> bool:
        """gunicorn's helper: whether the client asked to close after this request."""
        for name, value in self.headers:
            if name == "CONNECTION":
                lowered = value.lower()
                if "close" in lowered:
                    return True
                if "keep-alive" in lowered:
                    return False
        return self.version <= (1, 0)


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


class RequestHooks:
    """A worker's `pre_request` and `post_request`, called the same way by every worker.

    `pre`/`post` are None when calling them would do nothing (`active_hook`), so
    a worker builds a `HookRequest` only when `wanted`. As gunicorn: an exception
    in `pre_request` fails the request (the worker answers 500, `run_pre` lets it
    through); one in `post_request` is logged and the response stands.
    """

    __slots__ = ("log", "post", "pre", "wanted", "worker")

    def __init__(self, worker: Any, pre_request: Any, post_request: Any, log: ServerLog) -> None:
        self.worker = worker
        self.log = log
        self.pre = active_hook(pre_request, log)
        self.post = active_hook(post_request, log)
        self.wanted = self.pre is not None or self.post is not None

    def run_pre(self, req: HookRequest) -> None:
        """`pre_request(worker, req)`; what it raises is the request's failure."""
        if self.pre is not None:
            self.pre(self.worker, req)

    def run_post(self, req: HookRequest, environ: Any, resp: Any) -> None:
        """`post_request(worker, req, environ, resp)` (environ is the ASGI scope there)."""
        if self.post is None:
            return
        try:
            self.post(self.worker, req, environ, resp)
        except Exception:
            self.log.exception("Exception in post_request hook")
