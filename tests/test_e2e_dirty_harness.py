"""Shared pieces of the dirty-pool end-to-end tests (no tests here).

`GcornServer` runs the real `gcorn` command with a dirty pool in a tmp dir,
with probe apps that report their pids and mark hooks and signals in files.
Imported by the tests/test_e2e_dirty_*.py files; the generic parts (free_port,
wait_until, the server process and its log on failure) are tests/harness.py's.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import psutil
from harness import EXAMPLES, Gcorn, free_port, wait_until

__all__ = ["EXAMPLES", "GcornServer", "alive", "free_port", "wait_for", "wait_until"]

wait_for = wait_until  # the name the dirty tests of other branches import

# The dirty apps: `Probe` answers with its pids, sleeps on demand, and marks every
# USR1 it gets (chained before the worker's own handler) in $DIRTY_E2E_DIR/marks.log.
PROBE_APP = '''
import os
import signal
import time

from gcorn.dirty import DirtyApp


def mark(line):
    with open(os.path.join(os.environ["DIRTY_E2E_DIR"], "marks.log"), "a") as stream:
        stream.write(line + "\\n")


class Probe(DirtyApp):
    def init(self):
        previous = signal.getsignal(signal.SIGUSR1)

        def on_usr1(signum, frame):
            mark(f"usr1 {os.getpid()}")
            if callable(previous):
                previous(signum, frame)

        signal.signal(signal.SIGUSR1, on_usr1)

    def echo(self, value):
        return value

    def whoami(self):
        return [os.getpid(), os.getppid()]

    def sleep(self, seconds):
        time.sleep(float(seconds))
        return os.getpid()


class Heavy(DirtyApp):
    def whoami(self):
        return [os.getpid(), os.getppid()]
'''

# Shared by the three web apps: /ACTION/ARG...?app=MODULE:CLASS -> {"result": ...};
# a DirtyError becomes its HTTP status (busy: 503 with Retry-After), never a traceback.
DIRTYCALL = '''
from urllib.parse import parse_qs

from gcorn.dirty import DirtyBusyError, DirtyError


def request_of(path, query):
    parts = path.strip("/").split("/")
    return parse_qs(query).get("app", ["probe:Probe"])[0], parts[0], parts[1:]


def answer(call):
    try:
        return 200, {"result": call()}, []
    except DirtyBusyError as exc:
        return 503, {"error": type(exc).__name__}, [("Retry-After", str(exc.retry_after))]
    except DirtyError as exc:
        return exc.status, {"error": type(exc).__name__}, []


async def answer_async(call):
    try:
        return 200, {"result": await call()}, []
    except DirtyBusyError as exc:
        return 503, {"error": type(exc).__name__}, [("Retry-After", str(exc.retry_after))]
    except DirtyError as exc:
        return exc.status, {"error": type(exc).__name__}, []
'''

WSGI_APP = '''
import json
from http import HTTPStatus

from dirtycall import answer, request_of
from gcorn.dirty import get_dirty_client


def app(environ, start_response):
    app_path, action, args = request_of(environ["PATH_INFO"], environ.get("QUERY_STRING", ""))
    status, payload, headers = answer(lambda: get_dirty_client().execute(app_path, action, *args))
    body = json.dumps(payload).encode()
    headers += [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    start_response(f"{status} {HTTPStatus(status).phrase}", headers)
    return [body]
'''

FLASK_APP = '''
from flask import Flask, request

from dirtycall import answer, request_of
from gcorn.dirty import get_dirty_client

app = Flask(__name__)


@app.route("/<path:rest>")
def call(rest):
    app_path, action, args = request_of(request.path, request.query_string.decode())
    status, payload, headers = answer(lambda: get_dirty_client().execute(app_path, action, *args))
    return payload, status, headers
'''

STARLETTE_APP = '''
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from dirtycall import answer_async, request_of
from gcorn.dirty import get_dirty_client_async


async def call(request):
    app_path, action, args = request_of(request.url.path, request.url.query)

    async def run():
        client = await get_dirty_client_async()
        return await client.execute_async(app_path, action, *args)

    status, payload, headers = await answer_async(run)
    return JSONResponse(payload, status_code=status, headers=dict(headers))


app = Starlette(routes=[Route("/{rest:path}", call)])
'''

SOURCES = {
    "probe.py": PROBE_APP,
    "dirtycall.py": DIRTYCALL,
    "web.py": WSGI_APP,
    "flask_web.py": FLASK_APP,
    "starlette_web.py": STARLETTE_APP,
}


class GcornServer(Gcorn):
    """One `gcorn` master on a free port, started in `tmp_path` with the probe apps.

    Not waited for: a test waits for the route it needs (`wait_ok`), since the dirty
    pool may still be booting when HTTP already answers.
    """

    def __init__(self, tmp_path: Path, args: list[str], env: dict[str, str] | None = None) -> None:
        self.dir = tmp_path
        for name, text in SOURCES.items():
            (tmp_path / name).write_text(text)
        environ = {"PYTHONPATH": str(tmp_path), "DIRTY_E2E_DIR": str(tmp_path), **(env or {})}
        super().__init__(["--graceful-timeout", "5", *args], cwd=tmp_path, env=environ,
                         ready_path=None, stop_timeout=15.0, new_session=True)
        self._seen: dict[int, psutil.Process] = {}
        self.leftovers: list[psutil.Process] = []
        self.start()

    def get(self, path: str = "/", timeout: float = 10.0, **kwargs: Any) -> httpx.Response:
        """One GET on a fresh connection (a dirty call may take a while: 10 s by default)."""
        return super().get(path, timeout, **kwargs)

    def wait_ok(self, path: str, timeout: float = 15.0) -> httpx.Response:
        """GET `path` until it answers 200 (the pool may still be booting); fail with the log."""
        last: httpx.Response | None = None

        def ok() -> bool:
            nonlocal last
            try:
                last = self.get(path, timeout=5)
            except httpx.HTTPError:
                return False
            return last.status_code == 200

        assert wait_until(ok, timeout, 0.1), f"no 200 from {path}: {last and last.text}\n{self.log()}"
        assert last is not None
        return last

    def whoami(self, query: str = "") -> tuple[int, int]:
        """(dirty worker pid, its parent: the dirty arbiter) of one call."""
        pid, ppid = self.wait_ok("/whoami" + query).json()["result"]
        return int(pid), int(ppid)

    def descendants(self) -> list[psutil.Process]:
        """Every live process below the master (HTTP workers, dirty arbiter, dirty workers)."""
        try:
            found = psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        self._seen.update((p.pid, p) for p in found)
        return found

    def dirty_workers(self, arbiter_pid: int) -> set[int]:
        """Pids of the live children of the dirty arbiter."""
        try:
            children = psutil.Process(arbiter_pid).children()
        except psutil.NoSuchProcess:
            return set()
        return {c.pid for c in alive(children)}  # one reaped meanwhile is gone, not an error

    def marks(self) -> list[str]:
        """Lines the probe apps and hooks wrote to marks.log."""
        path = self.dir / "marks.log"
        return path.read_text().splitlines() if path.exists() else []

    def logs(self) -> str:
        """The master's stdout and stderr so far (the name the dirty tests use for log())."""
        return self.log()

    def stop(self, sig: int | None = None, timeout: float | None = None) -> int | None:
        """Stop the master (TERM, then KILL), then SIGKILL anything of its tree still alive."""
        self.descendants()
        code = super().stop(sig, timeout)
        # what outlived its master is recorded for the tests, then cleaned up
        self.leftovers = alive(self._seen.values())
        for proc in self.leftovers:
            proc.kill()
        return code


def alive(procs: Iterable[psutil.Process]) -> list[psutil.Process]:
    """The processes among `procs` still running (zombies count as gone; a reused pid too)."""
    found = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.NoSuchProcess:
            continue
    return found
