"""End to end: `gcorn -k asgi` serves HTTP and WebSocket, stops gracefully on TERM, re-execs on USR2."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import pytest
from harness import ROOT, Gcorn, wait_until
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

APPS = ROOT / "packages" / "workers" / "tests"


@pytest.fixture
def start_asgi(start_gcorn: Callable[..., Gcorn], tmp_path: Path) -> Callable[..., Gcorn]:
    """`start_asgi(*args)`: `gcorn -k asgi` on the workers' test apps, ready on /pid."""
    def start(*args: str) -> Gcorn:
        return start_gcorn(
            "-k", "asgi", "-w", "1", "--chdir", str(APPS), "--graceful-timeout", "5", *args,
            env={"ASGI_TEST_EVENTS": str(tmp_path / "events.log")}, ready_path="/pid")
    return start


@pytest.fixture
def gcorn(start_asgi: Callable[..., Gcorn]) -> Gcorn:
    return start_asgi("--root-path", "/mount", "asgi_apps:app")


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
    assert "shutdown" in (gcorn.cwd / "events.log").read_text()


def test_usr2_then_term_old_master_keeps_serving_on_the_same_socket(
        start_asgi: Callable[..., Gcorn], tmp_path: Path) -> None:
    server = start_asgi("--pid", str(tmp_path / "gcorn.pid"), "asgi_apps:app")
    new_master = 0
    try:
        url = f"http://127.0.0.1:{server.port}"
        old_worker = int(httpx.get(url + "/pid", timeout=5).text)
        server.proc.send_signal(signal.SIGUSR2)

        def new_master_pid() -> int:
            children = [p for p in psutil.Process(server.proc.pid).children()
                        if "gcorn" in " ".join(p.cmdline()) and p.children()]
            return children[0].pid if children else 0

        new_master = wait_until(new_master_pid, timeout=15, interval=0.1)
        assert new_master, server.log()
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(10) == 0

        def served_by_new() -> bool:
            try:
                return int(httpx.get(url + "/pid", timeout=2).text) != old_worker
            except httpx.HTTPError:
                return False

        assert wait_until(served_by_new, timeout=10, interval=0.1)
    finally:
        server.stop()
        if new_master:
            try:
                master = psutil.Process(new_master)
                master.terminate()
                master.wait(10)
            except psutil.NoSuchProcess:
                pass


def test_asgi_settings_of_the_command_line_reach_the_worker(
        start_asgi: Callable[..., Gcorn]) -> None:
    # --limit-concurrency is declared by the cli and read by the asgi worker
    server = start_asgi("--limit-concurrency", "1", "asgi_apps:app")
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
