"""The gunicorn-shaped `req` object given to the `pre_request` and `post_request` hooks,
the same for every worker (WSGI, ASGI, HTTP/1 and HTTP/2)."""

from __future__ import annotations

from typing import Any

__all__ = ["HookRequest"]


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
