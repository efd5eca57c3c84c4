"""A worker that cannot boot stops the master the way gunicorn 27 does: exit 3 with
`Reason: Worker failed to boot.` when the app module fails to import, exit 4 with
`Reason: App failed to load.` when it imports but has no such app object; the
crash-loop backoff runs first, through the real `gcorn` command."""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from harness import ExternalServer, Gcorn

GUNICORN = shutil.which("gunicorn", path=os.path.dirname(sys.executable))

APPS = {
    "raises.py": "raise RuntimeError('db not configured')\n",
    "noattr.py": "def other(environ, start_response):\n    return []\n",
    "notcallable.py": "app = 42\n",
}


EXIT_TIMEOUT = 40  # seconds for the master to give up on its own


@pytest.fixture
def run_gcorn(start_gcorn: Callable[..., Gcorn]) -> Callable[..., tuple[int, str]]:
    """`run_gcorn(*args)`: (exit status, log: stderr, as gcorn writes nothing to stdout) of a gcorn that must stop by itself."""
    def run(*args: str) -> tuple[int, str]:
        server = start_gcorn(*args, ready_path=None, wait=False)
        return server.wait_exit(EXIT_TIMEOUT), server.log()
    return run


@pytest.fixture
def apps(tmp_path: Path) -> Path:
    for name, text in APPS.items():
        (tmp_path / name).write_text(text)
    return tmp_path


CASES = [
    ("raises:app", 3, "Worker failed to boot."),
    ("noattr:app", 4, "App failed to load."),
    ("notcallable:app", 4, "App failed to load."),
]


@pytest.mark.parametrize(("app", "code", "reason"), CASES)
def test_boot_failure_exit_code_and_reason(apps: Path, run_gcorn: Callable[..., tuple[int, str]],
                                           app: str, code: int, reason: str) -> None:
    started = time.monotonic()
    returncode, log = run_gcorn("-w", "2", "--boot-failure-limit", "3", app)
    assert returncode == code, log[-3000:]
    lines = log.splitlines()
    # the last two lines are gunicorn's, at error level
    assert "[ERROR] Shutting down: Master" in lines[-2], lines[-4:]
    assert lines[-1].endswith(f"[ERROR] Reason: {reason}"), lines[-4:]
    # the crash-loop guard backed off and counted before giving up
    assert "next spawn in" in log
    assert "Crash loop: 3 workers" in log
    assert time.monotonic() - started < 30


def test_a_single_failure_with_the_guard_at_1_stops_at_once(
        apps: Path, run_gcorn: Callable[..., tuple[int, str]]) -> None:
    returncode, log = run_gcorn("--boot-failure-limit", "1", "raises:app")
    assert returncode == 3
    assert "next spawn in" not in log
    assert log.rstrip().endswith("Reason: Worker failed to boot.")
    assert "RuntimeError: db not configured" in log  # the worker's traceback


@pytest.mark.skipif(GUNICORN is None, reason="gunicorn is not installed")
@pytest.mark.parametrize(("app", "code", "reason"), CASES)
def test_gunicorn_ends_the_same_way(apps: Path, app: str, code: int, reason: str) -> None:
    assert GUNICORN is not None
    # the reference server, run as any external command (not start_server: that marks it slow)
    gunicorn = ExternalServer(
        [GUNICORN, app, "--bind", "127.0.0.1:0"], cwd=apps, log_path=apps / "gunicorn.log",
        env=dict(os.environ, GUNICORN_CMD_ARGS="", PYTHONUNBUFFERED="1")).start()
    assert gunicorn.wait_exit(EXIT_TIMEOUT) == code
    assert gunicorn.log().rstrip().endswith(f"Reason: {reason}")
