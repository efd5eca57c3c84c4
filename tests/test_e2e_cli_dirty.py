"""The dirty pool wired into `gcorn` as a side process: a WSGI route calls it with no setup."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

GCORN = shutil.which("gcorn", path=os.path.dirname(sys.executable)) or "gcorn"

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


def test_http_worker_calls_the_dirty_pool(tmp_path: Path) -> None:
    (tmp_path / "dirtyapp.py").write_text(DIRTY_APP)
    (tmp_path / "web.py").write_text(WEB_APP)
    (tmp_path / "gcorn.conf.py").write_text(CONFIG)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, GCORN_CMD_ARGS="", PYTHONPATH=str(tmp_path))
    out = open(tmp_path / "out.log", "wb")  # closed below
    proc = subprocess.Popen(
        [GCORN, "-b", f"127.0.0.1:{port}", "-k", "gthread", "--threads", "4", "web:app"],
        cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
    )
    try:
        body = None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and body != "HELLO":
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/hello", timeout=5)
                body = response.text if response.status_code == 200 else None
            except httpx.HTTPError:
                pass
            if body != "HELLO":
                time.sleep(0.1)
        assert body == "HELLO", (tmp_path / "out.log").read_text()
        assert (tmp_path / "dirty.log").read_text() == "on_dirty_starting\n"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        out.close()
    assert proc.returncode == 0
