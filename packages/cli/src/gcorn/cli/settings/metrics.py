"""Settings of the section "Metrics": the Prometheus exporter (gcorn only)."""

from __future__ import annotations

from . import validators as v
from .base import Setting

SECTION = "Metrics"

SETTINGS = (
    Setting(
        name="metrics_bind",
        section=SECTION,
        flags=("--metrics-bind",),
        metavar="ADDRESS",
        default=None,
        validator=v.metrics_address,
        doc=(
            "Serve Prometheus metrics at `/metrics` on this address: `HOST:PORT`, "
            "`[V6]:PORT` or `unix:PATH` (off by default). A side process of the master "
            "answers the scrapes from the shared scoreboard, so the workers only count; "
            "see docs/metrics.md for every metric. The address is bound at start (a busy "
            "port stops gcorn with an error); a HUP does not move it."
        ),
    ),
)
