"""End to end: `gcorn -k asgi` serves HTTP and WebSocket, stops gracefully on TERM, re-execs on USR2."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

ROOT = Path(__file__).resolve().parent.parent
APPS = ROOT / "packages" / "workers" / "tests"
GCORN = Path(sys.executable).parent / "gcorn"


class Gcorn:
    """A `gcorn` command running as a subprocess; its port is read from its log."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.log_path = tmp_path / "gcorn.log"
        self._log = open(self.log_path, "wb")
        env = dict(os.environ, ASGI_TEST_EVENTS=str(tmp_path / "events.log"))
        self.events = tmp_path / "events.log"
        self.proc = subprocess.Popen(
            [str(GCORN), "-k", "asgi", "-w", "1", "-b", "127.0.0.1:0", "--chdir", str(APPS),
             "--graceful-timeout", "5", *args],
            stdout=self._log, stderr=subprocess.STDOUT, env=env)
        try:
            self.port = self._wait_port()
        except BaseException:
            self.stop()  # never leave a server behind a failed start
            raise

    def _wait_port(self) -> int:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gcorn exited {self.proc.returncode}: {self.log()}")
            found = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", self.log())
            if found:
                port = int(found.group(1))
                try:
                    httpx.get(f"http://127.0.0.1:{port}/pid", timeout=1)
                    return port
                except httpx.HTTPError:
                    pass
            time.sleep(0.1)
        raise TimeoutError(f"gcorn not ready: {self.log()}")

    def log(self) -> str:
        """Everything gcorn logged so far."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        """TERM and wait; KILL if it does not stop in time."""
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
            return self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)
        finally:
            self._log.close()


@pytest.fixture
def gcorn(tmp_path: Path) -> Iterator[Gcorn]:
    server = Gcorn(tmp_path, "--root-path", "/mount", "asgi_apps:app")
    try:
        yield server
    finally:
        server.stop()


def test_gcorn_serves_http_with_the_settings_of_the_command_line(gcorn: Gcorn) -> None:
    scope = httpx.get(f"http://127.0.0.1:{gcorn.port}/scope", timeout=5).json()
    assert scope["root_path"] == "/mount"
    assert scope["path"] == "/mount/scope"
    assert scope["state"] == {"started": "yes"}
    reply = httpx.post(f"http://127.0.0.1:{gcorn.port}/echo", content=b"e2e" * 1000, timeout=5)
    assert reply.content == b"e2e" * 1000


def test_gcorn_serves_websockets_and_closes_them_1012_on_term(gcorn: Gcorn) -> None:
    async def go() -> int:
        async with connect(f"ws://127.0.0.1:{gcorn.port}/ws") as ws:
            await ws.send("over the command")
            assert await ws.recv() == "over the command"
            gcorn.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(ws.recv(), 5)
            except ConnectionClosed as exc:
                return exc.rcvd.code if exc.rcvd else 0
            return 0

    assert asyncio.run(go()) == 1012
    # the master is already stopping: a second TERM could land during interpreter exit
    assert gcorn.proc.wait(10) == 0
    assert "shutdown" in gcorn.events.read_text()


def test_usr2_then_term_old_master_keeps_serving_on_the_same_socket(tmp_path: Path) -> None:
    server = Gcorn(tmp_path, "--pid", str(tmp_path / "gcorn.pid"), "asgi_apps:app")
    new_master = 0
    try:
        url = f"http://127.0.0.1:{server.port}"
        old_worker = int(httpx.get(url + "/pid", timeout=5).text)
        server.proc.send_signal(signal.SIGUSR2)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not new_master:
            children = [p for p in psutil.Process(server.proc.pid).children()
                        if "gcorn" in " ".join(p.cmdline()) and p.children()]
            new_master = children[0].pid if children else 0
            time.sleep(0.1)
        assert new_master, server.log()
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(10) == 0

        def served_by_new() -> bool:
            try:
                return int(httpx.get(url + "/pid", timeout=2).text) != old_worker
            except httpx.HTTPError:
                return False

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not served_by_new():
            time.sleep(0.1)
        assert served_by_new()
    finally:
        server.stop()
        if new_master:
            try:
                master = psutil.Process(new_master)
                master.terminate()
                master.wait(10)
            except psutil.NoSuchProcess:
                pass


def test_asgi_settings_of_the_command_line_reach_the_worker(tmp_path: Path) -> None:
    # --limit-concurrency is declared by the cli and read by the asgi worker
    server = Gcorn(tmp_path, "--limit-concurrency", "1", "asgi_apps:app")
    try:
        url = f"http://127.0.0.1:{server.port}"

        async def go() -> list[int]:
            async with httpx.AsyncClient(timeout=10) as client:
                slow = asyncio.ensure_future(client.get(url + "/sleep?1"))
                await asyncio.sleep(0.3)  # the slow request is in flight now
                busy = await client.get(url + "/scope")
                return [(await slow).status_code, busy.status_code]

        assert asyncio.run(go()) == [200, 503]
    finally:
        server.stop()
