"""Settings of the section "ASGI": the asgi worker's event loop, lifespan and websockets."""

from __future__ import annotations

from . import validators as v
from .base import Setting

SECTION = "ASGI"

SETTINGS = (
    Setting(
        name="asgi_loop",
        section=SECTION,
        flags=("--asgi-loop",),
        metavar="STRING",
        default="auto",
        validator=v.choice("auto", "asyncio", "uvloop"),
        doc="The event loop of the asgi worker: auto (uvloop when installed), asyncio or uvloop.",
    ),
    Setting(
        name="asgi_lifespan",
        section=SECTION,
        flags=("--asgi-lifespan",),
        metavar="STRING",
        default="auto",
        validator=v.choice("auto", "on", "off"),
        doc="The ASGI lifespan protocol: auto (used if the app supports it), on "
        "(a failure stops the worker) or off.",
    ),
    Setting(
        name="asgi_disconnect_grace_period",
        section=SECTION,
        flags=("--asgi-disconnect-grace-period",),
        metavar="INT",
        value_type="int",
        default=3,
        validator=v.positive_int,
        doc="Seconds an ASGI app gets after `http.disconnect` before its task is cancelled.",
    ),
    Setting(
        name="websocket_max_message_size",
        section=SECTION,
        flags=("--websocket-max-message-size",),
        metavar="INT",
        value_type="int",
        default=16 * 1024 * 1024,
        validator=v.positive_int,
        doc="The largest WebSocket message accepted, in bytes.",
    ),
)
