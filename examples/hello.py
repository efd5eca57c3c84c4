"""A minimal WSGI app: `gcorn examples.hello:app` (or `gcorn hello:app --chdir examples`).

With a dirty pool beside it, `/dirty?text=...` asks the pool's word counter:

    gcorn --chdir examples --dirty-app dirty_app:WordCount --dirty-workers 2 hello:app
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

BODY = b"Hello, World!\n"
DIRTY_APP = "dirty_app:WordCount"

Answer = tuple[int, list[tuple[str, str]], dict[str, Any]]


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Greet on every path; on /dirty, count words in the dirty pool."""
    if environ.get("PATH_INFO") == "/dirty":
        code, headers, payload = count_words(environ.get("QUERY_STRING", ""))
        body = json.dumps(payload).encode() + b"\n"
        start_response(
            f"{code} {HTTPStatus(code).phrase}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *headers],
        )
        return [body]
    start_response(
        "200 OK",
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(BODY)))],
    )
    return [BODY]


def count_words(query: str) -> Answer:
    """Call the dirty pool; every DirtyError becomes its HTTP status, busy becomes 503 + Retry-After."""
    # imported here so that / works where gcorn-dirty is not installed
    from gcorn.dirty import DirtyBusyError, DirtyError, get_dirty_client

    params = parse_qs(query)
    text = params.get("text", [""])[0]
    try:
        delay = float(params.get("delay", ["0"])[0])
    except ValueError:
        return 400, [], {"error": "delay must be a number of seconds"}
    try:
        result = get_dirty_client().execute(DIRTY_APP, "count", text, delay=delay)
    except DirtyBusyError as exc:
        # every dirty slot and the app's queue are full: tell the client when to come back
        return 503, [("Retry-After", str(exc.retry_after))], {"error": "busy, retry later"}
    except DirtyError as exc:
        # a timeout (504), a worker lost mid-call (502), no pool (500)...: a status, never a traceback
        return exc.status, [], {"error": type(exc).__name__, "message": exc.message}
    return 200, [], result


application = app
