"""PROXY protocol (v1/v2) at the start of a connection, when `proxy_protocol` is on.

The header itself is decoded by gcorn.http's reader; this module decides who
may send one (`proxy_allow_ips`, else 403) and turns it into environ keys
(`REMOTE_ADDR`, `REMOTE_PORT`, `PROXY_PROTOCOL`, `PROXY_ADDR`, `PROXY_PORT`).
"""

from __future__ import annotations

from typing import Any

from gcorn.workers.errors import WorkerError
from gcorn.workers.proxy import AllowList

__all__ = ["ProxyProtocol", "ProxyProtocolUnavailable", "proxy_mode"]


class ProxyProtocolUnavailable(WorkerError):
    """`proxy_protocol` is on but no PROXY protocol reader is installed (boot error)."""


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
        self.enabled = False
        if self.mode != "off":
            # a proxy in front would send a header on every connection that we
            # would answer with 400: refuse to boot, with the reason
            raise ProxyProtocolUnavailable(
                f"proxy_protocol = {self.mode!r} is not supported yet by this gcorn-http")

    def read(self, conn: Any) -> None:
        """Consume the PROXY header of `conn`, if any, into `conn.proxy_info`."""
        return None
