"""A client's channel to the dirty arbiter: directory, status, manage and stash requests.

The sync side keeps one connection (requests are few and short: a lock
serialises them) and reconnects once when a kept connection turns out dead;
the async side opens one connection per request. Both bound a request by the
caller's timeout and read the reply through the shared FrameParser, so end of
stream, a bad header or a silent arbiter each end the request with a
DirtyError, and a connection that went out of sync is never reused.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

from .codec import get_codec
from .errors import (
    DirtyConnectionError,
    DirtyProtocolError,
    DirtyTimeoutError,
    error_from_wire,
    unreachable,
)
from .protocol import MAX_FRAME_LIMIT, FrameParser, MsgType, frame_buffers, send_buffers

_SAFE = get_codec("safe")  # the arbiter's socket always speaks the safe codec
_READ = 256 * 1024


class ArbiterChannel:
    """Requests to the arbiter listening on ``socket_path``."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()

    @staticmethod
    def frame(mtype: int, value: Any) -> list[Any]:
        """The buffers of one request frame."""
        return frame_buffers(mtype, 0, _SAFE.encode(value))

    def request(self, bufs: list[Any], timeout: float) -> Any:
        """Send one request frame (from :meth:`frame`) and return the arbiter's answer."""
        with self._lock:
            for attempt in (0, 1):
                sock = self._sock
                connected = sock is not None
                try:
                    if sock is None:
                        sock = self._sock = _connect_unix(self.socket_path, timeout)
                        connected = True
                    rtype, payload = _exchange(sock, bufs, time.monotonic() + timeout)
                    break
                except TimeoutError:
                    self._drop()
                    raise DirtyTimeoutError(f"the dirty arbiter at {self.socket_path} did not answer "
                                            f"within {timeout} s", timeout=timeout) from None
                except DirtyProtocolError:
                    self._drop()  # out of sync: never reuse it
                    raise
                except OSError as exc:
                    self._drop()
                    if attempt and not connected:
                        raise unreachable(self.socket_path, exc) from exc
                    if attempt:
                        raise DirtyConnectionError(f"connection to the dirty arbiter at {self.socket_path} "
                                                   f"lost: {exc}", socket_path=self.socket_path) from exc
        return _answer(rtype, payload)

    async def request_async(self, bufs: list[Any], timeout: float) -> Any:
        """:meth:`request` from asyncio (a connection of its own)."""
        try:
            async with asyncio.timeout(timeout):
                rtype, payload = await self._exchange_async(bufs)
        except TimeoutError:
            raise DirtyTimeoutError(f"the dirty arbiter at {self.socket_path} did not answer within "
                                    f"{timeout} s", timeout=timeout) from None
        return _answer(rtype, payload)

    async def _exchange_async(self, bufs: list[Any]) -> tuple[int, Any]:
        try:
            reader, writer = await asyncio.open_unix_connection(self.socket_path)
        except OSError as exc:
            raise unreachable(self.socket_path, exc) from exc
        parser = FrameParser(MAX_FRAME_LIMIT)
        try:
            writer.writelines(bufs)
            while True:
                data = await reader.read(_READ)
                if not data:
                    raise DirtyConnectionError("the dirty arbiter closed the connection before answering",
                                               socket_path=self.socket_path)
                frames = parser.feed(data)
                if frames:
                    return frames[0][0], frames[0][2]
        except OSError as exc:
            raise DirtyConnectionError(f"dirty arbiter connection failed: {exc}",
                                       socket_path=self.socket_path) from exc
        finally:
            writer.close()

    def forget(self) -> None:
        """Drop the kept connection without closing it (after fork: it is the parent's)."""
        self._sock = None
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the kept connection."""
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()


def _answer(rtype: int, payload: Any) -> Any:
    value = _SAFE.decode(payload)
    if rtype == MsgType.ERROR:
        raise error_from_wire(value)
    return value


def _connect_unix(path: str, timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        raise
    return sock


def _exchange(sock: socket.socket, bufs: list[Any], deadline: float) -> tuple[int, Any]:
    """Send one request and read its reply frame, by ``deadline``."""
    sock.settimeout(max(0.001, deadline - time.monotonic()))
    send_buffers(sock, bufs)
    parser = FrameParser(MAX_FRAME_LIMIT)
    while True:
        sock.settimeout(max(0.001, deadline - time.monotonic()))
        data = sock.recv(_READ)
        if not data:
            raise ConnectionResetError("connection closed by the dirty arbiter")
        frames = parser.feed(data)
        if frames:
            return frames[0][0], frames[0][2]
