"""PEP 3333 environ as the sync and gthread workers build it (real server, real clients)."""

from __future__ import annotations

import json
import os
import socket
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wsgi_support import Server

REQUIRED = ("REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "SERVER_NAME",
            "SERVER_PORT", "SERVER_PROTOCOL", "wsgi.version", "wsgi.url_scheme", "wsgi.input",
            "wsgi.errors", "wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once")


@pytest.fixture(scope="module", params=["sync", "gthread"])
def server(request, tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("env"), worker=request.param,
                 settings={"threads": 2}).start()
    yield srv
    assert srv.stop() == 0


def get_env(server, path="/env", headers=None):
    status, _, body = server.request("GET", path, headers=headers)
    assert status == 200, body
    return json.loads(body)


def test_required_keys_and_types(server):
    env = get_env(server, "/env?a=1&b=%20x")
    for key in REQUIRED:
        assert key in env, key
    assert env["REQUEST_METHOD"] == "GET"
    assert env["SCRIPT_NAME"] == ""
    assert env["PATH_INFO"] == "/env"
    assert env["QUERY_STRING"] == "a=1&b=%20x"
    assert env["RAW_URI"] == "/env?a=1&b=%20x"
    assert env["SERVER_NAME"] == "127.0.0.1"
    assert env["SERVER_PORT"] == str(server.port)
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["wsgi.version"] == [1, 0]
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.run_once"] is False
    assert env["wsgi.multiprocess"] is False
    assert env["wsgi.multithread"] is (server.spec["worker"] == "gthread")
    assert env["wsgi.input_terminated"] is True
    assert env["wsgi.file_wrapper"] == "<type>"
    assert env["has_read"] and env["has_errors"]
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert int(env["REMOTE_PORT"]) > 0
    assert env["SERVER_SOFTWARE"].startswith("gcorn")
    assert "env app wrote to wsgi.errors" in server.log()


def test_path_info_is_percent_decoded_latin1(server):
    status, _, body = server.request("GET", "/x%2Fy/caf%C3%A9")
    # PEP 3333: bytes decoded as latin-1 (the app re-encodes to get UTF-8 back)
    assert status == 404
    assert json.loads(body)["path"] == "/x/y/caf\u00c3\u00a9"
    env = get_env(server, "/%65nv")
    assert env["PATH_INFO"] == "/env"
    assert env["RAW_URI"] == "/%65nv"


def test_headers_mapping(server):
    conn = socket.create_connection((server.host, server.port), timeout=5)
    with conn:
        conn.sendall(b"GET /env HTTP/1.1\r\nHost: example.com:8080\r\nX-Multi: a\r\n"
                     b"X-Multi: b\r\nContent-Type: text/x\r\nAccept: */*\r\n"
                     b"Connection: close\r\n\r\n")
        data = b""
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    env = json.loads(data.split(b"\r\n\r\n", 1)[1])
    assert env["HTTP_HOST"] == "example.com:8080"
    assert env["HTTP_X_MULTI"] == "a,b"
    assert env["CONTENT_TYPE"] == "text/x"
    assert "HTTP_CONTENT_TYPE" not in env
    assert env["HTTP_ACCEPT"] == "*/*"
    assert "CONTENT_LENGTH" not in env


def test_http10_protocol(server):
    data = server.raw(b"GET /env HTTP/1.0\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert json.loads(body)["SERVER_PROTOCOL"] == "HTTP/1.0"


def test_script_name_from_process_environment(tmp_path):
    srv = Server(tmp_path, worker="sync", env={"SCRIPT_NAME": "/mount"}).start("/mount/pid")
    try:
        status, _, body = srv.request("GET", "/mount/env?x=1")
        env = json.loads(body)
        assert status == 200
        assert env["SCRIPT_NAME"] == "/mount"
        assert env["PATH_INFO"] == "/env"
        status, _, body = srv.request("GET", "/elsewhere")
        assert status == 500
        assert b"Traceback" not in body
    finally:
        srv.stop()


@pytest.mark.parametrize("worker", ["sync", "gthread"])
def test_unix_socket_server_name_from_host(tmp_path, worker):
    path = str(tmp_path / "s.sock")
    srv = Server(tmp_path, worker=worker, bind=[f"unix:{path}"]).start()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(path)
            s.sendall(b"GET /env HTTP/1.1\r\nHost: example.org:81\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        env = json.loads(data.split(b"\r\n\r\n", 1)[1])
        assert env["SERVER_NAME"] == "example.org"
        assert env["SERVER_PORT"] == "81"
        assert env["REMOTE_ADDR"] == ""
    finally:
        srv.stop()
