"""gcorn behind a real nginx `proxy_pass`, with the config docs/deploy.md shows.

docs/deploy/nginx-proxy.conf is run as it is, with the test's ports in place of
`listen 80` and `127.0.0.1:8000`: a keep-alive upstream (one gcorn connection
serves many requests), X-Forwarded-For/Proto believed from a peer in
`forwarded_allow_ips` only, a chunked request body (read whole by nginx on `/`,
streamed chunked to gcorn on `/upload/`) and a WebSocket through nginx to the
asgi worker. gunicorn 27 runs behind the same nginx where the comparison is cheap:
the environ the app sees must be the same.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest
import websockets.sync.client
from harness import ExternalServer, Gcorn, deploy_config, free_port, write_echo_app

GUNICORN = shutil.which("gunicorn", path=str(Path(sys.executable).parent))
# as docs/deploy.md runs it: gcorn keeps idle connections longer than nginx does
GTHREAD = ("-k", "gthread", "--threads", "2", "--keep-alive", "75")

class Proxied(NamedTuple):
    """nginx in front of one server: its plain and TLS base URLs."""

    http: str
    https: str


def nginx_site(upstream: int, port: int, tls_port: int, cert: tuple[Path, Path]) -> str:
    """docs/deploy/nginx-proxy.conf on `port` and `tls_port`, in front of 127.0.0.1:`upstream`."""
    return deploy_config("nginx-proxy.conf", {
        "listen 80;": f"listen 127.0.0.1:{port};",
        "listen 443 ssl;": f"listen 127.0.0.1:{tls_port} ssl;",
        "/etc/ssl/certs/example.org.pem": str(cert[0]),
        "/etc/ssl/private/example.org.key": str(cert[1]),
        "server 127.0.0.1:8000;": f"server 127.0.0.1:{upstream};",
    })


@pytest.fixture
def behind_nginx(start_gcorn: Callable[..., Gcorn], start_server: Callable[..., ExternalServer],
                 start_nginx: Callable[..., ExternalServer], tls_cert: tuple[Path, Path],
                 tmp_path: Path) -> Callable[..., Proxied]:
    """`behind_nginx(*server args, server="gcorn")`: nginx in front of gcorn (or gunicorn)."""
    write_echo_app(tmp_path, "proxiedapp", "wsgi")
    write_echo_app(tmp_path, "wsapp", "asgi")

    def start(*args: str, server: str = "gcorn") -> Proxied:
        if server == "gcorn":
            upstream = start_gcorn(*args).port
        else:
            assert GUNICORN is not None, "gunicorn is not installed in the test environment"
            upstream = free_port()
            start_server([GUNICORN, "-b", f"127.0.0.1:{upstream}", *args],
                         ready=lambda _: _answers(f"http://127.0.0.1:{upstream}/"),
                         name="gunicorn")
        port, tls_port = free_port(), free_port()
        start_nginx(nginx_site(upstream, port, tls_port, tls_cert), port)
        return Proxied(f"http://127.0.0.1:{port}", f"https://127.0.0.1:{tls_port}")

    return start


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=1)
    except httpx.HTTPError:
        return False
    return True


def _chunks(data: bytes, size: int = 10_000) -> Iterator[bytes]:
    """`data` as a chunked body, with a pause after the first chunk.

    nginx streams a body upstream chunked only while it is still reading it: one that
    has come whole by the time nginx connects to gcorn goes with a Content-Length.
    """
    for start in range(0, len(data), size):
        yield data[start:start + size]
        if start == 0:
            time.sleep(0.2)


def test_upstream_connection_is_kept_alive(behind_nginx: Callable[..., Proxied]) -> None:
    base = behind_nginx(*GTHREAD, "proxiedapp:app").http
    with httpx.Client(timeout=5) as client:
        ports = {client.get(base + f"/n{i}").json()["REMOTE_PORT"] for i in range(6)}
    # nginx's `keepalive 16` and HTTP/1.1 upstream: one gcorn connection for them all
    assert len(ports) == 1, ports


def test_forwarded_headers_from_a_trusted_nginx(behind_nginx: Callable[..., Proxied]) -> None:
    proxied = behind_nginx("proxiedapp:app")  # forwarded_allow_ips: 127.0.0.1,::1 by default
    got = httpx.get(proxied.http + "/p?q=1", headers={"X-Forwarded-For": "203.0.113.5",
                                                      "X-Forwarded-Proto": "https"},
                    timeout=5).json()
    # nginx appends its peer to the client's X-Forwarded-For and sets the proto to its
    # own scheme, whatever the client claimed
    assert got["HTTP_X_FORWARDED_FOR"] == "203.0.113.5, 127.0.0.1"
    assert got["HTTP_X_FORWARDED_PROTO"] == "http"
    assert got["wsgi.url_scheme"] == "http"
    assert got["REMOTE_ADDR"] == "127.0.0.1"  # X-Forwarded-For never replaces it (as gunicorn)
    assert got["HTTP_HOST"] == proxied.http.removeprefix("http://")
    tls = httpx.get(proxied.https + "/p", verify=False, timeout=5).json()
    assert tls["HTTP_X_FORWARDED_PROTO"] == "https"
    assert tls["wsgi.url_scheme"] == "https"  # nginx is in forwarded_allow_ips


def test_forwarded_proto_ignored_from_an_untrusted_peer(
        behind_nginx: Callable[..., Proxied]) -> None:
    proxied = behind_nginx("--forwarded-allow-ips", "192.0.2.1", "proxiedapp:app")
    got = httpx.get(proxied.https + "/", verify=False, timeout=5).json()
    assert got["HTTP_X_FORWARDED_PROTO"] == "https"  # passed on to the app as a header...
    assert got["wsgi.url_scheme"] == "http"  # ...but nginx (127.0.0.1) is not trusted


@pytest.mark.parametrize("path", ["/", "/upload/"])
def test_chunked_request_body(behind_nginx: Callable[..., Proxied], path: str) -> None:
    base = behind_nginx(*GTHREAD, "proxiedapp:app").http
    body = bytes(range(256)) * 1000
    got = httpx.post(base + path, content=_chunks(body), timeout=10).json()
    assert got["body_length"] == len(body)
    assert got["body_sha"] == __import__("hashlib").sha256(body).hexdigest()
    if path == "/upload/":  # proxy_request_buffering off: gcorn decodes the chunks
        assert got.get("HTTP_TRANSFER_ENCODING") == "chunked", got
        assert "CONTENT_LENGTH" not in got
    else:  # nginx read it whole and sent a Content-Length
        assert got["CONTENT_LENGTH"] == str(len(body))
        assert "HTTP_TRANSFER_ENCODING" not in got


def test_websocket_through_nginx(behind_nginx: Callable[..., Proxied]) -> None:
    base = behind_nginx("-k", "asgi", "wsapp:app").http
    url = base.replace("http://", "ws://") + "/ws/chat"
    with websockets.sync.client.connect(url, open_timeout=5, close_timeout=5) as ws:
        hello = json.loads(ws.recv(timeout=5))
        assert hello == {"client": "127.0.0.1", "scheme": "ws", "path": "/ws/chat",
                         "forwarded_for": "127.0.0.1"}
        for text in ("one", "two" * 10_000):
            ws.send(text)
            assert ws.recv(timeout=5) == "echo:" + text
    # and a plain request on the same location keeps working (Connection: "")
    assert httpx.get(base + "/", timeout=5).json()["scheme"] == "http"


@pytest.mark.skipif(GUNICORN is None, reason="gunicorn is not installed in the test venv")
@pytest.mark.parametrize("path", ["/", "/upload/"])
def test_same_environ_as_gunicorn_behind_nginx(behind_nginx: Callable[..., Proxied],
                                               path: str) -> None:
    results: dict[str, dict[str, Any]] = {}
    body = b"a=1&b=2" * 300
    for server in ("gcorn", "gunicorn"):
        base = behind_nginx(*GTHREAD, "proxiedapp:app",
                            server=server).https
        got = httpx.post(base + path + "x%20y?q=caf%C3%A9", content=_chunks(body, 500),
                         headers={"X-Forwarded-For": "198.51.100.4",
                                  "Content-Type": "application/x-www-form-urlencoded"},
                         verify=False, timeout=5).json()
        results[server] = got
    ours, theirs = results["gcorn"], results["gunicorn"]
    assert set(ours) == set(theirs)  # the same keys (those with str values)...
    # ...and values, but for the ports of each run and the server's own name
    varying = {"REMOTE_PORT", "SERVER_PORT", "HTTP_HOST", "SERVER_SOFTWARE"}
    for key in sorted(set(ours) - varying):
        assert ours[key] == theirs[key], (key, ours[key], theirs[key])
