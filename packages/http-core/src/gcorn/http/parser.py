"""RequestParser: the one sans-I/O interface, with a backend picked by name.

``RequestParser(backend=...)`` returns an instance of the backend's subclass;
both backends take the same options, produce the same events and raise the
same errors for the same bytes.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from .events import Event
from .options import ParserOptions

BACKENDS = ("auto", "python", "httptools")


def httptools_available() -> bool:
    """Whether the httptools backend can be used in this environment."""
    return importlib.util.find_spec("httptools") is not None


class RequestParser:
    """Feed bytes received from one connection, get request events back.

    Events come out in order: ``RequestHead``, zero or more ``Body``, then
    ``EndOfMessage``, for each pipelined request. Any ``ParseError`` is final:
    the parser raises it again on every later call.
    """

    backend: str = "auto"
    __slots__ = ("options",)

    def __new__(cls, backend: str = "auto", **kwargs: Any) -> RequestParser:
        if cls is RequestParser:
            cls = _BACKEND_CLASSES.get(backend) or _backend_class(backend)
        return super().__new__(cls)

    def __init__(
        self,
        backend: str = "auto",
        *,
        limit_request_line: int = 4094,
        limit_request_fields: int = 100,
        limit_request_field_size: int = 8190,
        permit_obsolete_folding: bool = False,
        permit_unconventional_http_method: bool = False,
        permit_unconventional_http_version: bool = False,
        casefold_http_method: bool = False,
        strip_header_spaces: bool = False,
        options: ParserOptions | None = None,
    ) -> None:
        if options is None:
            key = (
                limit_request_line,
                limit_request_fields,
                limit_request_field_size,
                permit_obsolete_folding,
                permit_unconventional_http_method,
                permit_unconventional_http_version,
                casefold_http_method,
                strip_header_spaces,
            )
            # A server builds one parser per connection with the same settings.
            options = _OPTIONS.get(key)
            if options is None:
                options = ParserOptions(*key)
                if len(_OPTIONS) < 64:
                    _OPTIONS[key] = options
        self.options = options

    def feed(self, data: bytes) -> list[Event]:
        """Take bytes received from the peer; return the events they complete."""
        raise NotImplementedError

    def feed_eof(self) -> list[Event]:
        """The peer closed its side: raise IncompleteMessage if a request was cut short."""
        raise NotImplementedError

    @property
    def paused(self) -> bool:
        """True after an Upgrade or CONNECT request ended: see take_unparsed/resume."""
        raise NotImplementedError

    @property
    def in_progress(self) -> bool:
        """True when part of a request has been received but not its end."""
        raise NotImplementedError

    def take_unparsed(self) -> bytes:
        """While paused: hand over (and forget) the bytes received after the request."""
        raise NotImplementedError

    def resume(self) -> list[Event]:
        """While paused: the protocol switch was declined; parse on as HTTP/1.1."""
        raise NotImplementedError


_OPTIONS: dict[tuple[int | bool, ...], ParserOptions] = {}
_BACKEND_CLASSES: dict[str, type[RequestParser]] = {}


def _backend_class(backend: str) -> type[RequestParser]:
    """The RequestParser subclass for a backend name (``fast`` means httptools)."""
    if not isinstance(backend, str):
        raise ValueError(f"parser backend must be a name, not {backend!r}")
    cls = _find_backend_class(backend)
    _BACKEND_CLASSES[backend] = cls
    return cls


def _find_backend_class(backend: str) -> type[RequestParser]:
    name = backend
    if backend == "fast":
        backend = "httptools"
    if backend not in BACKENDS:
        raise ValueError(f"unknown parser backend {name!r}; use one of {', '.join(BACKENDS)}")
    if backend == "httptools" or (backend == "auto" and httptools_available()):
        try:
            from .httptools_parser import HttptoolsParser
        except ImportError as exc:
            if backend == "auto":
                raise  # find_spec saw it: a broken install must not pass unnoticed
            raise ImportError(
                "the httptools parser backend needs httptools: pip install 'gcorn-http[fast]'"
            ) from exc
        chosen: type[RequestParser] = HttptoolsParser
        return chosen
    from .python_parser import PythonParser

    return PythonParser
