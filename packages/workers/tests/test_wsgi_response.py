"""Responses: framing, HEAD/204/304, hop-by-hop headers, app errors, close(), file_wrapper."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wsgi_support import Server, split_responses


@pytest.fixture(scope="module", params=["sync", "gthread"])
def server(request, tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("resp"), worker=request.param,
                 settings={"threads": 2}).start()
    yield srv
    assert srv.stop() == 0


def get(server, path, method="GET", version="1.1", extra=b""):
    raw = (f"{method} {path} HTTP/{version}\r\nHost: x\r\nConnection: close\r\n".encode()
           + extra + b"\r\n")
    data = server.raw(raw)
    return data


def test_date_and_server_headers(server):
    (status, headers, body), = split_responses(get(server, "/"))
    assert status == 200 and body == b"Hello, World!"
    assert headers["server"].startswith("gcorn")
    assert headers["date"].endswith(" GMT")
    assert headers["content-length"] == "13"


def test_chunked_when_length_unknown_on_http11(server):
    data = get(server, "/chunked")
    head = data.split(b"\r\n\r\n", 1)[0].lower()
    assert b"transfer-encoding: chunked" in head
    (status, _, body), = split_responses(data)
    assert body == b"part0;part1;part2;part3;part4;"


def test_close_delimited_on_http10(server):
    data = get(server, "/chunked", version="1.0")
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"chunked" not in head.lower()
    assert b"connection: close" in head.lower()
    assert body == b"part0;part1;part2;part3;part4;"


def test_write_callable(server):
    (status, _, body), = split_responses(get(server, "/write"))
    assert status == 200 and body == b"from-write;from-iter"


def test_head_has_no_body_but_keeps_length(server):
    data = get(server, "/", method="HEAD")
    head, _, rest = data.partition(b"\r\n\r\n")
    assert rest == b""
    assert b"content-length: 13" in head.lower()


@pytest.mark.parametrize("code", [204, 304])
def test_no_body_statuses(server, code):
    data = get(server, f"/status/{code}")
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d" % code)
    assert rest == b""
    if code == 204:
        assert b"content-length" not in head.lower()


def test_hop_by_hop_headers_never_sent(server):
    data = get(server, "/hop")
    head = data.split(b"\r\n\r\n", 1)[0].decode().lower()
    assert "keep-alive:" not in head
    assert "upgrade:" not in head
    assert "transfer-encoding" not in head
    assert "server: app" not in head
    assert "x-kept: 1" in head
    assert data.endswith(b"\r\n\r\nhop")


def test_app_connection_close_closes(server):
    raw = b"GET /conn-close HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"
    responses = split_responses(server.raw(raw))
    assert len(responses) == 1
    assert responses[0][1]["connection"] == "close"


def test_app_exception_gives_500_without_traceback(server):
    data = get(server, "/error")
    assert data.startswith(b"HTTP/1.1 500")
    assert b"secret-traceback-marker" not in data and b"Traceback" not in data
    time.sleep(0.1)
    assert "secret-traceback-marker" in server.log()  # logged with its traceback
    assert server.request("GET", "/")[0] == 200  # the worker survives


def test_exception_after_headers_closes_the_connection(server):
    data = get(server, "/error-after")
    assert data.startswith(b"HTTP/1.1 200")
    assert b"first" in data
    assert not data.endswith(b"0\r\n\r\n")  # truncated: the client can tell
    assert server.request("GET", "/")[0] == 200


def test_exc_info_replaces_the_status(server):
    (status, _, body), = split_responses(get(server, "/exc-info"))
    assert status == 500 and body == b"oops"


@pytest.mark.parametrize("path", ["/twice", "/bad-header"])
def test_app_protocol_errors_are_500(server, path):
    data = get(server, path)
    assert data.startswith(b"HTTP/1.1 500")
    assert b"Injected" not in data


def test_content_length_too_long_truncated(server):
    (status, headers, body), = split_responses(get(server, "/long"))
    assert status == 200 and body == b"abc"


def test_content_length_short_closes(server):
    data = get(server, "/short")
    assert data.endswith(b"\r\n\r\nabc")


@pytest.mark.parametrize("fail", ["0", "1"])
def test_close_always_called(server, tmp_path, fail):
    marker = tmp_path / f"closed-{fail}"
    data = get(server, f"/closing?path={marker}&fail={fail}")
    assert data.startswith(b"HTTP/1.1 200")
    deadline = time.monotonic() + 3
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert marker.read_text() == "closed\n"


@pytest.mark.parametrize("query,expected", [
    ("", slice(None)),
    ("&offset=1000", slice(1000, None)),
    ("&length=5000", slice(0, 5000)),
])
def test_file_wrapper(server, tmp_path, query, expected):
    content = os.urandom(300_000)
    path = tmp_path / "f.bin"
    path.write_bytes(content)
    out = subprocess.run(["curl", "-s", "-S", "--max-time", "10", "-D", "-",
                          f"http://{server.host}:{server.port}/file?path={path}{query}"],
                         capture_output=True, timeout=15)
    assert out.returncode == 0, out.stderr
    head, _, body = out.stdout.partition(b"\r\n\r\n")
    assert body == content[expected]
    assert b"content-length: %d" % len(content[expected]) in head.lower()


def test_big_chunked_response(server):
    status, headers, body = server.request("GET", "/bigchunks")
    assert status == 200 and headers["Transfer-Encoding"] == "chunked"
    assert body == b"".join(bytes([65 + i]) * 300_000 for i in range(5))


def test_big_response(server):
    status, _, body = server.request("GET", "/big")
    assert status == 200 and body == b"x" * (1 << 20)


def test_file_wrapper_without_sendfile(tmp_path):
    srv = Server(tmp_path, worker="gthread", settings={"sendfile": False}).start()
    try:
        content = os.urandom(50_000)
        path = tmp_path / "g.bin"
        path.write_bytes(content)
        status, _, body = srv.request("GET", f"/file?path={path}")
        assert status == 200 and body == content
    finally:
        assert srv.stop() == 0


def test_early_hints(server):
    data = get(server, "/hints")
    assert data.startswith(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; "
                           b"as=style\r\n\r\nHTTP/1.1 200 ")
    assert data.endswith(b"\r\n\r\nhints")
    data10 = get(server, "/hints", version="1.0")
    assert data10.startswith(b"HTTP/1.1 200 ")  # no 103 for HTTP/1.0 clients
