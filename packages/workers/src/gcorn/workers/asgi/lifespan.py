"""The ASGI lifespan protocol: startup and shutdown around the worker's life.

`asgi_lifespan`: `auto` runs it and treats an app that raises before it
acknowledges startup as not speaking lifespan; `on` makes that a failure;
`off` never calls the app with a lifespan scope. A `lifespan.startup.failed`
is fatal in both `auto` and `on`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from gcorn.workers.asgi.errors import AppProtocolError, LifespanFailure

__all__ = ["LIFESPAN_CHOICES", "Lifespan"]

LIFESPAN_CHOICES = ("auto", "on", "off")

Message = dict[str, Any]


class Lifespan:
    """Runs the app's lifespan scope in a task owned by the worker."""

    def __init__(self, app: Any, mode: str, log: logging.Logger | Any,
                 state: dict[str, Any], asgi: dict[str, str]) -> None:
        self.app = app
        self.mode = mode
        self.log = log
        self.state = state
        self.asgi = asgi
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._startup_done = asyncio.Event()
        self._shutdown_done = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failure: str | None = None
        self._unsupported = False
        self._started = False

    async def startup(self) -> None:
        """Send `lifespan.startup` and wait for the answer; raise `LifespanFailure` on failure."""
        if self.mode == "off":
            return
        scope = {"type": "lifespan", "asgi": self.asgi, "state": self.state}
        self._task = asyncio.get_running_loop().create_task(self._main(scope))
        await self._inbox.put({"type": "lifespan.startup"})
        await self._startup_done.wait()
        if self._failure is not None:
            raise LifespanFailure(self._failure)
        self._started = not self._unsupported

    async def shutdown(self, timeout: float) -> None:
        """Send `lifespan.shutdown` and wait up to `timeout` seconds for the app to finish."""
        if self._task is None:
            return
        if timeout <= 0 and self._started and not self._task.done():
            # graceful_timeout = 0: no grace, as the master gives none; a shutdown handler
            # is better not started than cancelled halfway through
            self.log.info("ASGI lifespan shutdown skipped: graceful_timeout is 0")
        elif self._started and not self._task.done():
            await self._inbox.put({"type": "lifespan.shutdown"})
            try:
                await asyncio.wait_for(self._shutdown_done.wait(), timeout)
            except TimeoutError:
                self.log.error("ASGI lifespan shutdown did not complete in %.1f s", timeout)
        if not self._task.done():
            self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        if self._failure is not None:
            self.log.error("ASGI lifespan shutdown failed: %s", self._failure)

    async def _main(self, scope: Message) -> None:
        try:
            await self.app(scope, self._receive, self._send)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the app's own error: reported as the lifespan outcome
            if self._startup_done.is_set() and self._started:
                self._failure = f"{type(exc).__name__}: {exc}"
                self.log.exception("Exception in ASGI lifespan shutdown")
            elif self.mode == "on":
                self._failure = f"{type(exc).__name__}: {exc}"
                self.log.exception("Exception in ASGI lifespan startup")
            else:
                self._unsupported = True
                self.log.info("ASGI 'lifespan' protocol appears unsupported (%s: %s)",
                              type(exc).__name__, exc)
        else:
            if not self._startup_done.is_set():
                # The app returned without answering: it does not speak lifespan.
                if self.mode == "on":
                    self._failure = "the app returned before lifespan.startup.complete"
                self._unsupported = True
        finally:
            self._startup_done.set()
            self._shutdown_done.set()

    async def _receive(self) -> Message:
        return await self._inbox.get()

    async def _send(self, message: Message) -> None:
        kind = message.get("type")
        if kind == "lifespan.startup.complete":
            self._startup_done.set()
        elif kind == "lifespan.startup.failed":
            self._failure = str(message.get("message") or "lifespan.startup.failed")
            self._startup_done.set()
        elif kind == "lifespan.shutdown.complete":
            self._shutdown_done.set()
        elif kind == "lifespan.shutdown.failed":
            self._failure = str(message.get("message") or "lifespan.shutdown.failed")
            self._shutdown_done.set()
        else:
            raise AppProtocolError(f"unexpected ASGI lifespan message {kind!r}")
