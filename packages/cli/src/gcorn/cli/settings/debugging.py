"""Settings of the section "Debugging": code reloading and config checks."""

from __future__ import annotations

from . import validators as v
from .base import Setting

SECTION = "Debugging"

SETTINGS = (
    Setting(
        name="reload",
        section=SECTION,
        flags=("--reload",),
        action="store_true",
        value_type="bool",
        default=False,
        validator=v.boolean,
        doc="Restart a worker when a source file it loaded changes (development only).",
    ),
    Setting(
        name="reload_engine",
        section=SECTION,
        flags=("--reload-engine",),
        metavar="STRING",
        default="auto",
        validator=v.choice("auto", "poll", "inotify"),
        doc="How changes are noticed: `auto` (inotify when available), `poll` or `inotify`.",
    ),
    Setting(
        name="reload_extra_files",
        section=SECTION,
        flags=("--reload-extra-file",),
        action="append",
        metavar="FILES",
        value_type="list[str]",
        default=[],
        validator=v.files_or_patterns,
        doc="More files (or glob patterns) to watch with `--reload`, repeatable.",
    ),
    Setting(
        name="spew",
        section=SECTION,
        flags=("--spew",),
        action="store_true",
        value_type="bool",
        default=False,
        validator=v.boolean,
        doc="Trace every executed line of the server (very verbose).",
    ),
    Setting(
        name="check_config",
        section=SECTION,
        flags=("--check-config",),
        action="store_true",
        value_type="bool",
        default=False,
        validator=v.boolean,
        doc="Validate the configuration and import the app, then exit 0 (valid) or 1.",
    ),
    Setting(
        name="print_config",
        section=SECTION,
        flags=("--print-config",),
        action="store_true",
        value_type="bool",
        default=False,
        validator=v.boolean,
        doc="Print the resolved settings and exit; implies `--check-config`.",
    ),
)
