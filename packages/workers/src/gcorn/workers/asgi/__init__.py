"""The `asgi` worker: ASGI 3.0 HTTP/1.1, WebSocket and lifespan on asyncio (uvloop when installed)."""

from gcorn.workers.asgi.worker import AsgiWorker

__all__ = ["AsgiWorker"]
