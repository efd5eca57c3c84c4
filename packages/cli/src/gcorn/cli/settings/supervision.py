"""Settings of the section "Supervision": gcorn's crash-loop protection of the workers."""

from __future__ import annotations

from . import validators as v
from .base import Setting

SECTION = "Supervision"

SETTINGS = (
    Setting(
        name="boot_failure_limit",
        section=SECTION,
        flags=("--boot-failure-limit",),
        metavar="INT",
        value_type="int",
        default=5,
        validator=v.positive_int,
        doc="Worker exits before boot allowed within `boot_failure_window` seconds; past "
        "it the master stops with an error (gcorn only; 0 never stops, failed boots are still backed off).",
    ),
    Setting(
        name="boot_failure_window",
        section=SECTION,
        flags=("--boot-failure-window",),
        metavar="SECONDS",
        value_type="float",
        default=60,
        validator=v.positive_number,
        doc="The window, in seconds, over which boot failures are counted (gcorn only).",
    ),
)
