"""Errors of the ASGI worker, in the gcorn.workers family (each maps to a status or exit code)."""

from __future__ import annotations

from gcorn.workers.errors import WorkerError

__all__ = [
    "AppProtocolError",
    "AsgiSetupError",
    "LifespanFailure",
    "ServiceUnavailable",
    "WORKER_BOOT_ERROR",
]

#: exit code the arbiter reads as "the worker failed to boot"
WORKER_BOOT_ERROR = 3


class AsgiSetupError(WorkerError):
    """A setting of the ASGI worker cannot be honoured (the worker fails to boot)."""

    exit_code = WORKER_BOOT_ERROR


class LifespanFailure(WorkerError):
    """The app's lifespan startup failed: the worker exits as a boot failure."""

    exit_code = WORKER_BOOT_ERROR


class AppProtocolError(WorkerError):
    """The app broke the ASGI message rules (500 before the response starts, else close)."""

    status = 500
    reason = "Internal Server Error"


class ServiceUnavailable(WorkerError):
    """Too many requests in flight in this worker (503)."""

    status = 503
    reason = "Service Unavailable"
