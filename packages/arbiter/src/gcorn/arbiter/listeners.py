"""Listening sockets: created once by the master and inherited by every worker.

Sources, in order: fds passed by a re-executing master (GCORN_FD), systemd
socket activation (LISTEN_FDS/LISTEN_PID), then the `bind` list, where each
entry may itself be `fd://N`.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import socket
import stat
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from gcorn.arbiter.addresses import BindAddress, parse_bind
from gcorn.arbiter.contracts import ServerLog, Settings, setting
from gcorn.arbiter.errors import BindError

SD_LISTEN_FDS_START = 3


class Listener:
    """A listening socket plus how to describe it and how to clean it up."""

    def __init__(self, sock: socket.socket, owns_path: bool = True, spec: str = "") -> None:
        self.sock = sock
        self.spec = spec  # the bind string it came from ('' when inherited)
        # False when systemd or another master owns the Unix socket path
        self.owns_path = owns_path

    @property
    def family(self) -> int:
        """AF_INET, AF_INET6 or AF_UNIX."""
        return int(self.sock.family)

    @property
    def kind(self) -> str:
        """'tcp', 'tcp6' or 'unix' (as gunicorn's control socket reports it)."""
        if self.family == socket.AF_INET6:
            return "tcp6"
        return "unix" if self.family == socket.AF_UNIX else "tcp"

    @property
    def path(self) -> str:
        """The Unix socket path ('' for TCP or abstract sockets)."""
        if self.family != socket.AF_UNIX:
            return ""
        name = self.sock.getsockname()
        return name if isinstance(name, str) else ""

    def fileno(self) -> int:
        """The socket's file descriptor."""
        return self.sock.fileno()

    def __getattr__(self, name: str) -> Any:
        # gunicorn's listener objects proxy the socket; hooks rely on that
        return getattr(self.sock, name)

    def __str__(self) -> str:
        if self.family == socket.AF_UNIX:
            name = self.sock.getsockname()
            return f"unix:{name if isinstance(name, str) else name!r}"
        host, port = self.sock.getsockname()[:2]
        if self.family == socket.AF_INET6:
            return f"http://[{host}]:{port}"
        return f"http://{host}:{port}"

    def stop_admitting(self) -> None:
        """Complete no new TCP connection on this socket; those already queued stay acceptable.

        The master calls it at a final stop, before it closes its copy: the workers
        then accept the queue and close theirs, and no connection can slip into the
        queue between a worker's last accept and the close that would reset it after
        its client had sent a request. A client connecting now is never answered a
        SYN-ACK and is refused once the last copy is closed. A Unix socket's door is
        its path, which the master removes.
        """
        if self.family in (socket.AF_INET, socket.AF_INET6):
            drop_new_connections(self.sock)

    def close(self, unlink: bool = True) -> None:
        """Close the socket; remove its Unix path when this master owns it."""
        path = self.path if self.sock.fileno() >= 0 else ""
        self.sock.close()
        if unlink and self.owns_path and path:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


class _BpfInstruction(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                ("k", ctypes.c_uint32)]


class _BpfProgram(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_BpfInstruction))]


_SO_ATTACH_FILTER = 26  # Linux <asm-generic/socket.h>
_BPF_RET_K = 0x06  # BPF_RET | BPF_K: accept the first K bytes of the packet


def drop_new_connections(sock: socket.socket) -> bool:
    """Attach a socket filter that drops every packet `sock` itself receives (Linux).

    On a listening TCP socket that is every SYN (and handshake ACK): connections
    already established are sockets of their own and keep their data. Returns
    False where the kernel offers no socket filters; the caller then stops as before.
    """
    if not sys.platform.startswith("linux"):
        return False
    drop = (_BpfInstruction * 1)(_BpfInstruction(_BPF_RET_K, 0, 0, 0))
    program = _BpfProgram(1, ctypes.cast(drop, ctypes.POINTER(_BpfInstruction)))
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, bytes(program))
    except OSError:
        return False
    return True



def _prepare(sock: socket.socket, cfg: Settings) -> None:
    """Options every listener gets, whatever its origin."""
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    # every process shares the O_NONBLOCK flag of a listening socket: workers
    # must leave it as it is (they all use select/poll/asyncio)
    sock.setblocking(False)


