"""`request_timeout`: what every worker type shares to end a request that runs too long.

One place for the setting's reading, the exception thrown into a stuck request,
the log message (with the traceback of where the request was stuck), the 504
answer and the per-worker counter (`worker.request_timeouts`). How a worker
interrupts its request differs with its concurrency model:

- sync: `AlarmGuard`, a SIGALRM timer whose handler raises `RequestTimeout` in
  the main thread, that is in the app's frame (a busy loop included);
- gevent, eventlet: `GreenGuard`, a hub timer that throws `RequestTimeout` into
  the request's greenlet;
- gthread: `ThreadWatchdog`, one thread per worker that reads the stuck thread's
  frame (`sys._current_frames`), answers from outside it, tries to interrupt it,
  and recycles the worker once every serving thread is stuck;
- asgi: a loop timer per request (gcorn.workers.asgi.cycle) that logs the task's
  stack and cancels it.
"""

from __future__ import annotations

import ctypes
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

from gcorn.arbiter import ServerLog, Settings, setting
from gcorn.workers.exchange.access import asgi_target

__all__ = [
    "STATUS", "REASON", "MESSAGE", "AlarmGuard", "GreenGuard", "RequestTimeout",
    "ThreadWatchdog", "count_timeout", "time_out_task", "log_timeout", "request_timeout", "stack_of_coroutine",
    "stack_of_frame", "stack_of_traceback",
]

#: the answer to a request that ran past `request_timeout` before its response started
STATUS = 504
REASON = "Gateway Timeout"
MESSAGE = "Gateway Timeout: the request ran past the server's request_timeout"

#: disarms what a guard armed for one request
Disarm = Callable[[], None]


class RequestTimeout(BaseException):
    """Raised in a request that ran past `request_timeout`.

    A BaseException, as SystemExit: an app's `except Exception` must not swallow it.
    """


def request_timeout(cfg: Settings) -> float:
    """The `request_timeout` setting in seconds; 0 (the default) is no limit."""
    try:
        value = float(setting(cfg, "request_timeout", 0) or 0)
    except (TypeError, ValueError):
        return 0.0
    return value if value > 0 else 0.0


def count_timeout(worker: Any) -> None:
    """Count one timed-out request on the worker (`worker.request_timeouts`, and metrics)."""
    worker.request_timeouts = getattr(worker, "request_timeouts", 0) + 1
    stats = getattr(worker, "stats", None)
    if stats is not None:
        stats.request_timed_out()


def stack_of_frame(frame: FrameType | None) -> str:
    """The stack that led to `frame`, outermost first, as traceback prints it."""
    if frame is None:
        return "(no frame: the request was not running Python code)\n"
    return "".join(traceback.format_stack(frame))


def stack_of_coroutine(coro: Any) -> str:
    """Where a suspended coroutine waits: its frame, then each one it awaits, innermost last.

    (`Task.print_stack` shows the task's own frame only, not the awaits below it.)
    """
    frames = []
    seen = 0
    while coro is not None and seen < 256:  # bounded: a cycle cannot loop forever
        seen += 1
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            frames.append((frame, frame.f_lineno))
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    if not frames:
        return "(no frame: the task was not suspended in Python code)\n"
    return "".join(traceback.StackSummary.extract(frames).format())


def stack_of_traceback(tb: TracebackType | None) -> str:
    """The frames of a traceback, down to the innermost one (where it was stuck)."""
    return "".join(traceback.format_tb(tb)) if tb is not None else "(no traceback)\n"


def log_timeout(log: ServerLog, method: str, uri: str, limit: float, stack: str,
                answered: str) -> None:
    """The one error line of a timed-out request, with where it was stuck."""
    log.error("Request timeout: %s %s ran past request_timeout=%ss (%s); it was stuck in:\n%s",
              method, uri, _seconds(limit), answered, stack.rstrip())


def _seconds(value: float) -> str:
    return f"{value:g}"


# -- asgi: a loop timer per request --------------------------------------------------


