"""Stand-in apps served under `--reload` while the real app fails to import.

With `--reload` a worker whose app cannot load keeps running, answers 500
(never with the traceback: that goes to the error log) and watches the
broken files; saving a fix makes the reloader restart the worker. Without
this, every edit that breaks an import would be a crash-looping worker.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Iterable
from typing import Any

BODY = b"Internal Server Error: the app failed to load; see the server's error log.\n"
HEADERS = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(BODY)))]


def wsgi_error_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """A WSGI app that answers every request with 500."""
    start_response("500 Internal Server Error", HEADERS)
    return [BODY]


async def asgi_error_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An ASGI app that answers every HTTP request with 500 and accepts lifespan."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    headers = [(name.lower().encode(), value.encode()) for name, value in HEADERS]
    await send({"type": "http.response.start", "status": 500, "headers": headers})
    await send({"type": "http.response.body", "body": BODY})


def files_of(exc: BaseException) -> list[str]:
    """The existing source files named by an exception chain (SyntaxError file, frames)."""
    files: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        filename = getattr(current, "filename", None)
        if isinstance(current, SyntaxError) and filename:
            files.append(os.path.abspath(filename))
        for frame in traceback.extract_tb(current.__traceback__):
            files.append(os.path.abspath(frame.filename))
        current = current.__cause__ or current.__context__
    return [path for path in dict.fromkeys(files) if os.path.isfile(path)]
