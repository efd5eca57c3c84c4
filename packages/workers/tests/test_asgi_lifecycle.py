"""Lifespan, signals and graceful stop of the asgi worker under the real arbiter."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

sys.path.insert(0, os.path.dirname(__file__))
from asgi_support import AsgiServer, read_response
from workers_helpers import wait_until


def test_failed_startup_is_a_boot_failure(tmp_path: Path) -> None:
    srv = AsgiServer(tmp_path, "asgi_apps:lifespan_fails")
    try:
        code = srv.wait(10)
        log = srv.stderr()
        assert code == 3, log
        assert "database unreachable" in log
        assert "failed to boot" in log
    finally:
        srv.stop()


def test_lifespan_on_makes_a_raising_app_fatal(tmp_path: Path) -> None:
    srv = AsgiServer(tmp_path, "asgi_apps:no_lifespan", asgi_lifespan="on")
    try:
        assert srv.wait(10) == 3
        assert "unsupported scope lifespan" in srv.stderr()
    finally:
        srv.stop()


def test_lifespan_auto_serves_an_app_without_lifespan(tmp_path: Path) -> None:
    srv = AsgiServer(tmp_path, "asgi_apps:no_lifespan").wait_ready()
    try:
        assert httpx.get(srv.url + "/", timeout=5).text == "no lifespan here"
    finally:
        srv.stop()


def test_lifespan_off_never_sends_startup(tmp_path: Path) -> None:
    srv = AsgiServer(tmp_path, "asgi_apps:app", asgi_lifespan="off").wait_ready()
    try:
        assert httpx.get(srv.url + "/scope", timeout=5).json()["state"] == {}
    finally:
        srv.stop()
    assert "startup" not in srv.events_text()


def test_term_finishes_the_request_in_flight_then_runs_shutdown(tmp_path: Path) -> None:
    srv = AsgiServer(tmp_path, "asgi_apps:app", keepalive=10).wait_ready()
    try:
        worker = srv.worker_pids()[0]
        idle = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        idle.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        read_response(idle)
        result: list[httpx.Response] = []
        thread = threading.Thread(
            target=lambda: result.append(httpx.get(srv.url + "/sleep?1", timeout=10)))
        thread.start()
        time.sleep(0.3)
        srv.signal(signal.SIGTERM)
        # the idle keep-alive connection is closed after the short drain grace (1 s),
        # not after keepalive (10 s)
        idle.settimeout(2)
        assert idle.recv(1024) == b""
        idle.close()
        thread.join(10)
        assert result and result[0].status_code == 200 and result[0].text == "slept"
        assert srv.wait(10) == 0
        assert f"shutdown {worker}" in srv.events_text()
    finally:
        srv.stop()


def test_term_closes_websockets_with_1012(tmp_path: Path) -> None:
    srv = AsgiServer(tmp_path, "asgi_apps:app").wait_ready()

    async def go() -> int:
        async with connect(srv.ws_url + "/ws") as ws:
            await ws.send("before")
            assert await ws.recv() == "before"
            srv.signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(ws.recv(), 5)
            except ConnectionClosed as exc:
                assert exc.rcvd is not None
                return exc.rcvd.code
            return 0

    try:
        assert asyncio.run(go()) == 1012
        assert srv.wait(10) == 0
        assert "ws-disconnect 1012" in srv.events_text()
    finally:
        srv.stop()


def test_hup_replaces_the_worker_and_keeps_serving(tmp_path: Path) -> None:
    srv = AsgiServer(tmp_path, "asgi_apps:app").wait_ready()
    try:
        old = int(httpx.get(srv.url + "/pid", timeout=5).text)
        srv.signal(signal.SIGHUP)

        def replaced() -> bool:
            try:
                return int(httpx.get(srv.url + "/pid", timeout=2).text) != old
            except httpx.HTTPError:
                return False

        assert wait_until(replaced, timeout=8)
        assert wait_until(lambda: f"shutdown {old}" in srv.events_text())
    finally:
        srv.stop()


def test_max_requests_recycles_the_worker(tmp_path: Path) -> None:
    srv = AsgiServer(tmp_path, "asgi_apps:app", max_requests=3).wait_ready()
    try:
        pids = set()
        deadline = time.monotonic() + 8
        while len(pids) < 2 and time.monotonic() < deadline:
            try:
                pids.add(int(httpx.get(srv.url + "/pid", timeout=2).text))
            except httpx.HTTPError:
                time.sleep(0.1)
        assert len(pids) >= 2
    finally:
        srv.stop()
