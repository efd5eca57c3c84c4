"""gcorn.dirty: a supervised pool of stateful worker processes, and its clients.

    from gcorn.dirty import DirtyApp, batched, connect, get_dirty_client, stash
"""

from . import stash
from .app import DirtyApp
from .batching import batched
from .client import DirtyClient
from .config import DirtyConfig, Hooks
from .errors import (
    DirtyAppError,
    DirtyAppNotFoundError,
    DirtyBusyError,
    DirtyConfigError,
    DirtyConnectionError,
    DirtyError,
    DirtyMessageTooLargeError,
    DirtyNoWorkersAvailableError,
    DirtyProtocolError,
    DirtyStashError,
    DirtyTimeoutError,
    DirtyWorkerError,
    DirtyWorkerLostError,
    StashError,
    StashKeyNotFoundError,
    StashTableNotFoundError,
)
from .resources import current_resources
from .shared_client import (
    close_dirty_client,
    close_dirty_client_async,
    connect,
    get_dirty_client,
    get_dirty_client_async,
    set_dirty_socket_path,
)
from .stash import StashClient, StashTable

__all__ = [
    "DirtyApp", "DirtyAppError", "DirtyAppNotFoundError", "DirtyBusyError", "DirtyClient",
    "DirtyConfig", "DirtyConfigError", "DirtyConnectionError", "DirtyError",
    "DirtyMessageTooLargeError", "DirtyNoWorkersAvailableError", "DirtyProtocolError",
    "DirtyStashError",
    "DirtyTimeoutError", "DirtyWorkerError", "DirtyWorkerLostError", "Hooks", "StashClient",
    "StashError", "StashKeyNotFoundError", "StashTable", "StashTableNotFoundError", "close_dirty_client",
    "close_dirty_client_async", "connect", "get_dirty_client", "get_dirty_client_async",
    "batched", "current_resources", "set_dirty_socket_path", "stash",
]
