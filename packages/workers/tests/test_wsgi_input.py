"""`wsgi.input`: read/readline/readlines/iteration, chunked bodies, 100-continue."""

from __future__ import annotations

import json
import os
import socket
import sys
import time

import httpx
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wsgi_support import Server, read_until_close, split_responses

BODY = b"line1\nline2 longer\n\nlast-no-newline"


@pytest.fixture(scope="module", params=["sync", "gthread"])
def server(request, tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("input"), worker=request.param,
                 settings={"threads": 2}).start()
    yield srv
    assert srv.stop() == 0


@pytest.mark.parametrize("mode,expected", [
    ("readline", ["line1\n", "line2 longer\n", "\n", "last-no-newline"]),
    ("readlines", ["line1\n", "line2 longer\n", "\n", "last-no-newline"]),
    ("iter", ["line1\n", "line2 longer\n", "\n", "last-no-newline"]),
    ("readline-limit", ["lin", "e1\n", "lin", "e2 "]),
    ("7", ["line1\nl", "ine2 lo", "nger\n\nl", "ast-no-", "newline"]),
])
def test_stream_methods(server, mode, expected):
    status, _, body = server.request("POST", f"/lines?mode={mode}", body=BODY)
    assert status == 200
    assert json.loads(body) == expected


def test_read_all_with_content_length_and_nothing_past_the_end(server):
    data = os.urandom(200_000)
    status, headers, body = server.request("POST", "/echo", body=data)
    assert status == 200
    assert body == data
    assert headers["X-Extra"] == "0"


def test_chunked_request_body(server):
    def gen():
        yield b"abc"
        yield b"\n"
        yield b"x" * 70000

    with httpx.Client(timeout=5) as client:
        r = client.post(f"http://{server.host}:{server.port}/echo", content=gen())
    assert r.status_code == 200
    assert r.content == b"abc\n" + b"x" * 70000


def test_chunked_request_readline(server):
    raw = (b"POST /lines?mode=readline HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
           b"Connection: close\r\n\r\n"
           b"4\r\nab\nc\r\n3\r\nd\ne\r\n0\r\n\r\n")
    (status, _, body), = split_responses(server.raw(raw))
    assert status == 200
    assert json.loads(body) == ["ab\n", "cd\n", "e"]


def test_expect_100_continue_answered_when_the_app_reads(server):
    with socket.create_connection((server.host, server.port), timeout=5) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                  b"Expect: 100-continue\r\nConnection: close\r\n\r\n")
        first = s.recv(65536)
        assert first == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(b"hello")
        rest = read_until_close(s)
    (status, _, body), = split_responses(rest)
    assert status == 200
    assert body == b"hello"


def test_expect_100_continue_not_sent_when_the_app_ignores_the_body(server):
    with socket.create_connection((server.host, server.port), timeout=5) as s:
        s.sendall(b"POST /noread HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                  b"Expect: 100-continue\r\n\r\n")
        data = read_until_close(s, timeout=5)
    assert b"100 Continue" not in data
    (status, headers, body), = split_responses(data)
    assert status == 200 and body == b"noread"
    # the client was never told to send its body: the connection cannot be reused
    assert headers.get("connection") == "close"


def test_curl_expect_continue_upload(server, tmp_path):
    import subprocess

    payload = tmp_path / "up.bin"
    payload.write_bytes(os.urandom(300_000))  # curl sends Expect for large bodies
    out = subprocess.run(["curl", "-s", "-S", "--max-time", "10", "--data-binary",
                          f"@{payload}", "-H", "Content-Type: application/octet-stream",
                          f"http://{server.host}:{server.port}/echo"],
                         capture_output=True, timeout=15)
    assert out.returncode == 0, out.stderr
    assert out.stdout == payload.read_bytes()


def test_slow_body_is_waited_for(server):
    with socket.create_connection((server.host, server.port), timeout=5) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n"
                  b"Connection: close\r\n\r\nabc")
        time.sleep(0.3)
        s.sendall(b"def")
        (status, _, body), = split_responses(read_until_close(s))
    assert status == 200 and body == b"abcdef"
