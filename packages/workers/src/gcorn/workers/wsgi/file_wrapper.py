"""`wsgi.file_wrapper`: lets the worker send a file with `os.sendfile` (PEP 3333)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["FileWrapper"]


class FileWrapper:
    """An iterable over a file-like object, in blocks; sent with sendfile when possible."""

    __slots__ = ("blksize", "close", "filelike")

    def __init__(self, filelike: Any, blksize: int = 8192) -> None:
        self.filelike = filelike
        self.blksize = blksize
        close = getattr(filelike, "close", None)
        if close is not None:
            self.close = close  # PEP 3333: the server calls close() on the iterable

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        data = self.filelike.read(self.blksize)
        if data:
            return bytes(data)
        raise StopIteration

    def __getitem__(self, key: Any) -> bytes:
        # the older iteration protocol, which some apps and tests still use
        data = self.filelike.read(self.blksize)
        if data:
            return bytes(data)
        raise IndexError

    def fileno(self) -> int | None:
        """The OS file descriptor when the file has one, else None."""
        fileno = getattr(self.filelike, "fileno", None)
        if fileno is None:
            return None
        try:
            return int(fileno())
        except (OSError, ValueError, AttributeError):
            return None  # e.g. io.BytesIO: no descriptor, fall back to iteration
