"""The httptools backend: the pure backend's state machine, with llhttp (C) doing
the scan of each request's header fields.

Why this split: framing, limits and every rule of head.py are shared code, so
both backends accept and reject the same bytes by construction. llhttp only
replaces the header-field regexes, and its verdict is never trusted alone:

- llhttp refuses a head: the pure field parser re-reads the same bytes and
  decides (it raises our exact error, or accepts what llhttp is stricter
  about, such as a method llhttp does not know);
- llhttp accepts a head: every rule on which llhttp is laxer (request-line
  spacing and version, limits, duplicates, framing, target forms) is checked
  by the shared code around it, and trailing whitespace, which llhttp keeps
  in a value, is removed here.
"""

from __future__ import annotations

from typing import Any

import httptools

from .errors import HeaderFieldTooLarge, TooManyHeaders
from .events import Header
from .fields import parse_fields
from .python_parser import PythonParser


class _FieldCollector:
    """The llhttp protocol object: collects the fields of one head."""

    __slots__ = ("headers", "complete")

    def __init__(self) -> None:
        self.headers: list[Header] = []
        self.complete = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value.rstrip(b" \t")))

    def on_message_complete(self) -> None:
        self.complete = True


class HttptoolsParser(PythonParser):
    """RequestParser backend that uses httptools (llhttp) for header fields."""

    backend = "httptools"
    __slots__ = ("_collector", "_llhttp", "_lenient_fields")

    def __init__(self, backend: str = "auto", **kwargs: Any) -> None:
        PythonParser.__init__(self, backend, **kwargs)
        self._collector = _FieldCollector()
        self._llhttp: httptools.HttpRequestParser | None = None
        # llhttp has no obs-fold nor "space before colon" leniency: those
        # settings are served by the pure field parser.
        options = self.options
        self._lenient_fields = options.permit_obsolete_folding or options.strip_header_spaces

    def _fields(self, buf: bytes, start: int, line_end: int, head_end: int) -> list[Header]:
        """The header fields of the head buf[start:head_end + 4], scanned by llhttp."""
        if self._lenient_fields:
            return parse_fields(buf[line_end + 2 : head_end + 2], self.options)
        collector = self._collector
        collector.headers = []
        collector.complete = False
        llhttp = self._llhttp
        if llhttp is None:
            llhttp = self._llhttp = httptools.HttpRequestParser(collector)
        try:
            llhttp.feed_data(memoryview(buf)[start : head_end + 4])
        except httptools.HttpParserUpgrade:
            self._llhttp = None  # it stopped for a protocol switch: start afresh
        except httptools.HttpParserError:
            self._llhttp = None
            return parse_fields(buf[line_end + 2 : head_end + 2], self.options)
        if not collector.complete:
            self._llhttp = None  # it waits for a body that this parser reads itself
        headers = collector.headers
        options = self.options
        if len(headers) > options.fields_limit:
            raise TooManyHeaders()
        if head_end - line_end > options.field_size_limit:
            # Only a block longer than the limit can hold a line longer than it.
            block = buf[line_end + 2 : head_end]
            if max(map(len, block.split(b"\r\n"))) > options.field_size_limit - 2:
                raise HeaderFieldTooLarge()
        return headers
