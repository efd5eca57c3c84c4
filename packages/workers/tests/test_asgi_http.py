"""The asgi worker over real sockets: scope, framing, keep-alive, pipelining, flow control, errors."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from asgi_support import AsgiServer, raw_request, read_response
from workers_helpers import wait_until


@pytest.fixture(scope="module", params=["python", "httptools"])
def server(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[AsgiServer]:
    """One worker per gcorn.http parser backend: the whole module runs against both."""
    tmp = tmp_path_factory.mktemp("asgi-http")
    srv = AsgiServer(tmp, "asgi_apps:app", keepalive=5, http_parser=request.param,
                     access_file=str(tmp / "access.log")).wait_ready()
    try:
        yield srv
    finally:
        srv.stop()


def test_scope_has_every_asgi_key(server: AsgiServer) -> None:
    reply = httpx.get(server.url + "/scope?x=1&y=%20", headers={"X-Test": "yes"}, timeout=5)
    assert reply.status_code == 200
    scope = reply.json()
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/scope"
    assert scope["raw_path"] == "/scope"
    assert scope["query_string"] == "x=1&y=%20"
    assert scope["root_path"] == ""
    assert scope["server"] == ["127.0.0.1", server.port]
    assert scope["client"][0] == "127.0.0.1"
    assert ["x-test", "yes"] in scope["headers"]
    assert scope["state"] == {"started": "yes"}  # from lifespan startup
    assert reply.headers["server"] == "gcorn"
    assert "date" in reply.headers


def test_percent_encoded_path_is_decoded_but_raw_path_kept(server: AsgiServer) -> None:
    reply = raw_request(server.port, b"GET /sc%6fpe HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    scope = json.loads(reply.partition(b"\r\n\r\n")[2])
    assert scope["path"] == "/scope"
    assert scope["raw_path"] == "/sc%6fpe"


def test_keep_alive_reuses_the_connection(server: AsgiServer) -> None:
    with httpx.Client(timeout=5) as client:
        first = client.get(server.url + "/scope").json()
        second = client.get(server.url + "/scope").json()
    assert first["client"] == second["client"]


def test_http10_closes_unless_keep_alive_asked(server: AsgiServer) -> None:
    reply = raw_request(server.port, b"GET / HTTP/1.0\r\n\r\n")
    # RFC 9110 2.5: the highest 1.x the server conforms to, as the WSGI workers answer
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"connection: close" in reply.lower()
    assert reply.endswith(b"Hello, World!")


def test_post_body_echo_and_chunked_request(server: AsgiServer) -> None:
    reply = httpx.post(server.url + "/echo", content=b"x" * 100_000, timeout=5)
    assert reply.content == b"x" * 100_000

    def chunks() -> Iterator[bytes]:
        yield b"hello "
        yield b"chunked"

    reply = httpx.post(server.url + "/echo", content=chunks(), timeout=5)
    assert reply.content == b"hello chunked"


def test_chunked_response_when_app_gives_no_length(server: AsgiServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /chunked HTTP/1.1\r\nHost: t\r\n\r\n")
        head, body = read_response(sock)
    assert b"transfer-encoding: chunked" in head.lower()
    assert body == b"4\r\none \r\n4\r\ntwo \r\n5\r\nthree\r\n0\r\n\r\n"


def test_http10_streamed_response_is_close_delimited(server: AsgiServer) -> None:
    reply = raw_request(server.port, b"GET /chunked HTTP/1.0\r\n\r\n")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert b"transfer-encoding" not in head.lower()
    assert body == b"one two three"


def test_head_has_headers_but_no_body(server: AsgiServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(0.3)
        data = sock.recv(65536)
    first, _, rest = data.partition(b"\r\n\r\n")
    assert b"content-length: 13" in first.lower()
    # the next response starts right after the HEAD head: no body bytes in between
    assert rest.startswith(b"HTTP/1.1 200 OK")
    assert rest.endswith(b"Hello, World!")


def test_pipelined_requests_are_answered_in_order(server: AsgiServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(
            b"GET /sleep?0.3 HTTP/1.1\r\nHost: t\r\n\r\n"
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n\r\nsecond"
            b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        bodies = [read_response(sock)[1] for _ in range(3)]
    assert bodies == [b"slept", b"second", b"Hello, World!"]


def test_expect_100_continue_only_when_the_app_reads(server: AsgiServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        interim = sock.recv(1024)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"hello")
        head, body = read_response(sock)
    assert head.startswith(b"HTTP/1.1 200")
    assert body == b"hello"
    # an app that never reads: no 100, a final answer, and the unread body is not parsed
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"POST /no-read HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        head, body = read_response(sock)
        assert head.startswith(b"HTTP/1.1 200")
        assert body == b"did not read the body"
        assert sock.recv(1024) == b""  # closed: the body was never sent


def test_flow_control_stops_reading_while_the_app_does_not(server: AsgiServer) -> None:
    size = 8 * 1024 * 1024
    reply = httpx.post(server.url + "/slow-reader?0.5", content=b"z" * size, timeout=10)
    total, largest = map(int, reply.text.split())
    assert total == size
    # without flow control the whole rest of the body would sit in one piece
    assert largest < 2 * 1024 * 1024


def test_client_disconnect_reaches_the_app(server: AsgiServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /wait-disconnect HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(0.2)
    assert wait_until(lambda: "disconnected /wait-disconnect" in server.events_text())


def test_error_before_response_start_gives_500(server: AsgiServer) -> None:
    reply = httpx.get(server.url + "/error-before", timeout=5)
    assert reply.status_code == 500
    assert "boom" not in reply.text
    assert wait_until(lambda: "boom before start" in server.stderr())
    assert wait_until(lambda: '"GET /error-before HTTP/1.1" 500' in
                 (server.tmp_path / "access.log").read_text())


def test_error_after_response_start_closes_the_connection(server: AsgiServer) -> None:
    reply = raw_request(server.port, b"GET /error-after HTTP/1.1\r\nHost: t\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200")
    assert b"partial" in reply
    assert not reply.endswith(b"0\r\n\r\n")  # never a clean end for a broken body


def test_app_returning_without_response_gives_500(server: AsgiServer) -> None:
    reply = httpx.get(server.url + "/no-response", timeout=5)
    assert reply.status_code == 500


def test_unfinished_response_does_not_hang(server: AsgiServer) -> None:
    started = time.monotonic()
    reply = raw_request(server.port, b"GET /unfinished HTTP/1.1\r\nHost: t\r\n\r\n", timeout=5)
    assert time.monotonic() - started < 3
    assert reply.endswith(b"12345")


def test_header_injection_is_refused(server: AsgiServer) -> None:
    reply = raw_request(server.port, b"GET /bad-header HTTP/1.1\r\nHost: t\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 500")
    assert b"pwned" not in reply


@pytest.mark.parametrize(("request_bytes", "status"), [
    (b"GARBAGE\r\n\r\n", b"400"),
    (b"GET / HTTP/2.7\r\nHost: t\r\n\r\n", b"505"),
    (b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
     b"400"),
    (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n\r\n", b"414 URI Too Long\r\n"),  # RFC 9110
])
def test_bad_requests_get_the_parser_status(server: AsgiServer, request_bytes: bytes,
                                            status: bytes) -> None:
    reply = raw_request(server.port, request_bytes)
    assert reply.startswith(b"HTTP/1.1 " + status)
    assert b"Traceback" not in reply


def test_forwarded_proto_from_trusted_peer_and_underscore_headers_dropped(
        server: AsgiServer) -> None:
    reply = httpx.get(server.url + "/scope", timeout=5,
                      headers={"X-Forwarded-Proto": "https", "X_Sneaky": "1"})
    scope = reply.json()
    assert scope["scheme"] == "https"
    assert not any(name == "x_sneaky" for name, _ in scope["headers"])


def test_access_log_and_request_hooks(server: AsgiServer) -> None:
    httpx.get(server.url + "/pid", headers={"User-Agent": "hook-test"}, timeout=5)
    access = server.tmp_path / "access.log"
    assert wait_until(lambda: '"GET /pid HTTP/1.1" 200 ' in access.read_text()
                 and "hook-test" in access.read_text())
    assert wait_until(lambda: "pre_request" in server.events_text()
                 and "post_request" in server.events_text())
    events = server.events_text()
    assert "pre_request" in events and "GET /pid" in events
    assert any(line.startswith("post_request") and line.endswith("GET /pid 200")
               for line in events.splitlines())


def test_a_failing_pre_request_hook_is_a_500_as_on_the_wsgi_workers(server: AsgiServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /pid HTTP/1.1\r\nHost: t\r\n\r\n")
        _, pid = read_response(sock)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /hook-boom HTTP/1.1\r\nHost: t\r\n\r\n")
        head, body = read_response(sock)
        assert head.startswith(b"HTTP/1.1 500 ") and b"hook failure" not in body
        assert sock.recv(1024) == b""  # closed after the error, the app never ran
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /pid HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_response(sock)[1] == pid  # the worker lives on
    assert wait_until(lambda: "hook failure" in server.stderr())
    # post_request still sees the request and its 500, as gunicorn calls it in a finally
    assert wait_until(lambda: any(line.endswith("GET /hook-boom 500")
                                  for line in server.events_text().splitlines()))


def _exchange(port: int, request: bytes) -> bytes:
    """Everything the server sends for `request` until it closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_response_trailers_end_a_chunked_body(server: AsgiServer) -> None:
    data = _exchange(server.port, b"GET /trailers HTTP/1.1\r\nHost: t\r\nTE: trailers\r\n"
                                  b"Connection: close\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and b"x-offered: True" in head
    assert b"Transfer-Encoding: chunked" in head
    assert body == b"3\r\nabc\r\n3\r\ndef\r\n0\r\nx-sum: 6\r\nx-done: yes\r\n\r\n"
    # no body message at all: an empty chunked body, then the trailers
    data = _exchange(server.port, b"GET /trailers-only HTTP/1.1\r\nHost: t\r\n"
                                  b"Connection: close\r\n\r\n")
    assert data.endswith(b"\r\n\r\n0\r\nx-done: yes\r\n\r\n")


def test_response_trailers_over_http10_are_left_out(server: AsgiServer) -> None:
    # HTTP/1.0 has no chunked coding: the extension is not offered, the body stands alone
    data = _exchange(server.port, b"GET /trailers HTTP/1.0\r\nHost: t\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and b"x-offered: False" in head
    assert body == b"abcdef"


@pytest.mark.parametrize("path", ["/trailers-unannounced", "/trailers-bad"])
def test_bad_response_trailers_are_an_app_error(server: AsgiServer, path: str) -> None:
    # the app's response fails (a 500 while its head is pending, else the connection is
    # cut) and the logged error names the message
    data = _exchange(server.port, f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    assert b"x-done" not in data and b"x-bad" not in data
    text = ("did not announce them" if path.endswith("unannounced")
            else "invalid http.response.trailers")
    assert wait_until(lambda: text in server.stderr())


def test_refused_requests_are_in_the_access_log_as_on_the_wsgi_workers(tmp_path: Path) -> None:
    access = tmp_path / "access.log"
    srv = AsgiServer(tmp_path, "asgi_apps:app", header_map="refuse",
                     access_file=str(access)).wait_ready()
    try:
        assert _exchange(srv.port, b"GARBAGE\r\n\r\n").startswith(b"HTTP/1.1 400")
        assert _exchange(srv.port, b"GET /x?y HTTP/1.1\r\nA_B: 1\r\n\r\n").startswith(
            b"HTTP/1.1 400")
        assert wait_until(lambda: '"- - -" 400' in access.read_text()
                          and '"GET /x?y HTTP/1.1" 400' in access.read_text())
    finally:
        srv.stop()


def test_connection_close_from_the_app(server: AsgiServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /close HTTP/1.1\r\nHost: t\r\n\r\n")
        head, body = read_response(sock)
        assert b"connection: close" in head.lower()
        assert sock.recv(1024) == b""


def test_idle_keep_alive_connection_is_closed(tmp_path: Path) -> None:
    srv = AsgiServer(tmp_path, "asgi_apps:app", keepalive=1, root_path="/api").wait_ready()
    try:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
            # a proxy stripped the mount prefix: the app sees it back in path
            sock.sendall(b"GET /scope HTTP/1.1\r\nHost: t\r\n\r\n")
            _, body = read_response(sock)
            scope = json.loads(body)
            assert scope["root_path"] == "/api"
            assert scope["path"] == "/api/scope"
            started = time.monotonic()
            assert sock.recv(1024) == b""
            assert time.monotonic() - started < 3
    finally:
        srv.stop()


def test_too_many_requests_in_flight_get_503(tmp_path: Path) -> None:
    srv = AsgiServer(tmp_path, "asgi_apps:app", limit_concurrency=1).wait_ready()
    try:
        slow: list[int] = []
        thread = threading.Thread(target=lambda: slow.append(
            httpx.get(srv.url + "/sleep?1", timeout=5).status_code))
        thread.start()
        time.sleep(0.3)
        assert httpx.get(srv.url + "/", timeout=5).status_code == 503
        thread.join(5)
        assert slow == [200]
        assert httpx.get(srv.url + "/", timeout=5).status_code == 200
    finally:
        srv.stop()


def test_worker_connections_leaves_extra_clients_in_the_backlog(tmp_path: Path) -> None:
    srv = AsgiServer(tmp_path, "asgi_apps:app", worker_connections=2, keepalive=10).wait_ready()
    time.sleep(0.1)  # the readiness probe's connection is closed by now
    try:
        first = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        second = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        for sock in (first, second):
            sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            assert read_response(sock)[1] == b"Hello, World!"
        third = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        third.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        third.settimeout(0.5)
        with pytest.raises(TimeoutError):
            third.recv(1024)
        first.close()
        assert read_response(third, timeout=5)[1] == b"Hello, World!"
        second.close()
        third.close()
    finally:
        srv.stop()


def test_body_longer_than_content_length_is_cut_and_closed(tmp_path: Path) -> None:
    srv = AsgiServer(tmp_path, "asgi_apps:app").wait_ready()
    try:
        reply = raw_request(srv.port, b"GET /too-long HTTP/1.1\r\nHost: t\r\n\r\n"
                            b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        head, _, body = reply.partition(b"\r\n\r\n")
        assert b"content-length: 5" in head.lower()
        assert body == b"12345"  # the extra bytes never reach the client, nor a next response
    finally:
        srv.stop()


def test_body_shorter_than_content_length_closes(tmp_path: Path) -> None:
    srv = AsgiServer(tmp_path, "asgi_apps:app").wait_ready()
    try:
        reply = raw_request(srv.port, b"GET /too-short HTTP/1.1\r\nHost: t\r\n\r\n"
                            b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        head, _, body = reply.partition(b"\r\n\r\n")
        assert b"content-length: 10" in head.lower()
        assert body == b"123"  # then the close: the client knows the body was cut
    finally:
        srv.stop()


def test_tls_listener_serves_https(tmp_path: Path) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=30)
    srv = AsgiServer(tmp_path, "asgi_apps:app", certfile=str(cert), keyfile=str(key),
                     is_ssl=True)
    try:
        deadline = time.monotonic() + 10
        while not srv.port_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        srv.port = int(srv.port_file.read_text().split()[1])
        scope: dict = {}
        while time.monotonic() < deadline and not scope:
            try:
                scope = httpx.get(f"https://127.0.0.1:{srv.port}/scope", verify=False,
                                  timeout=2).json()
            except httpx.HTTPError:
                time.sleep(0.1)
        assert scope["scheme"] == "https"
    finally:
        srv.stop()


def test_proxy_protocol_header_sets_the_client(tmp_path: Path) -> None:
    srv = AsgiServer(tmp_path, "asgi_apps:app", proxy_protocol="auto").wait_ready()
    try:
        reply = raw_request(srv.port, b"PROXY TCP4 203.0.113.7 10.0.0.1 51234 443\r\n"
                            b"GET /scope HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        scope = json.loads(reply.partition(b"\r\n\r\n")[2])
        assert scope["client"] == ["203.0.113.7", 51234]
        # without a header (auto mode) the socket peer stays the client
        assert httpx.get(srv.url + "/scope", timeout=5).json()["client"][0] == "127.0.0.1"
        bad = raw_request(srv.port, b"PROXY TCP4 nonsense\r\nGET / HTTP/1.1\r\n\r\n")
        assert bad.startswith(b"HTTP/1.1 400")
    finally:
        srv.stop()


def test_proxy_protocol_from_a_peer_not_allowed_is_403(tmp_path: Path) -> None:
    srv = AsgiServer(tmp_path, "asgi_apps:app", proxy_protocol="v1",
                     proxy_allow_ips=["192.0.2.1"])
    try:
        deadline = time.monotonic() + 10
        while not srv.port_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        port = int(srv.port_file.read_text().split()[1])
        reply = b""
        while not reply and time.monotonic() < deadline:
            try:
                reply = raw_request(port, b"PROXY TCP4 203.0.113.7 10.0.0.1 51234 443\r\n"
                                    b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            except OSError:
                time.sleep(0.1)
        assert reply.startswith(b"HTTP/1.1 403")
    finally:
        srv.stop()


def test_app_ignoring_disconnect_is_cancelled_after_the_grace_period(tmp_path: Path) -> None:
    srv = AsgiServer(tmp_path, "asgi_apps:app", asgi_disconnect_grace_period=0.5).wait_ready()
    try:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
            sock.sendall(b"GET /ignore-disconnect HTTP/1.1\r\nHost: t\r\n\r\n")
            time.sleep(0.2)
        started = time.monotonic()
        assert wait_until(lambda: "cancelled /ignore-disconnect" in srv.events_text())
        assert time.monotonic() - started < 3
    finally:
        srv.stop()


def test_slow_reader_does_not_make_the_worker_buffer_the_response(server: AsgiServer) -> None:
    import psutil
    worker = psutil.Process(server.worker_pids()[0])
    before = worker.memory_info().rss
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.sendall(b"GET /stream-big HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(1.0)  # not reading: the worker must wait on the socket
        grown = worker.memory_info().rss - before
        received = 0
        while received < 32 * 1024 * 1024:
            chunk = sock.recv(1024 * 1024)
            if not chunk:
                break
            received += len(chunk)
    assert grown < 12 * 1024 * 1024, f"worker buffered {grown / 2**20:.1f} MiB"
    assert received >= 32 * 1024 * 1024  # head + the whole body arrived


def test_two_tasks_waiting_in_receive_are_both_woken(tmp_path: Path) -> None:
    srv = AsgiServer(tmp_path, "asgi_apps:two_receivers", asgi_lifespan="off").wait_ready()
    try:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\n")
            time.sleep(0.2)
            sock.sendall(b"hello")
            head, body = read_response(sock)
        assert head.startswith(b"HTTP/1.1 200") and body == b"hello"
        # both waiting receive() calls are woken once the response is complete
        assert wait_until(lambda: "watchers got http.disconnect http.disconnect"
                     in srv.events_text())
    finally:
        srv.stop()


def test_many_pipelined_requests_in_one_segment(server: AsgiServer) -> None:
    count = 300
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"".join(b"GET /?n=%d HTTP/1.1\r\nHost: t\r\n\r\n" % i for i in range(count)))
        bodies = [read_response(sock)[1] for _ in range(count)]
    assert bodies == [b"Hello, World!"] * count
