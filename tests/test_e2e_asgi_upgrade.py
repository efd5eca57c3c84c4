"""Upgrade requests on the asgi worker, through the `gcorn` command with raw sockets: a
client's bytes never produce a 5xx. An upgrade gcorn does not speak (h2c, foo/1, or a
`websocket` one that is not a WebSocket handshake) is served as a plain request with its
headers, as RFC 9110 section 7.8 allows; an app that does not accept a real handshake
denies it with 403 (the ASGI denial, as gunicorn answers it), not a 500."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest
from harness import Gcorn

# an app that speaks only HTTP, like most: it returns at once for other scope types
APP = '''
import json

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    headers = {k.decode(): v.decode() for k, v in scope["headers"]}
    data = json.dumps({"method": scope["method"], "headers": headers, "body": body.decode()}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": data})
'''

HANDSHAKE = (b"Sec-WebSocket-Version: 13\r\n"
             b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")


@pytest.fixture(scope="module", params=["python", "fast"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The port of `gcorn -k asgi` with one HTTP parser, for every test of the module."""
    tmp = tmp_path_factory.mktemp("upgrade")
    (tmp / "upgradeapp.py").write_text(APP)
    with Gcorn(["-k", "asgi", "--http-parser", request.param, "upgradeapp:app"], cwd=tmp,
               shared=True) as gcorn:
        yield gcorn.port
        assert "Traceback" not in gcorn.log()


def exchange(port: int, data: bytes) -> bytes:
    """Send `data` with `Connection: close` semantics left to the server; read one response."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = sock.recv(65536)
            if not chunk:
                return reply
            reply += chunk
        head, _, body = reply.partition(b"\r\n\r\n")
        length = [int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:")]
        if length:
            while len(body) < length[0]:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                body += chunk
        else:
            sock.settimeout(1)
            try:
                while chunk := sock.recv(65536):
                    body += chunk
            except TimeoutError:
                pass
        return head + b"\r\n\r\n" + body


@pytest.mark.parametrize("upgrade", [b"h2c", b"foo/1", b"HTTP/2.0, foo/1", b"websocket"])
@pytest.mark.parametrize("method", [b"GET", b"POST"])
def test_an_upgrade_gcorn_does_not_speak_is_a_plain_request(server: int, upgrade: bytes,
                                                           method: bytes) -> None:
    # `websocket` without Sec-WebSocket-Key is no WebSocket handshake (RFC 6455 4.2.1)
    body = b"abc" if method == b"POST" else b""
    reply = exchange(server, method + b" /x HTTP/1.1\r\nHost: t\r\n"
                     b"Connection: keep-alive, upgrade\r\nUpgrade: " + upgrade + b"\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body) + body)
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n"), reply
    seen = json.loads(reply.partition(b"\r\n\r\n")[2])
    assert seen["headers"]["upgrade"] == upgrade.decode()
    assert seen["headers"]["connection"] == "keep-alive, upgrade"
    assert seen["body"] == body.decode()


def test_a_post_websocket_handshake_is_a_plain_request(server: int) -> None:
    reply = exchange(server, b"POST /x HTTP/1.1\r\nHost: t\r\nConnection: upgrade\r\n"
                     b"Upgrade: websocket\r\n" + HANDSHAKE + b"Content-Length: 0\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n"), reply


def test_a_handshake_the_app_does_not_accept_is_denied_403(server: int) -> None:
    reply = exchange(server, b"GET /x HTTP/1.1\r\nHost: t\r\nConnection: keep-alive, Upgrade\r\n"
                     b"Upgrade: websocket\r\n" + HANDSHAKE + b"\r\n")
    assert reply.startswith(b"HTTP/1.1 403 "), reply
