"""Starlette, FastAPI and Django ASGI apps for the framework tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import django
from django.conf import settings
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

# -- Starlette -------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _starlette_lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    yield {"db": "connected"}


async def _starlette_home(request: StarletteRequest) -> JSONResponse:
    return JSONResponse({"db": request.state.db, "path": request.url.path,
                         "query": dict(request.query_params)})


async def _starlette_form(request: StarletteRequest) -> PlainTextResponse:
    data = await request.json()
    return PlainTextResponse(f"hello {data['name']}")


async def _starlette_ws(websocket: WebSocket) -> None:
    await websocket.accept()
    name = await websocket.receive_text()
    await websocket.send_json({"greeting": f"hi {name}"})
    await websocket.close()


starlette_app = Starlette(
    routes=[Route("/", _starlette_home), Route("/form", _starlette_form, methods=["POST"]),
            WebSocketRoute("/ws", _starlette_ws)],
    lifespan=_starlette_lifespan,
)

# -- FastAPI ---------------------------------------------------------------------

fastapi_app = FastAPI()


@fastapi_app.get("/items/{item_id}")
async def read_item(item_id: int, q: str | None = None) -> dict[str, Any]:
    """A path parameter and a query parameter."""
    return {"item_id": item_id, "q": q}


@fastapi_app.get("/stream")
async def stream(n: int = 5) -> StreamingResponse:
    """A streamed (chunked) response of n lines."""
    async def lines() -> AsyncIterator[bytes]:
        for i in range(n):
            yield f"line {i}\n".encode()
    return StreamingResponse(lines(), media_type="text/plain")


@fastapi_app.post("/upload")
async def upload(request: Request) -> dict[str, int]:
    """Counts an uploaded body piece by piece, never holding it whole."""
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
    return {"size": total}

# -- Django ------------------------------------------------------------------------

if not settings.configured:
    settings.configure(
        DEBUG=False, SECRET_KEY="test-only", ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__, MIDDLEWARE=[], INSTALLED_APPS=[],
    )
    django.setup()

from django.http import HttpRequest, HttpResponse, JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402


async def django_hello(request: HttpRequest) -> HttpResponse:
    """An async Django view."""
    return HttpResponse(b"hello from django", content_type="text/plain")


def django_echo(request: HttpRequest) -> JsonResponse:
    """A sync Django view reading a form POST."""
    return JsonResponse({"method": request.method, "name": request.POST.get("name"),
                         "secure": request.is_secure()})


urlpatterns = [path("hello", django_hello), path("echo", django_echo)]

from django.core.asgi import get_asgi_application  # noqa: E402

django_app = get_asgi_application()
