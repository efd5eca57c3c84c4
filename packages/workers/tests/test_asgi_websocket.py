"""WebSocket through the asgi worker, with the `websockets` client and raw sockets."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

sys.path.insert(0, os.path.dirname(__file__))
from asgi_support import AsgiServer, raw_request
from workers_helpers import wait_until


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AsgiServer]:
    tmp = tmp_path_factory.mktemp("asgi-ws")
    srv = AsgiServer(tmp, "asgi_apps:app", websocket_max_message_size=64 * 1024,
                     websocket_ping_interval=0.3, websocket_ping_timeout=0.5).wait_ready()
    try:
        yield srv
    finally:
        srv.stop()


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, 10))


def test_echo_text_and_binary(server: AsgiServer) -> None:
    async def go() -> list[object]:
        async with connect(server.ws_url + "/ws") as ws:
            await ws.send("héllo")
            text = await ws.recv()
            await ws.send(b"\x00\x01\x02")
            data = await ws.recv()
            return [text, data]

    assert run(go()) == ["héllo", b"\x00\x01\x02"]


def test_fragmented_message_is_delivered_whole(server: AsgiServer) -> None:
    async def go() -> object:
        async with connect(server.ws_url + "/ws") as ws:
            await ws.send(["frag", "men", "ted"])  # three frames, one message
            return await ws.recv()

    assert run(go()) == "fragmented"


def test_permessage_deflate_is_negotiated(server: AsgiServer) -> None:
    async def go() -> tuple[object, str | None]:
        async with connect(server.ws_url + "/ws", compression="deflate") as ws:
            await ws.send("z" * 10_000)
            echoed = await ws.recv()
            return echoed, ws.response.headers.get("Sec-WebSocket-Extensions")

    echoed, extensions = run(go())
    assert echoed == "z" * 10_000
    assert extensions is not None and "permessage-deflate" in extensions


def test_subprotocol_and_extra_headers(server: AsgiServer) -> None:
    async def go() -> tuple[str | None, str | None, object]:
        async with connect(server.ws_url + "/ws-sub", subprotocols=["chat", "superchat"]) as ws:
            offered = await ws.recv()
            return ws.subprotocol, ws.response.headers.get("x-extra"), offered

    assert run(go()) == ("superchat", "hello", "chat,superchat")


def test_app_close_code_and_reason_reach_the_client(server: AsgiServer) -> None:
    async def go() -> tuple[int, str]:
        async with connect(server.ws_url + "/ws-close-code") as ws:
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd is not None
            return info.value.rcvd.code, info.value.rcvd.reason

    assert run(go()) == (4001, "bye now")


def test_client_close_code_reaches_the_app(server: AsgiServer) -> None:
    async def go() -> None:
        async with connect(server.ws_url + "/ws") as ws:
            await ws.close(code=4321, reason="client done")

    run(go())
    assert wait_until(lambda: "ws-disconnect 4321" in server.events_text())


def test_oversized_message_closes_with_1009(server: AsgiServer) -> None:
    async def go() -> int:
        async with connect(server.ws_url + "/ws", max_size=None) as ws:
            await ws.send(b"x" * (100 * 1024))
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd is not None
            return info.value.rcvd.code

    assert run(go()) == 1009
    assert wait_until(lambda: "ws-disconnect 1009" in server.events_text())


def test_denial_response_extension(server: AsgiServer) -> None:
    async def go() -> InvalidStatus:
        with pytest.raises(InvalidStatus) as info:
            async with connect(server.ws_url + "/ws-deny"):
                pass
        return info.value

    error = run(go())
    assert error.response.status_code == 401
    assert error.response.headers["x-denied"] == "yes"
    assert error.response.body == b"go away"


def test_close_before_accept_is_403(server: AsgiServer) -> None:
    async def go() -> int:
        with pytest.raises(InvalidStatus) as info:
            async with connect(server.ws_url + "/ws-close-early"):
                pass
        return info.value.response.status_code

    assert run(go()) == 403


def _handshake(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    key = base64.b64encode(os.urandom(16))
    sock.sendall(b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101")
    return sock


def _read_frame(sock: socket.socket) -> tuple[int, bytes]:
    def exact(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    first, second = exact(2)
    length = second & 0x7F
    if length == 126:
        length = struct.unpack("!H", exact(2))[0]
    elif length == 127:
        length = struct.unpack("!Q", exact(8))[0]
    return first & 0x0F, exact(length)


def _masked(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([(0x80 if fin else 0) | opcode, 0x80 | len(payload)]) + mask + body


def _close_code(sock: socket.socket) -> int:
    while True:
        opcode, payload = _read_frame(sock)
        if opcode == 0x8:
            return struct.unpack("!H", payload[:2])[0]


def test_unmasked_client_frame_closes_with_1002(server: AsgiServer) -> None:
    sock = _handshake(server.port)
    with sock:
        sock.sendall(bytes([0x81, 2]) + b"hi")  # a client frame must be masked
        assert _close_code(sock) == 1002


def test_invalid_utf8_text_closes_with_1007(server: AsgiServer) -> None:
    sock = _handshake(server.port)
    with sock:
        sock.sendall(_masked(0x1, b"\xff\xfe"))
        assert _close_code(sock) == 1007


def test_server_pings_and_closes_1011_when_no_pong(server: AsgiServer) -> None:
    sock = _handshake(server.port)
    with sock:
        sock.settimeout(5)
        opcode, _ = _read_frame(sock)
        assert opcode == 0x9  # ping (interval 0.3 s); we never answer it
        assert _close_code(sock) == 1011


def test_upgrade_without_the_library_is_501(tmp_path: Path) -> None:
    srv = AsgiServer(tmp_path, "asgi_apps:app", block_websockets=True).wait_ready()
    try:
        reply = raw_request(srv.port, b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n"
                            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                            b"Sec-WebSocket-Version: 13\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 501")
        assert wait_until(lambda: "gcorn-workers[websockets]" in srv.stderr())
    finally:
        srv.stop()


def test_upgrade_pipelined_behind_a_slow_request(server: AsgiServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        key = base64.b64encode(os.urandom(16))
        sock.sendall(b"GET /sleep?0.2 HTTP/1.1\r\nHost: t\r\n\r\n"
                     b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
        data = b""
        while data.count(b"\r\n\r\n") < 2 or b"101" not in data:
            chunk = sock.recv(4096)
            assert chunk, data
            data += chunk
        assert data.startswith(b"HTTP/1.1 200") and b"slept" in data
        sock.sendall(_masked(0x1, b"after pipelining"))
        opcode, payload = _read_frame(sock)
        assert (opcode, payload) == (0x1, b"after pipelining")
