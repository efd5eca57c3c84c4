"""Header (and trailer) section parsing: one regex for the common case, a line by
line walk for everything else (lenient options and precise error reports)."""

from __future__ import annotations

from .errors import (
    HeaderFieldTooLarge,
    InvalidHeaderName,
    InvalidHeaderValue,
    InvalidLineEnding,
    ObsoleteFolding,
    TooManyHeaders,
)
from .events import Header
from .grammar import FIELD_LINE, FIELD_VALUE, TOKEN
from .options import ParserOptions


def parse_fields(block: bytes, options: ParserOptions) -> list[Header]:
    """Parse a field section (each line ending in CRLF, no final empty line)."""
    if not block:
        return []
    pairs = FIELD_LINE.findall(block)
    if len(pairs) == block.count(b"\n"):  # every line is a well-formed field line
        if len(pairs) > options.fields_limit:
            raise TooManyHeaders()
        if len(block) > options.field_size_limit:
            # Only a block longer than the limit can hold a line longer than it.
            limit = options.field_size_limit - 2
            if max(map(len, block.split(b"\r\n"))) > limit:
                raise HeaderFieldTooLarge()
        return [(name.lower(), value) for name, value in pairs]
    return parse_fields_slowly(block, options)


def parse_fields_slowly(block: bytes, options: ParserOptions) -> list[Header]:
    """Walk a field section line by line: lenient options and exact error classes."""
    lines = block.split(b"\r\n")
    if lines[-1]:
        raise InvalidLineEnding()
    del lines[-1]
    if len(lines) > options.fields_limit and not options.permit_obsolete_folding:
        raise TooManyHeaders()
    size_limit = options.field_size_limit
    headers: list[Header] = []
    last_size = 0
    for line in lines:
        if b"\n" in line or b"\r" in line:
            raise InvalidLineEnding()
        if len(line) + 2 > size_limit:
            raise HeaderFieldTooLarge()
        if line[:1] in (b" ", b"\t"):
            if not options.permit_obsolete_folding:
                raise ObsoleteFolding()
            if not headers:
                raise InvalidHeaderName("continuation line before any header field")
            more = line.strip(b" \t")
            if FIELD_VALUE.fullmatch(more) is None:
                raise InvalidHeaderValue()
            # A folded field counts as one line against the size limit (as gunicorn).
            last_size += len(line) + 2
            if last_size > size_limit:
                raise HeaderFieldTooLarge()
            name, value = headers[-1]
            if more:
                headers[-1] = (name, value + b" " + more if value else more)
            continue
        name, colon, value = line.partition(b":")
        if not colon:
            raise InvalidHeaderName("header line without a colon")
        if name[-1:] in (b" ", b"\t"):
            if not options.strip_header_spaces:
                raise InvalidHeaderName("whitespace before the colon of a header field")
            name = name.rstrip(b" \t")
        if TOKEN.fullmatch(name) is None:
            raise InvalidHeaderName()
        value = value.strip(b" \t")
        if FIELD_VALUE.fullmatch(value) is None:
            raise InvalidHeaderValue()
        headers.append((name.lower(), value))
        last_size = len(line) + 2
    if len(headers) > options.fields_limit:
        raise TooManyHeaders()
    return headers
