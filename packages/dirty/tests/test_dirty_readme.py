"""The README's standalone example runs exactly as written (issue 17)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from dirty_helpers import wait_for

README = Path(__file__).resolve().parents[1] / "README.md"


def blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", README.read_text(), re.S)


def test_readme_standalone_example_runs_as_written(tmp_path):
    files = {}
    for code in blocks("python"):
        first = code.splitlines()[0]
        m = re.match(r"# (\w+\.py)\b", first)
        if m and m.group(1) in ("models.py", "call.py"):
            files[m.group(1)] = code
    assert set(files) == {"models.py", "call.py"}, "the README lost its example files"
    for name, code in files.items():
        (tmp_path / name).write_text(code)
    (command,) = [line[2:] for code in blocks("console") for line in code.splitlines()
                  if line.startswith("$ gcorn-dirty serve models:Embedder")]
    argv = shlex.split(command)
    exe = shutil.which("gcorn-dirty", path=os.path.dirname(sys.executable))
    if exe is None:
        pytest.skip("gcorn-dirty script not installed next to this interpreter")
    env = {k: v for k, v in os.environ.items() if k != "GCORN_DIRTY_SOCKET"}
    server = subprocess.Popen([exe, *argv[1:]], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: (tmp_path / "dirty.sock").exists() or server.poll() is not None, 15)
        assert server.poll() is None, server.stderr.read() if server.stderr else ""
        out = subprocess.run([sys.executable, "call.py"], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        hello = sum(map(ord, "hello"))
        assert lines == [str([hello * 0.5, hello * 0.25, hello * 0.125]), "['hello', 'dirty', 'world']",
                         str([sum(map(ord, "hi")) * w for w in (0.5, 0.25, 0.125)])]
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=20)
    assert server.returncode == 0, err
