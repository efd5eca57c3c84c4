"""The events of an HTTP/1.x exchange, both directions.

A RequestParser hands out RequestHead, Body and EndOfMessage: small
``__slots__`` dataclasses (built millions of times a second, so not frozen:
treat them as read-only values). A Connection (connection.py) also takes the
server's side as events: InformationalResponse, Response, Data and
EndOfMessage (the same class both ways), and ConnectionClosed both ways. The
response-side ones are frozen: an application builds them once per response.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

Header = tuple[bytes, bytes]
ResponseHeader = tuple[bytes | str, bytes | str]
"""A response field as an application may give it: name and value, bytes or latin-1 str."""


@dataclass(slots=True)
class RequestHead:
    """A parsed request line and header section; names are lower-cased bytes."""

    method: bytes
    target: bytes
    path: bytes
    query: bytes
    version: tuple[int, int]
    headers: list[Header]
    keep_alive: bool
    expects_continue: bool
    upgrade: bytes | None
    content_length: int | None
    chunked: bool

    @property
    def http_version(self) -> str:
        """The version as ASGI and WSGI spell it: ``"1.1"`` or ``"1.0"``."""
        return f"{self.version[0]}.{self.version[1]}"

    def get(self, name: bytes, default: bytes | None = None) -> bytes | None:
        """The value of the first field called ``name`` (lower-case), else ``default``."""
        for key, value in self.headers:
            if key == name:
                return value
        return default


@dataclass(slots=True)
class Body:
    """A piece of the request body (already de-chunked); pieces may be of any size."""

    data: bytes


@dataclass(slots=True)
class EndOfMessage:
    """The end of one request; ``trailers`` holds chunked trailer fields, if any."""

    trailers: list[Header] = field(default_factory=list)


Event = RequestHead | Body | EndOfMessage


@dataclass(frozen=True, slots=True)
class InformationalResponse:
    """A 1xx interim response the server sends before its final one (100 Continue, 103)."""

    status_code: int
    headers: Sequence[ResponseHeader] = ()


@dataclass(frozen=True, slots=True)
class Response:
    """The head of the server's final response (status 200 to 999)."""

    status_code: int
    headers: Sequence[ResponseHeader] = ()
    reason: bytes | str | None = None


@dataclass(frozen=True, slots=True)
class Data:
    """A piece of the response body, before framing (a Connection chunks it if need be)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The peer closed its side (from next_event), or this side closes (to send)."""
