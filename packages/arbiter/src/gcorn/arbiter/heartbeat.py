"""The worker heartbeat: an unlinked temp file whose times the worker refreshes.

The worker calls `notify()`; the master `fstat`s the file and compares its
mtime (written as `time.monotonic()`) with its own monotonic clock. The owner
execute bit doubles as the "booted" flag, so the master learns when a worker
is ready to serve without any other channel.
"""

from __future__ import annotations

import os
import stat
import tempfile
import time

_BOOTED_BIT = stat.S_IXUSR


class Heartbeat:
    """One per worker; created by the master before fork, shared by both sides."""

    def __init__(
        self,
        tmp_dir: str | None = None,
        uid: int | None = None,
        gid: int | None = None,
        umask: int = 0,
        min_interval: float = 0.0,
    ) -> None:
        old_umask = os.umask(umask)
        try:
            fd, name = tempfile.mkstemp(prefix="wgcorn-", dir=tmp_dir)
        finally:
            os.umask(old_umask)
        try:
            # the worker drops privileges, yet must still be able to touch the file
            want_uid = os.geteuid() if uid is None else uid
            want_gid = os.getegid() if gid is None else gid
            if (want_uid, want_gid) != (os.geteuid(), os.getegid()):
                os.fchown(fd, want_uid, want_gid)
            os.fchmod(fd, 0o600)
        finally:
            os.unlink(name)
        self._fd = fd
        # notify() is called on hot paths; skip the syscall when one was just made
        self._min_interval = min_interval
        self._last = 0.0
        self.notify(force=True)

    def fileno(self) -> int:
        """The file descriptor of the heartbeat file."""
        return self._fd

    def notify(self, force: bool = False) -> None:
        """Prove this process is alive (cheap: at most one utime per min_interval)."""
        now = time.monotonic()
        if not force and now - self._last < self._min_interval:
            return
        self._last = now
        os.utime(self._fd, (now, now))

    def last_update(self) -> float:
        """The monotonic time of the last notify(), as seen by any process."""
        return os.fstat(self._fd).st_mtime

    def state(self) -> tuple[float, bool]:
        """(last_update(), is_booted()) from one fstat: what the master checks each loop."""
        st = os.fstat(self._fd)
        return st.st_mtime, bool(st.st_mode & _BOOTED_BIT)

    def mark_booted(self) -> None:
        """Record that the worker finished booting (loaded its app)."""
        os.fchmod(self._fd, 0o600 | _BOOTED_BIT)

    def is_booted(self) -> bool:
        """True once the worker called mark_booted()."""
        return bool(os.fstat(self._fd).st_mode & _BOOTED_BIT)

    def close(self) -> None:
        """Close the file descriptor (idempotent)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
