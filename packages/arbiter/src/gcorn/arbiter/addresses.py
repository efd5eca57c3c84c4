"""Parsing `bind` strings: HOST, HOST:PORT, [V6]:PORT, tcp://..., unix:PATH, fd://N."""

from __future__ import annotations

import dataclasses
import ipaddress
import socket

from gcorn.arbiter.errors import BindError

DEFAULT_PORT = 8000


@dataclasses.dataclass(frozen=True)
class BindAddress:
    """One parsed bind: a TCP host/port, a Unix path or an inherited fd."""

    family: int  # AF_INET, AF_INET6, AF_UNIX, or 0 for fd://
    host: str = ""
    port: int = 0
    path: str = ""
    fd: int = -1
    spec: str = ""

    @property
    def sockaddr(self) -> tuple[str, int] | str:
        """What socket.bind() takes."""
        return self.path if self.family == socket.AF_UNIX else (self.host, self.port)


def _port(text: str, spec: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise BindError(f"invalid port {text!r} in bind {spec!r} (expected 0-65535)")
    return int(text)


def parse_bind(spec: str) -> BindAddress:
    """Parse one bind string, as gunicorn's --bind accepts it."""
    text = spec.strip()
    if not text:
        raise BindError("empty bind address")
    if text.startswith("unix:"):
        path = text[len("unix:") :]
        if path.startswith("//"):
            path = path[2:]
        if not path:
            raise BindError(f"bind {spec!r} names no socket path")
        return BindAddress(socket.AF_UNIX, path=path, spec=spec)
    if text.startswith("fd://"):
        num = text[len("fd://") :]
        if not num.isdigit():
            raise BindError(f"bind {spec!r}: fd:// needs a file descriptor number")
        return BindAddress(0, fd=int(num), spec=spec)
    if text.startswith("tcp://"):
        text = text[len("tcp://") :]
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise BindError(f"bind {spec!r}: missing ']' after the IPv6 address")
        port = _port(rest[1:], spec) if rest.startswith(":") else DEFAULT_PORT
        if rest and not rest.startswith(":"):
            raise BindError(f"bind {spec!r}: expected ':PORT' after ']'")
        return BindAddress(socket.AF_INET6, host=host, port=port, spec=spec)
    if text.count(":") > 1:
        # a bare IPv6 literal without brackets and without a port
        return BindAddress(socket.AF_INET6, host=text, port=DEFAULT_PORT, spec=spec)
    host, sep, port_text = text.partition(":")
    port = _port(port_text, spec) if sep else DEFAULT_PORT
    return BindAddress(_tcp_family(host, port, spec), host=host, port=port, spec=spec)


def _tcp_family(host: str, port: int, spec: str) -> int:
    if host in ("", "0.0.0.0"):
        return socket.AF_INET
    try:
        return socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise BindError(f"bind {spec!r}: cannot resolve host {host!r} ({exc})") from exc
    return int(infos[0][0])
