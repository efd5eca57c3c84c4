"""`wsgi.errors`: a text stream the app writes diagnostics to (PEP 3333)."""

from __future__ import annotations

import sys
from collections.abc import Iterable

__all__ = ["ErrorStream"]


class ErrorStream:
    """Writes to the process's current stderr (which the error log may capture)."""

    __slots__ = ()

    def write(self, text: str) -> int:
        """Write `text` to stderr; returns its length."""
        return sys.stderr.write(text)

    def writelines(self, lines: Iterable[str]) -> None:
        """Write every string of `lines`."""
        sys.stderr.writelines(lines)

    def flush(self) -> None:
        """Flush stderr."""
        sys.stderr.flush()
