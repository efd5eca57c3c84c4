"""Forwarded headers from trusted peers, header_map, and TLS (self-signed certificate)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import struct
import subprocess
import sys

import httpx
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wsgi_support import Server, split_responses


def env_of(data):
    (status, _, body), = split_responses(data)
    return status, (json.loads(body) if status == 200 else body)


def req(server, headers: bytes) -> tuple[int, object]:
    return env_of(server.raw(b"GET /env HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                             + headers + b"\r\n"))


@pytest.fixture(scope="module", params=["sync", "gthread"])
def trusted(request, tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("trusted"), worker=request.param,
                 settings={"forwarded_allow_ips": ["127.0.0.0/8"]}).start()
    yield srv
    assert srv.stop() == 0


def test_scheme_from_trusted_proxy(trusted):
    status, env = req(trusted, b"X-Forwarded-Proto: https\r\n")
    assert status == 200 and env["wsgi.url_scheme"] == "https"
    status, env = req(trusted, b"X-Forwarded-Ssl: on\r\nX-Forwarded-Proto: https\r\n")
    assert env["wsgi.url_scheme"] == "https"
    status, env = req(trusted, b"X-Forwarded-Proto: http\r\n")
    assert env["wsgi.url_scheme"] == "http"


def test_conflicting_scheme_headers_are_400(trusted):
    status, body = req(trusted, b"X-Forwarded-Proto: https\r\nX-Forwarded-Ssl: off\r\n")
    assert status == 400


def test_x_forwarded_for_is_passed_not_trusted_for_remote_addr(trusted):
    status, env = req(trusted, b"X-Forwarded-For: 203.0.113.9\r\n")
    assert env["HTTP_X_FORWARDED_FOR"] == "203.0.113.9"
    assert env["REMOTE_ADDR"] == "127.0.0.1"


def test_forwarder_headers_from_trusted_peer(trusted):
    status, env = req(trusted, b"SCRIPT_NAME: /app\r\nX_Other: dropped\r\n")
    # /env does not start with /app: a configuration problem, never a traceback
    assert status == 500
    data = trusted.raw(b"GET /app/env HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                       b"SCRIPT_NAME: /app\r\nX_Other: dropped\r\n\r\n")
    status, env = env_of(data)
    assert env["SCRIPT_NAME"] == "/app" and env["PATH_INFO"] == "/env"
    assert "HTTP_X_OTHER" not in env


@pytest.mark.parametrize("header_map,expected", [
    ("drop", None), ("refuse", 400), ("dangerous", "1"),
])
def test_header_map_and_untrusted_peer(tmp_path, header_map, expected):
    srv = Server(tmp_path, worker="gthread",
                 settings={"header_map": header_map, "forwarded_allow_ips": ["10.9.9.9"]}).start()
    try:
        status, env = req(srv, b"X_Under: 1\r\nX-Forwarded-Proto: https\r\n")
        if expected == 400:
            assert status == 400
            return
        assert status == 200
        assert env["wsgi.url_scheme"] == "http"  # the peer is not trusted
        assert env.get("HTTP_X_UNDER") == expected
    finally:
        assert srv.stop() == 0


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    if not shutil.which("openssl"):
        pytest.skip("openssl not installed")
    d = tmp_path_factory.mktemp("cert")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-keyout", str(d / "key.pem"),
                    "-out", str(d / "cert.pem")], check=True, capture_output=True, timeout=30)
    return str(d / "cert.pem"), str(d / "key.pem")


@pytest.mark.parametrize("worker", ["sync", "gthread"])
def test_tls(tmp_path, cert, worker):
    certfile, keyfile = cert
    ctx = ssl.create_default_context(cafile=certfile)
    ctx.check_hostname = False

    def probe(server):
        try:
            with httpx.Client(verify=ctx, timeout=2) as client:
                return client.get(f"https://{server.host}:{server.port}/").status_code == 200
        except httpx.TransportError:
            return False

    srv = Server(tmp_path, worker=worker, settings={"certfile": certfile, "keyfile": keyfile,
                                                    "threads": 2}).start(probe=probe)
    try:
        url = f"https://{srv.host}:{srv.port}"
        with httpx.Client(verify=ctx, timeout=5) as client:
            r = client.get(url + "/env")
            assert r.status_code == 200
            assert r.json()["wsgi.url_scheme"] == "https"
            r = client.post(url + "/echo", content=b"z" * 100_000)
            assert r.content == b"z" * 100_000
            r = client.get(url + "/chunked")
            assert r.content == b"part0;part1;part2;part3;part4;"
            payload = os.urandom(200_000)  # file_wrapper under TLS: no sendfile, same bytes
            (tmp_path / "tls.bin").write_bytes(payload)
            r = client.get(url + f"/file?path={tmp_path / 'tls.bin'}")
            assert r.content == payload
        # plain HTTP on the TLS port is refused, and the worker survives
        try:
            data = srv.raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", timeout=2)
        except OSError:
            data = b""
        assert not data.startswith(b"HTTP/1.1 200")
        with httpx.Client(verify=ctx, timeout=5) as client:
            assert client.get(url + "/").content == b"Hello, World!"
    finally:
        assert srv.stop() == 0


def v2_header(src: str, dst: str, sport: int, dport: int) -> bytes:
    addrs = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)
    return (b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(addrs))
            + addrs)


@pytest.mark.parametrize("worker", ["sync", "gthread"])
def test_proxy_protocol(tmp_path, worker):
    srv = Server(tmp_path, worker=worker, settings={"proxy_protocol": "auto"}).start()
    try:
        get = b"GET /env HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        status, env = env_of(srv.raw(b"PROXY TCP4 203.0.113.7 10.0.0.1 5555 80\r\n" + get))
        assert status == 200
        assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == ("203.0.113.7", "5555")
        assert (env["PROXY_ADDR"], env["PROXY_PORT"]) == ("10.0.0.1", "80")
        assert env["PROXY_PROTOCOL"] == "TCP4"
        status, env = env_of(srv.raw(v2_header("198.51.100.2", "10.0.0.2", 4444, 443) + get))
        assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == ("198.51.100.2", "4444")
        status, env = env_of(srv.raw(get))  # auto: a connection without the header
        assert status == 200 and env["REMOTE_ADDR"] == "127.0.0.1"
        bad = srv.raw(b"PROXY TCP4 not-an-ip 10.0.0.1 1 2\r\n" + get)
        assert bad.startswith(b"HTTP/1.1 400")
    finally:
        assert srv.stop() == 0


def test_proxy_protocol_from_a_peer_not_allowed(tmp_path):
    srv = Server(tmp_path, worker="gthread",
                 settings={"proxy_protocol": "v1", "proxy_allow_ips": ["10.9.9.9"]}).start(
        probe=lambda s: s.raw(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nGET / HTTP/1.0\r\n\r\n",
                              timeout=1) != b"")
    try:
        data = srv.raw(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nGET / HTTP/1.0\r\n\r\n")
        assert data.startswith(b"HTTP/1.1 403")
        assert srv.raw(b"GET / HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 400")  # v1 required
    finally:
        assert srv.stop() == 0


def test_tls_client_certificate_required(tmp_path, cert):
    certfile, keyfile = cert
    ctx = ssl.create_default_context(cafile=certfile)
    ctx.check_hostname = False
    ctx.load_cert_chain(certfile, keyfile)  # the self-signed cert doubles as the client's

    def probe(server):
        try:
            with httpx.Client(verify=ctx, timeout=2) as client:
                return client.get(f"https://{server.host}:{server.port}/").status_code == 200
        except httpx.TransportError:
            return False

    srv = Server(tmp_path, worker="gthread", settings={
        "certfile": certfile, "keyfile": keyfile, "ca_certs": certfile, "cert_reqs": 2,
    }).start(probe=probe)
    try:
        with httpx.Client(verify=ctx, timeout=5) as client:
            assert client.get(f"https://{srv.host}:{srv.port}/").content == b"Hello, World!"
        anonymous = ssl.create_default_context(cafile=certfile)
        anonymous.check_hostname = False
        with pytest.raises(httpx.TransportError):
            with httpx.Client(verify=anonymous, timeout=5) as client:
                client.get(f"https://{srv.host}:{srv.port}/")
    finally:
        assert srv.stop() == 0