def socket_from_fd(fd: int) -> socket.socket:
    """Wrap an inherited listening fd, checking that it is a stream socket."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError as exc:
        raise BindError(f"fd://{fd}: not an open file descriptor ({exc.strerror})") from exc
    if not stat.S_ISSOCK(mode):
        raise BindError(f"fd://{fd}: not a socket")
    sock = socket.socket(fileno=fd)
    if sock.type != socket.SOCK_STREAM:
        sock.detach()
        raise BindError(f"fd://{fd}: not a stream socket")
    return sock


def _bind_tcp(addr: BindAddress, cfg: Settings) -> socket.socket:
    sock = socket.socket(addr.family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if setting(cfg, "reuse_port", False) and hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if addr.family == socket.AF_INET6:
            # let '0.0.0.0:P' and '[::]:P' be bound side by side, as two binds
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(addr.sockaddr)
        sock.listen(int(setting(cfg, "backlog", 2048)))
    except BaseException:
        sock.close()
        raise
    return sock


def _remove_stale_unix_socket(path: str) -> None:
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise BindError(f"unix:{path}: exists and is not a socket; refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)  # nobody listens: a leftover of a dead server
        return
    except OSError:
        os.unlink(path)
        return
    finally:
        probe.close()
    raise BindError(f"unix:{path}: another process is listening on it")


def _bind_unix(addr: BindAddress, cfg: Settings) -> socket.socket:
    _remove_stale_unix_socket(addr.path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # the umask is how a Unix socket's mode is chosen (chmod is not portable)
    old_umask = os.umask(int(setting(cfg, "umask", 0)))
    try:
        sock.bind(addr.path)
    except BaseException:
        sock.close()
        raise
    finally:
        os.umask(old_umask)
    try:
        uid = setting(cfg, "uid", None)
        gid = setting(cfg, "gid", None)
        if (uid is not None and uid != os.geteuid()) or (gid is not None and gid != os.getegid()):
            os.chown(addr.path, -1 if uid is None else uid, -1 if gid is None else gid)
        sock.listen(int(setting(cfg, "backlog", 2048)))
    except BaseException:
        sock.close()
        os.unlink(addr.path)
        raise
    return sock


def bind_one(
    addr: BindAddress,
    cfg: Settings,
    log: ServerLog,
    retries: int = 5,
    delay: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Listener:
    """Create one listener, retrying a busy address `retries` times `delay` apart."""
    if addr.family == 0:
        sock = socket_from_fd(addr.fd)
        _prepare(sock, cfg)
        return Listener(sock, owns_path=False)
    attempt = 0
    while True:
        attempt += 1
        try:
            sock = _bind_unix(addr, cfg) if addr.family == socket.AF_UNIX else _bind_tcp(addr, cfg)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE and attempt < retries:
                log.error("Connection in use: %s, retrying in %s s", addr.spec, delay)
                sleep(delay)
                continue
            if exc.errno == errno.EADDRINUSE:
                raise BindError(f"cannot bind {addr.spec}: address already in use") from exc
            raise BindError(f"cannot bind {addr.spec}: {exc.strerror or exc}") from exc
        _prepare(sock, cfg)
        return Listener(sock)


def create_listeners(
    binds: Iterable[str], cfg: Settings, log: ServerLog, retries: int = 5, delay: float = 1.0
) -> list[Listener]:
    """Bind every address in `binds`; close what was opened if one fails."""
    listeners: list[Listener] = []
    try:
        for spec in binds:
            listeners.append(bind_one(parse_bind(spec), cfg, log, retries, delay))
    except BaseException:
        for listener in listeners:
            listener.close()
        raise
    return listeners


def serves(listener: Listener, spec: str) -> bool:
    """True when `listener` is the socket the bind string `spec` asks for."""
    if listener.spec and listener.spec == spec:
        return True
    try:
        addr = parse_bind(spec)
    except BindError:
        return False
    if addr.family == 0:
        return listener.fileno() == addr.fd
    if addr.family != listener.family:
        return False
    if addr.family == socket.AF_UNIX:
        return os.path.abspath(addr.path) == os.path.abspath(listener.path or "\0")
    host, port = listener.sock.getsockname()[:2]
    if addr.port == 0 or addr.port != port:
        return False  # port 0 asks for a fresh port: never the same socket
    try:
        infos = socket.getaddrinfo(addr.host or None, port, addr.family, socket.SOCK_STREAM)
    except socket.gaierror:
        return False
    return any(info[4][0] == host for info in infos)


def adopt_fds(fds: Iterable[int], cfg: Settings, owns_path: bool) -> list[Listener]:
    """Listeners from fds inherited from a re-executing master or from systemd."""
    listeners = []
    for fd in fds:
        sock = socket_from_fd(fd)
        _prepare(sock, cfg)
        listeners.append(Listener(sock, owns_path=owns_path))
    return listeners


def systemd_fds(environ: dict[str, str] | os._Environ[str]) -> list[int]:
    """The fds systemd passed to this very process (LISTEN_PID/LISTEN_FDS), then unset."""
    try:
        pid = int(environ.get("LISTEN_PID", ""))
        count = int(environ.get("LISTEN_FDS", ""))
    except ValueError:
        return []
    if pid != os.getpid() or count <= 0:
        return []
    for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        environ.pop(key, None)
    return list(range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + count))
