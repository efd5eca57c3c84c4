"""The dirty pool wired into `gcorn` as a side process: a WSGI route calls it with no setup."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
from harness import Gcorn, wait_until

DIRTY_APP = '''
from gcorn.dirty import DirtyApp


class Upper(DirtyApp):
    def init(self):
        self.calls = 0

    def upper(self, text):
        self.calls += 1
        return text.upper()
'''

WEB_APP = '''
import os
from gcorn.dirty import get_dirty_client


def app(environ, start_response):
    word = environ["PATH_INFO"].strip("/")
    body = get_dirty_client().execute("dirtyapp:Upper", "upper", word).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''

CONFIG = '''
import os

dirty_apps = ["dirtyapp:Upper"]
dirty_workers = 1


def on_dirty_starting(arbiter):
    with open(os.path.join(os.path.dirname(__file__), "dirty.log"), "a") as stream:
        stream.write("on_dirty_starting\\n")
'''


def test_http_worker_calls_the_dirty_pool(start_gcorn: Callable[..., Gcorn], tmp_path: Path) -> None:
    (tmp_path / "dirtyapp.py").write_text(DIRTY_APP)
    (tmp_path / "web.py").write_text(WEB_APP)
    (tmp_path / "gcorn.conf.py").write_text(CONFIG)
    server = start_gcorn("-k", "gthread", "--threads", "4", "web:app",
                         env={"PYTHONPATH": str(tmp_path)}, ready_path=None)

    def hello() -> str | None:
        try:
            response = server.get("/hello")
        except httpx.HTTPError:
            return None
        return response.text if response.status_code == 200 else None

    assert wait_until(hello, timeout=15, interval=0.1) == "HELLO", server.log()
    assert (tmp_path / "dirty.log").read_text() == "on_dirty_starting\n"
    assert server.stop(timeout=15) == 0
