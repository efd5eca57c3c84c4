"""gcorn.arbiter: the pre-fork supervisor (listeners, signals, workers, side processes).

Knows nothing of HTTP: workers are forked from `cfg.worker_class`, a subclass
of `Worker`, and the master learns about them only from signals, exit codes
and heartbeats.
"""

from gcorn.arbiter.arbiter import Arbiter
from gcorn.arbiter.contracts import AccessLog, ServerLog, Settings, graceful_timeout, setting
from gcorn.arbiter.errors import (
    APP_LOAD_ERROR,
    WORKER_BOOT_ERROR,
    AppImportError,
    ArbiterError,
    BindError,
    CrashLoopError,
    ExitCode,
    HaltServer,
    PidfileError,
)
from gcorn.arbiter.listeners import Listener
from gcorn.arbiter.scoreboard import ExitReason
from gcorn.arbiter.side import SideProcess
from gcorn.arbiter.worker import Worker

__all__ = [
    "APP_LOAD_ERROR",
    "WORKER_BOOT_ERROR",
    "AccessLog",
    "AppImportError",
    "Arbiter",
    "ArbiterError",
    "BindError",
    "CrashLoopError",
    "ExitCode",
    "ExitReason",
    "HaltServer",
    "Listener",
    "PidfileError",
    "ServerLog",
    "Settings",
    "SideProcess",
    "Worker",
    "graceful_timeout",
    "setting",
]
