"""Parser limits and leniency switches, with gunicorn's setting names and defaults."""

from __future__ import annotations

from dataclasses import dataclass, field

# gunicorn's meanings for 0 / out-of-range values: a limit of 0 never means
# "unbounded memory" here, only "the largest value we accept".
MAX_REQUEST_LINE = 1024 * 1024
# gunicorn clamps a limit_request_line above this to this (silently).
CLAMPED_REQUEST_LINE = 8190
MAX_FIELDS = 32768
DEFAULT_FIELD_SIZE = 8190


@dataclass(frozen=True, slots=True)
class ParserOptions:
    """Everything that changes what a RequestParser accepts; defaults are strict.

    Every default is gunicorn's too, except ``permit_unconventional_request_target``:
    gunicorn serves such targets, and gcorn's server setting of that name (on by
    default) does the same; a parser made alone refuses them.
    """

    limit_request_line: int = 4094
    limit_request_fields: int = 100
    limit_request_field_size: int = 8190
    permit_obsolete_folding: bool = False
    permit_unconventional_http_method: bool = False
    permit_unconventional_http_version: bool = False
    casefold_http_method: bool = False
    strip_header_spaces: bool = False
    permit_unconventional_request_target: bool = False
    # The limits as enforced, computed once (the parser reads them per request).
    request_line_limit: int = field(init=False, repr=False, compare=False)
    """Longest request line accepted, without its CRLF (0 means 1 MiB; above 8190, 8190)."""
    fields_limit: int = field(init=False, repr=False, compare=False)
    """Most header (or trailer) fields accepted (0 or more than 32768 means 32768)."""
    field_size_limit: int = field(init=False, repr=False, compare=False)
    """Longest header line accepted, counting its CRLF (0 means 8190)."""
    head_limit: int = field(init=False, repr=False, compare=False)
    """Largest field section buffered while waiting for its end (as gunicorn)."""

    def __post_init__(self) -> None:
        for name in ("limit_request_line", "limit_request_fields", "limit_request_field_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        fields = self.limit_request_fields
        if fields == 0 or fields > MAX_FIELDS:
            fields = MAX_FIELDS
        size = self.limit_request_field_size or DEFAULT_FIELD_SIZE
        line = self.limit_request_line
        line = min(line, CLAMPED_REQUEST_LINE) if line else MAX_REQUEST_LINE
        object.__setattr__(self, "request_line_limit", line)
        object.__setattr__(self, "fields_limit", fields)
        object.__setattr__(self, "field_size_limit", size)
        object.__setattr__(self, "head_limit", fields * (size + 2) + 4)


DEFAULT_OPTIONS = ParserOptions()
