"""The write guard between a request's own answer and gthread's request_timeout 504.

Each test sets up one interleaving on a real socket pair: the serving thread
writing its response (app head or error answer) and the watchdog answering from
another thread. Whichever claims the connection first writes the one response;
the client never reads two status lines.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import sys
import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest

from gcorn.workers.errors import ClientDisconnected
from gcorn.workers.wsgi.connection import Connection
from gcorn.workers.wsgi.handler import RequestHandler
from gcorn.workers.wsgi.response import Response

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wsgi_runner import DEFAULTS

STATUS_LINE = re.compile(rb"HTTP/1\.1 \d{3} ")


class PausingSocket(socket.socket):
    """A real socket whose first `send` returns only when the test says so, after its
    bytes went out: the serving thread is descheduled right after its system call."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(sock.family, sock.type, sock.proto, fileno=sock.detach())
        self.sent = threading.Event()
        self.go = threading.Event()

    def send(self, data: Any, flags: int = 0) -> int:
        sent = super().send(data, flags)
        if not self.sent.is_set():
            self.sent.set()
            self.go.wait(5)
        return sent


def _setup() -> tuple[RequestHandler, Connection, PausingSocket, socket.socket]:
    cfg = SimpleNamespace(**DEFAULTS, request_timeout=1.0, pre_request=None, post_request=None)
    worker = SimpleNamespace(cfg=cfg, log=logging.getLogger("claim-test"), wsgi=None,
                             nr=0, alive=True, request_timeouts=0)
    handler = RequestHandler(worker, multithread=True)
    server, client = socket.socketpair()
    sock = PausingSocket(server)
    conn = Connection(sock, ("127.0.0.1", 1), None, None, 5.0)
    conn.begin_request()
    client.settimeout(5)
    return handler, conn, sock, client


def _watchdog_answers(handler: RequestHandler, conn: Connection, resp: Response) -> str:
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": "/", "PATH_INFO": "/", "QUERY_STRING": "",
               "SERVER_PROTOCOL": "HTTP/1.1"}
    return handler.answer_from_watchdog(conn, resp, environ, [], time.monotonic())


def _read_all(client: socket.socket) -> bytes:
    data = b""
    while chunk := client.recv(65536):
        data += chunk
    return data


def _response(conn: Connection, handler: RequestHandler) -> Response:
    return Response(conn, False, True, True, handler.server, handler.log)


def test_an_error_answer_on_the_wire_first_wins_over_the_504() -> None:
    handler, conn, sock, client = _setup()
    resp = _response(conn, handler)
    serving = threading.Thread(target=handler.send_error,
                               args=(conn, 500, "Internal Server Error"))
    serving.start()
    assert sock.sent.wait(5)  # the 500 is out; its thread has not returned yet
    assert _watchdog_answers(handler, conn, resp) == "response already started: connection closed"
    sock.go.set()
    serving.join(5)
    data = _read_all(client)
    assert len(STATUS_LINE.findall(data)) == 1, data
    assert data.startswith(b"HTTP/1.1 500 "), data


def test_an_app_head_on_the_wire_first_wins_over_the_504() -> None:
    handler, conn, sock, client = _setup()
    resp = _response(conn, handler)
    resp.start_response("200 OK", [("Content-Length", "2")])
    serving = threading.Thread(target=resp.write_all, args=([b"ok"],))
    serving.start()
    assert sock.sent.wait(5)
    assert _watchdog_answers(handler, conn, resp) == "response already started: connection closed"
    sock.go.set()
    serving.join(5)
    data = _read_all(client)
    assert len(STATUS_LINE.findall(data)) == 1, data
    assert data.startswith(b"HTTP/1.1 200 OK\r\n") and data.endswith(b"\r\n\r\nok"), data


def test_the_504_first_drops_the_apps_head_and_error_answer() -> None:
    handler, conn, sock, client = _setup()
    sock.go.set()  # nothing pauses: the watchdog's write is a plain sendall
    resp = _response(conn, handler)
    resp.start_response("200 OK", [("Content-Length", "2")])  # then the app sleeps
    assert _watchdog_answers(handler, conn, resp) == "answered 504"
    with pytest.raises(ClientDisconnected):
        resp.write_all([b"ok"])  # the app wakes up and answers
    assert handler.send_error(conn, 500, "Internal Server Error") == 0
    data = _read_all(client)
    assert len(STATUS_LINE.findall(data)) == 1, data
    assert data.startswith(b"HTTP/1.1 504 Gateway Timeout\r\n"), data


def test_start_response_after_the_504_is_a_gone_client_not_an_app_error() -> None:
    handler, conn, sock, client = _setup()
    sock.go.set()
    resp = _response(conn, handler)
    assert _watchdog_answers(handler, conn, resp) == "answered 504"
    # the app wakes up only now: no "start_response called a second time" traceback
    with pytest.raises(ClientDisconnected):
        resp.start_response("200 OK", [("Content-Length", "2")])
    data = _read_all(client)
    assert len(STATUS_LINE.findall(data)) == 1, data


def test_each_request_of_a_connection_starts_unclaimed() -> None:
    handler, conn, sock, client = _setup()
    sock.go.set()
    assert conn.claim_response()
    assert conn.response_started()
    conn.begin_request()  # the next request on the keep-alive connection
    assert not conn.response_started()
    assert conn.claim_for_timeout()
    assert not conn.claim_response()
