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
    Setting(
        name="limit_concurrency",
        section=SECTION,
        flags=("--limit-concurrency",),
        metavar="INT",
        value_type="int",
        default=0,
        validator=v.positive_int,
        doc="Requests in flight per asgi worker beyond which new requests get 503 "
        "Service Unavailable (0 = no limit; gcorn only).",
    ),
    Setting(
        name="websocket_ping_interval",
        section=SECTION,
        flags=("--websocket-ping-interval",),
        metavar="FLOAT",
        value_type="float",
        default=20.0,
        validator=v.positive_number,
        doc="Seconds between the pings the asgi worker sends on an idle WebSocket (0 = never; gcorn only).",
    ),
    Setting(
        name="websocket_ping_timeout",
        section=SECTION,
        flags=("--websocket-ping-timeout",),
        metavar="FLOAT",
        value_type="float",
        default=20.0,
        validator=v.positive_number,
        doc="Seconds to wait for the pong before closing the WebSocket with 1011 (gcorn only).",
    ),
    Setting(
        name="websocket_per_message_deflate",
        section=SECTION,
        flags=("--no-websocket-per-message-deflate",),
        action="store_const",
        const=False,
        value_type="bool",
        default=True,
        validator=v.boolean,
        doc="Offer permessage-deflate (RFC 7692) to WebSocket clients; "
        "`--no-websocket-per-message-deflate` turns it off (gcorn only).",
    ),
)
