"""Standalone use: the gcorn-dirty command, a plain script, the embedding entry point."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

from dirty_helpers import ECHO, HERE, alive, wait_for

from gcorn.dirty import DirtyConfig, Hooks, connect


def test_plain_script_uses_the_pool_through_the_environment(pool):
    script = f"""
import asyncio
from gcorn.dirty import connect, get_dirty_client, get_dirty_client_async
c = get_dirty_client()
assert c is get_dirty_client()
assert c.execute({ECHO!r}, "noop", 41) == 41
assert list(c.stream({ECHO!r}, "count", 3)) == ["00000000", "00000001", "00000002"]
async def main():
    ac = await get_dirty_client_async()
    return await ac.execute_async({ECHO!r}, "noop", 42)
assert asyncio.run(main()) == 42
print("ok", connect({pool.socket!r}, timeout=2).execute({ECHO!r}, "noop", 43))
"""
    env = {**os.environ, "GCORN_DIRTY_SOCKET": pool.socket}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok 43"


def test_gcorn_dirty_command(tmp_path):
    exe = shutil.which("gcorn-dirty", path=os.path.dirname(sys.executable)) or shutil.which("gcorn-dirty")
    if exe is None:
        import pytest

        pytest.skip("gcorn-dirty script not installed next to this interpreter")
    sock = str(tmp_path / "cmd.sock")
    proc = subprocess.Popen([exe, "serve", ECHO, "--workers", "2", "--threads", "2", "--socket", sock,
                             "--timeout", "30"], cwd=str(HERE), stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: os.path.exists(sock), 10)
        c = connect(sock, timeout=10)
        assert wait_for(lambda: sum(w["state"] == "READY" for w in c.status()["workers"]) == 2, 10)
        assert c.execute(ECHO, "echo", b"bytes") == b"bytes"
        c.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0
    assert "dirty arbiter" in err and not os.path.exists(sock)


def test_bad_command_line_is_a_clear_error(tmp_path):
    out = subprocess.run([sys.executable, "-m", "gcorn.dirty.cli", "serve", "no_such_module:App",
                          "--socket", str(tmp_path / "x.sock")], capture_output=True, text=True, timeout=20)
    assert out.returncode == 2 and "cannot import dirty app module 'no_such_module'" in out.stderr
    out = subprocess.run([sys.executable, "-m", "gcorn.dirty.cli", "serve", f"{ECHO}:zero",
                          "--socket", str(tmp_path / "x.sock")], capture_output=True, text=True, timeout=20,
                         cwd=str(HERE))
    assert out.returncode == 2 and "not an integer" in out.stderr


def test_a_pidfile_that_cannot_be_written_names_the_setting(tmp_path):
    pidfile = tmp_path / "no-such-dir" / "dirty.pid"
    out = subprocess.run([sys.executable, "-m", "gcorn.dirty.cli", "serve", ECHO,
                          "--socket", str(tmp_path / "x.sock"), "--pidfile", str(pidfile)],
                         capture_output=True, text=True, timeout=30, cwd=str(HERE))
    assert out.returncode != 0, out.stderr
    assert f"dirty_pidfile: cannot write pidfile {pidfile}" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "x.sock").exists()


def test_a_stale_pidfile_is_replaced_by_ours(tmp_path):
    pidfile = tmp_path / "dirty.pid"
    pidfile.write_text("999999999\n")  # no such process
    sock = str(tmp_path / "x.sock")
    proc = subprocess.Popen([sys.executable, "-m", "gcorn.dirty.cli", "serve", ECHO, "--socket", sock,
                             "--pidfile", str(pidfile)], cwd=str(HERE), stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: pidfile.read_text().strip() == str(proc.pid), timeout=20)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    assert not pidfile.exists()  # removed at exit: it named us


def test_embedding_entry_point_runs_in_a_forked_side_process(tmp_path):
    from gcorn.dirty import arbiter

    sock = str(tmp_path / "embedded.sock")
    marker = tmp_path / "started"
    config = DirtyConfig.from_cfg(type("Cfg", (), {"dirty_apps": [ECHO], "dirty_workers": 2,
                                                   "dirty_threads": 2, "workers": 9})(),
                                  dirty_socket=sock)
    assert config.dirty_workers == 2 and config.dirty_timeout == 300
    hooks = Hooks(on_dirty_starting=lambda a: marker.write_text(str(a.pid)))
    sys.path.insert(0, str(HERE))
    pid = os.fork()
    if pid == 0:  # the side process
        code = 1
        try:
            code = arbiter.run(config, hooks)
        finally:
            os._exit(code)
    try:
        assert wait_for(lambda: os.path.exists(sock), 10)
        c = connect(sock, timeout=10)
        assert wait_for(lambda: sum(w["state"] == "READY" for w in c.status()["workers"]) == 2, 10)
        assert c.execute(ECHO, "noop", "embedded") == "embedded"
        workers = {w["pid"] for w in c.status()["workers"]}
        c.close()
        assert marker.read_text() == str(pid)
    finally:
        os.kill(pid, signal.SIGTERM)
        t0 = time.monotonic()
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0 and time.monotonic() - t0 < 10
    assert not any(alive(w) for w in workers)
