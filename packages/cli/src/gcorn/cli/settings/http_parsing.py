"""Settings of the section "HTTP Parsing": leniencies of the request parser."""

from __future__ import annotations

from . import validators as v
from .base import Setting

SECTION = "HTTP Parsing"


def _switch(name: str, doc: str) -> Setting:
    return Setting(
        name=name,
        section=SECTION,
        flags=("--" + name.replace("_", "-"),),
        action="store_true",
        value_type="bool",
        default=False,
        validator=v.boolean,
        doc=doc,
    )


SETTINGS = (
    _switch(
        "permit_obsolete_folding",
        "Accept obsolete folded header lines (joined with a space) instead of answering 400.",
    ),
    _switch(
        "strip_header_spaces",
        "Strip spaces between a header name and `:` (unsafe behind some proxies).",
    ),
    _switch(
        "permit_unconventional_http_method",
        "Accept any token as a method, not only 3-20 upper-case characters.",
    ),
    _switch(
        "permit_unconventional_http_version",
        "Accept HTTP versions outside 1.0-1.x (1.2-1.9 are always read as 1.1).",
    ),
    _switch(
        "casefold_http_method",
        "Upper-case the request method once it passed the method rules (so a lower-case "
        "method also needs `permit_unconventional_http_method`, as in gunicorn).",
    ),
    Setting(
        name="permit_unconventional_request_target",
        section=SECTION,
        # On by default (gunicorn serves these targets), so the flag takes an
        # optional value: alone it means true, `=false` restores the refusal.
        flags=("--permit-unconventional-request-target",),
        nargs="?",
        const="true",
        metavar="BOOL",
        value_type="bool",
        default=True,
        validator=v.boolean,
        doc="Serve, as gunicorn does, a CONNECT whose target is not `host:port` and a "
        "target holding `://` that is no URI (`1http://h/`), with the path and query "
        "gunicorn gives them; `false` answers both 400 (RFC 9112 3.2) (gcorn only).",
    ),
    Setting(
        name="header_map",
        section=SECTION,
        flags=("--header-map",),
        default="drop",
        validator=v.choice("drop", "refuse", "dangerous"),
        doc="Header names with `_`: `drop` them, `refuse` the request (400), or map "
        "them like `-` (`dangerous`).",
    ),
    Setting(
        name="http_parser",
        section=SECTION,
        flags=("--http-parser",),
        metavar="STRING",
        default="auto",
        validator=v.choice("auto", "python", "fast"),
        doc="The HTTP/1 parser backend: `auto` (httptools when installed), `python` or "
        "`fast` (httptools, required).",
    ),
)
