"""Build `gcorn.http.RequestParser`s from the worker's settings (limits, compat switches)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from gcorn.arbiter import Settings, setting
from gcorn.http import RequestParser

__all__ = ["parser_factory", "parser_options"]

_BACKENDS = {"auto": "auto", "python": "python", "fast": "httptools", "httptools": "httptools"}
_OPTIONS = {
    "limit_request_line": 4094,
    "limit_request_fields": 100,
    "limit_request_field_size": 8190,
    "permit_obsolete_folding": False,
    "permit_unconventional_http_method": False,
    "permit_unconventional_http_version": False,
    "casefold_http_method": False,
    "strip_header_spaces": False,
    # gcorn's own setting; on, as gunicorn serves these targets (the parser alone refuses them).
    "permit_unconventional_request_target": True,
}


def parser_options(cfg: Settings) -> dict[str, Any]:
    """The parser keyword arguments the settings give (only those the parser knows)."""
    try:
        accepted = set(inspect.signature(RequestParser.__init__).parameters)
    except (TypeError, ValueError):
        accepted = set(_OPTIONS) | {"backend"}
    options: dict[str, Any] = {}
    for name, default in _OPTIONS.items():
        if name in accepted:
            options[name] = setting(cfg, name, default)
    backend = str(setting(cfg, "http_parser", "auto") or "auto")
    if "backend" in accepted:
        options["backend"] = _BACKENDS.get(backend, backend)
    return options


def parser_factory(cfg: Settings) -> Callable[[], Any]:
    """A zero-argument callable returning a fresh parser configured from `cfg`."""
    options = parser_options(cfg)
    # fail at boot, not on the first request, on a bad option or a missing backend
    first = RequestParser(**options)
    shared = getattr(first, "options", None)
    if shared is None:
        return lambda: RequestParser(**options)
    backend_class = type(first)
    # one validated ParserOptions for every connection of this worker
    return lambda: backend_class(options=shared)
