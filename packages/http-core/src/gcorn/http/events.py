"""The events a RequestParser hands out: RequestHead, Body and EndOfMessage.

They are small ``__slots__`` dataclasses (built millions of times a second, so
not frozen: treat them as read-only values).
"""

from __future__ import annotations

from dataclasses import dataclass

Header = tuple[bytes, bytes]


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

    trailers: list[Header]


Event = RequestHead | Body | EndOfMessage
