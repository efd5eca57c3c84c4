"""End to end: the WSGI (gthread) and asgi workers put the same response bytes on the wire.

Both write through gcorn.http's ResponseWriter; the same app, written once
for WSGI and once for ASGI, must give byte-identical answers (Date aside)
for every framing case: a given or a known length, a streamed body, 204,
304, HEAD, HTTP/1.0 with and without keep-alive, the app's hop-by-hop fields.
Each request is followed on its connection by a second one, so whether the
first response kept the connection open is compared too (gthread, not sync:
sync closes every connection after one response, as gunicorn's does; it
writes through the same wsgi/response.py).
"""

from __future__ import annotations

import re
import socket
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from harness import Gcorn

APP = textwrap.dedent('''
    ROUTES = {
        "/len": ("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")],
                 [b"hello"]),
        "/known": ("200 OK", [("Content-Type", "text/plain")], [b"hello"]),
        "/stream": ("200 OK", [("Content-Type", "text/plain")], [b"ab", b"cde"]),
        "/204": ("204 No Content", [("Content-Length", "0")], []),
        "/304": ("304 Not Modified", [("ETag", '"v1"'), ("Content-Length", "5")], []),
        "/close": ("200 OK", [("Connection", "close"), ("Content-Length", "2")], [b"ok"]),
        "/hop": ("200 OK", [("Keep-Alive", "timeout=5"), ("Transfer-Encoding", "chunked"),
                            ("Upgrade", "h2c"), ("Connection", "X-Private"), ("X-Private", "1"),
                            ("X-Public", "2"), ("Server", "app"), ("Date", "yesterday"),
                            ("TE", "trailers"), ("Trailer", "X-Sum")], [b"hop"]),
        "/426": ("426 Upgrade Required", [("Upgrade", "TLS/1.2, HTTP/1.1"),
                                          ("Connection", "Upgrade"), ("Content-Length", "3")],
                 [b"tls"]),
    }


    def wsgi(environ, start_response):
        status, headers, pieces = ROUTES.get(environ["PATH_INFO"], ROUTES["/len"])
        start_response(status, headers)
        if environ["PATH_INFO"] == "/stream":
            return (piece for piece in pieces)
        return pieces


    async def asgi(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        status, headers, pieces = ROUTES.get(scope["path"], ROUTES["/len"])
        await send({"type": "http.response.start", "status": int(status[:3]),
                    "headers": [(n.encode(), v.encode()) for n, v in headers]})
        if scope["path"] == "/stream":
            for piece in pieces:
                await send({"type": "http.response.body", "body": piece, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        else:
            await send({"type": "http.response.body", "body": b"".join(pieces)})
''')

PATHS = ["/len", "/known", "/stream", "/204", "/304", "/close", "/hop", "/426"]
VERSIONS = {"1.1": b"HTTP/1.1\r\nHost: t\r\n", "1.0": b"HTTP/1.0\r\n",
            "1.0-keep-alive": b"HTTP/1.0\r\nConnection: keep-alive\r\n"}
NEXT = b"GET /len HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
DATE = re.compile(rb"\r\nDate: [^\r]*\r\n")


def exchange(port: int, request: bytes) -> bytes:
    """Send `request` and the NEXT one on one connection; everything until the close."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request + NEXT)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


@pytest.fixture
def servers(start_gcorn: Callable[..., Gcorn], tmp_path: Path) -> dict[str, Gcorn]:
    (tmp_path / "sameapp.py").write_text(APP)
    return {"wsgi": start_gcorn("-k", "gthread", "--threads", "2", "-w", "1", "sameapp:wsgi",
                                ready_path="/len"),
            "asgi": start_gcorn("-k", "asgi", "-w", "1", "sameapp:asgi", ready_path="/len")}


def test_wsgi_and_asgi_answer_byte_for_byte_alike(servers: dict[str, Gcorn]) -> None:
    answers: dict[tuple[str, str, str], bytes] = {}
    for path in PATHS:
        for method in ("GET", "HEAD"):
            for version, rest in VERSIONS.items():
                request = method.encode() + b" " + path.encode() + b" " + rest + b"\r\n"
                seen = {kind: DATE.sub(b"\r\nDate: -\r\n", exchange(server.port, request))
                        for kind, server in servers.items()}
                assert seen["wsgi"] == seen["asgi"], (method, path, version, seen)
                answers[(method, path, version)] = seen["wsgi"]
    # what both agree on is what the RFCs ask
    assert answers[("GET", "/len", "1.1")].startswith(
        b"HTTP/1.1 200 OK\r\nServer: gcorn\r\nDate: -\r\nContent-Type: text/plain\r\n"
        b"Content-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\n")
    assert b"Transfer-Encoding: chunked\r\n\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\nHTTP/1.1" in (
        answers[("GET", "/stream", "1.1")])
    assert answers[("GET", "/stream", "1.0")].endswith(b"Connection: close\r\n\r\nabcde")
    assert answers[("GET", "/known", "1.0-keep-alive")].count(b"HTTP/1.1 200") == 2
    assert b"Connection: keep-alive\r\n" in answers[("GET", "/known", "1.0-keep-alive")]
    assert answers[("GET", "/known", "1.0")].count(b"HTTP/1.1 200") == 1
    assert answers[("GET", "/close", "1.1")].count(b"HTTP/1.1 200") == 1
    assert b"Content-Length" not in answers[("GET", "/204", "1.1")].split(b"\r\n\r\n")[0]
    assert b"Content-Length: 5\r\n\r\nHTTP/1.1" in answers[("GET", "/304", "1.1")]
    head = answers[("HEAD", "/known", "1.1")].split(b"\r\n\r\n")[0]
    assert b"Content-Length" not in head and b"Transfer-Encoding" not in head
    # RFC 9110 15.5.22: a 426 keeps the app's Upgrade, and Connection names it
    assert (b"Upgrade: TLS/1.2, HTTP/1.1\r\nContent-Length: 3\r\nConnection: upgrade\r\n\r\ntls"
            in answers[("GET", "/426", "1.1")])
    hop = answers[("GET", "/hop", "1.1")].split(b"\r\n\r\n")[0]
    assert hop.endswith(b"Date: -\r\nX-Public: 2\r\nContent-Length: 3")
