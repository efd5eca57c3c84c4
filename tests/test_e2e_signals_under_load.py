"""HUP and USR2 (then TERM of the old master) while wrk runs: not one request may fail.

This is gunicorn's zero-downtime promise, checked through the real `gcorn`
command for each worker class: the listening socket is shared by the old and
new workers (HUP) and handed to a re-executed master (USR2), so every
connection wrk opens is accepted and answered by someone. With keep-alive
(gthread, asgi) wrk sends its next request the moment a response arrives, so a
retiring worker must end each connection with a `Connection: close` answer, not
close it under the client (wrk counts that as a read error).
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import pytest
from harness import EXAMPLES, Gcorn, kill_masters, wait_until

APPS = {"sync": "hello:app", "gthread": "hello:app", "asgi": "hello_asgi:app"}


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def _read_pid(path: Path) -> int:
    try:
        return int(path.read_text().strip() or 0)
    except (FileNotFoundError, ValueError):
        return 0


@pytest.mark.slow  # 9 s each: 7 s of wrk load
@pytest.mark.timeout(60)
# `sync` with more than one thread would run gthread: the sync case keeps one thread
@pytest.mark.parametrize(("worker", "threads"), [("sync", 1), ("gthread", 2), ("asgi", 2)])
def test_hup_then_usr2_under_load_lose_no_request(
        start_gcorn: Callable[..., Gcorn], tmp_path: Path, worker: str, threads: int) -> None:
    wrk = shutil.which("wrk")
    assert wrk, "wrk is needed (tools/env.sh installs it)"
    for name in ("hello.py", "hello_asgi.py"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    pidfile = tmp_path / "gcorn.pid"
    master = start_gcorn(
        "-w", "2", "-k", worker, "--threads", str(threads), "--pid", str(pidfile),
        "--graceful-timeout", "10", APPS[worker], new_session=True)
    url = master.url + "/"
    new_master = 0
    try:
        load = subprocess.Popen(
            [wrk, "-t1", "-c10", "-d7s", "--timeout", "5s", url],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        time.sleep(1.0)
        master.proc.send_signal(signal.SIGHUP)
        time.sleep(1.5)
        master.proc.send_signal(signal.SIGUSR2)
        new_master = wait_until(lambda: _read_pid(Path(f"{pidfile}.2")), 10)
        assert new_master, "the new master's pidfile"
        # the new master serves once its workers are up; then the old one may go
        assert wait_until(lambda: len(psutil.Process(new_master).children()) >= 2, 10), \
            "the new master's workers"
        time.sleep(1.0)
        master.proc.send_signal(signal.SIGTERM)
        assert master.proc.wait(20) == 0
        output, _ = load.communicate(timeout=20)
        total = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
        assert total > 200, output
        assert "Socket errors" not in output, output
        assert "Non-2xx" not in output, output
        # the re-executed master takes the plain pidfile name once the old one is gone
        assert wait_until(lambda: _read_pid(pidfile) == new_master, 10), "the pidfile promotion"
        assert _answers(url)
        survivor = psutil.Process(new_master)
        survivor.send_signal(signal.SIGTERM)
        survivor.wait(20)
        new_master = 0
    finally:
        kill_masters(new_master, master.pid)  # the re-executed one is no child of ours
        master.stop(timeout=5)
