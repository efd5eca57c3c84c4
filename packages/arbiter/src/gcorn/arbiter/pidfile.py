"""The master's pidfile: written atomically, refused if it names another live master."""

from __future__ import annotations

import contextlib
import os
import tempfile

from gcorn.arbiter.errors import PidfileError


def read_pid(path: str) -> int | None:
    """The pid stored in `path`, or None when there is no readable pid."""
    try:
        with open(path) as fh:
            text = fh.read().strip()
    except (FileNotFoundError, IsADirectoryError):
        return None
    return int(text) if text.isdigit() else None


def process_alive(pid: int) -> bool:
    """True when a process `pid` exists (owned by us or not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def write_pid(path: str, pid: int) -> None:
    """Write `pid` to `path` atomically (a temporary file renamed over it); PidfileError if not."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".pid-", dir=directory)
    except OSError as exc:
        raise PidfileError(f"cannot write pidfile {path}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{pid}\n")
        os.chmod(tmp, 0o644)
        os.rename(tmp, path)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise PidfileError(f"cannot write pidfile {path}: {exc.strerror}") from exc


class Pidfile:
    """A pidfile at `path`; `create`, `rename` on promotion, `unlink` on exit."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.pid: int | None = None

    def create(self, pid: int, allowed: tuple[int, ...] = ()) -> None:
        """Write `pid`; fail if the file names another live process not in `allowed`."""
        old = read_pid(self.path)
        if old is not None and old != pid and old not in allowed and process_alive(old):
            raise PidfileError(
                f"pidfile {self.path} names a running process (pid {old}): "
                "is another master running? Remove the file if it is stale."
            )
        self.pid = pid
        write_pid(self.path, pid)

    def rename(self, path: str) -> None:
        """Move the pidfile to `path` (the USR2 child taking the plain name)."""
        if self.pid is None:
            return
        write_pid(path, self.pid)
        old, self.path = self.path, path
        if old != path and read_pid(old) == self.pid:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(old)

    def unlink(self) -> None:
        """Remove the file, only if it still holds our pid."""
        if self.pid is not None and read_pid(self.path) == self.pid:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
