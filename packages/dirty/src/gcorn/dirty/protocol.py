"""Frames of the dirty-pool wire protocol (sans-I/O), see PROTOCOL.md.

A frame is a 16-byte header -- magic ``b"gD"``, version, type, payload length
(u32 BE), request id (u64 BE) -- followed by the payload, one value encoded
by the pool's codec. :class:`FrameParser` turns received bytes into frames;
it never touches a socket, so the sync client, the asyncio client and the
worker share it.
"""

from __future__ import annotations

import enum
import mmap
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


def wire_limit(limit: int) -> int:
    """Largest frame payload a peer may send under ``dirty_max_message_size = limit``.

    The limit counts the data a frame carries (see codec.content_size); the
    encoding's own bytes (tags, lengths, a call's app and action names) come on
    top, up to 1/16 of the limit plus 64 KiB.
    """
    return min(MAX_FRAME_LIMIT, limit + limit // 16 + 65536)


# Payloads at least this large are received into a mapping of their own.
MAP_MIN = 1024 * 1024
# Zero-filled pages only become memory once written: see _payload_buffer.
_MAP_FLAGS = mmap.MAP_PRIVATE | getattr(mmap, "MAP_NORESERVE", 0)


class MsgType(enum.IntEnum):
    """Frame types; requests and their replies share the request id."""

    CALL = 0x01
    RESULT = 0x02
    ERROR = 0x03
    CHUNK = 0x04
    END = 0x05
    CANCEL = 0x06
    BATCH = 0x07  # a CALL to a @batched action: gathered by the worker, same payload
    STASH = 0x10
    DIRECTORY = 0x11
    STATUS = 0x12
    MANAGE = 0x13
    METRICS = 0x14  # counters and gauges for a Prometheus collector (metrics.py)


# Marker payload for a frame that was over the size limit and skipped.
class Oversize:
    """Stands in for the payload of a frame the receiver refused (over the size limit)."""

    __slots__ = ("size", "limit")

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit


Frame = tuple[int, int, Any]
# What a received payload can be: small ones are bytes, large ones one of the others.
PAYLOAD_TYPES = (bytes, bytearray, mmap.mmap)


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

    A frame whose announced payload exceeds ``wire_limit(max_size)`` is read and dropped
    (the stream stays in sync, so the connection remains usable) and reported
    as a frame whose payload is an :class:`Oversize`.

    Memory follows the bytes that arrived, never a header's word. A payload
    of 1 MiB or more is received into a private anonymous mapping of its
    size, whose pages the kernel provides only as bytes are written (and
    takes back as soon as the payload is dropped); a smaller one, or one
    whose mapping is refused, into a buffer that starts at :data:`BIG_FRAME`
    and at most doubles as it fills. A peer that announces 64 MiB and sends
    one byte costs one page.
    """

    def __init__(self, max_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        self.max_size = max_size
        self.wire_max = wire_limit(max_size)
        self.buf = bytearray()
        self._head: tuple[int, int, int] | None = None
        self._body: bytearray | mmap.mmap | None = None
        self._fill = 0
        self._skip = 0

    def wants_body(self) -> bool:
        """True while a large payload is in progress (read it with :meth:`recv_body`)."""
        return self._body is not None

    def recv_body(self, sock: socket.socket, flags: int = 0) -> tuple[int, list[Frame]]:
        """``recv_into`` the payload in progress; return the bytes read (0: EOF) and finished frames."""
        body = self._body
        assert body is not None and self._head is not None
        if self._fill == len(body):
            self._grow(1)
            body = self._body
            assert body is not None
        # The views are released before returning, so the buffer can grow on the next call.
        with memoryview(body) as mv, mv[self._fill:] as tail:
            n = sock.recv_into(tail, 0, flags)
        if not n:
            return 0, []
        self._fill += n
        return n, self._maybe_finish_body()

    def _grow(self, need: int) -> None:
        """Make room for ``need`` more payload bytes: at least double, never past the declared length."""
        assert self._body is not None and self._head is not None
        length = self._head[2]
        size = len(self._body)
        new = min(length, max(self._fill + need, 2 * size, BIG_FRAME))
        if new > size:
            assert isinstance(self._body, bytearray)  # a mapping has its full size from the start
            # bytes(n) comes from calloc: zero pages, nothing written until the copy below.
            self._body += bytes(new - size)

    def _maybe_finish_body(self) -> list[Frame]:
        assert self._body is not None and self._head is not None
        mtype, rid, length = self._head
        if self._fill < length:
            return []
        body = self._body
        self._body = None
        self._head = None
        return [(mtype, rid, body)]

    def feed(self, data: Any) -> list[Frame]:
        """Consume received bytes; return the frames they complete."""
        out: list[Frame] = []
        mv = memoryview(data)
        if mv.ndim != 1 or mv.itemsize != 1:
            mv = mv.cast("B")
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
                assert self._head is not None
                n = min(self._head[2] - self._fill, mv.nbytes)
                if self._fill + n > len(self._body):
                    self._grow(n)
                self._body[self._fill:self._fill + n] = mv[:n]
                self._fill += n
                mv = mv[n:]
                out.extend(self._maybe_finish_body())
                continue
            buf = self.buf
            if buf:
                buf += mv
                with memoryview(buf) as view:
                    pos = self._parse_buffer(view, out)
                del buf[:pos]
            else:
                # Every complete frame straight from the bytes received (one copy each, into
                # its payload); only an incomplete tail is kept.
                pos = self._parse_buffer(mv, out)
                if pos < mv.nbytes:
                    buf += mv[pos:]
            mv = memoryview(b"")
        return out

    def _parse_buffer(self, buf: memoryview, out: list[Frame]) -> int:
        """Parse the frames of ``buf``; return how many of its bytes were consumed."""
        pos = 0
        end = buf.nbytes
        while end - pos >= HEADER_SIZE:
            magic, version, mtype, length, rid = HEADER.unpack_from(buf, pos)
            if magic != MAGIC or version != VERSION:
                raise DirtyProtocolError(
                    f"bad frame header (magic {bytes(magic)!r}, version {version}): not a gcorn-dirty peer?")
            start = pos + HEADER_SIZE
            if length > self.wire_max:
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
                out.append((mtype, rid, buf[start:start + length].tobytes()))
                pos = start + length
                continue
            if length >= BIG_FRAME:
                have = end - start
                self._head = (mtype, rid, length)
                body = _payload_buffer(length)
                if isinstance(body, mmap.mmap):
                    body[:have] = buf[start:end]
                else:
                    body += buf[start:end]
                self._body = body
                self._fill = have
                pos = end
            break
        return pos


def _payload_buffer(length: int) -> bytearray | mmap.mmap:
    """A buffer for a large payload that costs memory only as it fills (see FrameParser)."""
    if length < MAP_MIN:
        return bytearray()  # grows in FrameParser._grow: a copy or two of under 1 MiB
    try:
        return mmap.mmap(-1, length, flags=_MAP_FLAGS)
    except (OSError, ValueError):  # address space refused (strict overcommit, ulimit -v)
        return bytearray()  # grows in FrameParser._grow
