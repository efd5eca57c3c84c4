"""The dirty arbiter's pidfile, and cleanup of one left by a crashed predecessor.

Reading, liveness and the atomic write are gcorn.arbiter's (one pidfile code for
both supervisors); what is the dirty pool's own is stopping an orphaned dirty
arbiter that a stale file still names.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time

from gcorn.arbiter.errors import PidfileError
from gcorn.arbiter.pidfile import process_alive, read_pid, write_pid

from .errors import DirtyConfigError

log = logging.getLogger("gcorn.dirty.arbiter")


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def claim_pidfile(path: str | None) -> None:
    """Write our pid; first stop an orphaned predecessor named in a stale file.

    DirtyConfigError (naming `dirty_pidfile`) when the file cannot be written.
    """
    if not path:
        return
    old = read_pid(path)
    if old and old != os.getpid() and process_alive(old) and "dirty" in _cmdline(old):
        log.warning("stopping orphaned dirty arbiter %s named in %s", old, path)
        os.kill(old, signal.SIGTERM)
        deadline = time.monotonic() + 1.0
        while process_alive(old) and time.monotonic() < deadline:
            time.sleep(0.05)
        if process_alive(old):
            with contextlib.suppress(ProcessLookupError):
                os.kill(old, signal.SIGKILL)
    elif old:
        log.info("removing stale dirty pidfile %s (pid %s)", path, old)
    try:
        write_pid(path, os.getpid())
    except PidfileError as exc:
        raise DirtyConfigError(f"dirty_pidfile: {exc}") from None


def release_pidfile(path: str | None) -> None:
    """Remove our pidfile if it still names us."""
    if not path:
        return
    if read_pid(path) == os.getpid():
        with contextlib.suppress(OSError):
            os.unlink(path)
