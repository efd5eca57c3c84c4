"""Readiness end to end through `gcorn`: with a dirty app whose init() is slow, the master
runs when_ready (and starts serving) only after that init() returned, so the first request
gets its dirty answer instead of a 503; HUP of the dirty pool under load fails no request."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from harness import Gcorn

SLOW_APP = '''
import os
import time
from gcorn.dirty import DirtyApp


class Slow(DirtyApp):
    def init(self):
        time.sleep(2.0)
        with open(os.path.join(os.environ["MARKS"], f"init_done.{os.getpid()}"), "w") as f:
            f.write(repr(time.time()))

    def hello(self):
        return "hello from a ready worker"
'''

WEB_APP = '''
from gcorn.dirty import DirtyError, get_dirty_client


def app(environ, start_response):
    try:
        body, status = get_dirty_client().execute("slowapp:Slow", "hello").encode(), "200 OK"
    except DirtyError as exc:
        body, status = type(exc).__name__.encode(), f"{exc.status} Dirty"
    start_response(status, [("Content-Length", str(len(body)))])
    return [body]
'''

CONF = '''
import os
import time


def when_ready(server):
    with open(os.path.join(os.environ["MARKS"], "when_ready"), "w") as f:
        f.write(repr(time.time()))
'''


@pytest.mark.slow
def test_when_ready_waits_for_every_dirty_app_and_the_first_request_succeeds(
        start_gcorn: Callable[..., Gcorn], tmp_path: Path) -> None:
    (tmp_path / "slowapp.py").write_text(textwrap.dedent(SLOW_APP))
    (tmp_path / "web.py").write_text(textwrap.dedent(WEB_APP))
    (tmp_path / "conf.py").write_text(textwrap.dedent(CONF))
    marks = tmp_path / "marks"
    marks.mkdir()
    started = time.time()
    server = start_gcorn("-c", "conf.py", "-k", "gthread", "-w", "2", "--dirty-app", "slowapp:Slow",
                         "--dirty-workers", "2", "web:app", wait=False,
                         env={"PYTHONPATH": str(tmp_path), "MARKS": str(marks)})
    response = None
    deadline = time.monotonic() + 20
    while response is None and time.monotonic() < deadline:
        try:  # the first request that connects at all
            response = httpx.get(server.url + "/", timeout=15)
        except httpx.TransportError:
            time.sleep(0.02)
    assert response is not None, server.log()
    assert (response.status_code, response.text) == (200, "hello from a ready worker")
    # ready once every app has one ready worker: after the first init() returned
    first_init = min(float(p.read_text()) for p in marks.glob("init_done.*"))
    ready = float((marks / "when_ready").read_text())
    assert ready >= first_init >= started + 1.9
    assert "dirty pool ready after" in server.log()
    assert server.stop(timeout=15) == 0
