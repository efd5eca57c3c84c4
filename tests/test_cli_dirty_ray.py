"""`gcorn --dirty-backend ray` settings through the real command: bad values stop it before
any fork, with one line naming the setting (the pool itself runs in packages/dirty/tests)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from harness import EXAMPLES, GCORN

HAS_RAY = importlib.util.find_spec("ray") is not None


def run_gcorn(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    shutil.copy(EXAMPLES / "hello.py", cwd / "hello.py")
    env = dict(os.environ, GCORN_CMD_ARGS="--bind 127.0.0.1:0")
    return subprocess.run([GCORN, "--dirty-workers", "1", "--dirty-app", "hello:Model", *args, "hello:app"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=30)


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("gcorn: error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize(("args", "expected"), [
    (["--dirty-backend", "grpc"], "invalid value for setting 'dirty_backend'"),
    (["--dirty-ray-address", "10.0.0.1:6379"],
     "dirty_ray_address='10.0.0.1:6379' is set but dirty_backend is 'local'"),
])
def test_bad_backend_settings(tmp_path: Path, args: list[str], expected: str) -> None:
    assert expected in one_error_line(run_gcorn(args, tmp_path))


def test_ray_backend_needs_ray_or_a_reachable_address(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{s.getsockname()[1]}"
    started = time.monotonic()
    line = one_error_line(run_gcorn(["--dirty-backend", "ray", "--dirty-ray-address", address], tmp_path))
    if HAS_RAY:
        assert f"dirty_ray_address {address!r}: cannot reach a Ray cluster" in line
    else:  # the py312/py313 envs install no Ray: the error names the extra
        assert "pip install 'gcorn-dirty[ray]'" in line
    assert time.monotonic() - started < 20
