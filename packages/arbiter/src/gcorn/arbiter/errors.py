"""The gcorn.arbiter exception family and the exit codes workers and the master use."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Process exit codes shared by the master and its workers (gunicorn's values)."""

    OK = 0
    ABORTED = 1  # worker: SIGABRT on heartbeat timeout, or crashed after boot
    WORKER_BOOT_ERROR = 3  # worker: failed before it was ready to serve (importing the app included)
    APP_LOAD_ERROR = 4  # worker: the app module imported but has no usable app object (AppImportError)


WORKER_BOOT_ERROR = ExitCode.WORKER_BOOT_ERROR
APP_LOAD_ERROR = ExitCode.APP_LOAD_ERROR


class ArbiterError(Exception):
    """Base of every error the arbiter raises; `exit_code` is what the master exits with."""

    exit_code: int = 1

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code

    @property
    def message(self) -> str:
        """The one-line reason, as logged."""
        return str(self.args[0]) if self.args else type(self).__name__

    @property
    def reason(self) -> str | None:
        """The master's last `Reason:` line when this error stops it (None: no such line)."""
        return None


class AppImportError(ArbiterError):
    """The app's module imported, but the app object named in it is missing or unusable.

    A worker whose app load raises this exits with APP_LOAD_ERROR (4); any other
    exception while loading is a boot failure (3), as in gunicorn.
    """


class HaltServer(ArbiterError):
    """Stop the master now with `exit_code` (gunicorn's name for it)."""


class BindError(ArbiterError):
    """A listener could not be created (bad address, address in use, bad fd)."""


class PidfileError(ArbiterError):
    """The pidfile names another live master, or cannot be written."""


class CrashLoopError(ArbiterError):
    """Too many workers failed to boot within the window: the master gives up."""

    exit_code = int(ExitCode.WORKER_BOOT_ERROR)

    @property
    def reason(self) -> str:
        """gunicorn's `Reason:` line for this exit code."""
        if self.exit_code == int(ExitCode.APP_LOAD_ERROR):
            return "App failed to load."
        return "Worker failed to boot."
