"""The root tests' harness itself: bounded start and stop, and the server log under a failure."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from harness import ExternalServer, ServerNotReady, log_probe, tcp_probe

HERE = Path(__file__).resolve().parent


def python(code: str) -> list[str]:
    return [sys.executable, "-u", "-c", textwrap.dedent(code)]


def test_a_server_is_ready_on_its_probe_and_stops_on_term(tmp_path: Path) -> None:
    server = ExternalServer(python("""
        import signal, sys, time
        signal.signal(signal.SIGTERM, lambda *a: sys.exit(7))
        print('listening now'); time.sleep(30)
    """), cwd=tmp_path, ready=log_probe("listening now"), name="sleeper").start()
    assert server.alive()
    assert server.stop() == 7
    assert "listening now" in (tmp_path / "sleeper.log").read_text()


def test_a_server_deaf_to_term_is_killed_within_the_stop_timeout(tmp_path: Path) -> None:
    server = ExternalServer(python("""
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print('up'); time.sleep(30)
    """), cwd=tmp_path, ready=log_probe("up"), stop_timeout=0.5).start()
    started = time.monotonic()
    assert server.stop() == -9
    assert time.monotonic() - started < 3


def test_a_server_that_exits_at_start_fails_with_its_log(tmp_path: Path) -> None:
    server = ExternalServer(python("print('bad config line 3'); raise SystemExit(2)"),
                            cwd=tmp_path, ready=tcp_probe(1))
    with pytest.raises(ServerNotReady, match=r"exited 2 before it was ready:\n.*bad config line 3"):
        server.start()


def test_a_server_never_ready_fails_in_bounded_time_and_is_stopped(tmp_path: Path) -> None:
    server = ExternalServer(python("import time; time.sleep(30)"), cwd=tmp_path,
                            ready=lambda _: False, ready_timeout=0.5, stop_timeout=2)
    started = time.monotonic()
    with pytest.raises(ServerNotReady, match="not ready after 0.5s"):
        server.start()
    assert time.monotonic() - started < 4
    assert not server.alive()


def test_a_failed_test_shows_the_log_of_the_servers_it_started(tmp_path: Path) -> None:
    # an inner pytest run with this folder's conftest.py and harness.py
    for name in ("conftest.py", "harness.py"):
        shutil.copy(HERE / name, tmp_path / name)
    (tmp_path / "test_inner.py").write_text(textwrap.dedent('''
        import sys
        from harness import log_probe

        def test_fails(start_server):
            start_server([sys.executable, "-u", "-c",
                          "import time; print('inner-server-says-hi'); time.sleep(30)"],
                         ready=log_probe("inner-server-says-hi"), name="chatty")
            assert False, "the test itself fails"

        def test_passes(start_server):
            start_server([sys.executable, "-u", "-c",
                          "import time; print('quiet-server'); time.sleep(30)"],
                         ready=log_probe("quiet-server"), name="quiet")
    '''))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
         "--rootdir", str(tmp_path), "-c", "/dev/null", "test_inner.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60)
    out = done.stdout
    assert done.returncode == 1, out
    assert "1 failed, 1 passed" in out, out
    assert "chatty log" in out and "inner-server-says-hi" in out, out
    assert "quiet-server" not in out, out  # a passing test prints no log


def test_wait_exit_gives_the_status_of_a_server_that_stops_by_itself(tmp_path: Path) -> None:
    server = ExternalServer(python("print('giving up'); raise SystemExit(3)"), cwd=tmp_path).start()
    assert server.wait_exit(10) == 3
    assert "giving up" in server.log()


def test_wait_exit_kills_a_server_that_runs_on_and_fails_with_its_log(tmp_path: Path) -> None:
    server = ExternalServer(python("print('still here'); import time; time.sleep(30)"),
                            cwd=tmp_path, ready=log_probe("still here")).start()
    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"still running after 0.5s:\n.*still here"):
        server.wait_exit(0.5)
    assert time.monotonic() - started < 4
    assert not server.alive()


def test_a_shared_server_outlives_each_test_and_shows_its_log_under_a_failure(tmp_path: Path) -> None:
    for name in ("conftest.py", "harness.py"):
        shutil.copy(HERE / name, tmp_path / name)
    (tmp_path / "test_inner.py").write_text(textwrap.dedent('''
        import sys
        import pytest
        from harness import ExternalServer, log_probe

        @pytest.fixture(scope="module")
        def shared(tmp_path_factory):
            command = [sys.executable, "-u", "-c",
                       "import time; print('shared-server-says-hi'); time.sleep(30)"]
            with ExternalServer(command, cwd=tmp_path_factory.mktemp("s"), name="common",
                                ready=log_probe("shared-server-says-hi"), shared=True) as server:
                yield server

        def test_first(shared):
            assert shared.alive()

        def test_second_sees_it_still_running_and_fails(shared):
            assert shared.alive()
            assert False, "the test itself fails"
    '''))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
         "--rootdir", str(tmp_path), "-c", "/dev/null", "test_inner.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60)
    out = done.stdout
    assert done.returncode == 1, out
    assert "1 failed, 1 passed" in out, out
    assert "the test itself fails" in out, out  # not an AssertionError of alive()
    assert "common log" in out and "shared-server-says-hi" in out, out