def time_out_task(exchange: Any, state: Any, answer: Callable[[], None], gone: str,
                  cut: str) -> bool:
    """request_timeout passed on one ASGI exchange (an HTTP/1 cycle or an HTTP/2 stream).

    Counts it, ends the response through `answer()` (a 504, or a cut once the response
    has started), logs what the client got (`gone`, `cut`: the protocol's words) and
    where the app task waited, and cancels the task. False when the task had ended.
    """
    task = exchange.task
    if task is None or task.done():
        return False
    count_timeout(state.worker)
    stack = stack_of_coroutine(task.get_coro())
    if exchange.disconnected:
        answered = gone
    elif exchange.response_complete:
        answered = "the response was complete"
    elif exchange.head_pending is not None or not exchange.response_started:
        answered = f"answered {STATUS}"
    else:
        answered = f"response already started: {cut}"
    answer()
    scope = exchange.scope
    log_timeout(state.log, scope["method"], asgi_target(scope), state.request_timeout, stack,
                answered)
    task.cancel()
    return True


# -- sync: a SIGALRM timer ------------------------------------------------------------


class AlarmGuard:
    """Arms ITIMER_REAL around the app call; its SIGALRM raises `RequestTimeout` (main thread)."""

    def __init__(self, limit: float) -> None:
        self.limit = limit
        signal.signal(signal.SIGALRM, self._expired)

    def _expired(self, sig: int, frame: FrameType | None) -> None:
        raise RequestTimeout(self.limit)

    def arm(self, conn: Any, resp: Any, environ: Any, headers: Any) -> Disarm:
        """Start the timer for one request; returns what stops it."""
        signal.setitimer(signal.ITIMER_REAL, self.limit)
        return _disarm_alarm


def _disarm_alarm() -> None:
    signal.setitimer(signal.ITIMER_REAL, 0)


# -- gevent, eventlet: a hub timer -------------------------------------------------------


class GreenGuard:
    """A hub timer per request that throws `RequestTimeout` into the request's greenlet."""

    def __init__(self, hub: Any, limit: float) -> None:
        self.hub = hub
        self.limit = limit

    def arm(self, conn: Any, resp: Any, environ: Any, headers: Any) -> Disarm:
        """Start the timer for the running greenlet; returns what cancels it."""
        green = self.hub.current()
        done = [False]

        def expired() -> None:
            if not done[0] and not green.dead:
                green.throw(RequestTimeout(self.limit))

        cancel: Disarm = self.hub.call_later(self.limit, expired)

        def disarm() -> None:
            done[0] = True
            cancel()

        return disarm


# -- gthread: one watchdog thread per worker ------------------------------------------------


class _Running:
    """One request running in a serving thread, as the watchdog sees it."""

    __slots__ = ("conn", "deadline", "environ", "expired_at", "headers", "ident", "interrupted",
                 "resp", "started", "stuck")

    def __init__(self, conn: Any, resp: Any, environ: Any, headers: Any, limit: float) -> None:
        self.conn = conn
        self.headers = headers
        self.resp = resp
        self.environ = environ
        self.ident = threading.get_ident()
        self.started = time.monotonic()
        self.deadline = self.started + limit
        self.expired_at = 0.0
        self.interrupted = False
        self.stuck = False


def _async_raise(ident: int, exc: type[BaseException] | None) -> bool:
    """Raise `exc` in thread `ident` at its next bytecode (None clears a pending one)."""
    obj = ctypes.py_object(exc) if exc is not None else None
    done = ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), obj)
    return bool(done == 1)


