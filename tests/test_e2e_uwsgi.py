"""`gcorn --protocol uwsgi` end to end on every worker: real uwsgi packets on a real socket.

The client below builds packets as the uwsgi protocol specifies them
(https://uwsgi-docs.readthedocs.io/en/latest/Protocol.html): a 4-byte header
(modifier1, the size of the variable block as a little-endian u16, modifier2),
then each variable as a u16 LE sized name and a u16 LE sized value, then the
body. The answer is plain HTTP/1.x, read to the end of the stream (one request
per connection). The last test puts a real nginx (`uwsgi_pass`, docs/deploy/nginx-uwsgi.conf) in
front, over TCP and a unix socket.
"""

from __future__ import annotations

import json
import shutil
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest
from harness import Gcorn, deploy_config, free_port, wait_until, write_echo_app

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "packages" / "workers" / "tests"))
from green_support import eventlet_missing, gevent_missing

WORKERS: dict[str, list[str]] = {
    "sync": ["-k", "sync"],
    "gthread": ["-k", "gthread", "--threads", "2"],
    "gevent": ["-k", "gevent"],
    "eventlet": ["-k", "eventlet"],
    "asgi": ["-k", "asgi"],
}
PARAMS = [
    "sync", "gthread",
    pytest.param("gevent", marks=pytest.mark.skipif(bool(gevent_missing),
                                                    reason=gevent_missing or "")),
    pytest.param("eventlet", marks=pytest.mark.skipif(bool(eventlet_missing),
                                                      reason=eventlet_missing or "")),
    "asgi",
]


# -- a small uwsgi client --------------------------------------------------------------

def packet(variables: dict[str, str], modifier1: int = 0, modifier2: int = 0) -> bytes:
    """A uwsgi request header and variable block."""
    block = b""
    for name, value in variables.items():
        key, val = name.encode("latin-1"), value.encode("latin-1")
        block += len(key).to_bytes(2, "little") + key + len(val).to_bytes(2, "little") + val
    return bytes([modifier1]) + len(block).to_bytes(2, "little") + bytes([modifier2]) + block


def nginx_vars(method: str = "GET", uri: str = "/", body: bytes = b"",
               **extra: str) -> dict[str, str]:
    """Variables as nginx's uwsgi_params sends them."""
    path, _, query = uri.partition("?")
    variables = {
        "QUERY_STRING": query, "REQUEST_METHOD": method,
        "CONTENT_TYPE": "text/plain" if body else "", "CONTENT_LENGTH": str(len(body)) if body else "",
        "REQUEST_URI": uri, "PATH_INFO": path, "DOCUMENT_ROOT": "/srv",
        "SERVER_PROTOCOL": "HTTP/1.1", "REQUEST_SCHEME": "http",
        "REMOTE_ADDR": "198.51.100.9", "REMOTE_PORT": "50123",
        "SERVER_PORT": "8080", "SERVER_NAME": "example.org", "HTTP_HOST": "example.org:8080",
    }
    variables.update(extra)
    return variables


