"""The generic helpers of the workers' tests, defined once: a free port, a bounded poll.

wsgi_support.py and asgi_support.py (the servers under test) import them from here;
a test module imports them as `from workers_helpers import free_port, wait_until`
after putting this folder on sys.path, as the other test modules do.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["free_port", "wait_until"]

T = TypeVar("T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], T], timeout: float = 5.0, interval: float = 0.02) -> T:
    """Poll `predicate` until it returns something truthy or `timeout` passes; return its last value."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = predicate()
    return value
