"""The dirty arbiter's pidfile, and cleanup of one left by a crashed predecessor."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time

log = logging.getLogger("gcorn.dirty.arbiter")


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim_pidfile(path: str | None) -> None:
    """Write our pid; first stop an orphaned predecessor named in a stale file."""
    if not path:
        return
    with contextlib.suppress(FileNotFoundError, ValueError):
        with open(path) as f:
            old = int(f.read().strip() or 0)
        if old and old != os.getpid() and _alive(old) and "dirty" in _cmdline(old):
            log.warning("stopping orphaned dirty arbiter %s named in %s", old, path)
            os.kill(old, signal.SIGTERM)
            deadline = time.monotonic() + 1.0
            while _alive(old) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(old):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(old, signal.SIGKILL)
        elif old:
            log.info("removing stale dirty pidfile %s (pid %s)", path, old)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(f"{os.getpid()}\n")
    os.replace(tmp, path)


def release_pidfile(path: str | None) -> None:
    """Remove our pidfile if it still names us."""
    if not path:
        return
    with contextlib.suppress(OSError, ValueError):
        with open(path) as f:
            if int(f.read().strip() or 0) == os.getpid():
                os.unlink(path)