class Reply:
    """An HTTP response read to the end of the stream."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        head, _, self.body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1]) if lines[0] else 0
        self.headers = {k.strip().lower(): v.strip() for k, _, v in
                        (line.partition(":") for line in lines[1:])}

    def json(self) -> dict[str, Any]:
        """The body as JSON."""
        result: dict[str, Any] = json.loads(self.body)
        return result


def exchange(port: int, data: bytes, source: str | None = None,
             half_close: bool = False) -> Reply:
    """Send `data` on a fresh connection (from `source`); read until the server closes it."""
    with socket.socket() as sock:
        sock.settimeout(5)
        if source:
            sock.bind((source, 0))
        sock.connect(("127.0.0.1", port))
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return Reply(b"".join(chunks))


def uwsgi_probe(port: int) -> Any:
    """Ready when a uwsgi GET is answered."""
    def probe(_: Any) -> bool:
        try:
            return exchange(port, packet(nginx_vars())).status == 200
        except OSError:
            return False
    return probe


class Served(NamedTuple):
    """The gcorn under test: its worker class, port and access log."""

    worker: str
    port: int
    access_log: Path


@pytest.fixture(scope="module", params=PARAMS)
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           ) -> Iterator[Served]:
    """A gcorn speaking uwsgi with that worker (one per module), with an access log."""
    worker = request.param
    tmp = tmp_path_factory.mktemp(f"uwsgi-{worker}")
    write_echo_app(tmp, "uwsgiapp", "asgi" if worker == "asgi" else "wsgi")
    gcorn = Gcorn([*WORKERS[worker], "--protocol", "uwsgi", "--access-logfile",
                   str(tmp / "access.log"), "uwsgiapp:app"], cwd=tmp, ready_path=None,
                  shared=True)
    gcorn.ready = uwsgi_probe(gcorn.port)
    with gcorn:
        gcorn.wait_ready()
        yield Served(worker, gcorn.port, tmp / "access.log")
        log = gcorn.log()
    # the one traceback allowed is the app's own failure (/boom), logged, never sent
    assert log.count("Traceback") <= 1, log


def test_get_with_query(served: Served) -> None:
    worker, port = served.worker, served.port
    reply = exchange(port, packet(nginx_vars("GET", "/items/caf%C3%A9?a=1&b=two",
                                             HTTP_X_CUSTOM="yes",
                                             PATH_INFO="/items/caf\xc3\xa9")))
    assert reply.status == 200, reply.raw
    info = reply.json()
    assert info["REQUEST_METHOD"] == "GET"
    assert info["QUERY_STRING"] == "a=1&b=two"
    assert info["HTTP_X_CUSTOM"] == "yes"
    assert info["HTTP_HOST"] == "example.org:8080"
    assert (info["SERVER_NAME"], info["SERVER_PORT"]) == ("example.org", "8080")
    assert info["SERVER_PROTOCOL"] == "HTTP/1.1"
    if worker == "asgi":
        assert info["PATH_INFO"] == "/items/caf\xe9"  # ASGI: text
    else:
        assert info["PATH_INFO"] == "/items/caf\xc3\xa9"  # WSGI: bytes as latin-1
        assert info["RAW_URI"] == "/items/caf%C3%A9?a=1&b=two"
    assert info.get("CONTENT_TYPE") is None  # nginx's empty CONTENT_TYPE: left out
    assert reply.headers["connection"] == "close"  # one request per connection


def test_post_with_body(served: Served) -> None:
    port = served.port
    body = b"name=value&" * 1000
    reply = exchange(port, packet(nginx_vars("POST", "/submit", body)) + body)
    assert reply.status == 200, reply.raw[:300]
    info = reply.json()
    assert info["REQUEST_METHOD"] == "POST"
    assert info["body"].encode("latin-1") == body
    assert info["CONTENT_TYPE"] == "text/plain"
    assert info["CONTENT_LENGTH"] == str(len(body))


def test_one_mib_response_is_not_chunked(served: Served) -> None:
    port = served.port
    reply = exchange(port, packet(nginx_vars("GET", "/big")))
    assert reply.status == 200, reply.raw[:300]
    # nginx's uwsgi module reads the body raw: chunk markers would end up in it
    assert "transfer-encoding" not in reply.headers
    assert reply.body == b"".join(bytes([65 + i]) * 65536 for i in range(16))


def test_environ_from_the_variables(served: Served) -> None:
    port = served.port
    reply = exchange(port, packet(nginx_vars("GET", "/app/page", SCRIPT_NAME="/app",
                                             HTTPS="on", REMOTE_ADDR="203.0.113.7")))
    assert reply.status == 200, reply.raw
    info = reply.json()
    assert info["REMOTE_ADDR"] == "203.0.113.7"  # the client's, as nginx says
    assert (info["SCRIPT_NAME"], info["PATH_INFO"]) == ("/app", "/page")
    assert info["url_scheme"] == "https"
    plain = exchange(port, packet(nginx_vars("GET", "/"))).json()
    assert plain["url_scheme"] == "http"
    assert plain["SCRIPT_NAME"] == ""


def test_access_log_names_the_client(served: Served) -> None:
    exchange(served.port, packet(nginx_vars("GET", "/logged?k=v", REMOTE_ADDR="192.0.2.77")))
    line = wait_until(lambda: next((line for line in (
        served.access_log.read_text().splitlines() if served.access_log.exists() else [])
        if "/logged" in line), None), timeout=5)
    assert line is not None and line.startswith("192.0.2.77 "), line
    assert '"GET /logged?k=v HTTP/1.1" 200' in line, line


def test_peer_not_allowed_gets_403(served: Served) -> None:
    port = served.port
    # uwsgi_allow_ips defaults to 127.0.0.1,::1: 127.0.0.2 is another peer (exact match)
    reply = exchange(port, packet(nginx_vars()), source="127.0.0.2")
    assert reply.status == 403, reply.raw
    assert b"Traceback" not in reply.raw


def test_malformed_packet_gets_400(served: Served) -> None:
    port = served.port
    # a 6-byte block whose first name claims 5 bytes: the value size runs past the block
    reply = exchange(port, b"\x00\x06\x00\x00\x05\x00ABCD")
    assert reply.status == 400, reply.raw
    assert b"Traceback" not in reply.raw
    # a packet cut short by the end of the stream
    cut = exchange(port, packet(nginx_vars())[:20], half_close=True)
    assert cut.status == 400, cut.raw
    assert b"Traceback" not in cut.raw


def test_modifier1_other_than_zero_gets_501(served: Served) -> None:
    port = served.port
    reply = exchange(port, packet(nginx_vars(), modifier1=5))
    # gunicorn's UnsupportedModifier carries 501 too
    assert reply.status == 501, reply.raw
    assert b"Traceback" not in reply.raw


def test_app_error_gets_500_without_traceback(served: Served) -> None:
    port = served.port
    reply = exchange(port, packet(nginx_vars("GET", "/boom")))
    assert reply.status == 500, reply.raw
    assert b"Traceback" not in reply.raw and b"the app failed" not in reply.raw


# -- a real nginx in front ---------------------------------------------------------------

def uwsgi_site(upstream: str, port: int, tls_port: int, cert: tuple[Path, Path]) -> str:
    """docs/deploy/nginx-uwsgi.conf on `port` and `tls_port`, in front of `upstream`."""
    return deploy_config("nginx-uwsgi.conf", {
        "listen 80;": f"listen 127.0.0.1:{port};",
        "listen 443 ssl;": f"listen 127.0.0.1:{tls_port} ssl;",
        "/etc/ssl/certs/example.org.pem": str(cert[0]),
        "/etc/ssl/private/example.org.key": str(cert[1]),
        "server unix:/run/gcorn/gcorn.sock;": f"server {upstream};",
    })


@pytest.mark.parametrize("worker", ["sync", "gthread", "asgi"])
def test_behind_real_nginx(worker: str, start_gcorn: Any, start_nginx: Any,
                           tls_cert: tuple[Path, Path], tmp_path: Path) -> None:
    write_echo_app(tmp_path, "uwsgiapp", "asgi" if worker == "asgi" else "wsgi")
    sock = tmp_path / "gcorn.sock"
    gcorn = start_gcorn(*WORKERS[worker], "--protocol", "uwsgi", "-b", f"unix:{sock}",
                        "uwsgiapp:app", ready_path=None)
    gcorn.ready = uwsgi_probe(gcorn.port)
    gcorn.wait_ready()
    for upstream in (f"127.0.0.1:{gcorn.port}", f"unix:{sock}"):
        port, tls_port = free_port(), free_port()
        start_nginx(uwsgi_site(upstream, port, tls_port, tls_cert), port)
        base, tls = f"http://127.0.0.1:{port}", f"https://127.0.0.1:{tls_port}"
        with httpx.Client(timeout=5, verify=False) as client:
            got = client.get(base + "/path/x?q=1", headers={"X-Custom": "via nginx"})
            assert got.status_code == 200, (upstream, got.text)
            info = got.json()
            assert info["QUERY_STRING"] == "q=1"
            assert info["PATH_INFO"] == "/path/x"
            assert info["HTTP_X_CUSTOM"] == "via nginx"
            assert info["REMOTE_ADDR"] == "127.0.0.1"  # the client nginx saw
            assert (info["SCRIPT_NAME"], info["url_scheme"]) == ("", "http")
            body = b"x" * 100_000
            posted = client.post(base + "/submit", content=body,
                                 headers={"Content-Type": "text/plain"})
            assert posted.status_code == 200
            assert posted.json()["body"].encode("latin-1") == body
            big = client.get(base + "/big")
            assert big.status_code == 200
            assert big.content == b"".join(bytes([65 + i]) * 65536 for i in range(16))
            mounted = client.get(tls + "/app/page", headers={"Host": "example.org"})
            assert mounted.status_code == 200, mounted.text
            info = mounted.json()
            # `uwsgi_param SCRIPT_NAME /app` and the TLS listener's HTTPS=on
            assert (info["SCRIPT_NAME"], info["PATH_INFO"]) == ("/app", "/page")
            assert info["url_scheme"] == "https"
            assert info["HTTP_HOST"] == "example.org"
            assert client.get(base + "/boom").status_code == 500


GUNICORN = shutil.which("gunicorn", path=str(Path(sys.executable).parent))


@pytest.mark.skipif(GUNICORN is None, reason="gunicorn is not installed in the test venv")
def test_behind_real_nginx_against_gunicorn(start_gcorn: Any, start_server: Any,
                                            start_nginx: Any, tls_cert: tuple[Path, Path],
                                            tmp_path: Path) -> None:
    """Where gunicorn 27 differs behind the same nginx (each listed in docs/deploy.md).

    gcorn makes the environ from nginx's variables, as the uWSGI server does;
    gunicorn takes the client and server addresses from the socket, ignores the
    SCRIPT_NAME variable, and keeps nginx's empty CONTENT_TYPE and CONTENT_LENGTH.
    """
    write_echo_app(tmp_path, "uwsgiapp", "wsgi")
    gcorn = start_gcorn("--protocol", "uwsgi", "uwsgiapp:app", ready_path=None)
    gcorn.ready = uwsgi_probe(gcorn.port)
    gcorn.wait_ready()
    assert GUNICORN is not None
    theirs = free_port()
    start_server([GUNICORN, "-b", f"127.0.0.1:{theirs}", "--protocol", "uwsgi", "uwsgiapp:app"],
                 ready=uwsgi_probe(theirs), name="gunicorn")
    seen = {}
    transport = httpx.HTTPTransport(local_address="127.0.0.2")  # a client nginx alone sees
    for name, upstream in (("gcorn", gcorn.port), ("gunicorn", theirs)):
        port, tls_port = free_port(), free_port()
        start_nginx(uwsgi_site(f"127.0.0.1:{upstream}", port, tls_port, tls_cert), port)
        with httpx.Client(transport=transport, timeout=5) as client:
            got = client.get(f"http://127.0.0.1:{port}/app/page?q=1",
                             headers={"Host": "example.org", "X-Custom": "1"})
        assert got.status_code == 200, (name, got.text)
        seen[name] = got.json()
    # what the two servers are compared on (the rest of the environ is each one's own)
    keys = ("REQUEST_METHOD", "PATH_INFO", "SCRIPT_NAME", "QUERY_STRING", "RAW_URI", "SERVER_NAME",
            "SERVER_PORT", "SERVER_PROTOCOL", "REMOTE_ADDR", "CONTENT_TYPE", "CONTENT_LENGTH",
            "HTTP_X_CUSTOM", "HTTP_HOST", "url_scheme", "body")
    ours, gunicorn = ({key: seen[name].get(key) for key in keys} for name in ("gcorn", "gunicorn"))
    differences = {
        # uwsgi_params' REMOTE_ADDR is the client; the socket's peer is nginx
        "REMOTE_ADDR": ("127.0.0.2", "127.0.0.1"),
        # $server_name against the address gcorn/gunicorn listens on
        "SERVER_NAME": ("example.org", "127.0.0.1"),
        # `uwsgi_param SCRIPT_NAME /app` is cut off the path, or not
        "SCRIPT_NAME": ("/app", ""),
        "PATH_INFO": ("/page", "/app/page"),
        # PEP 3333 allows both: "may be empty or absent"
        "CONTENT_TYPE": (None, ""),
        "CONTENT_LENGTH": (None, ""),
    }
    for key, expected in differences.items():
        assert (ours.pop(key), gunicorn.pop(key)) == expected, key
    ours.pop("SERVER_PORT"), gunicorn.pop("SERVER_PORT")  # each nginx on its own port
    assert ours == gunicorn
