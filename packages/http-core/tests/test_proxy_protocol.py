"""PROXY protocol v1/v2 reader."""

from __future__ import annotations

import socket
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gcorn.http import InvalidProxyHeader, ParseError, ProxyInfo, read_proxy_header
from gcorn.http.proxy_protocol import V2_SIGNATURE

V1 = b"PROXY TCP4 192.168.0.1 10.0.0.1 56324 443\r\n"


def v2(command: int = 1, family: int = 0x11, payload: bytes = b"") -> bytes:
    return V2_SIGNATURE + struct.pack("!BBH", 0x20 | command, family, len(payload)) + payload


def inet(src: str, dst: str, sport: int, dport: int) -> bytes:
    return socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)


def test_v1_tcp4():
    info, length = read_proxy_header(V1 + b"GET / HTTP/1.1\r\n")
    assert length == len(V1)
    assert info == ProxyInfo(1, "PROXY", "TCP4", "192.168.0.1", 56324, "10.0.0.1", 443)


def test_v1_tcp6_and_unknown():
    data = b"PROXY TCP6 2001:db8::1 ::1 1 65535\r\n"
    info, length = read_proxy_header(data)
    assert (info.protocol, info.client_addr, info.server_port, length) == (
        "TCP6", "2001:db8::1", 65535, len(data))
    info, length = read_proxy_header(b"PROXY UNKNOWN ffff::1 ::1 1 2\r\nrest")
    assert info.protocol == "UNKNOWN" and info.client_addr is None and length == 31


def test_v2_tcp4_with_tlvs():
    payload = inet("203.0.113.7", "10.0.0.2", 40000, 8000) + b"\x01\x00\x02h2" + b"\x04\x00\x00"
    data = v2(payload=payload)
    info, length = read_proxy_header(data + b"GET")
    assert length == len(data)
    assert (info.version, info.command, info.protocol) == (2, "PROXY", "TCP4")
    assert (info.client_addr, info.client_port, info.server_addr, info.server_port) == (
        "203.0.113.7", 40000, "10.0.0.2", 8000)
    assert info.tlvs == [(1, b"h2"), (4, b"")]


def test_v2_tcp6_and_local():
    payload = socket.inet_pton(socket.AF_INET6, "2001:db8::7") + bytes(16) + struct.pack(
        "!HH", 1, 2)
    info, _ = read_proxy_header(v2(family=0x21, payload=payload))
    assert (info.protocol, info.client_addr, info.server_addr) == ("TCP6", "2001:db8::7", "::")
    info, length = read_proxy_header(v2(command=0, family=0x00))
    assert (info.command, info.client_addr, length) == ("LOCAL", None, 16)


@pytest.mark.parametrize("mode", ["auto", "v1", "v2"])
def test_incomplete_headers_ask_for_more(mode):
    data = V1 if mode != "v2" else v2(payload=inet("1.2.3.4", "5.6.7.8", 1, 2))
    for cut in range(len(data)):
        assert read_proxy_header(data[:cut], mode) is None
    assert read_proxy_header(data, mode)[1] == len(data)


def test_auto_mode_without_a_header():
    assert read_proxy_header(b"GET / HTTP/1.1\r\n") == (None, 0)
    assert read_proxy_header(b"PROPFIND / HTTP/1.1\r\n") == (None, 0)
    assert read_proxy_header(b"PRO") is None


@pytest.mark.parametrize(
    "data, mode",
    [
        (b"GET / HTTP/1.1\r\n", "v1"),
        (b"GET / HTTP/1.1\r\n", "v2"),
        (V1, "v2"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", "auto"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "auto"),
        (b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", "auto"),
        (b"PROXY TCP4 1.2.3.400 5.6.7.8 1 2\r\n", "auto"),
        (b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n", "auto"),
        (b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "auto"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", "auto"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", "auto"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", "auto"),
        (b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", "auto"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "auto"),
        (b"PROXY " + b"x" * 120, "auto"),
        (v2(payload=b"\x00" * 4), "auto"),
        (v2(family=0x12, payload=inet("1.2.3.4", "5.6.7.8", 1, 2)), "auto"),
        (v2(family=0x31, payload=bytes(216)), "auto"),
        (v2(command=2), "auto"),
        (V2_SIGNATURE + b"\x10\x11\x00\x00", "auto"),
        (v2(payload=inet("1.2.3.4", "5.6.7.8", 1, 2) + b"\x01\x00\x05ab"), "auto"),
    ],
)
def test_invalid_headers(data, mode):
    with pytest.raises(InvalidProxyHeader) as info:
        read_proxy_header(data, mode)
    assert info.value.status == 400


def test_unknown_mode():
    with pytest.raises(ValueError):
        read_proxy_header(V1, "v3")


@given(st.binary(max_size=120), st.sampled_from(["auto", "v1", "v2"]))
def test_random_bytes_raise_only_parse_errors(data, mode):
    for candidate in (data, b"PROXY " + data, V2_SIGNATURE + data):
        try:
            result = read_proxy_header(candidate, mode)
        except ParseError:
            continue
        assert result is None or result[1] <= len(candidate)


@pytest.mark.parametrize("header", [V1, v2(payload=inet("192.168.0.1", "10.0.0.1", 56324, 443))])
def test_reader_fed_one_byte_at_a_time_gives_the_header_and_the_rest(header):
    from gcorn.http import ProxyHeaderReader

    reader = ProxyHeaderReader("auto")
    data = header + b"GET / HTTP/1.1\r\n"
    for i in range(len(header) - 1):
        assert reader.feed(data[i:i + 1]) is None
    info, rest = reader.feed(data[len(header) - 1:])
    assert (info.client_addr, info.client_port) == ("192.168.0.1", 56324)
    assert rest == b"GET / HTTP/1.1\r\n"


def test_reader_in_auto_mode_passes_a_connection_without_header_through():
    from gcorn.http import ProxyHeaderReader

    assert ProxyHeaderReader("auto").feed(b"GET / HTTP/1.1\r\n") == (None, b"GET / HTTP/1.1\r\n")
    with pytest.raises(InvalidProxyHeader):
        ProxyHeaderReader("v1").feed(b"GET / HTTP/1.1\r\n")
    with pytest.raises(ValueError, match="unknown PROXY protocol mode"):
        ProxyHeaderReader("v3")
