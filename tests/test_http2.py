"""HTTP/2 through `gcorn`: curl, httpx and a raw h2 client, on the asgi and gthread workers.

curl (with nghttp2) checks ALPN over TLS, h2c with prior knowledge and `Upgrade: h2c`;
httpx with http2=True is a second real client; a raw client on the `h2` library
(and hyperframe for frames h2 refuses to send) drives the protocol cases: flow
control, RST_STREAM, GOAWAY on graceful stop, trailers and each known attack.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

h2 = pytest.importorskip("h2")
from h2 import events as ev  # noqa: E402
from h2.settings import SettingCodes  # noqa: E402
from h2client import Client  # noqa: E402
from harness import Gcorn, log_probe, wait_until  # noqa: E402

ENHANCE_YOUR_CALM = 0xB
REFUSED_STREAM = 0x7

ASGI_APP = '''
import asyncio, os

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = "startup" if message["type"] == "lifespan.startup" else "shutdown"
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    path = scope["path"]
    if path == "/wait-disconnect":
        await receive()
        message = await receive()
        with open("disconnected", "w") as out:
            out.write(message["type"])
        return
    size = 0
    chunks = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        chunks += 1
        if not message.get("more_body"):
            break
    if path == "/sleep":
        await asyncio.sleep(float(scope["query_string"] or b"0.1"))
    if path == "/big":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(16):
            await send({"type": "http.response.body", "body": b"x" * 65536, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    if path == "/huge":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"h" * (32 << 20)})
        return
    if path == "/trailers":
        await send({"type": "http.response.start", "status": 200, "trailers": True,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"body", "more_body": False})
        await send({"type": "http.response.trailers",
                    "headers": [(b"x-checksum", b"abc")], "more_trailers": False})
        return
    text = "%s %s %s %d %s" % (scope["http_version"], scope["method"], scope["scheme"], size,
                               dict(scope["headers"]).get(b"host", b"").decode())
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": text.encode()})
'''

WSGI_APP = '''
import time

def app(environ, start_response):
    path = environ["PATH_INFO"]
    body = environ["wsgi.input"].read()
    if path == "/sleep":
        time.sleep(float(environ["QUERY_STRING"] or "0.1"))
    if path == "/file":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](open("blob.bin", "rb"), 8192)
    if path == "/big":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (b"x" * 65536 for _ in range(16))
    if path == "/huge":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"h" * (32 << 20)]
    text = "%s %s %s %d %s" % (environ["SERVER_PROTOCOL"], environ["REQUEST_METHOD"],
                               environ["wsgi.url_scheme"], len(body), environ.get("HTTP_HOST"))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [text.encode()]
'''

CURL = shutil.which("curl")


def _curl_has_http2() -> bool:
    if CURL is None:
        return False
    out = subprocess.run([CURL, "-V"], capture_output=True, text=True, timeout=5).stdout
    return "HTTP2" in out


needs_curl = pytest.mark.skipif(not _curl_has_http2(), reason="curl with HTTP/2 not installed")


@pytest.fixture
def apps(tmp_path: Path) -> Path:
    (tmp_path / "asgiapp.py").write_text(ASGI_APP)
    (tmp_path / "wsgiapp.py").write_text(WSGI_APP)
    (tmp_path / "blob.bin").write_bytes(os.urandom(300_000))
    return tmp_path


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    if not shutil.which("openssl"):
        pytest.skip("openssl not installed")
    folder = tmp_path_factory.mktemp("h2cert")
    certfile, keyfile = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-keyout", str(keyfile), "-out", str(certfile)],
                   check=True, capture_output=True, timeout=30)
    return str(certfile), str(keyfile)


APP = {"asgi": "asgiapp:app", "gthread": "wsgiapp:app"}
WORKER_ARGS = {"asgi": ["-k", "asgi"], "gthread": ["-k", "gthread", "--threads", "100"]}


def start_h2c(start_gcorn: Callable[..., Gcorn], worker: str, *extra: str) -> Gcorn:
    """gcorn with h2c (prior knowledge and upgrade) on, the access log on stdout."""
    return start_gcorn(*WORKER_ARGS[worker], "--http2-cleartext", "both",
                       "--access-logfile", "-", *extra, APP[worker])


def start_tls(start_gcorn: Callable[..., Gcorn], worker: str, cert: tuple[str, str],
              *extra: str) -> Gcorn:
    """gcorn over TLS offering h2 then http/1.1 by ALPN."""
    server = start_gcorn(*WORKER_ARGS[worker], "--http-protocols", "h2,h1", "--certfile",
                         cert[0], "--keyfile", cert[1], *extra, APP[worker],
                         ready_path=None, wait=False)
    server.ready = log_probe("Booting worker")
    server.wait_ready()
    time.sleep(0.3)  # the worker's boot ends after its log line
    return server


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    assert CURL is not None
    return subprocess.run([CURL, "-sS", "--max-time", "10", *args], capture_output=True,
                          text=True, timeout=15)


# -- a raw h2 client (h2client.py) ----------------------------------------------------


def get_one(port: int, path: str = "/") -> bytes:
    client = Client(port)
    sid = client.request(path)
    client.read(lambda: client.ended(sid))
    client.close()
    assert client.ended(sid), client.events
    return bytes(client.data.get(sid, b""))


# -- real clients --------------------------------------------------------------------------


@needs_curl
@pytest.mark.parametrize("worker", ["asgi", "gthread"])
def test_curl_h2c_prior_knowledge_and_upgrade(start_gcorn: Callable[..., Gcorn], apps: Path,
                                              worker: str) -> None:
    server = start_h2c(start_gcorn, worker)
    done = curl("--http2-prior-knowledge", "-w", " %{http_version}", server.url + "/a")
    assert done.returncode == 0, done.stderr
    version = "2" if worker == "asgi" else "HTTP/2.0"
    assert done.stdout.startswith(f"{version} GET http 0") and done.stdout.endswith(" 2")
    # HTTP/1.1 still works on the same listener
    plain = curl("-w", " %{http_version}", server.url + "/a")
    assert plain.stdout.endswith(" 1.1"), plain.stdout
    # a streamed request body larger than every window: the server reopens them as it reads
    body = apps / "upload.bin"
    body.write_bytes(b"u" * 1_000_000)
    posted = curl("--http2-prior-knowledge", "--data-binary", f"@{body}", server.url + "/p")
    assert "POST http 1000000" in posted.stdout, posted.stdout + posted.stderr
    # Upgrade: h2c (RFC 7540 3.2): the upgrading request is answered on stream 1
    up = curl("--http2", "-w", " %{http_version}", server.url + "/u")
    assert up.stdout.startswith(f"{version} GET http 0") and up.stdout.endswith(" 2"), up.stdout
    wait_until(lambda: "HTTP/2.0\" 200" in server.log(), timeout=3)
    assert '"GET /a HTTP/2.0" 200' in server.log()


@needs_curl
@pytest.mark.parametrize("worker", ["asgi", "gthread"])
def test_curl_h2_over_tls_by_alpn(start_gcorn: Callable[..., Gcorn], apps: Path,
                                  cert: tuple[str, str], worker: str) -> None:
    server = start_tls(start_gcorn, worker, cert)
    url = f"https://127.0.0.1:{server.port}/t"
    done = curl("-k", "--http2", "-w", " %{http_version}", url)
    assert done.returncode == 0, done.stderr
    assert " https " in done.stdout and done.stdout.endswith(" 2"), done.stdout
    old = curl("-k", "--http1.1", "-w", " %{http_version}", url)
    assert old.stdout.endswith(" 1.1"), old.stdout


@pytest.mark.parametrize("worker", ["asgi", "gthread"])
def test_httpx_http2(start_gcorn: Callable[..., Gcorn], apps: Path, cert: tuple[str, str],
                     worker: str) -> None:
    httpx = pytest.importorskip("httpx")
    server = start_tls(start_gcorn, worker, cert)
    with httpx.Client(http2=True, verify=False, timeout=5) as client:
        responses = [client.get(f"https://127.0.0.1:{server.port}/x{i}") for i in range(3)]
    assert all(r.http_version == "HTTP/2" and r.status_code == 200 for r in responses)
    assert "localhost" not in responses[0].text and f"127.0.0.1:{server.port}" in responses[0].text


@pytest.mark.parametrize("worker", ["asgi", "gthread"])
def test_h2_requests_go_to_statsd_and_hooks(start_gcorn: Callable[..., Gcorn], apps: Path,
                                           worker: str) -> None:
    # statsd and the request hooks see an h2 stream as they see an HTTP/1 request
    (apps / "hooks.py").write_text(
        "def pre_request(worker, req):\n"
        "    with open('hook.log', 'a') as out:\n"
        "        out.write('%s %s %s\\n' % (req.method, req.path, req.version))\n")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        udp.settimeout(5)
        server = start_h2c(start_gcorn, worker, "-c", "hooks.py", "--statsd-host",
                           f"127.0.0.1:{udp.getsockname()[1]}")
        udp.settimeout(0.3)
        try:
            while True:  # the metrics of the readiness probe (HTTP/1) are not what is checked
                udp.recv(65536)
        except TimeoutError:
            pass
        udp.settimeout(5)
        get_one(server.port, "/stat")
        packets = b""
        while b"request.status.200" not in packets or b"requests" not in packets:
            packets += udp.recv(65536)
    assert wait_until(lambda: "GET /stat (2, 0)" in (apps / "hook.log").read_text(), timeout=3)


@pytest.mark.parametrize("worker", ["asgi", "gthread"])
def test_a_failing_pre_request_fails_its_stream_only(start_gcorn: Callable[..., Gcorn],
                                                     apps: Path, worker: str) -> None:
    # as on HTTP/1 (and gunicorn): the stream is answered 500, post_request still runs,
    # and the connection's other streams are served
    (apps / "hooks.py").write_text(
        "def pre_request(worker, req):\n"
        "    if req.path == '/boom':\n"
        "        raise RuntimeError('hook failure')\n"
        "def post_request(worker, req, environ, resp):\n"
        "    with open('hook.log', 'a') as out:\n"
        "        out.write('%s %s\\n' % (req.path, resp.status_code))\n")
    server = start_h2c(start_gcorn, worker, "-c", "hooks.py")
    client = Client(server.port)
    boom, fine = client.request("/boom"), client.request("/")
    client.read(lambda: client.ended(boom) and client.ended(fine))
    client.close()
    statuses = {e.stream_id: dict(e.headers)[b":status"] for e in client.events
                if isinstance(e, ev.ResponseReceived)}
    assert statuses == {boom: b"500", fine: b"200"}, client.events
    assert b"hook failure" not in bytes(client.data.get(boom, b""))
    assert wait_until(lambda: "hook failure" in server.log())
    assert wait_until(lambda: "/boom 500" in (apps / "hook.log").read_text(), timeout=3)


def test_settings_are_announced(start_gcorn: Callable[..., Gcorn], apps: Path) -> None:
    server = start_h2c(start_gcorn, "asgi", "--http2-max-concurrent-streams", "7",
                       "--http2-initial-window-size", "1000", "--http2-max-frame-size", "20000",
                       "--http2-max-header-list-size", "9000")
    client = Client(server.port)
    client.read(lambda: client.h2.remote_settings.max_concurrent_streams == 7, timeout=3)
    remote = client.h2.remote_settings
    assert (remote.max_concurrent_streams, remote.initial_window_size, remote.max_frame_size,
            remote.max_header_list_size, remote.enable_push) == (7, 1000, 20000, 9000, 0)


@pytest.mark.parametrize("worker", ["asgi", "gthread"])
def test_header_blocks_follow_the_http1_field_rules(start_gcorn: Callable[..., Gcorn],
                                                     apps: Path, worker: str) -> None:
    server = start_h2c(start_gcorn, worker, "--limit-request-field_size", "200")
    client = Client(server.port)
    bad = client.request("/", extra=[("x-bad", "a\x01b")])  # a control character
    upper = client.request("/", extra=[("X-Upper", "1")])
    hop = client.request("/", extra=[("connection", "keep-alive")])
    big = client.request("/", extra=[("x-big", "v" * 300)])  # over limit_request_field_size
    good = client.request("/ok")
    client.read(lambda: all(client.reset_of(s) or client.ended(s)
                            for s in (bad, upper, hop, big, good)))
    for sid in (bad, upper, hop):
        assert client.reset_of(sid) is not None and client.reset_of(sid).error_code == 1
    assert client.status(big) == 431
    assert client.status(good) == 200


def test_h2c_prior_knowledge_only_for_trusted_peers(start_gcorn: Callable[..., Gcorn],
                                                     apps: Path) -> None:
    # as gunicorn: h2c is for peers in forwarded_allow_ips; others get HTTP/1 (a 400 here)
    server = start_h2c(start_gcorn, "asgi", "--forwarded-allow-ips", "10.9.9.9")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        answer = sock.recv(100)
    assert answer.startswith(b"HTTP/1.1 4") or answer.startswith(b"HTTP/1.1 5"), answer


# -- concurrency, flow control, RST, GOAWAY, trailers ----------------------------------------


@pytest.mark.parametrize("worker", ["asgi", "gthread"])
def test_100_streams_of_a_100ms_view_run_concurrently(start_gcorn: Callable[..., Gcorn],
                                                      apps: Path, worker: str) -> None:
    server = start_h2c(start_gcorn, worker)
    client = Client(server.port)
    started = time.monotonic()
    sids = [client.request("/sleep?0.1") for _ in range(100)]
    client.read(lambda: all(client.ended(s) for s in sids), timeout=10)
    elapsed = time.monotonic() - started
    assert all(client.status(s) == 200 for s in sids)
    # one at a time would take 10 s; concurrent streams take ~0.1 s (slack for a loaded CI)
    assert elapsed < 2.0, elapsed


@pytest.mark.parametrize("worker", ["asgi", "gthread"])
def test_response_waits_for_the_client_window(start_gcorn: Callable[..., Gcorn], apps: Path,
                                              worker: str) -> None:
    server = start_h2c(start_gcorn, worker)
    client = Client(server.port, settings={SettingCodes.INITIAL_WINDOW_SIZE: 1000}, ack=False)
    sid = client.request("/big")
    client.read(lambda: False, timeout=1.0)
    # the server sent what the window allowed, and nothing more
    assert len(client.data.get(sid, b"")) == 1000, len(client.data.get(sid, b""))
    client.ack = True
    client.h2.acknowledge_received_data(1000, sid)
    client.h2.increment_flow_control_window(1 << 20, stream_id=sid)
    client.flush()
    client.read(lambda: client.ended(sid), timeout=10)
    assert len(client.data[sid]) == 16 * 65536


@pytest.mark.parametrize("worker", ["asgi", "gthread"])
def test_file_wrapper_and_streamed_body(start_gcorn: Callable[..., Gcorn], apps: Path,
                                        worker: str) -> None:
    server = start_h2c(start_gcorn, worker)
    assert len(get_one(server.port, "/big")) == 16 * 65536
    if worker == "gthread":
        data = get_one(server.port, "/file")
        assert hashlib.md5(data).digest() == hashlib.md5((apps / "blob.bin").read_bytes()).digest()


@pytest.mark.parametrize("worker", ["asgi", "gthread"])
def test_a_body_larger_than_the_output_limit_to_a_wide_open_window(
        start_gcorn: Callable[..., Gcorn], apps: Path, worker: str) -> None:
    # 32 MiB in one send, to a client whose windows never close: the worker slices it
    # and waits for the transport to drain, so the safety net (16 MiB queued) stays off
    server = start_h2c(start_gcorn, worker)
    client = Client(server.port, settings={SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1})
    client.h2.increment_flow_control_window(2**31 - 1 - 65535)
    client.flush()
    sid = client.request("/huge")
    client.read(lambda: client.ended(sid), timeout=20)
    assert client.ended(sid) and len(client.data[sid]) == 32 << 20


def test_rst_stream_gives_the_app_http_disconnect(start_gcorn: Callable[..., Gcorn],
                                                  apps: Path) -> None:
    server = start_h2c(start_gcorn, "asgi")
    client = Client(server.port)
    sid = client.request("/wait-disconnect")
    client.read(lambda: False, timeout=0.3)
    client.h2.reset_stream(sid)
    client.flush()
    marker = apps / "disconnected"
    assert wait_until(marker.exists, timeout=3), "the app never saw http.disconnect"
    assert marker.read_text() == "http.disconnect"
    # the connection goes on serving other streams
    other = client.request("/after")
    client.read(lambda: client.ended(other))
    assert client.status(other) == 200


def test_response_trailers(start_gcorn: Callable[..., Gcorn], apps: Path) -> None:
    server = start_h2c(start_gcorn, "asgi")
    client = Client(server.port)
    sid = client.request("/trailers", extra=[("te", "trailers")])
    client.read(lambda: client.ended(sid))
    trailers = [e for e in client.events if isinstance(e, ev.TrailersReceived)]
    assert trailers and (b"x-checksum", b"abc") in trailers[0].headers
    assert bytes(client.data[sid]) == b"body"


def read_frames(sock: socket.socket, until: Callable[[list[tuple[int, int, int, bytes]]], bool],
                timeout: float) -> list[tuple[int, int, int, bytes]]:
    """Raw frames (type, flags, stream, payload): the h2 library, as a client, refuses
    every frame after a GOAWAY, which is what a graceful stop must be checked with."""
    frames: list[tuple[int, int, int, bytes]] = []
    buf = b""
    deadline = time.monotonic() + timeout
    while not until(frames) and time.monotonic() < deadline:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            data = sock.recv(65536)
        except TimeoutError:
            break
        if not data:
            break
        buf += data
        while len(buf) >= 9:
            length = int.from_bytes(buf[:3], "big")
            if len(buf) < 9 + length:
                break
            frames.append((buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF,
                           buf[9:9 + length]))
            buf = buf[9 + length:]
    return frames


@pytest.mark.parametrize("worker", ["asgi", "gthread"])
def test_goaway_on_graceful_stop_lets_open_streams_finish(start_gcorn: Callable[..., Gcorn],
                                                          apps: Path, worker: str) -> None:
    server = start_h2c(start_gcorn, worker, "--graceful-timeout", "5")
    client = Client(server.port)
    sid = client.request("/sleep?1")
    time.sleep(0.3)
    os.kill(server.pid, signal.SIGTERM)

    def stream_ended(frames: list[tuple[int, int, int, bytes]]) -> bool:
        return any(t in (0, 1) and f & 0x1 and s == sid for t, f, s, _ in frames)

    frames = read_frames(client.sock, stream_ended, timeout=5)
    goaways = [payload for kind, _, _, payload in frames if kind == 7]
    assert goaways, frames
    last_stream = int.from_bytes(goaways[0][:4], "big") & 0x7FFFFFFF
    assert last_stream >= sid and int.from_bytes(goaways[0][4:8], "big") == 0
    # the stream opened before the GOAWAY is answered in full after it
    assert stream_ended(frames), frames
    statuses = [f for f in frames if f[0] == 1 and f[2] == sid]
    assert statuses
    assert server.wait_exit(10) == 0


def test_quick_stop_does_not_wait_for_a_gthread_stream(start_gcorn: Callable[..., Gcorn],
                                                       apps: Path) -> None:
    # QUIT is a quick stop: an app stuck in an h2 stream must not hold the worker up
    server = start_h2c(start_gcorn, "gthread")
    client = Client(server.port)
    client.request("/sleep?30")
    time.sleep(0.5)
    started = time.monotonic()
    os.kill(server.pid, signal.SIGQUIT)
    server.wait_exit(10)
    assert time.monotonic() - started < 4, server.log()
    assert "Worker exiting" in server.log() or "Shutting down" in server.log()


# -- attacks: GOAWAY/RST, and the server goes on serving -----------------------------------


@pytest.mark.parametrize("worker", ["asgi", "gthread"])
def test_rapid_reset_gets_goaway(start_gcorn: Callable[..., Gcorn], apps: Path,
                                 worker: str) -> None:
    server = start_h2c(start_gcorn, worker)
    client = Client(server.port)
    for _ in range(1000):
        try:
            sid = client.request("/sleep?1")
            client.h2.reset_stream(sid)
            client.flush()
        except (OSError, h2.exceptions.ProtocolError):
            break
    client.read(lambda: client.goaway() is not None, timeout=5)
    goaway = client.goaway()
    assert goaway is not None and goaway.error_code == ENHANCE_YOUR_CALM, client.events[-3:]
    assert get_one(server.port).startswith(b"2" if worker == "asgi" else b"HTTP/2.0")


@pytest.mark.parametrize("worker", ["asgi", "gthread"])
@pytest.mark.parametrize("frame", ["ping", "settings"])
def test_ping_and_settings_floods_get_goaway(start_gcorn: Callable[..., Gcorn], apps: Path,
                                             worker: str, frame: str) -> None:
    server = start_h2c(start_gcorn, worker)
    client = Client(server.port)
    for i in range(500):
        try:
            if frame == "ping":
                client.h2.ping(i.to_bytes(8, "big"))
            else:
                client.h2.update_settings({SettingCodes.ENABLE_PUSH: 0})
            client.flush()
        except OSError:
            break
    client.read(lambda: client.goaway() is not None, timeout=5)
    goaway = client.goaway()
    assert goaway is not None and goaway.error_code == ENHANCE_YOUR_CALM
    get_one(server.port)


@pytest.mark.parametrize("worker", ["asgi", "gthread"])
def test_continuation_flood_gets_goaway(start_gcorn: Callable[..., Gcorn], apps: Path,
                                        worker: str) -> None:
    from hyperframe.frame import ContinuationFrame, HeadersFrame

    server = start_h2c(start_gcorn, worker)
    client = Client(server.port)
    block = client.h2.encoder.encode([(b":method", b"GET"), (b":path", b"/"),
                                      (b":scheme", b"http"), (b":authority", b"x")])
    client.send_raw(HeadersFrame(1, data=block).serialize())  # no END_HEADERS
    for _ in range(200):
        try:
            client.send_raw(ContinuationFrame(1, data=b"\x00" * 1000).serialize())
        except OSError:
            break
    client.read(lambda: client.goaway() is not None, timeout=5)
    assert client.goaway() is not None or client.closed
    get_one(server.port)


@pytest.mark.parametrize("worker", ["asgi", "gthread"])
def test_hpack_bomb_gets_goaway(start_gcorn: Callable[..., Gcorn], apps: Path,
                                worker: str) -> None:
    server = start_h2c(start_gcorn, worker, "--limit-request-fields", "1000")
    client = Client(server.port)
    # one 4000-byte field in the dynamic table, then referenced by a one-byte index
    # 60 times: a block of ~4 KB that decodes to 240 KB (the limit is 64 KiB)
    sid = client.request("/", extra=[("x-bomb", "b" * 4000)] * 60)
    client.read(lambda: client.goaway() is not None or client.reset_of(sid) is not None,
                timeout=5)
    goaway = client.goaway()
    assert goaway is not None and goaway.error_code == ENHANCE_YOUR_CALM, client.events
    get_one(server.port)


@pytest.mark.parametrize("worker", ["asgi", "gthread"])
def test_too_many_streams_are_refused(start_gcorn: Callable[..., Gcorn], apps: Path,
                                      worker: str) -> None:
    server = start_h2c(start_gcorn, worker, "--http2-max-concurrent-streams", "5")
    client = Client(server.port)
    client.read(lambda: client.h2.remote_settings.max_concurrent_streams == 5, timeout=2)
    client.h2.remote_settings[SettingCodes.MAX_CONCURRENT_STREAMS] = 1000  # ignore the limit
    client.h2.remote_settings.acknowledge()
    sids = [client.request("/sleep?0.5") for _ in range(20)]
    client.read(lambda: client.goaway() is not None
                or all(client.ended(s) or client.reset_of(s) for s in sids), timeout=5)
    refused = [s for s in sids if client.reset_of(s) is not None]
    assert client.goaway() is not None or len(refused) >= 15, client.events
    get_one(server.port)


@pytest.mark.parametrize("worker", ["asgi", "gthread"])
def test_zero_window_stall_is_reset(start_gcorn: Callable[..., Gcorn], apps: Path,
                                    worker: str) -> None:
    # a client that never opens its window holds a response (and a task) until `timeout`
    server = start_h2c(start_gcorn, worker, "--timeout", "2")
    client = Client(server.port, settings={SettingCodes.INITIAL_WINDOW_SIZE: 0}, ack=False)
    sid = client.request("/big")
    client.read(lambda: client.reset_of(sid) is not None, timeout=5)
    reset = client.reset_of(sid)
    assert reset is not None and reset.error_code == ENHANCE_YOUR_CALM
    get_one(server.port)
