"""Trusted front-end proxies: who may set the scheme, forwarder headers and PROXY headers.

Rules as gunicorn applies them:

- `forwarded_allow_ips` lists the peers (IPs, CIDRs or `*`) whose
  `secure_scheme_headers` and `forwarder_headers` are believed; a Unix-socket
  peer is always trusted.
- a matching scheme header makes the request https; two scheme headers that
  disagree are a 400.
- a header name with an underscore is dropped (`header_map = drop`),
  refused with a 400 (`refuse`) or kept (`dangerous`), unless it is one of
  the `forwarder_headers` sent by a trusted peer.
- `X-Forwarded-For` is passed to the app as `HTTP_X_FORWARDED_FOR`; it never
  replaces `REMOTE_ADDR` (only the PROXY protocol does).
- `proxy_allow_ips` lists the peers allowed to send a PROXY protocol header.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Any

from gcorn.arbiter import Settings, setting
from gcorn.workers.errors import HeaderNameRefused, InvalidSchemeHeaders

__all__ = ["AllowList", "ForwardedPolicy", "Peer", "split_list"]

Peer = Any  # (host, port) tuple for TCP, str or bytes for a Unix socket

DEFAULT_SECURE_SCHEME_HEADERS = {
    "X-FORWARDED-PROTOCOL": "ssl",
    "X-FORWARDED-PROTO": "https",
    "X-FORWARDED-SSL": "on",
}
_TRUST_CACHE_MAX = 1024


def split_list(value: str | Iterable[str] | None) -> list[str]:
    """A setting given as 'a, b' or as a list, as a list of stripped non-empty items."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    out: list[str] = []
    for item in items:
        out.extend(part.strip() for part in str(item).split(",") if part.strip())
    return out


class AllowList:
    """A set of peers given as IPs, CIDRs or `*`; Unix-socket peers always match."""

    __slots__ = ("_any", "_cache", "_networks")

    def __init__(self, entries: str | Iterable[str] | None) -> None:
        items = split_list(entries)
        self._any = "*" in items
        # strict=False: a CIDR with host bits is accepted and means its network
        self._networks = [ipaddress.ip_network(e, strict=False) for e in items if e != "*"]
        self._cache: dict[str, bool] = {}

    def allows_ip(self, ip: str) -> bool:
        """Whether the textual IP address `ip` is in the list."""
        if self._any:
            return True
        hit = self._cache.get(ip)
        if hit is not None:
            return hit
        try:
            addr = ipaddress.ip_address(ip.split("%", 1)[0])
        except ValueError:
            result = False
        else:
            mapped = getattr(addr, "ipv4_mapped", None)
            result = any(addr in net or (mapped is not None and mapped in net)
                         for net in self._networks)
        if len(self._cache) >= _TRUST_CACHE_MAX:
            self._cache.clear()
        self._cache[ip] = result
        return result

    def allows(self, peer: Peer) -> bool:
        """Whether a socket peer (TCP tuple or Unix path) is in the list."""
        if not isinstance(peer, tuple):
            return True  # Unix-socket peers are local: always trusted
        return self.allows_ip(str(peer[0]))


class ForwardedPolicy:
    """Per-worker header policy: scheme headers, forwarder headers and `header_map`."""

    __slots__ = ("_forwarder", "_forwarder_any", "_scheme_headers", "header_map",
                 "proxy_allow", "trusted")

    def __init__(self, cfg: Settings) -> None:
        self.trusted = AllowList(setting(cfg, "forwarded_allow_ips", ["127.0.0.1", "::1"]))
        self.proxy_allow = AllowList(setting(cfg, "proxy_allow_ips", ["127.0.0.1", "::1"]))
        scheme_headers = setting(cfg, "secure_scheme_headers", DEFAULT_SECURE_SCHEME_HEADERS)
        self._scheme_headers = {
            name.lower().encode("latin-1"): value
            for name, value in (scheme_headers or {}).items()
        }
        forwarder = split_list(setting(cfg, "forwarder_headers", "SCRIPT_NAME,PATH_INFO"))
        self._forwarder_any = "*" in forwarder
        self._forwarder = {name.lower().encode("latin-1") for name in forwarder}
        header_map = setting(cfg, "header_map", "drop")
        self.header_map = header_map if header_map in ("drop", "refuse", "dangerous") else "refuse"

    def filter_headers(self, headers: Sequence[tuple[bytes, bytes]], peer: Peer,
                       scheme: str) -> tuple[str, Sequence[tuple[bytes, bytes]]]:
        """Apply the policy to parsed headers (lower-case bytes names).

        Returns the request scheme and the headers the app may see (the same
        sequence when nothing is dropped). Raises `InvalidSchemeHeaders` or
        `HeaderNameRefused` (both 400).
        """
        trusted: bool | None = None
        kept: list[tuple[bytes, bytes]] | None = None
        scheme_seen = False
        for index, (name, value) in enumerate(headers):
            if name in self._scheme_headers:
                if trusted is None:
                    trusted = self.trusted.allows(peer)
                if trusted:
                    wanted = self._scheme_headers[name]
                    this = "https" if value.decode("latin-1") == wanted else "http"
                    if scheme_seen and this != scheme:
                        raise InvalidSchemeHeaders()
                    scheme, scheme_seen = this, True
            if b"_" in name:
                if trusted is None:
                    trusted = self.trusted.allows(peer)
                if trusted and (self._forwarder_any or name in self._forwarder):
                    pass  # a trusted proxy may set this one
                elif self.header_map == "dangerous":
                    pass
                elif self.header_map == "drop":
                    if kept is None:
                        kept = list(headers[:index])
                    continue
                else:
                    raise HeaderNameRefused(name.decode("latin-1").upper())
            if kept is not None:
                kept.append((name, value))
        return scheme, (headers if kept is None else kept)
