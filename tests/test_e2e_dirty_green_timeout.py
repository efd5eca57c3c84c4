"""A dirty call's timeout holds under `gcorn -k gevent`: a green socket waits in the hub,
so the client's reading loop must not rely on a kernel receive timeout to see its deadline.
"""

from __future__ import annotations

import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from harness import Gcorn, wait_until

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "packages" / "workers" / "tests"))
from green_support import GREEN_WORKERS

SLOW_APP = '''
import time
from gcorn.dirty import DirtyApp


class Slow(DirtyApp):
    def nap(self, seconds):
        time.sleep(seconds)
        return "awake"
'''

WEB_APP = '''
from gcorn.dirty import DirtyError, get_dirty_client


def app(environ, start_response):
    seconds = float(environ["PATH_INFO"].strip("/") or 0)
    try:
        body = get_dirty_client().execute("slowdirty:Slow", "nap", seconds, _timeout=0.5).encode()
        status = "200 OK"
    except DirtyError as exc:
        body = type(exc).__name__.encode()
        status = f"{exc.status} Dirty"
    start_response(status, [("Content-Length", str(len(body)))])
    return [body]
'''


@pytest.mark.parametrize("worker", ["gthread", *GREEN_WORKERS])
def test_a_call_past_its_timeout_answers_at_the_timeout(
        start_gcorn: Callable[..., Gcorn], tmp_path: Path, worker: str) -> None:
    (tmp_path / "slowdirty.py").write_text(textwrap.dedent(SLOW_APP))
    (tmp_path / "dirtyweb.py").write_text(textwrap.dedent(WEB_APP))
    server = start_gcorn(
        "-k", worker, "-w", "1", "--dirty-app", "slowdirty:Slow", "--dirty-workers", "1",
        "--dirty-threads", "2", "dirtyweb:app", env={"PYTHONPATH": str(tmp_path)})
    assert wait_until(lambda: server.get("/0", timeout=10).text == "awake", 15, 0.2), server.log()
    started = time.monotonic()
    response = server.get("/2", timeout=10)
    elapsed = time.monotonic() - started
    assert (response.status_code, response.text) == (504, "DirtyTimeoutError")
    assert elapsed < 1.2, f"a 0.5 s timeout answered after {elapsed:.2f} s (the action takes 2 s)"
    assert server.stop(timeout=15) == 0
