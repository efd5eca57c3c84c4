"""End to end, over TCP: issue 9's requests get the same answer from `gcorn` as
from `gunicorn` 27.0.1, on the sync and the asgi worker.

Each server runs as a real process with one worker and an app that echoes
what it received (method, path, query, body length). gcorn has one parser for
every worker, modelled on gunicorn's WSGI parser; gunicorn's asgi worker has a
parser of its own, and where that one disagrees with gunicorn's WSGI parser
gcorn follows the WSGI one. Those cases are listed in ASGI_PARSER_SPLITS (and
in docs/migrating-from-gunicorn.md); the test checks they still split.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
APP = '''
def wsgi(environ, start_response):
    body = environ["wsgi.input"].read()
    out = ("%s %s ?%s %d" % (environ["REQUEST_METHOD"], environ["PATH_INFO"],
                             environ["QUERY_STRING"], len(body))).encode("latin-1")
    start_response("200 OK", [("Content-Length", str(len(out)))])
    return [out]


async def asgi(scope, receive, send):
    if scope["type"] != "http":
        return
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    out = ("%s %s ?%s %d" % (scope["method"], scope["path"],
                             scope["query_string"].decode("latin-1"), size)).encode("latin-1")
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(out)).encode())]})
    await send({"type": "http.response.body", "body": out})
'''

H = b"Host: example.com\r\nConnection: close\r\n"
POST = b"POST /form HTTP/1.1\r\n" + H
CASES = {
    "M-SEARCH origin-form": b"M-SEARCH /upnp HTTP/1.1\r\n" + H + b"\r\n",
    "M-SEARCH *": b"M-SEARCH * HTTP/1.1\r\n" + H + b"\r\n",
    "fragment": b"GET /path?x=1#frag HTTP/1.1\r\n" + H + b"\r\n",
    "UTF-8 target, HTTP/1.0": b"GET /caf\xc3\xa9 HTTP/1.0\r\n\r\n",
    "HTTP/1.2": b"GET / HTTP/1.2\r\n" + H + b"\r\n",
    "identity alone": POST + b"Transfer-Encoding: identity\r\n\r\n",
    "identity and Content-Length": POST + b"Transfer-Encoding: identity\r\nContent-Length: 3"
    b"\r\n\r\nabc",
    "identity, then chunked": POST + b"Transfer-Encoding: identity\r\nTransfer-Encoding: chunked"
    b"\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "identity, chunked": POST + b"Transfer-Encoding: identity, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "trailers": POST + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Sum: 1\r\n"
    b"Content-Type: text/plain\r\n\r\n",
    "broken absolute-form authority": b"PUT s://]ufd/: HTTP/1.1\r\n" + H + b"\r\n",
    "multipart form": POST + b"Content-Type: multipart/form-data; boundary=b\r\n"
    b"Content-Length: 50\r\n\r\n--b\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--b--",
}
# (worker, case): gunicorn's asgi parser answers otherwise than its WSGI parser.
ASGI_PARSER_SPLITS = {
    ("asgi", "fragment"),  # its query_string keeps "#frag"
    ("asgi", "HTTP/1.2"),  # 400
    ("asgi", "broken absolute-form authority"),  # 200
}


def answer(port: int, data: bytes) -> str:
    """The status code and body the server answers, or "closed" for no answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    if not received:
        return "closed"
    head, _, body = received.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1].decode()
    return status + (" " + body.decode("latin-1") if status == "200" else "")


class Server:
    """`gcorn` or `gunicorn` as a subprocess, on a free port read from its log."""

    def __init__(self, tmp_path: Path, command: str, worker: str) -> None:
        self.log_path = tmp_path / f"{command}-{worker}.log"
        app = "app:asgi" if worker == "asgi" else "app:wsgi"
        args = [str(BIN / command), "-k", worker, "-w", "1", "-b", "127.0.0.1:0",
                "--chdir", str(tmp_path), "--no-control-socket", app]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                         env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
        try:
            self.port = self._wait_port()
        except BaseException:
            self.stop()
            raise

    def _wait_port(self) -> int:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"exited {self.proc.returncode}: {self.log_path.read_text()}")
            found = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", self.log_path.read_text())
            if found:
                port = int(found.group(1))
                try:
                    answer(port, b"GET / HTTP/1.1\r\n" + H + b"\r\n")
                    return port
                except OSError:
                    pass
            time.sleep(0.1)
        raise TimeoutError(f"not ready: {self.log_path.read_text()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture(scope="module", params=["sync", "asgi"])
def servers(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Server, Server]]:
    """(worker, gcorn, gunicorn), both serving the echo app with that worker."""
    worker = request.param
    tmp_path = tmp_path_factory.mktemp(worker)
    (tmp_path / "app.py").write_text(APP)
    ours = Server(tmp_path, "gcorn", worker)
    try:
        theirs = Server(tmp_path, "gunicorn", worker)
    except BaseException:
        ours.stop()
        raise
    yield worker, ours, theirs
    ours.stop()
    theirs.stop()


@pytest.mark.parametrize("case", CASES)
def test_gcorn_answers_as_gunicorn_over_tcp(servers, case):
    worker, ours, theirs = servers
    mine, other = answer(ours.port, CASES[case]), answer(theirs.port, CASES[case])
    if (worker, case) in ASGI_PARSER_SPLITS:
        assert mine != other, "gunicorn's asgi parser agrees now: drop the split"
        # gcorn's asgi worker answers what gunicorn's WSGI parser decides.
        assert mine == answer_of_sync(case)
    else:
        assert mine == other


SYNC_ANSWERS = {
    "fragment": "200 GET /path ?x=1 0",
    "HTTP/1.2": "200 GET / ? 0",
    "broken absolute-form authority": "400",
}


def answer_of_sync(case: str) -> str:
    """gcorn's answer (gunicorn's WSGI parser's) for a case where gunicorn's own parsers split."""
    return SYNC_ANSWERS[case]
