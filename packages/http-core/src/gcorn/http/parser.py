"""The parser facade: ``RequestParser(backend=...)`` picks a backend by name.

``RequestParser(backend=...)`` returns an instance of the backend's subclass;
both backends take the same options, produce the same events and raise the
same errors for the same bytes. This module is the only one that knows the
backends (it sits above them); the interface they share is in interface.py.
"""

from __future__ import annotations

import importlib.util

from .interface import BACKENDS, RequestParser, set_backend_finder
from .python_parser import PythonParser

__all__ = ["BACKENDS", "RequestParser", "httptools_available"]


def httptools_available() -> bool:
    """Whether the httptools backend can be used in this environment."""
    return importlib.util.find_spec("httptools") is not None


def _find_backend_class(backend: str) -> type[RequestParser]:
    """The RequestParser subclass for a backend name (``fast`` means httptools)."""
    name = backend
    if backend == "fast":
        backend = "httptools"
    if backend not in BACKENDS:
        raise ValueError(f"unknown parser backend {name!r}; use one of {', '.join(BACKENDS)}")
    if backend == "httptools" or (backend == "auto" and httptools_available()):
        try:
            # Imported when first asked for: httptools is an optional extra.
            from .httptools_parser import HttptoolsParser
        except ImportError as exc:
            if backend == "auto":
                raise  # find_spec saw it: a broken install must not pass unnoticed
            raise ImportError(
                "the httptools parser backend needs httptools: pip install 'gcorn-http[fast]'"
            ) from exc
        chosen: type[RequestParser] = HttptoolsParser
        return chosen
    return PythonParser


set_backend_finder(_find_backend_class)
