"""`--reload`: a thread in each worker that makes the worker exit when a source file changes.

The worker exits through its own SIGQUIT handler (the `worker_int` hook,
then exit 0), and the master forks a fresh one that imports the new code.
Changes are seen with inotify (through ctypes, no extra package) when the
platform has it, otherwise by polling modification times every second.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import select
import signal
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

POLL_INTERVAL = 1.0

# inotify(7) constants.
_IN_MODIFY = 0x002
_IN_ATTRIB = 0x004
_IN_CLOSE_WRITE = 0x008
_IN_MOVED_TO = 0x080
_IN_CREATE = 0x100
_IN_DELETE = 0x200
_IN_DELETE_SELF = 0x400
_IN_MOVE_SELF = 0x800
_IN_NONBLOCK = 0o4000
_IN_CLOEXEC = 0o2000000
_MASK = (
    _IN_MODIFY | _IN_ATTRIB | _IN_CLOSE_WRITE | _IN_MOVED_TO | _IN_CREATE | _IN_DELETE
    | _IN_DELETE_SELF | _IN_MOVE_SELF
)
_EVENT = struct.Struct("iIII")


def module_files() -> set[str]:
    """The source files of every module imported so far."""
    files = set()
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if not path:
            continue
        if path.endswith((".pyc", ".pyo")):
            path = path[:-1]
        files.add(os.path.abspath(path))
    return files


def watched_files(extra: Iterable[str]) -> set[str]:
    """Module files plus `reload_extra_files`, with glob patterns expanded now."""
    files = module_files()
    for pattern in extra:
        if glob.has_magic(pattern):
            files.update(os.path.abspath(p) for p in glob.glob(pattern, recursive=True))
        else:
            files.add(os.path.abspath(pattern))
    return files


class PollingReloader(threading.Thread):
    """Stats every watched file each second; calls `on_change(path)` on the first change."""

    def __init__(self, extra: list[str], on_change: Callable[[str], None]) -> None:
        super().__init__(name="gcorn-reloader", daemon=True)
        self.extra = extra
        self.on_change = on_change
        self.mtimes: dict[str, float] = {}

    def run(self) -> None:
        """Poll until a change is seen."""
        while True:
            changed = self.check()
            if changed:
                self.on_change(changed)
                return
            time.sleep(POLL_INTERVAL)

    def check(self) -> str | None:
        """One pass: the first file whose mtime changed since the last pass, or None."""
        for path in watched_files(self.extra):
            try:
                mtime = os.stat(path).st_mtime
            except OSError:
                continue
            previous = self.mtimes.setdefault(path, mtime)
            if mtime != previous:
                return path
        return None


class _Inotify:
    """A minimal inotify(7) binding through ctypes."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self._add_watch = libc.inotify_add_watch
        self._add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self.fd = fd
        self.dirs: dict[int, str] = {}

    def watch(self, directory: str) -> None:
        """Watch `directory` (once) for changes to the files in it."""
        if directory in self.dirs.values():
            return
        wd = self._add_watch(self.fd, os.fsencode(directory), _MASK)
        if wd >= 0:
            self.dirs[wd] = directory

    def read(self, timeout: float) -> list[str]:
        """The paths changed within `timeout` seconds (empty if none)."""
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return []
        try:
            data = os.read(self.fd, 64 * 1024)
        except BlockingIOError:
            return []
        paths = []
        offset = 0
        while offset + _EVENT.size <= len(data):
            wd, _mask, _cookie, length = _EVENT.unpack_from(data, offset)
            raw = data[offset + _EVENT.size : offset + _EVENT.size + length]
            offset += _EVENT.size + length
            name = os.fsdecode(raw.rstrip(b"\0"))
            directory = self.dirs.get(wd)
            if directory is not None:
                paths.append(os.path.join(directory, name) if name else directory)
        return paths


class InotifyReloader(threading.Thread):
    """Watches the directories of the watched files with inotify; calls `on_change(path)`."""

    def __init__(self, extra: list[str], on_change: Callable[[str], None]) -> None:
        super().__init__(name="gcorn-reloader", daemon=True)
        self.extra = extra
        self.on_change = on_change
        self.inotify = _Inotify()

    def run(self) -> None:
        """Wait for events on watched files; new imports and globs are picked up each second."""
        while True:
            files = watched_files(self.extra)
            for directory in {os.path.dirname(path) for path in files}:
                if os.path.isdir(directory):
                    self.inotify.watch(directory)
            for path in self.inotify.read(POLL_INTERVAL):
                if path in files:
                    self.on_change(path)
                    return


def inotify_available() -> bool:
    """True when this platform's libc has inotify."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return False
    return hasattr(libc, "inotify_init1")


def _exit_worker(path: str) -> None:
    sys.stderr.write(f"[{os.getpid()}] [gcorn] {path} changed; reloading worker\n")
    sys.stderr.flush()
    # The worker's SIGQUIT handler runs worker_int and exits; the master respawns it.
    os.kill(os.getpid(), signal.SIGQUIT)


def start_reloader(
    cfg: Any,
    on_change: Callable[[str], None] = _exit_worker,
    extra: list[str] | None = None,
) -> threading.Thread:
    """Start the reloader thread chosen by `reload_engine` and return it.

    `extra` (default: `reload_extra_files`) is read again on every pass, so
    files appended to it later are watched too.
    """
    engine = cfg.reload_engine
    extra = cfg.reload_extra_files if extra is None else extra
    thread: threading.Thread
    if engine == "inotify" or (engine == "auto" and inotify_available()):
        thread = InotifyReloader(extra, on_change)
    else:
        thread = PollingReloader(extra, on_change)
    thread.start()
    return thread
