"""Frames of the dirty-pool wire protocol (sans-I/O), see PROTOCOL.md.

A frame is a 16-byte header -- magic ``b"gD"``, version, type, payload length
(u32 BE), request id (u64 BE) -- followed by the payload, one value encoded
by the pool's codec. :class:`FrameParser` turns received bytes into frames;
it never touches a socket, so the sync client, the asyncio client and the
worker share it.
"""

from __future__ import annotations

import enum
import socket
import struct
from typing import Any

from .errors import DirtyProtocolError

MAGIC = b"gD"
VERSION = 1
HEADER = struct.Struct(">2sBBIQ")
HEADER_SIZE = HEADER.size
MAX_FRAME_LIMIT = (1 << 32) - 1
DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024
# Payloads at least this large are received straight into their own buffer.
BIG_FRAME = 256 * 1024
IOV_MAX = 512


class MsgType(enum.IntEnum):
    """Frame types; requests and their replies share the request id."""

    CALL = 0x01
    RESULT = 0x02
    ERROR = 0x03
    CHUNK = 0x04
    END = 0x05
    CANCEL = 0x06
    STASH = 0x10
    DIRECTORY = 0x11
    STATUS = 0x12
    MANAGE = 0x13


# Marker payload for a frame that was over the size limit and skipped.
class Oversize:
    """Stands in for the payload of a frame the receiver refused (over the size limit)."""

    __slots__ = ("size", "limit")

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit


Frame = tuple[int, int, Any]


def frame_buffers(msg_type: int, request_id: int, parts: list[Any]) -> list[Any]:
    """Return the buffers of one frame: header (merged with small parts) then large parts."""
    total = 0
    for p in parts:
        total += p.nbytes if isinstance(p, memoryview) else len(p)
    head = HEADER.pack(MAGIC, VERSION, msg_type, total, request_id)
    if len(parts) <= 1 and total < BIG_FRAME:
        return [head + parts[0]] if parts else [head]
    out: list[Any] = [bytearray(head)]
    for p in parts:
        if isinstance(p, memoryview) and p.nbytes >= BIG_FRAME:
            out.append(p)
        elif isinstance(out[-1], bytearray):
            out[-1] += p
        else:
            out.append(bytearray(p))
    return out


def payload_size(bufs: list[Any]) -> int:
    """Payload bytes of a frame built by :func:`frame_buffers`."""
    n = 0
    for b in bufs:
        n += b.nbytes if isinstance(b, memoryview) else len(b)
    return n - HEADER_SIZE


def send_buffers(sock: socket.socket, bufs: list[Any]) -> None:
    """Send every buffer, in order, on a blocking socket (scatter/gather, no joining copy)."""
    if len(bufs) == 1:
        sock.sendall(bufs[0])
        return
    views = [b if isinstance(b, memoryview) else memoryview(b) for b in bufs]
    while views:
        sent = sock.sendmsg(views[:IOV_MAX])
        while sent:
            first = views[0]
            if sent >= first.nbytes:
                sent -= first.nbytes
                views.pop(0)
            else:
                views[0] = first[sent:]
                sent = 0
        while views and views[0].nbytes == 0:
            views.pop(0)


class FrameParser:
    """Incremental frame parser: ``feed`` bytes, get complete frames.

    A frame whose announced payload exceeds ``max_size`` is read and dropped
    (the stream stays in sync, so the connection remains usable) and reported
    as a frame whose payload is an :class:`Oversize`.
    """

    def __init__(self, max_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        self.max_size = max_size
        self.buf = bytearray()
        self._head: tuple[int, int, int] | None = None
        self._body: bytearray | None = None
        self._fill = 0
        self._skip = 0

    def body_target(self) -> memoryview | None:
        """Where a large payload in progress wants its next bytes (for ``recv_into``)."""
        if self._body is None:
            return None
        return memoryview(self._body)[self._fill:]

    def body_advanced(self, n: int) -> list[Frame]:
        """Account for ``n`` bytes received into :meth:`body_target`."""
        self._fill += n
        return self._maybe_finish_body()

    def _maybe_finish_body(self) -> list[Frame]:
        assert self._body is not None and self._head is not None
        if self._fill < len(self._body):
            return []
        mtype, rid, _ = self._head
        body = self._body
        self._body = None
        self._head = None
        return [(mtype, rid, body)]

    def feed(self, data: Any) -> list[Frame]:
        """Consume received bytes; return the frames they complete."""
        out: list[Frame] = []
        mv = memoryview(data)
        while mv.nbytes:
            if self._skip:
                n = min(self._skip, mv.nbytes)
                self._skip -= n
                mv = mv[n:]
                if not self._skip:
                    assert self._head is not None
                    mtype, rid, length = self._head
                    self._head = None
                    out.append((mtype, rid, Oversize(length, self.max_size)))
                continue
            if self._body is not None:
                n = min(len(self._body) - self._fill, mv.nbytes)
                self._body[self._fill:self._fill + n] = mv[:n]
                self._fill += n
                mv = mv[n:]
                out.extend(self._maybe_finish_body())
                continue
            self.buf += mv
            mv = memoryview(b"")
            self._parse_buffer(out)
        return out

    def _parse_buffer(self, out: list[Frame]) -> None:
        buf = self.buf
        pos = 0
        end = len(buf)
        while end - pos >= HEADER_SIZE:
            magic, version, mtype, length, rid = HEADER.unpack_from(buf, pos)
            if magic != MAGIC or version != VERSION:
                raise DirtyProtocolError(
                    f"bad frame header (magic {bytes(magic)!r}, version {version}): not a gcorn-dirty peer?")
            start = pos + HEADER_SIZE
            if length > self.max_size:
                have = min(end - start, length)
                self._head = (mtype, rid, length)
                self._skip = length - have
                pos = start + have
                if not self._skip:
                    self._head = None
                    out.append((mtype, rid, Oversize(length, self.max_size)))
                    continue
                break
            if end - start >= length:
                out.append((mtype, rid, bytes(buf[start:start + length])))
                pos = start + length
                continue
            if length >= BIG_FRAME:
                body = bytearray(length)
                have = end - start
                body[:have] = buf[start:end]
                self._head = (mtype, rid, length)
                self._body = body
                self._fill = have
                pos = end
            break
        if pos:
            del buf[:pos]
