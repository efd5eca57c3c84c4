"""The green workers under test: gevent, and eventlet where it installs (skipped, with why, elsewhere)."""

from __future__ import annotations

import importlib.util
import sys

import pytest

__all__ = ["GREEN_WORKERS", "eventlet_missing", "gevent_missing"]


def _missing(module: str) -> str | None:
    if importlib.util.find_spec(module) is None:
        return (f"{module} is not installed for Python {sys.version_info[0]}.{sys.version_info[1]}"
                f" (pip install 'gcorn-workers[{module}]')")
    return None


gevent_missing = _missing("gevent")
eventlet_missing = _missing("eventlet")

GREEN_WORKERS = [
    pytest.param("gevent", marks=pytest.mark.skipif(bool(gevent_missing),
                                                    reason=gevent_missing or "")),
    pytest.param("eventlet", marks=pytest.mark.skipif(bool(eventlet_missing),
                                                      reason=eventlet_missing or "")),
]
