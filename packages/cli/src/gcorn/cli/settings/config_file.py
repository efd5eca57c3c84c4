"""Settings of the section "Config File": where the configuration and the app come from."""

from __future__ import annotations

from . import validators as v
from .base import Setting

SECTION = "Config File"

SETTINGS = (
    Setting(
        name="config",
        section=SECTION,
        flags=("-c", "--config"),
        metavar="CONFIG",
        default="./gcorn.conf.py",
        validator=v.string,
        doc="The configuration source: PATH, `file:PATH` or `python:MODULE`. "
        "Only honoured from the command line or `GCORN_CMD_ARGS`; "
        "with no `-c`, `./gcorn.conf.py` is read when it exists, else `./gunicorn.conf.py`.",
    ),
    Setting(
        name="wsgi_app",
        section=SECTION,
        default=None,
        validator=v.string,
        doc="The application spec (`module:name` or `module:factory(args)`), "
        "for config files that name the app instead of the command line.",
    ),
)
