"""`gcorn-dirty serve --max-worker-memory`: a worker over its RSS cap is replaced, ready first."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from dirty_helpers import wait_for

from gcorn.dirty import connect

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
        return os.getpid()
'''


def test_serve_replaces_a_worker_over_the_memory_cap(tmp_path):
    exe = shutil.which("gcorn-dirty", path=os.path.dirname(sys.executable)) or shutil.which("gcorn-dirty")
    if exe is None:
        pytest.skip("gcorn-dirty script not installed next to this interpreter")
    (tmp_path / "hog.py").write_text(HOG)
    sock = str(tmp_path / "hog.sock")
    log = tmp_path / "pool.log"
    proc = subprocess.Popen([exe, "serve", "hog:Hog", "--workers", "1", "--socket", sock,
                             "--max-worker-memory", "50", "--max-worker-memory-checks", "2",
                             "--log-file", str(log)], cwd=str(tmp_path))
    try:
        assert wait_for(lambda: os.path.exists(sock), 10)
        c = connect(sock, timeout=10)
        assert wait_for(lambda: any(w["state"] == "READY" for w in c.status()["workers"]), 10)
        fat = c.execute("hog:Hog", "grow")
        seen = set()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            seen.add(c.execute("hog:Hog", "whoami"))  # never fails across the hand-over
            if seen - {fat}:
                break
            time.sleep(0.05)
        assert seen - {fat}, log.read_text()
        assert wait_for(lambda: [w["pid"] for w in c.status()["workers"]] != [fat]
                        and fat not in [w["pid"] for w in c.status()["workers"]], 10)
        c.close()
        from gcorn.dirty.metrics import DirtyPoolCollector  # counted among restarts by reason
        assert DirtyPoolCollector(sock, timeout=5).fetch()["restarts"] == {"memory": 1}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
    text = log.read_text()
    assert f"dirty worker {fat} uses " in text
    assert "over dirty_max_worker_memory=50 MiB for 2 checks in a row" in text


def test_bad_memory_checks_is_a_clear_error():
    from gcorn.dirty import DirtyConfig
    from gcorn.dirty.errors import DirtyConfigError

    with pytest.raises(DirtyConfigError, match="max_worker_memory_checks must be an int >= 1"):
        DirtyConfig(dirty_apps=["x:Y"], max_worker_memory_checks=0).validate()
    with pytest.raises(DirtyConfigError, match="dirty_max_worker_memory must be a number >= 0"):
        DirtyConfig(dirty_apps=["x:Y"], dirty_max_worker_memory=-1).validate()
