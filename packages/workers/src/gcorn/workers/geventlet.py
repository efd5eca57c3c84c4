"""`eventlet`: the WSGI worker on eventlet's hub (`-k eventlet`), for existing deployments.

eventlet is in maintenance upstream (and gunicorn 26 dropped its worker); new
deployments should use `-k gevent` or `-k asgi`. The serving loop is
`gcorn.workers.green`'s; this module only adapts eventlet, and patches in the
worker before the app is imported.
"""

from __future__ import annotations

import warnings
from typing import Any

from gcorn.arbiter import ServerLog

try:
    with warnings.catch_warnings():
        # eventlet warns on import that it is deprecated; the docs say so once, not every worker
        warnings.simplefilter("ignore")
        import eventlet
        import eventlet.hubs
        import greenlet
        from eventlet import greenthread, patcher
except ImportError as exc:  # the message reaches the user as the one-line -k error
    raise ImportError(
        f"the eventlet worker needs eventlet ({exc}): pip install 'gcorn-workers[eventlet]'"
    ) from None

from gcorn.workers.green import GreenWorker

__all__ = ["EventletHub", "EventletWorker"]


class EventletHub:
    """`gcorn.workers.green.GreenHub` on eventlet."""

    name = "eventlet"
    install = "pip install 'gcorn-workers[eventlet]'"

    def patch(self) -> None:
        """Monkey patch the standard library (eventlet's `monkey_patch`, idempotent)."""
        eventlet.monkey_patch()

    def spawn(self, func: Any, *args: Any) -> Any:
        """Run `func(*args)` in a new green thread."""
        return eventlet.spawn(func, *args)

    def sleep(self, seconds: float) -> None:
        """Let other green threads run for `seconds`."""
        eventlet.sleep(seconds)

    def wait_fd(self, fd: int, write: bool, timeout: float | None) -> bool:
        """Wait in the hub until `fd` is ready; False on timeout."""
        try:
            eventlet.hubs.trampoline(fd, read=not write, write=write, timeout=timeout,
                                     timeout_exc=TimeoutError)
        except TimeoutError:
            return False
        return True

    def semaphore(self, value: int) -> Any:
        """An eventlet semaphore."""
        from eventlet.semaphore import Semaphore

        return Semaphore(value)

    def current(self) -> Any:
        """The running green thread."""
        return greenlet.getcurrent()

    def call_soon(self, func: Any, *args: Any) -> None:
        """Run `func(*args)` from the hub at its next turn."""
        eventlet.hubs.get_hub().schedule_call_global(0, func, *args)

    def kill(self, green: Any) -> None:
        """Raise GreenletExit in `green`."""
        greenthread.kill(green)

    def call_later(self, seconds: float, func: Any) -> Any:
        """Run `func()` from the hub in `seconds`; returns its cancel."""
        timer = eventlet.hubs.get_hub().schedule_call_global(seconds, func)
        return timer.cancel

    def original_socket(self) -> type:
        """The stdlib's `socket.socket`, even after patching."""
        cls: type = patcher.original("socket").socket
        return cls


class EventletWorker(GreenWorker):
    """The gunicorn-compatible eventlet worker, on gcorn's one HTTP parser."""

    hub = EventletHub()

    @classmethod
    def patch_master(cls, log: ServerLog, dirty_pool: bool = False) -> None:
        """With `preload_app`: the master stays unpatched (eventlet cannot run the arbiter)."""
        # a patched master runs its signal handlers in eventlet's hub, which refuses the
        # blocking calls they make ("do not call blocking functions from the mainloop")
        log.warning("eventlet worker with preload_app: the master is not monkey-patched "
                    "(eventlet cannot run the arbiter); each worker patches after the fork, "
                    "so objects the app built at import time may still block; prefer "
                    "-k gevent, which patches the master first")
