"""The control socket: a unix socket the master serves from its own loop, never blocking.

Wire format (gunicornc's): each message is a 4-byte big-endian length and a
UTF-8 JSON object. A request is ``{"id": N, "command": "show workers",
"args": [...]}``; the answer ``{"id": N, "status": "ok", "data": {...}}`` or
``{"id": N, "status": "error", "error": "..."}``.

Only the socket owner's uid (or root) may talk: the socket is created with
`control_socket_mode` (0600 by default) and every peer's uid is checked with
SO_PEERCRED; anyone else gets one error message and the connection is closed.
Every connection is non-blocking, bounded in size and in time, and served by
the master's select loop, so a slow or broken client cannot stall the master.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import struct
import time
from collections.abc import Callable
from typing import Any

from gcorn.arbiter.contracts import ServerLog

_LEN = struct.Struct(">I")
# a request is a command line; anything bigger is garbage
MAX_REQUEST = 64 * 1024
# answers can be big (show config); a client refuses more than this
MAX_RESPONSE = 16 * 1024 * 1024
# a client gets this long, from connect to the last byte of its answer
CONNECTION_DEADLINE = 5.0
MAX_CONNECTIONS = 16

Handler = Callable[[list[str]], dict[str, Any]]


class ControlError(Exception):
    """A command the master refuses; its message is sent to the client."""


def encode(message: dict[str, Any]) -> bytes:
    """One framed message."""
    payload = json.dumps(message, default=str).encode("utf-8")
    return _LEN.pack(len(payload)) + payload


def decode_frame(buf: bytes | bytearray, limit: int) -> tuple[dict[str, Any] | None, int]:
    """(message, bytes used) from the start of `buf`; (None, 0) when incomplete.

    ValueError when the frame is larger than `limit` or is not a JSON object.
    """
    if len(buf) < 4:
        return None, 0
    (length,) = _LEN.unpack_from(buf, 0)
    if length > limit:
        raise ValueError(f"message of {length} bytes is over the {limit}-byte limit")
    if len(buf) < 4 + length:
        return None, 0
    try:
        message = json.loads(bytes(buf[4 : 4 + length]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ValueError("not a JSON object")
    return message, 4 + length


def peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process at the other end of a unix socket (Linux), or None."""
    opt = getattr(socket, "SO_PEERCRED", None)
    if opt is None:
        return None
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, opt, struct.calcsize("3i"))
    except OSError:
        return None
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


class _Client:
    __slots__ = ("sock", "inbuf", "outbuf", "deadline", "closing", "draining")

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.deadline = deadline
        self.closing = False  # close once outbuf is sent
        self.draining = False  # answer sent and write side shut: discard input until EOF


