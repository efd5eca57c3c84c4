"""Starlette, FastAPI and Django apps served by the asgi worker, with real clients."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import psutil
import pytest
from websockets.asyncio.client import connect

sys.path.insert(0, os.path.dirname(__file__))
from asgi_support import AsgiServer

MB = 1024 * 1024


@pytest.fixture(scope="module")
def starlette(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AsgiServer]:
    srv = AsgiServer(tmp_path_factory.mktemp("starlette"),
                     "asgi_framework_apps:starlette_app").wait_ready()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def fastapi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AsgiServer]:
    srv = AsgiServer(tmp_path_factory.mktemp("fastapi"),
                     "asgi_framework_apps:fastapi_app").wait_ready()
    try:
        yield srv
    finally:
        srv.stop()


def test_starlette_lifespan_state_json_and_websocket(starlette: AsgiServer) -> None:
    reply = httpx.get(starlette.url + "/?a=1", timeout=5)
    assert reply.json() == {"db": "connected", "path": "/", "query": {"a": "1"}}
    reply = httpx.post(starlette.url + "/form", json={"name": "ada"}, timeout=5)
    assert reply.text == "hello ada"

    async def ws() -> object:
        async with connect(starlette.ws_url + "/ws") as conn:
            await conn.send("bob")
            return json.loads(await conn.recv())

    assert asyncio.run(asyncio.wait_for(ws(), 5)) == {"greeting": "hi bob"}


def test_fastapi_params_and_streaming_response(fastapi: AsgiServer) -> None:
    assert httpx.get(fastapi.url + "/items/7?q=x", timeout=5).json() == {"item_id": 7, "q": "x"}
    with httpx.stream("GET", fastapi.url + "/stream?n=50", timeout=5) as reply:
        assert reply.headers["transfer-encoding"] == "chunked"
        text = "".join(reply.iter_text())
    assert text == "".join(f"line {i}\n" for i in range(50))


def test_fastapi_50mb_upload_is_streamed_without_growing_the_worker(fastapi: AsgiServer) -> None:
    worker = psutil.Process(fastapi.worker_pids()[0])
    httpx.post(fastapi.url + "/upload", content=b"w" * MB, timeout=5)  # warm up
    before = worker.memory_info().rss
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], worker.memory_info().rss)
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()

    def body() -> Iterator[bytes]:
        piece = b"u" * MB
        for _ in range(50):
            yield piece

    try:
        reply = httpx.post(fastapi.url + "/upload", content=body(), timeout=20)
    finally:
        done.set()
        sampler.join()
    assert reply.json() == {"size": 50 * MB}
    assert peak[0] - before < 16 * MB, f"worker grew by {(peak[0] - before) / MB:.1f} MiB"


def test_django_async_and_sync_views(tmp_path_factory: pytest.TempPathFactory) -> None:
    srv = AsgiServer(tmp_path_factory.mktemp("django"),
                     "asgi_framework_apps:django_app").wait_ready()
    try:
        reply = httpx.get(srv.url + "/hello", timeout=5)
        assert reply.status_code == 200 and reply.text == "hello from django"
        reply = httpx.post(srv.url + "/echo", data={"name": "grace"}, timeout=5,
                           headers={"X-Forwarded-Proto": "https"})
        assert reply.json() == {"method": "POST", "name": "grace", "secure": True}
        assert httpx.get(srv.url + "/missing", timeout=5).status_code == 404
    finally:
        srv.stop()
