"""Small conversions used while building ASGI scopes from gcorn.http request heads."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_to_bytes

__all__ = ["METHODS", "PATHS", "address", "decode_path", "http_scope", "method_str"]

METHODS: dict[bytes, str] = {}


def method_str(method: bytes) -> str:
    """The method as str (cached: methods repeat)."""
    name = METHODS.get(method)
    if name is None:
        name = method.decode("ascii")
        if len(METHODS) < 64:
            METHODS[method] = name
    return name


# decoded paths of recent requests: most servers see the same few paths again and again
PATHS: dict[bytes, str] = {}
_PATHS_MAX = 1024


def decode_path(raw: bytes) -> str:
    """ASGI `path`: the raw path percent-decoded, as UTF-8 (cached)."""
    path = _decode(raw)
    if len(PATHS) >= _PATHS_MAX:
        PATHS.clear()
    PATHS[raw] = path
    return path


def _decode(raw: bytes) -> str:
    if b"%" in raw:
        return unquote_to_bytes(raw).decode("utf-8", "replace")
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        return raw.decode("utf-8", "replace")


def http_scope(state: Any, version: str, server: Any, client: Any, scheme: str, method: str,
               raw_path: bytes, query: bytes, headers: Any) -> dict[str, Any]:
    """An ASGI http scope, HTTP/1 or HTTP/2 (`state` is the worker's ServerState)."""
    root_path = state.root_path
    path = PATHS.get(raw_path) or decode_path(raw_path)
    return {
        "type": "http",
        "asgi": state.asgi,
        "http_version": version,
        "server": server,
        "client": client,
        "scheme": scheme,
        "method": method,
        "root_path": root_path,
        "path": root_path + path if root_path else path,
        "raw_path": raw_path,
        "query_string": query,
        "headers": headers,
        "state": state.lifespan_state.copy(),
    }


def address(value: Any) -> tuple[str, int] | None:
    """A socket address as ASGI's (host, port), or None for a Unix socket."""
    if isinstance(value, tuple) and len(value) >= 2:
        return (str(value[0]), int(value[1]))
    return None
