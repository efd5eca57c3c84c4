"""The dirty pool under gcorn --user/--group: it runs as the HTTP workers' user (issue 16)."""

from __future__ import annotations

import os
import re
import stat
import sys
import tempfile
from pathlib import Path

import psutil
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_e2e_dirty_harness import GcornServer, wait_for

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: gcorn drops to another user")

NOBODY, NOGROUP = 65534, 65534


def ids_of(pid: int) -> tuple[int, int]:
    """Effective uid and gid of `pid`."""
    uids, gids = psutil.Process(pid).uids(), psutil.Process(pid).gids()
    return uids.effective, gids.effective


@pytest.fixture
def public_dir():
    # pytest's tmp_path is 0700 root: the user the workers become must read the apps
    path = Path(tempfile.mkdtemp(prefix="gcorn-e2e-user-"))
    path.chmod(0o755)
    yield path
    import shutil

    shutil.rmtree(path, ignore_errors=True)


# WSGI apps that import nothing new once the workers are nobody: the interpreter of a test
# machine may live in a folder only root can read (pyenv under /root), which would fail the
# import of a framework after the drop, not the dirty pool.
@needs_root
@pytest.mark.parametrize("http", [
    pytest.param(["-k", "gthread", "--threads", "4", "web:app"], id="gthread"),
    pytest.param(["-k", "sync", "web:app"], id="sync"),
])
def test_dirty_pool_serves_http_workers_that_run_as_nobody(public_dir: Path, http: list[str]) -> None:
    error_log = public_dir / "error.log"
    server = GcornServer(public_dir, [
        "--user", "nobody", "--group", "nogroup", "--dirty-app", "probe:Probe", "--dirty-workers", "2",
        "--error-logfile", str(error_log), "--log-level", "info", *http,
    ])
    try:
        try:
            worker_pid, arbiter_pid = server.whoami()  # an HTTP worker, as nobody, called the pool
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{error_log.read_text()}") from None
        assert server.wait_ok("/echo/hi").json() == {"result": "hi"}
        assert ids_of(arbiter_pid) == (NOBODY, NOGROUP)
        dirty_workers = server.dirty_workers(arbiter_pid)
        assert worker_pid in dirty_workers and len(dirty_workers) == 2
        assert all(ids_of(pid) == (NOBODY, NOGROUP) for pid in dirty_workers)
        assert psutil.Process(arbiter_pid).parent().pid == server.pid
        http_workers = [p for p in psutil.Process(server.pid).children() if p.pid != arbiter_pid]
        assert http_workers and all(ids_of(p.pid) == (NOBODY, NOGROUP) for p in http_workers)
        assert ids_of(server.pid) == (0, 0)  # the master keeps root (to bind, to re-exec)
        # the arbiter's socket and its private folder belong to nobody, and stay private
        # (the path is set in the master's environment after it started: read it from the log)
        serving = re.search(r"dirty arbiter \d+ serving .* on (\S+) with", error_log.read_text())
        assert serving, error_log.read_text()
        sock = serving.group(1)
        st, folder = os.stat(sock), os.stat(os.path.dirname(sock))
        assert stat.S_ISSOCK(st.st_mode) and (st.st_uid, st.st_gid) == (NOBODY, NOGROUP)
        assert stat.S_IMODE(st.st_mode) == 0o600
        assert folder.st_uid == NOBODY and stat.S_IMODE(folder.st_mode) == 0o700
    finally:
        code = server.stop()
    assert code == 0, server.logs() + error_log.read_text()
    assert not server.leftovers
    assert not os.path.exists(sock)
    assert "Permission denied" not in error_log.read_text()


def test_a_pool_the_workers_cannot_reach_is_in_the_error_log_once(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-pool" / "arbiter.sock")
    error_log = tmp_path / "error.log"
    server = GcornServer(tmp_path, ["-k", "gthread", "--error-logfile", str(error_log), "web:app"],
                         env={"GCORN_DIRTY_SOCKET": missing})
    try:
        assert wait_for(lambda: error_log.exists() and "Booting worker" in error_log.read_text(), 15)
        for _ in range(3):
            response = None

            def answered() -> bool:
                nonlocal response
                try:
                    response = server.get("/echo/x", timeout=5)
                except Exception:  # not listening yet
                    return False
                return True

            assert wait_for(answered, 10, 0.1)
            assert response is not None and response.status_code == 503
            assert response.json() == {"error": "DirtyConnectionError"}
        text = error_log.read_text()
        lines = [line for line in text.splitlines() if "cannot connect to the dirty pool" in line]
        assert len(lines) == 1, text
        assert missing in lines[0] and "[Errno 2]" in lines[0] and "[ERROR]" in lines[0]
    finally:
        assert server.stop() == 0, server.logs()
