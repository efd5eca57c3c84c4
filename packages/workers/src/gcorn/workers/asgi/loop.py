"""Which event loop the worker runs: `asgi_loop` = auto, asyncio or uvloop."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable

from gcorn.workers.asgi.errors import AsgiSetupError

__all__ = ["LOOP_CHOICES", "new_event_loop"]

LOOP_CHOICES = ("auto", "asyncio", "uvloop")


def _uvloop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def new_event_loop(choice: str) -> tuple[asyncio.AbstractEventLoop, str]:
    """A fresh event loop for `choice` and the name of the loop actually picked."""
    if choice not in LOOP_CHOICES:
        raise AsgiSetupError(f"asgi_loop must be one of {', '.join(LOOP_CHOICES)}, not {choice!r}")
    if choice != "asyncio":
        factory = _uvloop_factory()
        if factory is not None:
            return factory(), "uvloop"
        if choice == "uvloop":
            raise AsgiSetupError("asgi_loop = uvloop but uvloop is not installed:"
                                 " pip install 'gcorn-workers[uvloop]'")
    return asyncio.new_event_loop(), "asyncio"