class ControlServer:
    """The master's control socket: `open()`, then `poll(readable, writable)` each loop."""

    def __init__(self, path: str, mode: int, log: ServerLog, handler: Handler) -> None:
        self.path = os.path.abspath(os.path.expanduser(path))
        self.mode = mode
        self.log = log
        self.handler = handler
        self.owner_uid = os.geteuid()
        self.sock: socket.socket | None = None
        self._inode: tuple[int, int] | None = None
        self._clients: dict[int, _Client] = {}

    # -- life ----------------------------------------------------------------

    def open(self) -> None:
        """Bind and listen; OSError (with the path in it) when that is impossible."""
        parent = os.path.dirname(self.path)
        if not os.path.isdir(parent):
            # ~/.gcorn: private, as the socket it holds
            os.makedirs(parent, mode=0o700, exist_ok=True)
        self._remove_stale()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o777 & ~self.mode)  # no window with looser bits
        try:
            sock.bind(self.path)
        except OSError:
            sock.close()
            raise
        finally:
            os.umask(old_umask)
        os.chmod(self.path, self.mode)
        st = os.stat(self.path)
        self._inode = (st.st_dev, st.st_ino)
        sock.listen(64)
        sock.setblocking(False)
        self.sock = sock

    def _remove_stale(self) -> None:
        """Unlink a socket left by a dead master; refuse to steal a live one."""
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise OSError(f"{self.path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(0.5)
        try:
            probe.connect(self.path)
        except OSError:
            os.unlink(self.path)  # nobody listens: a leftover
            return
        finally:
            probe.close()
        raise OSError(f"{self.path} is in use by another running process")

    def close(self, unlink: bool = True) -> None:
        """Send what is pending (best effort), close every socket, remove the path if ours."""
        for client in list(self._clients.values()):
            self._flush(client)
            self._drop(client)
        if self.sock is None:
            return
        self.sock.close()
        self.sock = None
        if unlink and self._inode is not None:
            with contextlib.suppress(OSError):
                st = os.stat(self.path)
                if (st.st_dev, st.st_ino) == self._inode:  # not a successor's socket
                    os.unlink(self.path)

    def close_in_child(self) -> None:
        """In a forked child: close the fds, leave the path to the master."""
        for client in list(self._clients.values()):
            client.sock.close()
        self._clients.clear()
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    # -- the loop ------------------------------------------------------------

    def read_fds(self) -> list[int]:
        """The fds the master's select must watch for reading."""
        if self.sock is None:
            return []
        fds = [self.sock.fileno()]
        fds.extend(fd for fd, c in self._clients.items() if not c.closing or c.draining)
        return fds

    def write_fds(self) -> list[int]:
        """The fds with an answer waiting to be sent."""
        return [fd for fd, c in self._clients.items() if c.outbuf]

    def next_deadline(self) -> float | None:
        """When the oldest connection times out (monotonic), or None."""
        return min((c.deadline for c in self._clients.values()), default=None)

    def poll(self, readable: list[int], writable: list[int]) -> None:
        """Accept, read, answer and write what select found ready; drop expired clients."""
        if self.sock is None:
            return
        if self.sock.fileno() in readable:
            self._accept()
        for fd in readable:
            client = self._clients.get(fd)
            if client is not None and (not client.closing or client.draining):
                self._read(client)
        for fd in writable:
            client = self._clients.get(fd)
            if client is not None:
                self._flush(client)
        now = time.monotonic()
        for client in list(self._clients.values()):
            if now >= client.deadline:
                self.log.warning("control socket: a client took longer than %gs; closed",
                                 CONNECTION_DEADLINE)
                self._drop(client)

    def _accept(self) -> None:
        assert self.sock is not None
        for _ in range(MAX_CONNECTIONS):
            try:
                conn, _addr = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.log.warning("control socket: accept failed: %s", exc)
                return
            conn.setblocking(False)
            if len(self._clients) >= MAX_CONNECTIONS:
                # full: the oldest goes, so stuck clients cannot lock the owner out
                oldest = min(self._clients.values(), key=lambda c: c.deadline)
                self.log.warning("control socket: %d clients at once; closing the oldest",
                                 MAX_CONNECTIONS)
                self._drop(oldest)
            client = _Client(conn, time.monotonic() + CONNECTION_DEADLINE)
            self._clients[conn.fileno()] = client
            uid = peer_uid(conn)
            if uid is not None and uid not in (self.owner_uid, 0):
                self.log.warning("control socket: refused a client with uid %s", uid)
                self._answer(client, {"id": None, "status": "error", "error": (
                    f"permission denied: uid {uid} may not use this control socket "
                    f"(only its owner, uid {self.owner_uid}, or root)")}, close=True)

    def _read(self, client: _Client) -> None:
        try:
            data = client.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(client)
            return
        if not data:
            self._drop(client)
            return
        if client.draining:
            return  # what a refused client still sends is read and dropped
        client.inbuf += data
        while client.inbuf and not client.closing:
            try:
                message, used = decode_frame(client.inbuf, MAX_REQUEST)
            except ValueError as exc:
                self._answer(client, {"id": None, "status": "error",
                                      "error": f"bad request: {exc}"}, close=True)
                return
            if message is None:
                return
            del client.inbuf[:used]
            self._answer(client, self._run(message))
            if client.sock.fileno() < 0:
                return  # dropped while answering

    def _run(self, message: dict[str, Any]) -> dict[str, Any]:
        rid = message.get("id")
        command = message.get("command")
        args = message.get("args") or []
        if not isinstance(command, str) or not isinstance(args, list):
            return {"id": rid, "status": "error",
                    "error": "bad request: want {\"command\": str, \"args\": list}"}
        parts = command.split() + [str(a) for a in args]
        if not parts:
            return {"id": rid, "status": "error", "error": "empty command"}
        try:
            data = self.handler(parts)
        except ControlError as exc:
            return {"id": rid, "status": "error", "error": str(exc)}
        except Exception as exc:  # a bug in a command must not take the master down
            self.log.exception("control socket: command %r failed", " ".join(parts))
            return {"id": rid, "status": "error", "error": f"internal error: {exc}"}
        return {"id": rid, "status": "ok", "data": data}

    def _answer(self, client: _Client, message: dict[str, Any], close: bool = False) -> None:
        client.outbuf += encode(message)
        client.closing = client.closing or close
        # answers are small: nearly always sent here, so a stop command's answer
        # leaves before the master closes the socket
        self._flush(client)

    def _flush(self, client: _Client) -> None:
        while client.outbuf:
            try:
                sent = client.sock.send(client.outbuf)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._drop(client)
                return
            del client.outbuf[:sent]
        if client.closing and not client.draining:
            # closing with unread input would reset the connection and lose the answer
            # on the client's side: shut the write side, drain until EOF or the deadline
            client.draining = True
            try:
                client.sock.shutdown(socket.SHUT_WR)
            except OSError:
                self._drop(client)

    def _drop(self, client: _Client) -> None:
        client.closing = True
        client.draining = False
        client.outbuf.clear()
        fd = client.sock.fileno()
        if fd >= 0:
            self._clients.pop(fd, None)
        else:
            for key, value in list(self._clients.items()):
                if value is client:
                    del self._clients[key]
        client.sock.close()
