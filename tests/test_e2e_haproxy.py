"""gcorn behind a real HAProxy that sends the PROXY protocol (docs/deploy/haproxy.cfg).

The config is run as docs/deploy.md shows it, with the test's ports in place of
`bind :80` and `127.0.0.1:8000`, once with `send-proxy-v2` (the binary header) and
once with `send-proxy` (the text one), on the sync, gthread and asgi workers. The
client connects from 127.0.0.2: the app must see that address, which only the
PROXY header carries (HAProxy itself connects to gcorn from 127.0.0.1). gunicorn
27 behind the same HAProxy must see the same environ keys.
"""

from __future__ import annotations

import shutil
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import ExternalServer, Gcorn, deploy_config, free_port, wait_until, write_echo_app

GUNICORN = shutil.which("gunicorn", path=str(Path(sys.executable).parent))
CLIENT = "127.0.0.2"  # the whole 127/8 is loopback on Linux

WORKERS = {"sync": ["-k", "sync"], "gthread": ["-k", "gthread", "--threads", "2"],
           "asgi": ["-k", "asgi"]}


V2_LOCAL = b"\r\n\r\n\x00\r\nQUIT\n" + b"\x20\x00\x00\x00"  # signature, LOCAL, no address


def proxy_probe(port: int, mode: str) -> Callable[[Any], bool]:
    """Ready when a request behind a PROXY header of `mode` (one naming no client) is answered.

    HAProxy must find gcorn ready when it starts: a first failed health check marks
    the server down until `rise` checks (2 s apart) pass.
    """
    header = V2_LOCAL if mode == "v2" else b"PROXY UNKNOWN\r\n"

    def probe(_: Any) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(header + b"GET /ready HTTP/1.0\r\n\r\n")
                return sock.recv(16).startswith(b"HTTP/1.")
        except OSError:
            return False
    return probe


def start_behind(start_gcorn: Callable[..., Gcorn], *args: str, mode: str) -> Gcorn:
    """gcorn reading PROXY headers of `mode`, once a worker answers through one."""
    gcorn = start_gcorn("--proxy-protocol", mode, *args, ready_path=None)
    gcorn.ready = proxy_probe(gcorn.port, mode)
    gcorn.wait_ready()
    return gcorn


def haproxy_config(upstream: int, port: int, send_proxy: str) -> str:
    """docs/deploy/haproxy.cfg on `port`, in front of 127.0.0.1:`upstream`."""
    return deploy_config("haproxy.cfg", {
        "bind :80": f"bind 127.0.0.1:{port}",
        "server app1 127.0.0.1:8000 send-proxy-v2 check":
            f"server app1 127.0.0.1:{upstream} {send_proxy} check",
    })


def get_from(url: str, **kwargs: Any) -> dict[str, Any]:
    """A request from the CLIENT address; its JSON body."""
    transport = httpx.HTTPTransport(local_address=CLIENT)
    with httpx.Client(transport=transport, timeout=5) as client:
        got = client.request(kwargs.pop("method", "GET"), url, **kwargs)
        assert got.status_code == 200, got.text
        result: dict[str, Any] = got.json()
        return result


@pytest.mark.parametrize("send_proxy", ["send-proxy-v2", "send-proxy"])
@pytest.mark.parametrize("worker", ["sync", "gthread", "asgi"])
def test_client_address_from_the_proxy_header(
        worker: str, send_proxy: str, start_gcorn: Callable[..., Gcorn],
        start_haproxy: Callable[..., ExternalServer], tmp_path: Path) -> None:
    write_echo_app(tmp_path, "haapp", "asgi" if worker == "asgi" else "wsgi")
    mode = "v2" if send_proxy.endswith("v2") else "v1"
    access = tmp_path / "access.log"
    gcorn = start_behind(start_gcorn, *WORKERS[worker], "--access-logfile", str(access),
                         "haapp:app", mode=mode)
    port = free_port()
    start_haproxy(haproxy_config(gcorn.port, port, send_proxy), port)
    base = f"http://127.0.0.1:{port}"
    got = get_from(base + "/p?x=1")
    assert got["REMOTE_ADDR"] == CLIENT  # from the header, not HAProxy's 127.0.0.1
    assert got["HTTP_X_FORWARDED_FOR"] == CLIENT  # option forwardfor agrees
    assert (got["PATH_INFO"], got["QUERY_STRING"]) == ("/p", "x=1")
    posted = get_from(base + "/submit", method="POST", content=b"k=v" * 5000)
    assert posted["body"] == "k=v" * 5000
    assert posted["REMOTE_ADDR"] == CLIENT
    if worker != "asgi":
        assert got["PROXY_ADDR"] == "127.0.0.1"  # the proxy's own address, as gunicorn
        assert got["PROXY_PROTOCOL"] == "TCP4"
    if worker == "sync":
        # `check` with `option httpchk`: HAProxy's own checks come with the header too
        # (a LOCAL one for v2), every `inter 2s`; a refused one would be a 400 here
        line = wait_until(lambda: next((line for line in (
            access.read_text().splitlines() if access.exists() else [])
            if "/healthz" in line), None), timeout=5)
        assert line is not None and '"GET /healthz HTTP/1.0" 200' in line, line


@pytest.mark.skipif(GUNICORN is None, reason="gunicorn is not installed in the test venv")
@pytest.mark.parametrize("send_proxy", ["send-proxy-v2", "send-proxy"])
def test_same_environ_as_gunicorn_behind_haproxy(
        send_proxy: str, start_gcorn: Callable[..., Gcorn],
        start_server: Callable[..., ExternalServer],
        start_haproxy: Callable[..., ExternalServer], tmp_path: Path) -> None:
    write_echo_app(tmp_path, "haapp", "wsgi")
    mode = "v2" if send_proxy.endswith("v2") else "v1"
    results = {}
    for server in ("gcorn", "gunicorn"):
        if server == "gcorn":
            upstream = start_behind(start_gcorn, "haapp:app", mode=mode).port
        else:
            assert GUNICORN is not None
            upstream = free_port()
            start_server([GUNICORN, "-b", f"127.0.0.1:{upstream}", "--proxy-protocol", mode,
                          "haapp:app"], name="gunicorn", ready=proxy_probe(upstream, mode))
        port = free_port()
        start_haproxy(haproxy_config(upstream, port, send_proxy), port)
        results[server] = get_from(f"http://127.0.0.1:{port}/p?x=1")
    # what the two servers are compared on (the rest of the environ is each one's own)
    keys = ("REMOTE_ADDR", "REMOTE_PORT", "PROXY_PROTOCOL", "PROXY_ADDR", "PROXY_PORT",
            "HTTP_X_FORWARDED_FOR", "wsgi.url_scheme", "PATH_INFO", "QUERY_STRING", "body")
    ours, theirs = ({key: results[name].get(key) for key in keys} for name in ("gcorn", "gunicorn"))
    assert ours.pop("REMOTE_PORT") != "" and theirs.pop("REMOTE_PORT") != ""
    ours.pop("PROXY_PORT")
    theirs.pop("PROXY_PORT")
    assert ours == theirs