class ThreadWatchdog:
    """Watches the requests of a threaded worker: one thread, however many serving threads.

    A request past its deadline: its thread's frame is logged, the client is
    answered 504 from here (or its connection cut if the response had started),
    the connection is marked so that the stuck thread's later writes fail and it
    is not kept alive, and the thread is interrupted (`RequestTimeout` raised in
    it at its next Python bytecode). A thread still in the request one `grace`
    later is blocked in C code: it is reported and counted as stuck, and once
    `threads` threads are stuck `on_exhausted` recycles the worker.
    """

    def __init__(self, log: ServerLog, limit: float, threads: int,
                 answer: Callable[[Any, Any, Any, Any, float], str],
                 on_exhausted: Callable[[], None]) -> None:
        self.log = log
        self.limit = limit
        self.threads = threads
        self.answer = answer
        self.on_exhausted = on_exhausted
        self.grace = min(max(limit, 0.2), 1.0)
        self.running: dict[int, _Running] = {}
        self.lock = threading.Lock()
        self.stuck = 0
        self.exhausted = False
        self.stopped = threading.Event()
        self.tick = min(max(limit / 10.0, 0.02), 0.25)
        self.thread = threading.Thread(target=self._watch, name="gthread-watchdog", daemon=True)

    def start(self) -> None:
        """Start the watchdog thread."""
        self.thread.start()

    def stop(self) -> None:
        """Let the watchdog thread end."""
        self.stopped.set()

    def arm(self, conn: Any, resp: Any, environ: Any, headers: Any) -> Disarm:
        """Register the calling thread's request; returns what unregisters it."""
        entry = _Running(conn, resp, environ, headers, self.limit)
        with self.lock:
            previous = self.running.get(entry.ident)
        if previous is not None:  # left over by an interruption: this thread is back
            self._release(previous)
        with self.lock:
            self.running[entry.ident] = entry

        def disarm() -> None:
            self._release(entry)

        return disarm

    def release_current(self) -> None:
        """Forget the calling thread's request, if an interruption cut its disarm short."""
        with self.lock:
            entry = self.running.get(threading.get_ident())
        if entry is not None:
            self._release(entry)

    def _release(self, entry: _Running) -> None:
        with self.lock:
            if self.running.get(entry.ident) is entry:
                del self.running[entry.ident]
            if entry.interrupted:
                # the request ended before the interruption arrived: it must not
                # land in this thread's next request
                entry.interrupted = False
                _async_raise(entry.ident, None)
            if entry.stuck:
                entry.stuck = False
                self.stuck -= 1
                self.log.warning("a stuck serving thread came back (%d of %d still stuck)",
                                 self.stuck, self.threads)

    def stuck_threads(self) -> set[int]:
        """The idents of the serving threads stuck now."""
        with self.lock:
            return {ident for ident, entry in self.running.items() if entry.stuck}

    def stuck_count(self) -> int:
        """How many serving threads are stuck in a timed-out request now."""
        return self.stuck

    def _watch(self) -> None:
        while not self.stopped.wait(self.tick):
            try:
                self.check(time.monotonic())
            except Exception:
                self.log.exception("the request_timeout watchdog failed")

    def check(self, now: float) -> None:
        """Handle the requests past their deadline, and those stuck past the grace."""
        with self.lock:
            entries = list(self.running.values())
        for entry in entries:
            if not entry.expired_at and now >= entry.deadline:
                self._expire(entry, now)
            elif entry.expired_at and not entry.stuck and now >= entry.expired_at + self.grace:
                self._report_stuck(entry)

    def _expire(self, entry: _Running, now: float) -> None:
        frame = sys._current_frames().get(entry.ident)
        stack = stack_of_frame(frame)
        with self.lock:
            if self.running.get(entry.ident) is not entry:
                return  # it ended meanwhile
            entry.expired_at = now
            # under the lock: the thread cannot end the request (and close the socket)
            # while its 504 is written; a short write into an empty buffer, it does not wait
            answered = self.answer(entry.conn, entry.resp, entry.environ, entry.headers,
                                   entry.started)
            environ = entry.environ
            log_timeout(self.log, environ["REQUEST_METHOD"], environ["RAW_URI"], self.limit,
                        stack, answered)
            entry.interrupted = _async_raise(entry.ident, RequestTimeout)

    def _report_stuck(self, entry: _Running) -> None:
        with self.lock:
            if self.running.get(entry.ident) is not entry:
                return
            entry.stuck = True
            self.stuck += 1
            stuck = self.stuck
            exhausted = stuck >= self.threads and not self.exhausted
            if exhausted:
                self.exhausted = True
        frame = sys._current_frames().get(entry.ident)
        self.log.error(
            "a serving thread cannot be interrupted: %s %s is still running %.1fs after its "
            "request_timeout (blocked in C code); %d of %d threads stuck; it is at:\n%s",
            entry.environ["REQUEST_METHOD"], entry.environ["RAW_URI"],
            time.monotonic() - entry.deadline, stuck, self.threads,
            stack_of_frame(frame).rstrip())
        if exhausted:
            self.log.error("every serving thread (%d) is stuck: recycling the worker",
                           self.threads)
            self.on_exhausted()
