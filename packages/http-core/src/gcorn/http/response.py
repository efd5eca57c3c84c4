"""The response side: a status line and header fields, and chunked body framing.

Every name must be a token and every value a valid field value (no CR, LF or
NUL), so an application can never split a response or inject a header.
"""

from __future__ import annotations

from collections.abc import Iterable
from http import HTTPStatus

from .errors import InvalidResponse
from .events import Header
from .grammar import RESPONSE_FIELD_VALUE, TOKEN

HeaderLike = tuple[bytes | str, bytes | str]

_REASONS = {status.value: status.phrase.encode("ascii") for status in HTTPStatus}
# RFC 9110's phrase (15.5.15), gunicorn's too, on every Python (before 3.13 the
# stdlib says "Request-URI Too Long").
_REASONS[414] = b"URI Too Long"
_STATUS_LINES: dict[tuple[int, bytes], bytes] = {}


def reason_phrase(status: int) -> bytes:
    """The standard reason phrase for a status code (empty when there is none)."""
    return _REASONS.get(status, b"")


def _as_bytes(text: bytes | str, what: str) -> bytes:
    if isinstance(text, bytes):
        return text
    if isinstance(text, str):
        try:
            return text.encode("latin-1")
        except UnicodeEncodeError:
            raise InvalidResponse(f"{what} is not latin-1 text") from None
    raise InvalidResponse(f"{what} must be bytes or str, not {type(text).__name__}")


def status_line(status: int, reason: bytes | str | None = None, version: bytes = b"1.1") -> bytes:
    """``HTTP/1.1 200 OK\\r\\n`` for a status code and an optional reason phrase."""
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 999:
        raise InvalidResponse("status code must be an integer from 100 to 999")
    reason_bytes = reason_phrase(status) if reason is None else _as_bytes(reason, "reason phrase")
    key = (status, reason_bytes)
    line = _STATUS_LINES.get(key) if version == b"1.1" else None
    if line is None:
        if RESPONSE_FIELD_VALUE.fullmatch(reason_bytes) is None:
            raise InvalidResponse("reason phrase holds a control character")
        if version not in (b"1.0", b"1.1"):
            raise InvalidResponse("response version must be 1.0 or 1.1")
        line = b"HTTP/%s %d %s\r\n" % (version, status, reason_bytes)
        if version == b"1.1" and len(_STATUS_LINES) < 1024:
            _STATUS_LINES[key] = line
    return line


def check_header(name: bytes | str, value: bytes | str) -> Header:
    """Validate one response header field and return it as bytes (name as given)."""
    name_bytes = _as_bytes(name, "header name")
    value_bytes = _as_bytes(value, "header value")
    if TOKEN.fullmatch(name_bytes) is None:
        raise InvalidResponse("header name is not a token")
    if RESPONSE_FIELD_VALUE.fullmatch(value_bytes) is None:
        raise InvalidResponse("header value holds CR, LF, NUL or another control character")
    return name_bytes, value_bytes


def serialize_headers(headers: Iterable[HeaderLike]) -> bytes:
    """``name: value\\r\\n`` lines for a list of fields, each one checked."""
    parts = []
    for name, value in headers:
        name_bytes, value_bytes = check_header(name, value)
        parts.append(b"%s: %s\r\n" % (name_bytes, value_bytes))
    return b"".join(parts)


def serialize_response_head(
    status: int,
    headers: Iterable[HeaderLike],
    reason: bytes | str | None = None,
    version: bytes = b"1.1",
) -> bytes:
    """Status line, header fields and the empty line that ends a response head."""
    return status_line(status, reason, version) + serialize_headers(headers) + b"\r\n"


def encode_chunk(data: bytes) -> bytes:
    """One chunk of a chunked body; empty data gives b"" (it would end the body)."""
    if not data:
        return b""
    return b"%x\r\n%s\r\n" % (len(data), data)


def encode_last_chunk(trailers: Iterable[HeaderLike] = ()) -> bytes:
    """The last chunk of a chunked body, with optional trailer fields."""
    return b"0\r\n" + serialize_headers(trailers) + b"\r\n"
