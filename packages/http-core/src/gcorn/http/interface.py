"""RequestParser, the interface every backend implements, and what the backends share.

This module sits below both backends and the facade (parser.py): a backend
subclasses RequestParser from here, and the facade, which knows the backends,
tells RequestParser how to find one by name (``set_backend_finder``). So the
imports run one way: parser -> httptools_parser -> python_parser -> interface.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .events import Event
from .options import ParserOptions

BACKENDS = ("auto", "python", "httptools")


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
        permit_unconventional_request_target: bool = False,
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
                permit_unconventional_request_target,
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
_find_backend: Callable[[str], type[RequestParser]] | None = None


def set_backend_finder(find: Callable[[str], type[RequestParser]]) -> None:
    """Say how ``RequestParser(backend=name)`` finds the class of a backend (parser.py does)."""
    global _find_backend
    _find_backend = find
    _BACKEND_CLASSES.clear()


def _backend_class(backend: str) -> type[RequestParser]:
    """The RequestParser subclass for a backend name, found once and remembered."""
    if not isinstance(backend, str):
        raise ValueError(f"parser backend must be a name, not {backend!r}")
    if _find_backend is None:  # only if this module was imported without the package
        raise RuntimeError("no parser backend is registered: import gcorn.http")
    cls = _find_backend(backend)
    _BACKEND_CLASSES[backend] = cls
    return cls
