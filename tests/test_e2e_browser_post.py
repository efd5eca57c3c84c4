"""A browser-shaped multipart form POST (Content-Length, the headers Firefox and Chrome
send, a few KB of body) is answered at once on every worker, whatever way its bytes are
cut into TCP segments; through the `gcorn` command, with httpx and raw sockets."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from harness import Gcorn

APP = '''
from werkzeug.formparser import parse_form_data

def wsgi(environ, start_response):
    # werkzeug's multipart parser, as Flask and most WSGI frameworks read a form
    _, form, files = parse_form_data(environ)
    fields = sorted([(name, len(value)) for name, value in form.items()]
                    + [(name, len(f.read())) for name, f in files.items()])
    body = repr(fields).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]

async def asgi(scope, receive, send):
    if scope["type"] != "http":
        return
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"%d" % size})
'''

WORKERS = {
    "sync": ["formapp:wsgi"],
    "gthread": ["-k", "gthread", "--threads", "4", "formapp:wsgi"],
    "asgi": ["-k", "asgi", "formapp:asgi"],
}

BOUNDARY = b"----WebKitFormBoundaryZ7x1qYc3Hq0bX8sK"
FILE = bytes(range(32, 127)) * 40  # ~3.8 KB
BODY = (b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="title"\r\n\r\nQuarterly report\r\n'
        b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="upload"; filename="r.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\n" + FILE + b"\r\n--" + BOUNDARY + b"--\r\n")
BROWSER_HEADERS = {
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/126.0.0.0 Safari/537.36",
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
              "image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7",
    "Accept-Encoding": "gzip, deflate, br, zstd",
    "Accept-Language": "en-GB,en-US;q=0.9,en;q=0.8",
    "Cache-Control": "max-age=0",
    "Connection": "keep-alive",
    "Cookie": "csrftoken=Qm9vb2JvbzEyMzQ1Njc4OTA; sessionid=abcdef0123456789; theme=dark",
    "Origin": "http://127.0.0.1",
    "Referer": "http://127.0.0.1/reports/new",
    "Sec-Fetch-Dest": "document",
    "Sec-Fetch-Mode": "navigate",
    "Sec-Fetch-Site": "same-origin",
    "Sec-Fetch-User": "?1",
    "Upgrade-Insecure-Requests": "1",
    "Priority": "u=0, i",
    "sec-ch-ua": '"Not/A)Brand";v="8", "Chromium";v="126", "Google Chrome";v="126"',
    "sec-ch-ua-mobile": "?0",
    "sec-ch-ua-platform": '"Linux"',
}


@pytest.fixture(scope="module", params=list(WORKERS))
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The port of a gcorn on one worker class, for every test of the module."""
    tmp: Path = tmp_path_factory.mktemp("form")
    (tmp / "formapp.py").write_text(APP)
    with Gcorn(WORKERS[request.param], cwd=tmp, env={"PYTHONWARNINGS": "ignore"},
               shared=True) as gcorn:
        yield gcorn.port


def raw_head(port: int) -> bytes:
    lines = [b"POST /reports HTTP/1.1", b"Host: 127.0.0.1:%d" % port]
    lines += [f"{name}: {value}".encode() for name, value in BROWSER_HEADERS.items()]
    lines += [b"Content-Type: multipart/form-data; boundary=" + BOUNDARY,
              b"Content-Length: %d" % len(BODY)]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def read_response(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    return data


def test_httpx_form_post_is_answered(server: int) -> None:
    with httpx.Client(timeout=3) as client:
        for _ in range(3):  # keep-alive reuse, as a browser does
            reply = client.post(f"http://127.0.0.1:{server}/reports", headers=BROWSER_HEADERS,
                                data={"title": "Quarterly report"},
                                files={"upload": ("r.txt", FILE, "text/plain")})
            assert reply.status_code == 200
            if reply.text.isdigit():  # asgi: the body size it received
                assert int(reply.text) > len(FILE) + len(b"Quarterly report")
            else:  # wsgi: the fields werkzeug parsed
                assert reply.text == f"[('title', 16), ('upload', {len(FILE)})]"


@pytest.mark.parametrize("cuts", ["whole", "head|body", "every-211-bytes", "byte-by-byte-head"])
def test_raw_form_post_is_answered_however_it_is_segmented(server: int, cuts: str) -> None:
    request = raw_head(server) + BODY
    head_len = len(raw_head(server))
    if cuts == "whole":
        pieces = [request]
    elif cuts == "head|body":
        pieces = [request[:head_len], request[head_len:]]
    elif cuts == "every-211-bytes":
        pieces = [request[i:i + 211] for i in range(0, len(request), 211)]
    else:
        pieces = [request[i:i + 1] for i in range(head_len)] + [request[head_len:]]
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server), timeout=3) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for piece in pieces:
            sock.sendall(piece)
            if len(pieces) < 50:
                time.sleep(0.005)
        reply = read_response(sock)
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n"), reply
    assert time.monotonic() - started < 3
