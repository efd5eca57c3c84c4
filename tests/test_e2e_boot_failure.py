"""A worker that cannot boot stops the master the way gunicorn 27 does: exit 3 with
`Reason: Worker failed to boot.` when the app module fails to import, exit 4 with
`Reason: App failed to load.` when it imports but has no such app object; the
crash-loop backoff runs first, through the real `gcorn` command."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

BIN = os.path.dirname(sys.executable)
GCORN = shutil.which("gcorn", path=BIN) or "gcorn"
GUNICORN = shutil.which("gunicorn", path=BIN)

APPS = {
    "raises.py": "raise RuntimeError('db not configured')\n",
    "noattr.py": "def other(environ, start_response):\n    return []\n",
    "notcallable.py": "app = 42\n",
}


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, GCORN_CMD_ARGS="", GUNICORN_CMD_ARGS="", PYTHONUNBUFFERED="1")
    return subprocess.run(
        [*command, "--bind", "127.0.0.1:0"], cwd=cwd, env=env, capture_output=True, text=True, timeout=40
    )


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
def test_boot_failure_exit_code_and_reason(apps: Path, app: str, code: int, reason: str) -> None:
    started = time.monotonic()
    done = run([GCORN, "-w", "2", "--boot-failure-limit", "3", app], apps)
    assert done.returncode == code, done.stderr[-3000:]
    lines = done.stderr.splitlines()
    # the last two lines are gunicorn's, at error level
    assert "[ERROR] Shutting down: Master" in lines[-2], lines[-4:]
    assert lines[-1].endswith(f"[ERROR] Reason: {reason}"), lines[-4:]
    # the crash-loop guard backed off and counted before giving up
    assert "next spawn in" in done.stderr
    assert "Crash loop: 3 workers" in done.stderr
    assert time.monotonic() - started < 30


def test_a_single_failure_with_the_guard_at_1_stops_at_once(apps: Path) -> None:
    done = run([GCORN, "--boot-failure-limit", "1", "raises:app"], apps)
    assert done.returncode == 3
    assert "next spawn in" not in done.stderr
    assert done.stderr.rstrip().endswith("Reason: Worker failed to boot.")
    assert "RuntimeError: db not configured" in done.stderr  # the worker's traceback


@pytest.mark.skipif(GUNICORN is None, reason="gunicorn is not installed")
@pytest.mark.parametrize(("app", "code", "reason"), CASES)
def test_gunicorn_ends_the_same_way(apps: Path, app: str, code: int, reason: str) -> None:
    assert GUNICORN is not None
    done = run([GUNICORN, app], apps)
    assert done.returncode == code
    assert done.stderr.rstrip().endswith(f"Reason: {reason}")
