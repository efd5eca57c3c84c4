"""uwsgi-protocol request reader, sans-I/O (what nginx's ``uwsgi_pass`` sends).

A request is a 4-byte header (modifier1, little-endian size of the variable
block, modifier2), the variable block (pairs of 16-bit little-endian sized
key and value: the CGI/WSGI environ strings), then CONTENT_LENGTH bytes of
body. One request per connection.
Specification: https://uwsgi-docs.readthedocs.io/en/latest/Protocol.html
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .errors import IncompleteMessage, InvalidUwsgiPacket
from .events import Body, EndOfMessage

MAX_VARS = 1000  # as gunicorn
_HEADER = 4


@dataclass(slots=True)
class UwsgiRequest:
    """The variables of a uwsgi request (latin-1 strings, as WSGI wants them)."""

    vars: dict[str, str]
    modifier1: int
    modifier2: int
    content_length: int


UwsgiEvent = UwsgiRequest | Body | EndOfMessage


def parse_uwsgi_vars(block: bytes) -> dict[str, str]:
    """Decode a uwsgi variable block into a dict (duplicate keys are refused)."""
    result: dict[str, str] = {}
    pos, end = 0, len(block)
    while pos < end:
        if len(result) >= MAX_VARS:
            raise InvalidUwsgiPacket("too many uwsgi variables")
        if pos + 2 > end:
            raise InvalidUwsgiPacket("truncated uwsgi variable")
        size = int.from_bytes(block[pos : pos + 2], "little")
        key = block[pos + 2 : pos + 2 + size]
        pos += 2 + size
        if pos + 2 > end or len(key) != size:
            raise InvalidUwsgiPacket("truncated uwsgi variable")
        size = int.from_bytes(block[pos : pos + 2], "little")
        value = block[pos + 2 : pos + 2 + size]
        pos += 2 + size
        if len(value) != size:
            raise InvalidUwsgiPacket("truncated uwsgi variable")
        if not key:
            raise InvalidUwsgiPacket("empty uwsgi variable name")
        name = key.decode("latin-1")
        if name in result:
            raise InvalidUwsgiPacket("repeated uwsgi variable")
        result[name] = value.decode("latin-1")
    return result


class _Stage(enum.Enum):
    """Where a uwsgi connection is: VARS (the packet) -> BODY -> DONE (one request each)."""

    VARS = "vars"
    BODY = "body"
    DONE = "done"


class UwsgiParser:
    """Feed the bytes of a uwsgi connection; get UwsgiRequest, Body, EndOfMessage."""

    __slots__ = ("_buf", "_remaining", "_state")

    def __init__(self) -> None:
        self._buf = b""
        self._remaining = 0
        self._state = _Stage.VARS

    def feed(self, data: bytes) -> list[UwsgiEvent]:
        """Take received bytes; return the events they complete."""
        events: list[UwsgiEvent] = []
        if self._state == _Stage.DONE:
            return events
        if self._state == _Stage.VARS:
            buf = self._buf + data
            if len(buf) < _HEADER:
                self._buf = buf
                return events
            modifier1, size, modifier2 = buf[0], int.from_bytes(buf[1:3], "little"), buf[3]
            if modifier1 != 0:
                raise InvalidUwsgiPacket("unsupported uwsgi modifier (only WSGI requests)")
            if len(buf) < _HEADER + size:
                self._buf = buf
                return events
            variables = parse_uwsgi_vars(buf[_HEADER : _HEADER + size])
            length_text = variables.get("CONTENT_LENGTH", "") or "0"
            if not length_text.isascii() or not length_text.isdigit() or len(length_text) > 18:
                raise InvalidUwsgiPacket("invalid CONTENT_LENGTH")
            self._remaining = int(length_text)
            events.append(UwsgiRequest(variables, modifier1, modifier2, self._remaining))
            data = buf[_HEADER + size :]
            self._buf = b""
            self._state = _Stage.BODY
        if data and self._remaining:
            piece = data if len(data) <= self._remaining else data[: self._remaining]
            self._remaining -= len(piece)
            events.append(Body(piece))
        if not self._remaining:
            events.append(EndOfMessage([]))
            self._state = _Stage.DONE
        return events

    def feed_eof(self) -> list[UwsgiEvent]:
        """The peer closed: raise IncompleteMessage if the request was cut short."""
        if self._state == _Stage.BODY or (self._state == _Stage.VARS and self._buf):
            raise IncompleteMessage()
        self._state = _Stage.DONE
        return []


def encode_uwsgi_vars(variables: dict[str, str], modifier1: int = 0, modifier2: int = 0) -> bytes:
    """A uwsgi request header and variable block (for clients and tests)."""
    block = b"".join(
        len(k).to_bytes(2, "little") + k + len(v).to_bytes(2, "little") + v
        for k, v in ((k.encode("latin-1"), v.encode("latin-1")) for k, v in variables.items())
    )
    if len(block) > 0xFFFF:
        raise ValueError("uwsgi variable block larger than 64 KiB")
    return bytes((modifier1,)) + len(block).to_bytes(2, "little") + bytes((modifier2,)) + block
