"""gunicorn-shaped views of an ASGI request and response for `pre_request`/`post_request`."""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

__all__ = ["HookRequest", "HookResponse"]


class HookRequest:
    """What `pre_request(worker, req)` sees: gunicorn's Request attributes, as str."""

    __slots__ = ("_headers", "method", "path", "query", "scheme", "uri", "version")

    def __init__(self, method: str, uri: str, path: str, query: str,
                 version: tuple[int, int], headers: Sequence[tuple[bytes, bytes]],
                 scheme: str) -> None:
        self.method = method
        self.uri = uri
        self.path = path
        self.query = query
        self.version = version
        self.scheme = scheme
        self._headers = headers

    @property
    def headers(self) -> list[tuple[str, str]]:
        """The request headers as (NAME, value) str pairs, names upper-cased as gunicorn does."""
        return [(name.decode("latin-1").upper(), value.decode("latin-1"))
                for name, value in self._headers]


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
        try:
            return f"{self.status_code} {HTTPStatus(self.status_code).phrase}"
        except ValueError:
            return str(self.status_code)

    @property
    def headers(self) -> list[tuple[str, str]]:
        """The response headers the app set, as str pairs."""
        return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in self._headers]


def call_hook(hook: Any, log: Any, name: str, *args: Any) -> None:
    """Run a server hook; an exception in it is logged, never raised into the request."""
    try:
        hook(*args)
    except Exception:
        log.exception("Exception in %s hook", name)
