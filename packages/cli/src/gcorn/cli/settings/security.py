"""Settings of the section "Security": limits on the size of a request head."""

from __future__ import annotations

from . import validators as v
from .base import Setting

SECTION = "Security"

SETTINGS = (
    Setting(
        name="limit_request_line",
        section=SECTION,
        flags=("--limit-request-line",),
        metavar="INT",
        value_type="int",
        default=4094,
        validator=v.positive_int,
        doc="The longest request line accepted, in bytes; 0 means unlimited "
        "(values above 8190 are clamped to 8190).",
    ),
    Setting(
        name="limit_request_fields",
        section=SECTION,
        flags=("--limit-request-fields",),
        metavar="INT",
        value_type="int",
        default=100,
        validator=v.positive_int,
        doc="The most header fields in one request (0 or above 32768 means 32768).",
    ),
    Setting(
        name="limit_request_field_size",
        section=SECTION,
        # gunicorn spells this flag with an underscore; kept for drop-in use.
        flags=("--limit-request-field_size",),
        metavar="INT",
        value_type="int",
        default=8190,
        validator=v.positive_int,
        doc="The largest header line, in bytes (0 means the default 8190).",
    ),
)
