"""Helpers for the gcorn-dirty tests: a real pool in a subprocess, polling helpers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from gcorn.dirty import connect

HERE = Path(__file__).resolve().parent
ECHO = "dirty_test_apps:EchoApp"
HEAVY = "dirty_test_apps:HeavyApp"


class Pool:
    """A ``gcorn-dirty serve`` process and helpers to watch it."""

    def __init__(self, tmp_path: Path, apps: list[str], workers: int = 2, threads: int = 1,
                 extra: list[str] | None = None, wait: bool = True) -> None:
        self.socket = str(tmp_path / "pool.sock")
        self.log_path = tmp_path / "pool.log"
        self.cmd = [sys.executable, "-m", "gcorn.dirty.cli", "serve", *apps, "--workers", str(workers),
                    "--threads", str(threads), "--socket", self.socket, "--log-file",
                    str(self.log_path), "--log-level", "debug", *(extra or [])]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(HERE)] + [p for p in [env.get("PYTHONPATH")] if p])
        env.pop("GCORN_DIRTY_SOCKET", None)
        self.proc = subprocess.Popen(self.cmd, cwd=str(HERE), env=env, stdin=subprocess.DEVNULL)
        self.workers = workers
        self._clients: list = []
        if wait:
            self.wait_ready(workers)

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def client(self, timeout: float | None = 10.0):
        c = connect(self.socket, timeout=timeout)
        self._clients.append(c)
        return c

    def status(self) -> dict:
        c = connect(self.socket, timeout=5)
        try:
            return c.status()
        finally:
            c.close()

    def ready_pids(self) -> set[int]:
        return {w["pid"] for w in self.status()["workers"] if w["state"] == "READY"}

    def wait_ready(self, n: int, timeout: float = 10.0, exclude: set[int] | frozenset = frozenset()) -> set[int]:
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"pool exited with {self.proc.returncode}:\n{self.log()}")
            try:
                st = self.status()
                pids = {w["pid"] for w in st["workers"] if w["state"] == "READY"}
                if len(pids) == n and len(st["workers"]) == n and not pids & set(exclude):
                    return pids
                last = st
            except Exception as exc:  # socket not there yet
                last = exc
            time.sleep(0.02)
        raise AssertionError(f"pool not at {n} ready workers: {last!r}\n{self.log()}")

    def send(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        for c in self._clients:
            c.close()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise AssertionError("pool did not stop in time") from None
        return self.proc.returncode


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][0] != "Z"
    except OSError:
        return False


def wait_for(pred, timeout: float, step: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return bool(pred())
