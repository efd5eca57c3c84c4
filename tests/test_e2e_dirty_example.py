"""The README's quick start, for real: tools/run-example.sh builds a venv and serves the examples."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from harness import ROOT, ExternalServer, free_port, wait_until
from test_e2e_dirty_harness import alive


def curl(url: str) -> str:
    """The body curl gets from `url` (fails on an HTTP error)."""
    done = subprocess.run(["curl", "-sSf", "--max-time", "10", url], capture_output=True, timeout=15)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_run_example_serves_both_urls_and_stops_on_ctrl_c(
        start_server: Callable[..., ExternalServer], tmp_path: Path) -> None:
    bind = f"127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if k not in ("GCORN_DIRTY_SOCKET", "VIRTUAL_ENV")}
    env.update(GCORN_BIND=bind, GCORN_EXAMPLE_VENV=str(tmp_path / "venv"), GCORN_CMD_ARGS="")

    def serving(_: ExternalServer) -> bool:
        try:
            return curl(f"http://{bind}/") == "Hello, World!\n"
        except AssertionError:
            return False

    # its own session: the Ctrl-C below goes to its process group, as a terminal's would
    server = start_server(["sh", "tools/run-example.sh"], cwd=ROOT, env=env, name="run-example",
                          ready=serving, ready_timeout=240, ready_interval=0.5, new_session=True)
    tree: dict[int, psutil.Process] = {}
    try:
        output = server.log()
        assert f"curl http://{bind}/" in output and f"http://{bind}/dirty?text=" in output
        counted = curl(f"http://{bind}/dirty?text=the+cat+and+the+hat+and+the+cat")
        assert '"words": 8' in counted and '["cat", 2]' in counted, counted
        # the script exec'd gcorn: Ctrl-C reaches the master, its HTTP workers and its pool
        tree = {p.pid: p for p in psutil.Process(server.pid).children(recursive=True)}
        assert len(tree) >= 5  # 2 HTTP workers, the dirty arbiter, 2 dirty workers
        started = time.monotonic()
        os.killpg(server.pid, signal.SIGINT)
        assert server.proc.wait(20) == 0, server.log()
        assert time.monotonic() - started < 10
        assert wait_until(lambda: not alive(tree.values()), 5), [p.pid for p in alive(tree.values())]
    finally:
        if server.alive():
            os.killpg(server.pid, signal.SIGKILL)
        server.stop()
        for leftover in alive(tree.values()):
            leftover.kill()
