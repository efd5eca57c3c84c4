"""Settings of the section "Process Naming": process titles."""

from __future__ import annotations

from . import validators as v
from .base import Setting

SECTION = "Process Naming"

SETTINGS = (
    Setting(
        name="proc_name",
        section=SECTION,
        flags=("-n", "--name"),
        metavar="STRING",
        default=None,
        validator=v.string,
        doc="The base of the process titles (needs setproctitle).",
    ),
    Setting(
        name="default_proc_name",
        section=SECTION,
        default="gcorn",
        validator=v.string,
        doc="The title base used when `proc_name` is unset (the app spec, set by the loader).",
    ),
)
