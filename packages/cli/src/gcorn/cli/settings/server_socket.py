"""Settings of the section "Server Socket": the listening sockets."""

from __future__ import annotations

import os

from . import validators as v
from .base import Setting

SECTION = "Server Socket"


def _default_bind() -> list[str]:
    port = os.environ.get("PORT")
    return [f"0.0.0.0:{port}"] if port else ["127.0.0.1:8000"]


SETTINGS = (
    Setting(
        name="bind",
        section=SECTION,
        flags=("-b", "--bind"),
        action="append",
        metavar="ADDRESS",
        value_type="list[str]",
        default=["127.0.0.1:8000"],
        default_factory=_default_bind,
        default_doc="`['127.0.0.1:8000']`, or `['0.0.0.0:$PORT']` when `$PORT` is set",
        validator=v.string_list,
        doc="An address to listen on, repeatable: `HOST`, `HOST:PORT`, `[IPV6]:PORT`, "
        "`unix:PATH`, `fd://N` or `tcp://HOST:PORT`.",
    ),
    Setting(
        name="backlog",
        section=SECTION,
        flags=("--backlog",),
        metavar="INT",
        value_type="int",
        default=2048,
        validator=v.positive_int,
        doc="The length of the listen(2) queue of pending connections.",
    ),
    Setting(
        name="reuse_port",
        section=SECTION,
        flags=("--reuse-port",),
        action="store_true",
        value_type="bool",
        default=False,
        validator=v.boolean,
        doc="Set SO_REUSEPORT on the listening sockets.",
    ),
)
