"""`request_timeout` on HTTP/2 streams (asgi and gthread), through `gcorn`, with a raw h2 client.

On one h2c connection: a stream stuck past the limit is answered 504, one whose
response had started is reset (RST_STREAM), the traceback of where each was
stuck is logged and the app interrupted (asgi: the task cancelled; gthread: the
thread's frame read with sys._current_frames, then the thread interrupted),
while the other streams of the same connection are answered as usual and the
connection stays open for new ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

h2 = pytest.importorskip("h2")
from h2client import Client  # noqa: E402
from harness import Gcorn, wait_until  # noqa: E402

INTERNAL_ERROR = 0x2

WSGI_APP = '''
import time

def wait_for_the_database(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.05)  # short sleeps: the interruption lands between two

def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/slow":
        time.sleep(0.3)
    elif path.startswith("/stuck"):
        try:
            if path == "/stuck-after-start":
                write = start_response("200 OK", [("Content-Length", "10")])
                write(b"12345")
            wait_for_the_database(30)
        finally:
            with open("interrupted" + path.replace("/", "-"), "w") as out:
                out.write("yes")
        return [b"67890"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok " + path.encode()]
'''

ASGI_APP = '''
import asyncio

async def wait_for_the_database(seconds):
    await asyncio.sleep(seconds)

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/slow":
        await asyncio.sleep(0.3)
    elif path.startswith("/stuck"):
        try:
            if path == "/stuck-after-start":
                await send({"type": "http.response.start", "status": 200,
                            "headers": [(b"content-length", b"10")]})
                await send({"type": "http.response.body", "body": b"12345", "more_body": True})
            await wait_for_the_database(30)
        except asyncio.CancelledError:
            with open("interrupted" + path.replace("/", "-"), "w") as out:
                out.write("cancelled")
            raise
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok " + path.encode()})
'''

STUCK_LINE = {"asgi": "await asyncio.sleep(seconds)", "gthread": "time.sleep(0.05)"}


def _serve(start_gcorn: Callable[..., Gcorn], tmp_path: Path, worker: str) -> Gcorn:
    (tmp_path / "h2stuck.py").write_text(ASGI_APP if worker == "asgi" else WSGI_APP)
    extra = ["--threads", "4"] if worker == "gthread" else []
    return start_gcorn("-k", worker, *extra, "--http2-cleartext", "both", "--access-logfile",
                       "-", "--graceful-timeout", "2", "--request-timeout", "1", "h2stuck:app")


@pytest.mark.parametrize("worker", ["asgi", "gthread"])
def test_a_stuck_stream_gets_504_and_the_others_are_served(
        start_gcorn: Callable[..., Gcorn], tmp_path: Path, worker: str) -> None:
    server = _serve(start_gcorn, tmp_path, worker)
    client = Client(server.port)
    started = time.monotonic()
    stuck = client.request("/stuck")
    cut = client.request("/stuck-after-start")
    slow = client.request("/slow")
    quick = client.request("/quick")
    # the other streams of the connection are answered while two are stuck
    client.read(lambda: client.ended(slow) and client.ended(quick))
    assert time.monotonic() - started < 0.9
    assert client.status(slow) == 200 and client.status(quick) == 200
    assert bytes(client.data[quick]) == b"ok /quick"
    client.read(lambda: client.finished(stuck) and client.finished(cut), timeout=5)
    elapsed = time.monotonic() - started
    assert 0.9 < elapsed < 3, elapsed  # request_timeout 1 s, not the app's 30 s
    # not started: a 504 on that stream
    assert client.status(stuck) == 504 and client.ended(stuck), client.events
    assert b"request_timeout" in bytes(client.data[stuck])
    # started: that stream alone is reset, after the bytes already sent
    reset = client.reset_of(cut)
    assert reset is not None and reset.error_code == INTERNAL_ERROR, client.events
    assert client.status(cut) == 200 and bytes(client.data[cut]) == b"12345"
    # the connection was not closed: a new stream on it is served
    assert not client.closed and not client.goaway()
    again = client.request("/again")
    client.read(lambda: client.ended(again))
    assert client.status(again) == 200 and bytes(client.data[again]) == b"ok /again"
    # the app was interrupted (asgi: its task cancelled), and the log says where it was stuck
    for name in ("interrupted-stuck", "interrupted-stuck-after-start"):
        assert wait_until(lambda name=name: (tmp_path / name).exists(), 3), server.log()
    log = server.log()
    assert "Request timeout: GET /stuck ran past request_timeout=1s (answered 504)" in log, log
    assert ("Request timeout: GET /stuck-after-start ran past request_timeout=1s "
            "(response already started: stream reset)") in log, log
    assert "in wait_for_the_database" in log and STUCK_LINE[worker] in log, log
    assert wait_until(lambda: '"GET /stuck HTTP/2.0" 504' in server.log(), 3), server.log()
    assert "cannot be interrupted" not in log
    assert "ASGI app task cancelled" not in log  # a timeout, not an app failure
    assert "Error handling request" not in log
    client.sock.close()


def test_gthread_stream_threads_all_stuck_in_c_code_recycle_the_worker(
        start_gcorn: Callable[..., Gcorn], tmp_path: Path) -> None:
    (tmp_path / "h2block.py").write_text(
        "import time\n\n"
        "def app(environ, start_response):\n"
        "    if environ['PATH_INFO'] == '/block':\n"
        "        time.sleep(30)  # one C call: cannot be interrupted\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [b'ok']\n")
    server = start_gcorn("-k", "gthread", "--threads", "2", "--http2-cleartext", "both",
                         "--request-timeout", "0.5", "--graceful-timeout", "3", "h2block:app")
    client = Client(server.port)
    first, second = client.request("/block"), client.request("/block")
    client.read(lambda: client.finished(first) and client.finished(second))
    assert client.status(first) == 504 and client.status(second) == 504, client.events
    assert wait_until(lambda: "recycling the worker" in server.log(), 5), server.log()
    log = server.log()
    assert "a serving thread cannot be interrupted" in log and "2 of 2 threads stuck" in log
    assert wait_until(lambda: server.log().count("Booting worker with pid") == 2, 8), server.log()
    client.sock.close()
    fresh = Client(server.port)
    sid = fresh.request("/")
    fresh.read(lambda: fresh.ended(sid))
    assert fresh.status(sid) == 200
    fresh.sock.close()
