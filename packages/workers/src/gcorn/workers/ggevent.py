"""`gevent`: the WSGI worker on gevent's hub (`-k gevent`, also `gevent_wsgi`, `gevent_pywsgi`).

The serving loop is `gcorn.workers.green`'s; this module only adapts gevent.
Importing it does not patch anything: the worker patches itself after the
fork, before it imports the app (`init_process`), and with `preload_app` the
master patches before it imports the app (`patch_master`).
"""

from __future__ import annotations

from typing import Any

try:
    import gevent
    from gevent import monkey
except ImportError as exc:  # the message reaches the user as the one-line -k error
    raise ImportError(
        f"the gevent worker needs gevent ({exc}): pip install 'gcorn-workers[gevent]'") from None

from gcorn.workers.green import GreenWorker

__all__ = ["GeventHub", "GeventWorker"]


class GeventHub:
    """`gcorn.workers.green.GreenHub` on gevent."""

    name = "gevent"
    install = "pip install 'gcorn-workers[gevent]'"

    def patch(self) -> None:
        """Monkey patch the standard library (gevent's `patch_all`, idempotent)."""
        monkey.patch_all()
        # gevent.socket only now: the master imports this module, and patches only with preload
        from gevent.socket import wait_read, wait_write

        self._waits = (wait_read, wait_write)

    def spawn(self, func: Any, *args: Any) -> Any:
        """Run `func(*args)` in a new greenlet."""
        return gevent.spawn(func, *args)

    def sleep(self, seconds: float) -> None:
        """Let other greenlets run for `seconds`."""
        gevent.sleep(seconds)

    def wait_fd(self, fd: int, write: bool, timeout: float | None) -> bool:
        """Wait in the hub until `fd` is ready; False on timeout."""
        try:
            self._waits[write](fd, timeout)
        except TimeoutError:
            return False
        return True

    def semaphore(self, value: int) -> Any:
        """A gevent semaphore."""
        from gevent.lock import Semaphore

        return Semaphore(value)

    def current(self) -> Any:
        """The running greenlet."""
        return gevent.getcurrent()

    def call_soon(self, func: Any, *args: Any) -> None:
        """Run `func(*args)` from the hub at its next loop turn."""
        gevent.get_hub().loop.run_callback(func, *args)

    def kill(self, green: Any) -> None:
        """Raise GreenletExit in `green`, without waiting for it to end."""
        gevent.kill(green)

    def call_later(self, seconds: float, func: Any) -> Any:
        """Run `func()` from the hub in `seconds` (a loop timer); returns its cancel."""
        timer = gevent.get_hub().loop.timer(seconds)
        timer.start(func)
        return timer.close

    def original_socket(self) -> type:
        """The stdlib's `socket.socket`, even after patching."""
        cls: type = monkey.get_original("socket", "socket")
        return cls


class GeventWorker(GreenWorker):
    """The gunicorn-compatible gevent worker, on gcorn's one HTTP parser."""

    hub = GeventHub()
