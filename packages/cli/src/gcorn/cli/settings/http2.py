"""Settings of the section "HTTP/2" (served by the asgi and gthread workers)."""

from __future__ import annotations

from . import validators as v
from .base import Setting

SECTION = "HTTP/2"

SETTINGS = (
    Setting(
        name="http_protocols",
        section=SECTION,
        flags=("--http-protocols",),
        metavar="STRING",
        value_type="list[str]",
        default="h1",
        validator=v.http_protocols,
        doc="Comma list of h1, h2, h3 in order of preference (drives ALPN).",
    ),
    Setting(
        name="http2_cleartext",
        section=SECTION,
        flags=("--http2-cleartext",),
        metavar="STRING",
        default="off",
        validator=v.choice("off", "prior-knowledge", "upgrade", "both"),
        doc="HTTP/2 without TLS (h2c) from trusted peers: off, prior-knowledge, upgrade or both.",
    ),
    Setting(
        name="http2_max_concurrent_streams",
        section=SECTION,
        flags=("--http2-max-concurrent-streams",),
        metavar="INT",
        value_type="int",
        default=100,
        validator=v.int_range(1, 2**31 - 1),
        doc="SETTINGS_MAX_CONCURRENT_STREAMS.",
    ),
    Setting(
        name="http2_initial_window_size",
        section=SECTION,
        flags=("--http2-initial-window-size",),
        metavar="INT",
        value_type="int",
        default=65535,
        validator=v.int_range(0, 2**31 - 1),
        doc="SETTINGS_INITIAL_WINDOW_SIZE.",
    ),
    Setting(
        name="http2_max_frame_size",
        section=SECTION,
        flags=("--http2-max-frame-size",),
        metavar="INT",
        value_type="int",
        default=16384,
        validator=v.int_range(16384, 16777215),
        doc="SETTINGS_MAX_FRAME_SIZE (16384 to 16777215).",
    ),
    Setting(
        name="http2_max_header_list_size",
        section=SECTION,
        flags=("--http2-max-header-list-size",),
        metavar="INT",
        value_type="int",
        default=65536,
        validator=v.positive_int,
        doc="SETTINGS_MAX_HEADER_LIST_SIZE; 0 means unlimited.",
    ),
)
