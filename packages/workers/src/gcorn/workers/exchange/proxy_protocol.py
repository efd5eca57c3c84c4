"""PROXY protocol (v1/v2) at the start of a connection, when `proxy_protocol` is on.

gcorn.http's `ProxyHeaderReader` buffers and decodes the header (for the ASGI
worker too, gcorn.workers.asgi.http); this module decides who
may send one (`proxy_allow_ips`, else 403) and turns it into the environ keys
gunicorn sets (`REMOTE_ADDR`, `REMOTE_PORT`, `PROXY_PROTOCOL`, `PROXY_ADDR`,
`PROXY_PORT`). Only the first bytes of a connection are examined.
"""

from __future__ import annotations

from typing import Any

from gcorn.arbiter import Settings, setting
from gcorn.http import ProxyHeaderReader
from gcorn.workers.errors import ClientDisconnected, ForbiddenPeer
from gcorn.workers.exchange.forwarded import AllowList

__all__ = ["ProxyProtocol", "proxy_mode"]

def proxy_mode(value: Any) -> str:
    """The `proxy_protocol` setting as one of off, v1, v2, auto (a bare True is auto)."""
    if value is True:
        return "auto"
    if not value:
        return "off"
    text = str(value).strip().lower()
    if text in ("off", "false", "no", "0", "none"):
        return "off"
    if text in ("on", "true", "yes", "1"):
        return "auto"
    if text not in ("v1", "v2", "auto"):
        raise ValueError(f"proxy_protocol must be off, v1, v2 or auto, not {value!r}")
    return text


class ProxyProtocol:
    """Reads the PROXY header of a new connection when the setting asks for it."""

    def __init__(self, cfg: Settings, allow: AllowList) -> None:
        self.mode = proxy_mode(setting(cfg, "proxy_protocol", "off"))
        self.allow = allow
        self.enabled = self.mode != "off"

    def read(self, conn: Any) -> None:
        """Consume the PROXY header of `conn` into `conn.proxy_info`; the rest goes to its parser.

        Raises `ForbiddenPeer` (403) when a peer outside `proxy_allow_ips`
        sends one, and gcorn.http's `InvalidProxyHeader` (400) for a bad one.
        """
        reader = ProxyHeaderReader(self.mode)
        found = None
        while found is None:
            data = conn.recv()
            if not data:
                raise ClientDisconnected("connection closed before its PROXY header")
            found = reader.feed(data)
        info, rest = found
        if info is not None:
            if not self.allow.allows(conn.peer):
                raise ForbiddenPeer("PROXY header from a peer not in proxy_allow_ips")
            if info.command == "PROXY" and info.client_addr is not None:
                conn.proxy_info = {
                    "PROXY_PROTOCOL": info.protocol,
                    "REMOTE_ADDR": info.client_addr,
                    "REMOTE_PORT": str(info.client_port),
                    "PROXY_ADDR": info.server_addr or "",
                    "PROXY_PORT": str(info.server_port or ""),
                }
        if rest:
            conn.feed(rest)
