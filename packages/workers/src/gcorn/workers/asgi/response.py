"""The response head of the ASGI worker: framing decisions and one-buffer serialization.

Fields are checked and the status line is written by gcorn.http's response
writer; this module adds what only a server knows (framing, keep-alive).

The app's headers decide the framing (Content-Length, else chunked on
HTTP/1.1, else close-delimited); hop-by-hop headers are the server's, so the
app's are dropped; a CR, LF or NUL anywhere in a name or value is refused,
so an app cannot split a response.
"""

from __future__ import annotations

from collections.abc import Iterable
from email.utils import formatdate

from gcorn.http import InvalidResponse, check_header
from gcorn.http import status_line as http_status_line
from gcorn.workers.asgi.errors import AppProtocolError

__all__ = ["Framing", "build_head", "date_and_server", "error_response", "status_line"]

# names the server owns: the app's values are read for framing, then dropped
_HOP_BY_HOP = frozenset((b"connection", b"keep-alive", b"transfer-encoding", b"te", b"trailer",
                         b"upgrade", b"proxy-connection", b"date", b"server"))
_NO_BODY_STATUS = frozenset((204, 304))
_STATUS_LINES: dict[tuple[int, int], bytes] = {}
# header fields already checked by gcorn.http (name, value) -> (lower-cased name, line):
# apps send the same fields over and over, the checks need not run again
_FIELD_CACHE: dict[tuple[bytes, bytes], tuple[bytes, bytes]] = {}
_FIELD_CACHE_MAX = 4096


def status_line(status: int, minor: int = 1) -> bytes:
    """`HTTP/1.x <status> <reason>\\r\\n` from gcorn.http, cached per status."""
    key = (status, minor)
    line = _STATUS_LINES.get(key)
    if line is None:
        try:
            line = http_status_line(status, version=b"1.0" if minor == 0 else b"1.1")
        except InvalidResponse as exc:
            raise AppProtocolError(f"invalid response status {status!r}: {exc}") from None
        _STATUS_LINES[key] = line
    return line


def date_and_server(server_name: bytes = b"gcorn") -> bytes:
    """The `date` and `server` lines for this second (the worker refreshes it every tick)."""
    return b"date: " + formatdate(usegmt=True).encode("ascii") + b"\r\nserver: " + server_name + b"\r\n"


def _checked_field(name: bytes, value: bytes) -> tuple[bytes, bytes]:
    key = (name, value)
    hit = _FIELD_CACHE.get(key)
    if hit is not None:
        return hit
    try:
        name_bytes, value_bytes = check_header(name, value)
    except InvalidResponse as exc:
        raise AppProtocolError(f"invalid response header {name!r}: {exc}") from None
    hit = (name_bytes.lower(), name_bytes + b": " + value_bytes + b"\r\n")
    if len(_FIELD_CACHE) >= _FIELD_CACHE_MAX:
        _FIELD_CACHE.clear()
    _FIELD_CACHE[key] = hit
    return hit


class Framing:
    """How a response body is delimited."""

    LENGTH = 0
    CHUNKED = 1
    CLOSE = 2
    NONE = 3


def build_head(status: int, app_headers: Iterable[tuple[bytes, bytes]], minor: int,
               keep_alive: bool, is_head: bool, body_length: int | None,
               date_server: bytes) -> tuple[bytes, int, bool, int]:
    """Serialize the head: (head bytes, framing, keep-alive, Content-Length or 0).

    `body_length` is the whole body size when the first body message is also
    the last (the server may then add Content-Length itself), else None.
    """
    line = _STATUS_LINES.get((status, minor))
    parts = [line if line is not None else status_line(status, minor)]
    content_length: int | None = None
    chunked_asked = False
    cache = _FIELD_CACHE
    for pair in app_headers:
        name, value = pair[0], pair[1]
        hit = cache.get((name, value))
        lowered, field = hit if hit is not None else _checked_field(name, value)
        if lowered in _HOP_BY_HOP:
            if lowered == b"connection":
                if b"close" in value.lower():
                    keep_alive = False
            elif lowered == b"transfer-encoding":
                chunked_asked = b"chunked" in value.lower()
            continue
        if lowered == b"content-length":
            try:
                content_length = int(value)
            except ValueError:
                raise AppProtocolError(f"invalid content-length {value!r}") from None
            if content_length < 0:
                raise AppProtocolError(f"invalid content-length {value!r}")
        parts.append(field)
    if status < 200 or status in _NO_BODY_STATUS:
        framing = Framing.NONE
    elif content_length is not None and not chunked_asked:
        framing = Framing.LENGTH
    elif body_length is not None and not chunked_asked:
        parts.append(b"content-length: %d\r\n" % body_length)
        content_length = body_length
        framing = Framing.LENGTH
    elif minor >= 1:
        parts.append(b"transfer-encoding: chunked\r\n")
        framing = Framing.CHUNKED
    else:
        framing = Framing.CLOSE
        keep_alive = False
    if is_head or framing != Framing.LENGTH:
        content_length = None
    if is_head:
        framing = Framing.NONE
    if not keep_alive:
        parts.append(b"connection: close\r\n")
    elif minor == 0:
        parts.append(b"connection: keep-alive\r\n")
    parts.append(date_server)
    parts.append(b"\r\n")
    return b"".join(parts), framing, keep_alive, content_length or 0


def error_response(status: int, message: str, date_server: bytes, minor: int = 1) -> bytes:
    """A complete plain-text error response that closes the connection."""
    body = (message.rstrip("\n") + "\n").encode("utf-8", "replace")
    return b"".join((
        status_line(status, minor),
        b"content-type: text/plain; charset=utf-8\r\n",
        b"content-length: %d\r\nconnection: close\r\n" % len(body),
        date_server,
        b"\r\n",
        body,
    ))
