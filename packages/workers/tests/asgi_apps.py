"""Raw ASGI apps for the asgi worker's tests, one route per protocol corner."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

Scope = dict[str, Any]

EVENTS = os.environ.get("ASGI_TEST_EVENTS")


def _note(line: str) -> None:
    if EVENTS:
        with open(EVENTS, "a") as fh:
            fh.write(line + "\n")


async def _text(send: Any, status: int, body: bytes, headers: list[Any] | None = None) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain")] + (headers or [])})
    await send({"type": "http.response.body", "body": body})


async def _trailers(scope: Scope, send: Any, path: str) -> None:
    """The ASGI HTTP trailers extension: /trailers (two body pieces, then trailers in two
    messages), /trailers-only (no body message), /trailers-unannounced, /trailers-bad."""
    offered = "http.response.trailers" in scope.get("extensions", {})
    announced = path != "/trailers-unannounced"
    await send({"type": "http.response.start", "status": 200, "trailers": announced,
                "headers": [(b"content-type", b"text/plain"),
                            (b"x-offered", str(offered).encode())]})
    if path == "/trailers":
        await send({"type": "http.response.body", "body": b"abc", "more_body": True})
        await send({"type": "http.response.body", "body": b"def"})
        await send({"type": "http.response.trailers", "headers": [(b"x-sum", b"6")],
                    "more_trailers": True})
    fields = [(b"x-bad", b"a\r\nb")] if path == "/trailers-bad" else [(b"x-done", b"yes")]
    await send({"type": "http.response.trailers", "headers": fields})


async def _read_body(receive: Any) -> bytes:
    parts = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionError("client went away")
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(parts)


async def _lifespan(scope: Scope, receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            scope["state"]["started"] = "yes"
            _note(f"startup {os.getpid()}")
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            _note(f"shutdown {os.getpid()}")
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Scope, receive: Any, send: Any) -> None:
    """Routes by path; see each branch."""
    if scope["type"] == "lifespan":
        await _lifespan(scope, receive, send)
        return
    if scope["type"] == "websocket":
        await websocket_app(scope, receive, send)
        return
    path = scope["path"][len(scope["root_path"]):]
    if path == "/scope":
        view = {k: v for k, v in scope.items() if k not in ("headers", "raw_path",
                                                            "query_string", "state")}
        view["headers"] = [[k.decode(), v.decode()] for k, v in scope["headers"]]
        view["raw_path"] = scope["raw_path"].decode("latin-1")
        view["query_string"] = scope["query_string"].decode("latin-1")
        view["state"] = dict(scope["state"])
        body = json.dumps(view).encode()
        await _text(send, 200, body, [(b"content-length", str(len(body)).encode())])
    elif path == "/echo":
        body = await _read_body(receive)
        await _text(send, 200, body)
    elif path == "/count":
        # streams the body, answers its size: nothing is held in memory
        total = 0
        while True:
            message = await receive()
            total += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await _text(send, 200, str(total).encode())
    elif path == "/slow-reader":
        # reads one piece, waits, then reports the total and the largest piece
        # the server handed over: with flow control the socket was not read
        # while the app slept, so no piece holds the whole rest of the body
        first = await receive()
        await asyncio.sleep(float(scope["query_string"] or b"0.5"))
        total = largest = len(first.get("body", b""))
        more = first.get("more_body", False)
        while more:
            message = await receive()
            size = len(message.get("body", b""))
            total += size
            largest = max(largest, size)
            more = message.get("more_body", False)
        await _text(send, 200, f"{total} {largest}".encode())
    elif path == "/no-read":
        await _text(send, 200, b"did not read the body")
    elif path == "/chunked":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for piece in (b"one ", b"two ", b"three"):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/sleep":
        await asyncio.sleep(float(scope["query_string"] or b"1"))
        await _text(send, 200, b"slept")
    elif path == "/wait-disconnect":
        message = await receive()
        while message["type"] != "http.disconnect":
            message = await receive()
        _note(f"disconnected {scope['path']}")
    elif path == "/error-before":
        raise RuntimeError("boom before start")
    elif path == "/error-after":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise RuntimeError("boom after start")
    elif path == "/no-response":
        return
    elif path == "/unfinished":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"10")]})
        await send({"type": "http.response.body", "body": b"12345", "more_body": True})
    elif path == "/too-long":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"5")]})
        await send({"type": "http.response.body", "body": b"1234567890"})
    elif path == "/too-short":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"10")]})
        await send({"type": "http.response.body", "body": b"123"})
    elif path == "/ignore-disconnect":
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            _note("cancelled /ignore-disconnect")
            raise
    elif path == "/stream-big":
        # 32 MiB in 1 MiB pieces: the server must wait for the socket, not buffer it all
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(32 * 1024 * 1024).encode())]})
        piece = b"s" * (1024 * 1024)
        for _ in range(31):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": piece})
    elif path == "/bad-header":
        await _text(send, 200, b"x", [(b"x-evil", b"a\r\nset-cookie: pwned=1")])
    elif path == "/close":
        await _text(send, 200, b"bye", [(b"connection", b"close")])
    elif path == "/pid":
        await _text(send, 200, str(os.getpid()).encode())
    elif path.startswith("/trailers"):
        await _trailers(scope, send, path)
    else:
        await _text(send, 200, b"Hello, World!", [(b"content-length", b"13")])


async def websocket_app(scope: Scope, receive: Any, send: Any) -> None:
    """WebSocket routes: /ws echo, /ws-deny, /ws-close-early, /ws-close-code, /ws-sub."""
    path = scope["path"]
    message = await receive()
    assert message["type"] == "websocket.connect"
    if path == "/ws-deny":
        await send({"type": "websocket.http.response.start", "status": 401,
                    "headers": [(b"content-type", b"text/plain"), (b"x-denied", b"yes")]})
        await send({"type": "websocket.http.response.body", "body": b"go away"})
        return
    if path == "/ws-close-early":
        await send({"type": "websocket.close"})
        return
    if path == "/ws-sub":
        offered = scope["subprotocols"]
        await send({"type": "websocket.accept", "subprotocol": offered[-1] if offered else None,
                    "headers": [(b"x-extra", b"hello")]})
        await send({"type": "websocket.send", "text": ",".join(offered)})
        await send({"type": "websocket.close", "code": 1000})
        return
    await send({"type": "websocket.accept"})
    if path == "/ws-close-code":
        await send({"type": "websocket.close", "code": 4001, "reason": "bye now"})
        return
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            _note(f"ws-disconnect {message['code']}")
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


async def lifespan_fails(scope: Scope, receive: Any, send: Any) -> None:
    """Lifespan startup fails with a message: the worker must not boot."""
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "database unreachable"})
        return
    await _text(send, 200, b"should never serve")


async def no_lifespan(scope: Scope, receive: Any, send: Any) -> None:
    """Raises on a lifespan scope: in `auto` mode the worker serves anyway."""
    if scope["type"] != "http":
        raise ValueError(f"unsupported scope {scope['type']}")
    await _text(send, 200, b"no lifespan here")


async def two_receivers(scope: Scope, receive: Any, send: Any) -> None:
    """Reads the body, then two tasks wait for the disconnect while the response is sent."""
    if scope["type"] != "http":
        return
    body = await _read_body(receive)
    watchers = [asyncio.ensure_future(receive()) for _ in range(2)]
    await asyncio.sleep(0.05)  # both are waiting inside receive() now
    await _text(send, 200, body)
    messages = await asyncio.wait_for(asyncio.gather(*watchers), 2)
    _note("watchers got " + " ".join(m["type"] for m in messages))
