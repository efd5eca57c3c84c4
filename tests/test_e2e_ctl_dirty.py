"""`gcorn ctl` and the dirty pool: `show dirty`, `dirty add|remove`, and the dirty memory cap."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import GCORN, wait_until
from test_e2e_dirty_harness import GcornServer

HOG = '''
import os

from gcorn.dirty import DirtyApp


class Hog(DirtyApp):
    def init(self):
        self.hold = []

    def grow(self):
        block = bytearray(60 * 1024 * 1024)
        block[::4096] = b"x" * len(block[::4096])  # touch every page: resident, not just mapped
        self.hold.append(block)
        return os.getpid()

    def whoami(self):
        return [os.getpid(), os.getppid()]
'''


def ctl(sock: Path, *words: str) -> subprocess.CompletedProcess[str]:
    """`gcorn ctl -s SOCK WORDS...`, which must exit 0."""
    proc = subprocess.run([GCORN, "ctl", "-s", str(sock), *words], capture_output=True,
                          text=True, timeout=20)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    return proc


def ctl_json(sock: Path, *words: str) -> Any:
    return json.loads(ctl(sock, *words, "--json").stdout)


def start(tmp_path: Path, *extra: str) -> tuple[GcornServer, Path]:
    (tmp_path / "hog.py").write_text(HOG)
    sock = tmp_path / "gcorn.ctl"
    server = GcornServer(tmp_path, ["--control-socket", str(sock), "--dirty-app", "hog:Hog",
                                    "--dirty-workers", "2", *extra, "web:app"])
    server.wait_ok("/whoami?app=hog:Hog")
    return server, sock


def test_show_dirty_and_dirty_add_remove(tmp_path: Path) -> None:
    server, sock = start(tmp_path)
    try:
        for _ in range(4):
            server.wait_ok("/whoami?app=hog:Hog")
        dirty = ctl_json(sock, "show", "dirty")
        assert dirty["enabled"] is True and dirty["apps"] == ["hog:Hog"]
        workers = dirty["workers"]
        assert len(workers) == 2
        assert all(w["apps"] == ["hog:Hog"] and w["rss"] > 1024 * 1024 for w in workers)
        assert sum(w["calls"] for w in workers) >= 5 and all(w["inflight"] == 0 for w in workers)
        human = ctl(sock, "show", "dirty").stdout
        assert "BUSY" in human and "CALLS" in human and "hog:Hog" in human
        everything = ctl_json(sock, "show", "all")
        assert len(everything["dirty_workers"]) == 2
        assert everything["side_processes"][0]["name"] == "dirty-arbiter"
        added = ctl_json(sock, "dirty", "add", "1")
        assert added["changed"] == 1 and added["total_workers"] == 3
        assert wait_until(lambda: len(ctl_json(sock, "show", "dirty")["workers"]) == 3, 10)
        assert "changed: 1" in ctl(sock, "dirty", "remove").stdout
        assert wait_until(lambda: len(ctl_json(sock, "show", "dirty")["workers"]) == 2, 10)
        server.wait_ok("/whoami?app=hog:Hog")
    finally:
        assert server.stop() == 0, server.logs()


@pytest.mark.slow
def test_a_dirty_worker_over_its_memory_cap_is_replaced_ready_first(tmp_path: Path) -> None:
    server, sock = start(tmp_path, "--dirty-max-worker-memory", "50",
                         "--max-worker-memory-checks", "2")
    try:
        fat = server.wait_ok("/grow?app=hog:Hog").json()["result"]
        failures: list[Any] = []
        deadline = time.monotonic() + 20
        with httpx.Client(timeout=10) as client:
            while time.monotonic() < deadline:
                try:
                    answer = client.get(server.url + "/whoami?app=hog:Hog")
                    if answer.status_code != 200:
                        failures.append(answer.text)
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                pids = {w["pid"] for w in ctl_json(sock, "show", "dirty")["workers"]}
                if fat not in pids:
                    break
                time.sleep(0.05)
        assert fat not in pids, server.logs()
        assert failures == []
        log = server.logs()
        line = next(x for x in log.splitlines() if f"dirty worker {fat} uses " in x)
        assert "over dirty_max_worker_memory=50 MiB for 2 checks in a row" in line
        assert float(line.split(" uses ")[1].split(" MiB")[0]) > 50
        assert wait_until(lambda: len(ctl_json(sock, "show", "dirty")["workers"]) == 2, 10)
    finally:
        assert server.stop() == 0, server.logs()
