"""Dirty settings and hooks from a gunicorn-style config file, and `--dirty-app pkg:App:N`."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import time
from pathlib import Path

import psutil
import pytest
from harness import EXAMPLES, wait_until
from test_e2e_dirty_harness import GcornServer

CONFIG = '''
import os

wsgi_app = "web:app"
worker_class = "gthread"
threads = 8

dirty_apps = ["probe:Probe"]
dirty_workers = 2
dirty_threads = 2
dirty_timeout = 2
dirty_graceful_timeout = 1


def mark(line):
    with open(os.path.join(os.environ["DIRTY_E2E_DIR"], "marks.log"), "a") as stream:
        stream.write(line + "\\n")


def on_dirty_starting(arbiter):
    mark(f"starting {arbiter.pid}")


def dirty_post_fork(arbiter, worker):
    mark(f"post_fork {os.getpid()} {arbiter.pid}")


def dirty_worker_init(worker):
    mark(f"init {worker.pid}")


def dirty_worker_exit(arbiter, worker):
    mark(f"exit {worker.pid}")
'''


def marked(server: GcornServer, word: str) -> list[int]:
    """Pids in the `word` lines of the marks file, in order."""
    return [int(line.split()[1]) for line in server.marks() if line.split()[0] == word]


@pytest.mark.slow  # 6.5 s: parallel 1 s calls, a 2 s dirty_timeout, then a recycle
def test_config_file_settings_and_dirty_hooks(tmp_path: Path) -> None:
    (tmp_path / "gcorn.conf.py").write_text(CONFIG)
    server = GcornServer(tmp_path, ["-c", "gcorn.conf.py"])
    try:
        _, arbiter_pid = server.whoami()
        workers = wait_until(lambda: (w := server.dirty_workers(arbiter_pid)) and len(w) == 2 and w, 5)
        assert workers, "dirty_workers = 2 from the config file"
        assert marked(server, "starting") == [arbiter_pid]
        assert wait_until(lambda: set(marked(server, "init")) == workers, 5), server.marks()
        # dirty_post_fork runs in each new worker, before its apps load
        assert set(marked(server, "post_fork")) == workers

        # dirty_threads = 2 on 2 workers: four 1 s calls at once take about 1 s, not 2
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            started = time.monotonic()
            answers = list(pool.map(lambda _: server.get("/sleep/1"), range(4)))
            elapsed = time.monotonic() - started
        assert [a.status_code for a in answers] == [200] * 4
        assert elapsed < 1.8, elapsed

        # dirty_timeout = 2: a call that runs longer is a 504 after 2 s, and the worker
        # that ran it is recycled (dirty_graceful_timeout = 1 bounds its drain)
        started = time.monotonic()
        hung = server.get("/sleep/30", timeout=10)
        elapsed = time.monotonic() - started
        assert hung.status_code == 504 and hung.json() == {"error": "DirtyTimeoutError"}
        assert 1.8 < elapsed < 4.0, elapsed
        assert wait_until(lambda: marked(server, "exit"), 8), server.marks()  # dirty_worker_exit
        recycled = marked(server, "exit")[0]
        assert recycled in workers and recycled not in server.dirty_workers(arbiter_pid)
        assert wait_until(lambda: len(server.dirty_workers(arbiter_pid)) == 2, 5)
        assert server.get("/echo/after").json() == {"result": "after"}
    finally:
        assert server.stop() == 0, server.logs()


def test_dirty_graceful_timeout_bounds_the_dirty_arbiter_stop(tmp_path: Path) -> None:
    (tmp_path / "gcorn.conf.py").write_text(CONFIG)
    server = GcornServer(tmp_path, ["-c", "gcorn.conf.py"])
    try:
        _, arbiter_pid = server.whoami()
        arbiter = psutil.Process(arbiter_pid)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(server.get, "/sleep/1.9", 10)
            time.sleep(0.4)
            started = time.monotonic()
            os.kill(arbiter_pid, signal.SIGTERM)
            arbiter.wait(5)  # the call outlives dirty_graceful_timeout = 1: its worker is killed
            elapsed = time.monotonic() - started
            answer = pending.result(10)
        assert 0.8 < elapsed < 2.5, elapsed
        assert answer.status_code == 502, answer.text  # the caller learns its worker was lost
        # the gcorn master starts a new dirty arbiter, which runs the hook again
        assert wait_until(lambda: len(marked(server, "starting")) == 2, 5), server.marks()
        assert server.whoami()[1] == marked(server, "starting")[1]
    finally:
        assert server.stop() == 0, server.logs()


def test_dirty_app_with_n_on_the_command_line_loads_on_n_workers(tmp_path: Path) -> None:
    server = GcornServer(tmp_path, [
        "--dirty-app", "probe:Probe", "--dirty-app", "probe:Heavy:1", "--dirty-workers", "3",
        "-k", "gthread", "--threads", "4", "web:app",
    ])
    try:
        _, arbiter_pid = server.whoami()
        assert wait_until(lambda: len(server.dirty_workers(arbiter_pid)) == 3, 5)
        probe_pids = {server.whoami()[0] for _ in range(12)}
        heavy_pids = {server.whoami("?app=probe:Heavy")[0] for _ in range(12)}
        assert len(probe_pids) >= 2 and len(heavy_pids) == 1
        heavy = heavy_pids.pop()
        # the replacement of the crashed Heavy worker loads Heavy again
        os.kill(heavy, signal.SIGKILL)
        replaced = wait_until(lambda: (pid := server.whoami("?app=probe:Heavy")[0]) != heavy and pid, 8)
        assert replaced, server.logs()
        assert {server.whoami("?app=probe:Heavy")[0] for _ in range(8)} == {replaced}
        assert wait_until(lambda: len(server.dirty_workers(arbiter_pid)) == 3, 5)
    finally:
        assert server.stop() == 0, server.logs()


def test_example_config_file_with_its_dirty_lines_uncommented(tmp_path: Path) -> None:
    # the config sets chdir to its own folder: copy it beside the example apps
    for name in ("hello.py", "dirty_app.py"):
        (tmp_path / name).write_text((EXAMPLES / name).read_text())
    text = (EXAMPLES / "gcorn.conf.py").read_text()
    assert "# dirty_apps = " in text
    (tmp_path / "gcorn.conf.py").write_text(text.replace("# dirty_", "dirty_"))
    server = GcornServer(tmp_path, ["-c", str(tmp_path / "gcorn.conf.py")])
    try:
        counted = server.wait_ok("/dirty?text=to+be+or+not+to+be").json()
        assert counted["words"] == 6 and counted["top"][0] == ["not", 1]
        assert server.get("/").text == "Hello, World!\n"
    finally:
        assert server.stop() == 0, server.logs()
