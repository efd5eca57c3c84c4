"""A worker whose master is gone (killed with SIGKILL, so it signals nobody) notices
within about a second, logs "Parent changed, shutting down" and exits, on every
worker class: the heartbeat loops of sync, gthread, gevent and asgi share one check
(gcorn.arbiter's `Worker.master_gone`)."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from harness import Gcorn, wait_until

APP = '''
import os

def wsgi(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]

async def asgi(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(os.getpid()).encode()})
'''

WORKERS = {
    "sync": ["-k", "sync", "pidapp:wsgi"],
    "gthread": ["-k", "gthread", "--threads", "2", "pidapp:wsgi"],
    "gevent": ["-k", "gevent", "pidapp:wsgi"],
    "asgi": ["-k", "asgi", "pidapp:asgi"],
}


def _gone(pid: int) -> bool:
    """The process has exited (reaped, or a zombie left to whoever adopted it)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return "\nState:\tZ" in status


@pytest.mark.parametrize("worker", sorted(WORKERS))
def test_a_worker_exits_when_its_master_is_killed(start_gcorn: Callable[..., Gcorn],
                                                   tmp_path: Path, worker: str) -> None:
    if worker == "gevent":
        pytest.importorskip("gevent", reason="gevent is installed by requirements-test.txt")
    (tmp_path / "pidapp.py").write_text(APP)
    server = start_gcorn("-w", "1", "--timeout", "4", *WORKERS[worker])
    worker_pid = int(server.get("/").text)
    assert worker_pid != server.pid
    os.kill(server.pid, signal.SIGKILL)
    try:
        assert wait_until(lambda: _gone(worker_pid), timeout=6), f"worker {worker_pid} lives on"
    finally:
        if not _gone(worker_pid):
            os.kill(worker_pid, signal.SIGKILL)
    assert "Parent changed, shutting down" in server.log()
