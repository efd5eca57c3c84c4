"""Process titles through setproctitle, when it is installed (a no-op otherwise)."""

from __future__ import annotations

import sys
from collections.abc import Callable

_setproctitle: Callable[[str], None] | None
try:
    from setproctitle import setproctitle as _setproctitle
except ImportError:  # optional extra: titles are a convenience, never required
    _setproctitle = None

TITLE_PREFIX = "gcorn"


def set_process_title(title: str) -> None:
    """Set the title shown by ps/top to 'gcorn: <title>' when setproctitle is available."""
    # setproctitle is unreliable on macOS (gunicorn disables it there too)
    if _setproctitle is None or sys.platform == "darwin":
        return
    _setproctitle(f"{TITLE_PREFIX}: {title}")
