"""PROXY protocol v1 (text) and v2 (binary) header reader, sans-I/O.

A proxy in front of the server (HAProxy, an AWS NLB, ...) sends this header
first on a connection, carrying the client's real address. The reader only
decodes; deciding which peers may send one is the server's job.
Specification: https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field

from .errors import InvalidProxyHeader

V1_PREFIX = b"PROXY "
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_MAX_LENGTH = 107  # the longest v1 line, CRLF included (specification, 2.1)
MODES = ("auto", "v1", "v2")

_V2_HEAD = struct.Struct("!12sBBH")
_V2_INET = struct.Struct("!4s4sHH")
_V2_INET6 = struct.Struct("!16s16sHH")


@dataclass(frozen=True, slots=True)
class ProxyInfo:
    """What a PROXY header said; addresses are None for LOCAL / UNKNOWN headers."""

    version: int  # 1 or 2
    command: str  # "PROXY", or "LOCAL" (a health check by the proxy itself)
    protocol: str  # "TCP4", "TCP6", or "UNKNOWN" (v1) / "UNSPEC" (v2)
    client_addr: str | None = None
    client_port: int | None = None
    server_addr: str | None = None
    server_port: int | None = None
    tlvs: list[tuple[int, bytes]] = field(default_factory=list)  # v2 type-length-values


def read_proxy_header(data: bytes, mode: str = "auto") -> tuple[ProxyInfo | None, int] | None:
    """Decode a PROXY header at the start of ``data``.

    Returns None while more bytes are needed; ``(info, length)`` for a header
    of ``length`` bytes; ``(None, 0)`` in ``auto`` mode when the connection
    does not start with a PROXY header. Raises InvalidProxyHeader otherwise.
    """
    if mode not in MODES:
        raise ValueError(f"unknown PROXY protocol mode {mode!r}; use one of {', '.join(MODES)}")
    if mode != "v2" and data.startswith(V1_PREFIX):
        return _read_v1(data)
    if mode != "v1" and data.startswith(V2_SIGNATURE):
        return _read_v2(data)
    # Too short to tell yet: a prefix of a signature that the mode allows.
    if (mode != "v2" and V1_PREFIX.startswith(data)) or (
        mode != "v1" and V2_SIGNATURE.startswith(data)
    ):
        return None
    if mode == "auto":
        return None, 0
    raise InvalidProxyHeader(f"connection does not start with a PROXY {mode} header")


class ProxyHeaderReader:
    """The start of one connection, fed as it arrives, until its PROXY header is decoded.

    `feed(data)` returns None while more bytes are needed, then `(info, rest)`: the
    header (None in ``auto`` mode when there was none) and the bytes after it, which
    belong to the protocol behind. Raises InvalidProxyHeader, as `read_proxy_header`.
    """

    __slots__ = ("_buffer", "mode")

    def __init__(self, mode: str = "auto") -> None:
        if mode not in MODES:
            raise ValueError(f"unknown PROXY protocol mode {mode!r}; use one of {', '.join(MODES)}")
        self.mode = mode
        self._buffer = b""

    def feed(self, data: bytes) -> tuple[ProxyInfo | None, bytes] | None:
        """Add the next bytes; None until the header is complete, then (info, rest)."""
        buffer = self._buffer + data if self._buffer else data
        found = read_proxy_header(buffer, self.mode)
        if found is None:
            # bounded by the format: a v1 line is at most 107 bytes, a v2 header 16 + 65535
            self._buffer = buffer
            return None
        self._buffer = b""
        info, length = found
        return info, buffer[length:]


def _read_v1(data: bytes) -> tuple[ProxyInfo, int] | None:
    end = data.find(b"\r\n", 0, V1_MAX_LENGTH)
    if end < 0:
        if len(data) >= V1_MAX_LENGTH or b"\n" in data:
            raise InvalidProxyHeader("PROXY v1 line too long or not ended by CRLF")
        return None
    parts = data[:end].split(b" ")
    if parts[1:2] == [b"UNKNOWN"]:
        return ProxyInfo(1, "PROXY", "UNKNOWN"), end + 2
    if len(parts) != 6 or parts[1] not in (b"TCP4", b"TCP6"):
        raise InvalidProxyHeader("PROXY v1 line needs TCP4/TCP6 and four fields")
    protocol = parts[1].decode("ascii")
    kind = ipaddress.IPv4Address if protocol == "TCP4" else ipaddress.IPv6Address
    try:
        client = str(kind(parts[2].decode("ascii")))
        server = str(kind(parts[3].decode("ascii")))
    except (ValueError, UnicodeDecodeError):
        raise InvalidProxyHeader("invalid address in PROXY v1 line") from None
    return ProxyInfo(1, "PROXY", protocol, client, _port(parts[4]), server, _port(parts[5])), end + 2


def _port(text: bytes) -> int:
    if not text.isdigit() or len(text) > 5 or (len(text) > 1 and text[:1] == b"0"):
        raise InvalidProxyHeader("invalid port in PROXY header")
    port = int(text)
    if port > 65535:
        raise InvalidProxyHeader("invalid port in PROXY header")
    return port


def _read_v2(data: bytes) -> tuple[ProxyInfo, int] | None:
    if len(data) < _V2_HEAD.size:
        return None
    _, version_command, family_transport, length = _V2_HEAD.unpack_from(data)
    total = _V2_HEAD.size + length
    if version_command >> 4 != 2:
        raise InvalidProxyHeader("unsupported PROXY protocol version")
    command = version_command & 0x0F
    if command > 1:
        raise InvalidProxyHeader("unknown PROXY v2 command")
    if len(data) < total:
        return None
    payload = data[_V2_HEAD.size : total]
    family, transport = family_transport >> 4, family_transport & 0x0F
    kind: type[ipaddress.IPv4Address] | type[ipaddress.IPv6Address]
    if command == 0:  # LOCAL: the proxy speaks for itself; any address block is ignored
        return ProxyInfo(2, "LOCAL", "UNSPEC", tlvs=_tlvs(payload, 0)), total
    if family == 0:
        return ProxyInfo(2, "PROXY", "UNSPEC", tlvs=_tlvs(payload, 0)), total
    if transport != 1:
        raise InvalidProxyHeader("only STREAM (TCP) PROXY v2 headers are supported")
    if family == 1:
        layout, kind, protocol = _V2_INET, ipaddress.IPv4Address, "TCP4"
    elif family == 2:
        layout, kind, protocol = _V2_INET6, ipaddress.IPv6Address, "TCP6"
    else:
        raise InvalidProxyHeader("unsupported PROXY v2 address family")
    if len(payload) < layout.size:
        raise InvalidProxyHeader("PROXY v2 address block too short")
    src, dst, src_port, dst_port = layout.unpack_from(payload)
    info = ProxyInfo(2, "PROXY", protocol, str(kind(src)), src_port, str(kind(dst)), dst_port,
                     _tlvs(payload, layout.size))
    return info, total


def _tlvs(payload: bytes, start: int) -> list[tuple[int, bytes]]:
    tlvs = []
    pos = start
    while pos < len(payload):
        if pos + 3 > len(payload):
            raise InvalidProxyHeader("truncated PROXY v2 TLV")
        kind, size = payload[pos], int.from_bytes(payload[pos + 1 : pos + 3], "big")
        if pos + 3 + size > len(payload):
            raise InvalidProxyHeader("truncated PROXY v2 TLV")
        tlvs.append((kind, payload[pos + 3 : pos + 3 + size]))
        pos += 3 + size
    return tlvs
