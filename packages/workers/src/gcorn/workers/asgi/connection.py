"""What a request cycle or a WebSocket session needs of its client connection.

http.py's `HttpProtocol` is the one implementation. cycle.py and websocket.py
type against `Connection` so that they never import http.py, which imports them:
the dependency runs one way (worker -> http -> cycle, websocket -> connection).
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from gcorn.workers.asgi.state import ServerState

__all__ = ["ClientDisconnected", "Connection"]


class ClientDisconnected(OSError):
    """`send` was called after the client went away (ASGI 2.4: an OSError subclass)."""


class Connection(Protocol):
    """One client connection, as the request cycles and WebSocket sessions on it see it."""

    state: ServerState
    loop: asyncio.AbstractEventLoop
    client: tuple[str, int] | None
    server: tuple[str, int] | None
    closed: bool
    read_paused: int
    write_paused: bool

    def write(self, data: bytes) -> None:
        """Write to the client unless the connection is already gone."""

    async def drain(self) -> None:
        """Wait until the transport's write buffer is below its high-water mark."""

    def abort(self) -> None:
        """Close the connection at once."""

    def closed_after_error(self) -> None:
        """Close after an error answer has been written."""

    def response_done(self, cycle: Any) -> None:
        """The response of `cycle` (a RequestCycle) is complete."""

    def pause_reading_for_body(self) -> None:
        """Too much unread request body: stop reading the socket."""

    def resume_reading_for_body(self) -> None:
        """The app took the buffered body: read the socket again."""

    def _pause_reading(self, reason: int) -> None: ...

    def _resume_reading(self, reason: int) -> None: ...
