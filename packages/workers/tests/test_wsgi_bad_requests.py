"""Bad requests get the parser's status, `Connection: close`, no traceback; the worker lives."""

from __future__ import annotations

import os
import socket
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wsgi_support import Server, read_until_close

CASES = [
    (400, b"GARBAGE\r\n\r\n"),
    (400, b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
    (400, b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n"),
    (400, b"POST /echo HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"),
    (414, b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n\r\n"),
    (431, b"GET / HTTP/1.1\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(101)) + b"\r\n"),
    (431, b"GET / HTTP/1.1\r\nX-Big: " + b"v" * 9000 + b"\r\n\r\n"),
    (501, b"POST /echo HTTP/1.1\r\nTransfer-Encoding: foo\r\n\r\n"),
    (505, b"GET / HTTP/3.0\r\n\r\n"),
    (417, b"POST /echo HTTP/1.1\r\nExpect: teapot\r\nContent-Length: 1\r\n\r\nx"),
    (400, b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"),
]


@pytest.fixture(scope="module", params=["sync", "gthread"])
def server(request, tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("bad"), worker=request.param,
                 settings={"threads": 2}).start()
    yield srv
    assert srv.stop() == 0


def worker_pid(server):
    status, _, body = server.request("GET", "/pid")
    assert status == 200
    return int(body)


@pytest.mark.parametrize("status,raw", CASES, ids=[f"{s}-{i}" for i, (s, _) in enumerate(CASES)])
def test_bad_request_status_and_close(server, status, raw):
    before = worker_pid(server)
    started = time.monotonic()
    with socket.create_connection((server.host, server.port), timeout=5) as s:
        s.sendall(raw)
        data = read_until_close(s, timeout=5)
    assert time.monotonic() - started < 4, "the server did not close the connection"
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % status), data[:200]
    assert b"connection: close" in head.lower()
    assert b"Traceback" not in data and b"File \"" not in data
    assert worker_pid(server) == before


def test_client_closing_mid_request_is_harmless(server):
    before = worker_pid(server)
    for raw in (b"GET / HTT", b"POST /echo HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc"):
        with socket.create_connection((server.host, server.port), timeout=5) as s:
            s.sendall(raw)
            s.shutdown(socket.SHUT_WR)
            read_until_close(s, timeout=3)
    assert worker_pid(server) == before
    assert "Traceback" not in server.log()


def test_header_limits_follow_the_settings(tmp_path):
    srv = Server(tmp_path, worker="gthread",
                 settings={"limit_request_line": 100, "limit_request_fields": 3,
                           "limit_request_field_size": 50}).start()
    try:
        assert srv.raw(b"GET /" + b"a" * 120 + b" HTTP/1.1\r\n\r\n").startswith(
            b"HTTP/1.1 414 URI Too Long\r\n")  # RFC 9110 15.5.15, as gunicorn
        many = b"GET / HTTP/1.1\r\n" + b"A: 1\r\n" * 4 + b"\r\n"
        assert srv.raw(many).startswith(b"HTTP/1.1 431")
        assert srv.raw(b"GET / HTTP/1.1\r\nA: " + b"x" * 60 + b"\r\n\r\n").startswith(
            b"HTTP/1.1 431")
        ok = srv.raw(b"GET / HTTP/1.1\r\nA: 1\r\nConnection: close\r\n\r\n")
        assert ok.startswith(b"HTTP/1.1 200")
    finally:
        assert srv.stop() == 0


@pytest.mark.parametrize("backend", ["python", "fast"])
def test_http_parser_setting_selects_the_backend(tmp_path, backend):
    from gcorn.http import RequestParser

    try:
        RequestParser(backend="httptools" if backend == "fast" else backend)
    except ImportError as exc:
        pytest.skip(f"backend not available: {exc}")
    srv = Server(tmp_path, worker="sync", settings={"http_parser": backend}).start()
    try:
        assert srv.raw(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").startswith(
            b"HTTP/1.1 400")
        status, _, body = srv.request("GET", "/")
        assert status == 200 and body == b"Hello, World!"
    finally:
        assert srv.stop() == 0


def test_compat_settings_reach_the_parser(tmp_path):
    folded = (b"GET /env HTTP/1.1\r\nHost: x\r\nX-Fold: a\r\n b\r\nConnection: close\r\n\r\n")
    lower = b"get /env HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    strict = Server(tmp_path, worker="sync").start()
    try:
        assert strict.raw(folded).startswith(b"HTTP/1.1 400")
    finally:
        assert strict.stop() == 0
    lax = Server(tmp_path, worker="sync", settings={
        "permit_obsolete_folding": True, "casefold_http_method": True,
        "permit_unconventional_http_method": True}).start()
    try:
        data = lax.raw(folded)
        assert data.startswith(b"HTTP/1.1 200"), data[:100]
        assert b'"HTTP_X_FOLD": "a b"' in data
        data = lax.raw(lower)
        assert data.startswith(b"HTTP/1.1 200") and b'"REQUEST_METHOD": "GET"' in data
    finally:
        assert lax.stop() == 0
