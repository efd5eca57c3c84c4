"""USR2 with a dirty pool: the new master runs its own pool; the old one can go."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil
from harness import wait_until
from test_e2e_dirty_harness import GcornServer, alive


def test_usr2_new_master_gets_its_own_pool_and_survives_the_old_one(tmp_path: Path) -> None:
    pidfile = tmp_path / "gcorn.pid"
    server = GcornServer(tmp_path, [
        "--pid", str(pidfile), "--dirty-app", "probe:Probe", "--dirty-workers", "1",
        "-k", "gthread", "--threads", "2", "web:app",
    ])
    new_master: psutil.Process | None = None
    try:
        _, old_arbiter = server.whoami()
        os.kill(server.pid, signal.SIGUSR2)
        new_pidfile = Path(f"{pidfile}.2")
        assert wait_until(lambda: new_pidfile.exists() and new_pidfile.read_text().strip(), 10)
        new_master = psutil.Process(int(new_pidfile.read_text()))

        def new_arbiters() -> set[int]:
            return {p.pid for p in new_master.children(recursive=True)} - {old_arbiter}  # type: ignore[union-attr]

        # both masters serve on the same socket, each HTTP worker with its own master's pool
        seen: set[int] = set()
        assert wait_until(lambda: seen.add(server.whoami()[1]) or len(seen) >= 2, 20, 0.01), seen
        assert old_arbiter in seen
        (new_arbiter,) = seen - {old_arbiter}
        assert new_arbiter in new_arbiters()

        # TERM the old master: its pool goes with it, the new master and its pool stay
        old_tree = [p for p in server.descendants() if p.pid not in new_arbiters()
                    and p.pid != new_master.pid]
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(15) == 0, server.logs()
        assert wait_until(lambda: not alive(old_tree), 5), [p.pid for p in alive(old_tree)]
        assert new_master.is_running()
        assert {server.whoami()[1] for _ in range(6)} == {new_arbiter}
        assert server.get("/echo/upgraded").json() == {"result": "upgraded"}
    finally:
        if new_master is not None and new_master.is_running():
            new_tree = new_master.children(recursive=True)
            new_master.send_signal(signal.SIGTERM)
            new_master.wait(15)
            assert wait_until(lambda: not alive(new_tree), 5)
        server.stop()
