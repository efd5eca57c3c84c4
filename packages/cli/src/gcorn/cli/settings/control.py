"""Settings of the section "Control": the control socket (accepted for compatibility)."""

from __future__ import annotations

import os

from . import validators as v
from .base import Setting

SECTION = "Control"


def _default_control_socket() -> str:
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    if runtime_dir:
        return os.path.join(runtime_dir, "gcorn.ctl")
    return os.path.join(os.path.expanduser("~"), ".gcorn", "gcorn.ctl")


SETTINGS = (
    Setting(
        name="control_socket",
        section=SECTION,
        flags=("--control-socket",),
        metavar="PATH",
        default="gcorn.ctl",
        default_factory=_default_control_socket,
        default_doc="`$XDG_RUNTIME_DIR/gcorn.ctl`, else `~/.gcorn/gcorn.ctl`",
        validator=v.string,
        doc="The path of the control socket.",
    ),
    Setting(
        name="control_socket_mode",
        section=SECTION,
        flags=("--control-socket-mode",),
        metavar="INT",
        value_type="int",
        default=0o600,
        default_doc="`0o600`",
        validator=v.octal_int,
        doc="The permission bits of the control socket.",
    ),
    Setting(
        name="control_socket_disable",
        section=SECTION,
        flags=("--no-control-socket",),
        action="store_true",
        value_type="bool",
        default=False,
        validator=v.boolean,
        doc="Do not create the control socket.",
    ),
)
