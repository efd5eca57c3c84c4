"""A dirty worker process: loads its apps once, serves calls on its own socket.

Threads inside one worker:

- ``dirty_threads + 1`` dispatch threads read calls and run them (see
  dispatch.py), at most ``dirty_threads`` at once;
- a heartbeat thread stamps the scoreboard, watches the parent, and flags
  calls that run past their deadline so the arbiter can recycle the worker;
- the main thread handles signals and drives a graceful stop.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import select
import signal
import socket
import sys
import threading
import time
from typing import Any

from gcorn.arbiter.signals import restore_signal_mask

from . import callstats as cs
from . import scoreboard as sb
from .app import load_app_class, thread_loop
from .batching import Batcher, BatchSpec, batch_spec
from .codec import check_size, get_codec
from .config import DirtyConfig, Hooks, StopMode
from .dispatch import Dispatcher, WorkerConn
from .errors import (
    DirtyAppError,
    DirtyAppNotFoundError,
    DirtyError,
    DirtyMessageTooLargeError,
    DirtyProtocolError,
    DirtyTimeoutError,
    app_error,
)
from .protocol import MsgType, frame_buffers
from .resources import Alloc
from .resources import apply as apply_resources

log = logging.getLogger("gcorn.dirty.worker")

APP_LOAD_ERROR = 4
# dirty_backend = "ray": an app's actor died; the worker exits so that the arbiter replaces it.
ACTOR_LOST = 5
# A call still running this long past its deadline marks the worker for recycling.
OVERDUE_GRACE = 1.0
# After TERM, keep answering stale clients at least this long before exiting.
DRAIN_LINGER = 0.1


class DirtyWorker:
    """A dirty worker: the handle hooks receive, and the process main loop."""

    def __init__(self, cfg: DirtyConfig, hooks: Hooks, age: int, slot: int, app_paths: tuple[str, ...],
                 socket_path: str, board: sb.Scoreboard | None,
                 resources: Alloc | None = None, stats: cs.CallStats | None = None,
                 demands: dict[str, dict[str, float]] | None = None) -> None:
        self.cfg = cfg
        self.hooks = hooks
        self.age = age
        self.slot = slot
        self.app_paths = app_paths
        self.socket_path = socket_path
        self.board = board
        self.resources = resources  # the seat's resource tokens (resources.py)
        self.stats = stats or cs.CallStats.create()  # call counters the arbiter reads (callstats.py)
        self.exit_reason = ""  # arbiter side: why it was killed ("timeout", "boot_timeout")
        self.replaces = ""  # arbiter side: why this worker replaces its seat's ("memory", "reload"...)
        self.demands = demands or {}  # app -> its `resources` (with Ray: the actor's options)
        self.pid = 0
        self.ppid = os.getpid()
        self.apps: dict[str, Any] = {}
        self.booted = False
        self.alive = True
        self.log = log
        self.spawned_at = time.monotonic()
        self.seat: Any = None  # arbiter side: the seat this worker fills
        self.kill_at: float | None = None  # arbiter side: SIGKILL deadline while stopping

    def __repr__(self) -> str:
        return f"<DirtyWorker age={self.age} pid={self.pid} apps={list(self.app_paths)}>"

    # ---------------------------------------------------------------- child side
    def run(self, arbiter: Any, unblock: Any = None) -> int:
        """Body of the forked process; returns the exit code (``unblock``: signal mask to restore)."""
        self.pid = os.getpid()
        apply_resources(self.resources, self.cfg.dirty_resources)  # before any app is imported
        self.codec = get_codec(self.cfg.dirty_codec)
        self.max_size = self.cfg.dirty_max_message_size
        self.threads = self.cfg.dirty_threads
        self._stop = StopMode.NONE
        self._exit_code = 0
        self._stop_at = 0.0
        self._running: dict[int, float] = {}
        self.dispatcher: Dispatcher | None = None
        self.batcher: Batcher | None = None
        self._install_signals()
        if unblock is not None:
            restore_signal_mask(unblock)
        set_process_title(f"dirty-worker [{self.cfg.proc_name}]")
        self.hooks.dirty_post_fork(arbiter, self)
        listener = self._listen()
        try:
            make_app = self._ray_app_factory() if self.cfg.dirty_backend == "ray" else None
            for path in self.app_paths:
                app = make_app(path) if make_app is not None else load_app_class(path)()
                app.init()
                self.apps[path] = app
        except Exception as exc:  # any failure of user code at boot: report it, exit APP_LOAD_ERROR
            if self.cfg.dirty_backend == "ray" and isinstance(exc, DirtyError):
                # Ray unreachable, or init() failed in the actor: the traceback worth showing is
                # the actor's (in the error), not this process's.
                tb = getattr(exc, "traceback", None)
                log.error("dirty worker %s failed to load its apps: %s%s", self.pid, exc,
                          f"\n{tb}" if tb else "")
                self._close_apps()  # end the actors already made (they would die with us, later)
            else:
                log.exception("dirty worker %s failed to load its apps", self.pid)
            return APP_LOAD_ERROR
        self.hooks.dirty_worker_init(self)
        dispatcher = self.dispatcher = Dispatcher(
            listener, self.threads, self.cfg.dirty_queue_size, self.max_size, self.codec,
            self._run_call, self.board, self.slot)
        self.batcher = Batcher(dispatcher.submit, self._reply_error, self._reply_result, self._running,
                               self.cfg.dirty_queue_size, self.threads, self.board, self.slot,
                               lambda coro: thread_loop().run_until_complete(coro), app_error,
                               self.stats)
        dispatcher.on_batch = self._accept_batch
        dispatcher.on_refuse = self._count_refused
        self.batcher.start()
        dispatcher.start()
        threading.Thread(target=self._heartbeat_loop, name="dirty-heartbeat", daemon=True).start()
        self.booted = True
        if self.board is not None:
            self.board.beat(self.slot, time.monotonic())
            self.board.set_state(self.slot, sb.SlotState.READY)
        log.debug("dirty worker %s ready with %s", self.pid, list(self.app_paths))
        self._wait_for_stop(dispatcher)
        if self._stop is StopMode.GRACEFUL:
            remaining = self._stop_at + max(0.0, self.cfg.dirty_graceful_timeout) - time.monotonic()
            dispatcher.exit(remaining)
            self._close_apps()
        if self.batcher is not None:
            self.batcher.stop()
            if self.batcher.batches:
                log.info("dirty worker %s batches: %s", self.pid, self.batcher.stats())
        dispatcher.close()
        return self._exit_code

    def _close_apps(self) -> None:
        for app in self.apps.values():
            try:
                app.close()
            except Exception:  # close() of user code must not stop the others
                log.exception("close() of a dirty app failed")

    def _ray_app_factory(self) -> Any:
        """``dirty_backend = "ray"``: connect this worker to Ray; each app becomes a RayApp (an actor)."""
        from .ray_cluster import connect
        from .ray_proxy import RayApp

        address = self.cfg.dirty_ray_address
        assert address, "the arbiter gives every worker a Ray address"
        ray = connect(address)
        # ray.init() makes SIGTERM exit the process (and Ray's C++ side logs it as a crash): the
        # worker's graceful stop, which runs the apps' close() in their actors, must stay.
        signal.signal(signal.SIGTERM, lambda *_: self._request_stop(StopMode.GRACEFUL))
        host = socket.gethostname()

        def make(path: str) -> Any:
            name = f"{path}@{host}:{self.ppid}:w{self.age}"
            return RayApp(path, ray, name, self.demands.get(path, {}), self.threads, self._actor_lost)
        return make

    def _actor_lost(self, app_path: str, exc: BaseException) -> None:
        """An app's Ray actor died: stop taking calls, drain, exit; the arbiter replaces this worker."""
        if self._exit_code == ACTOR_LOST or not self.booted:
            return  # before boot, the failure is the boot's own (APP_LOAD_ERROR, with backoff)
        log.error("dirty worker %s: the Ray actor of %s died (%s): stopping, to be replaced",
                  self.pid, app_path, str(exc).strip().splitlines()[-1] if str(exc).strip() else exc)
        self._exit_code = ACTOR_LOST
        if self.board is not None:
            self.board.set_state(self.slot, sb.SlotState.DRAINING)
        self._request_stop(StopMode.GRACEFUL)

    def _wait_for_stop(self, dispatcher: Dispatcher) -> None:
        """Main thread: handle signals; on a graceful stop, drain then return."""
        while True:
            if self._stop is StopMode.QUICK:
                return
            timeout: float | None = None
            if self._stop is StopMode.GRACEFUL:
                if dispatcher.accepting:
                    dispatcher.stop_accepting()
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self.socket_path)
                    if self.board is not None:
                        self.board.set_state(self.slot, sb.SlotState.DRAINING)
                waited = time.monotonic() - self._stop_at
                idle = dispatcher.inflight == 0 and (self.batcher is None or self.batcher.idle())
                if idle and waited >= DRAIN_LINGER:
                    return
                if waited >= self.cfg.dirty_graceful_timeout:
                    log.warning("dirty worker %s: calls still running after dirty_graceful_timeout",
                                self.pid)
                    return
                timeout = 0.02
            select.select([self._wake_r], [], [], timeout)
            with contextlib.suppress(OSError):
                os.read(self._wake_r, 512)

    def _install_signals(self) -> None:
        rfd, wfd = os.pipe()
        os.set_blocking(rfd, False)
        os.set_blocking(wfd, False)
        self._wake_r, self._wake_w = rfd, wfd
        signal.set_wakeup_fd(wfd)
        signal.signal(signal.SIGTERM, lambda *_: self._request_stop(StopMode.GRACEFUL))
        signal.signal(signal.SIGINT, lambda *_: self._request_stop(StopMode.QUICK))
        signal.signal(signal.SIGQUIT, lambda *_: self._request_stop(StopMode.QUICK))
        signal.signal(signal.SIGUSR1, lambda *_: reopen_log_files())
        for sig in (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGWINCH):
            signal.signal(sig, signal.SIG_IGN)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)

    def _request_stop(self, how: StopMode) -> None:
        if how > self._stop:
            if not self._stop:
                self._stop_at = time.monotonic()
            self._stop = how
            self.alive = False
        try:
            os.write(self._wake_w, b"s")
        except OSError:
            pass  # pipe full: the loop is waking up anyway

    def _listen(self) -> socket.socket:
        try:
            os.unlink(self.socket_path)
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            sock.bind(self.socket_path)
        finally:
            os.umask(old)
        sock.listen(1024)
        sock.setblocking(False)
        return sock

    def _reply_error(self, conn: WorkerConn, rid: int, err: DirtyError) -> None:
        assert self.dispatcher is not None
        self.dispatcher.reply_error(conn, rid, err)

    def _release_slot(self) -> None:
        assert self.dispatcher is not None
        self.dispatcher.release()

    def _reply_result(self, conn: WorkerConn, rid: int, value: Any, app_path: str,
                      action: str) -> list[Any] | None:
        """Encode a batched caller's RESULT frame (None: refused, an ERROR was sent instead)."""
        return self._encode_value(conn, rid, MsgType.RESULT, value, app_path, action)

    def _accept_batch(self, conn: WorkerConn, rid: int, payload: Any, received: float) -> None:
        """A BATCH frame (read by any dispatch thread, slot or not): into its action's batch."""
        try:
            app_path, action, args, kwargs, timeout = parse_call(self.codec.decode(payload))
        except (DirtyError, ValueError, TypeError) as exc:
            log.warning("dirty worker %s: refusing a malformed call: %s", self.pid, exc)
            self._reply_error(conn, rid, DirtyProtocolError(f"malformed call: {exc}"))
            self.stats.refuse(self._series(cs.UNKNOWN, cs.UNKNOWN))
            return
        app = self.apps.get(app_path)
        spec = batch_spec(_action(app, action)) if app is not None else None
        if spec is None:
            # Not (or no longer, after a reload) batched here: an ordinary call, run on a slot.
            assert self.dispatcher is not None
            self.dispatcher.accept_call(conn, rid, payload)
            return
        self._add_batched(conn, rid, app, app_path, action, spec, args, kwargs, timeout, received)

    def _add_batched(self, conn: WorkerConn, rid: int, app: Any, app_path: str, action: str,
                     spec: BatchSpec, args: tuple[Any, ...], kwargs: dict[str, Any],
                     timeout: float | None, received: float) -> None:
        if kwargs:
            self._reply_error(conn, rid, DirtyAppError(
                f"batched action {app_path}.{action} takes positional arguments only "
                f"(got keyword arguments {sorted(kwargs)})", {"app_path": app_path, "action": action}))
            rec = self._series(app_path, action)
            self.stats.begin(rec)
            self.stats.end(rec, cs.ERROR, time.monotonic() - received)
            return
        limit = self.cfg.dirty_timeout or None
        if not timeout or timeout <= 0 or (limit is not None and timeout > limit):
            timeout = limit
        deadline = received + timeout if timeout else float("inf")
        assert self.batcher is not None
        self.batcher.add(conn, rid, app_path, action, getattr(app, action), spec, args, deadline, timeout)

    def _run_call(self, conn: WorkerConn, rid: int, payload: Any, received: float) -> None:
        if conn is None:  # a batch the batcher queued for a slot
            payload()
            return
        ident = threading.get_ident()
        try:
            self._execute(conn, rid, payload, received, ident)
        finally:
            self._running.pop(ident, None)

    def _series(self, app_path: str, action: str) -> int:
        """The stats record of a call; names this worker does not serve share one label."""
        app = self.apps.get(app_path)
        if app is None:
            return self.stats.series(cs.UNKNOWN, cs.UNKNOWN)
        return self.stats.series(app_path, action if _action(app, action) is not None else cs.UNKNOWN)

    def _count_refused(self, payload: Any) -> None:
        """The dispatcher refused a CALL before it started (queue full, oversize): count it."""
        app_path = action = cs.UNKNOWN
        if payload is not None:
            with contextlib.suppress(DirtyError, ValueError, TypeError):
                app_path, action, _a, _k, _t = parse_call(self.codec.decode(payload))
        self.stats.refuse(self._series(app_path, action))

    def _execute(self, conn: WorkerConn, rid: int, payload: Any, received: float, ident: int) -> None:
        stats = self.stats
        try:
            app_path, action, args, kwargs, timeout = parse_call(self.codec.decode(payload))
        except (DirtyError, ValueError, TypeError) as exc:
            log.warning("dirty worker %s: refusing a malformed call: %s", self.pid, exc)
            self._reply_error(conn, rid, DirtyProtocolError(f"malformed call: {exc}"))
            stats.refuse(self._series(cs.UNKNOWN, cs.UNKNOWN))
            return
        limit = self.cfg.dirty_timeout or None
        if not timeout or timeout <= 0 or (limit is not None and timeout > limit):
            timeout = limit  # the pool's limit wins over a longer one asked by the caller
        deadline = received + timeout if timeout else float("inf")
        app = self.apps.get(app_path)
        spec = batch_spec(_action(app, action)) if app is not None else None
        if spec is not None and conn.alive and rid not in conn.cancelled \
                and time.monotonic() <= deadline:
            # a plain CALL to a batched action (an older client): batch it too (counted there)
            self._add_batched(conn, rid, app, app_path, action, spec, args, kwargs, timeout, received)
            return
        rec = self._series(app_path, action)
        stats.begin(rec)
        outcome = cs.ERROR
        try:
            outcome = self._execute_call(conn, rid, app, app_path, action, args, kwargs, timeout,
                                         deadline, ident)
        finally:
            now = time.monotonic()
            if outcome == cs.OK and now > deadline:
                outcome = cs.TIMEOUT  # its caller gave up at the deadline: it got a timeout
            stats.end(rec, outcome, now - received)

    def _execute_call(self, conn: WorkerConn, rid: int, app: Any, app_path: str, action: str,
                      args: tuple[Any, ...], kwargs: dict[str, Any], timeout: float | None,
                      deadline: float, ident: int) -> int:
        """Run one parsed call and answer it; returns its outcome (callstats.OK, ERROR...)."""
        if rid in conn.cancelled or not conn.alive:
            return cs.CANCELLED
        if time.monotonic() > deadline:
            # The caller has given up already: do not start work nobody waits for.
            self._reply_error(conn, rid, DirtyTimeoutError(
                f"call to {app_path}.{action} expired after {timeout} s before it could start",
                timeout=timeout))
            return cs.TIMEOUT
        if app is None:
            self._reply_error(conn, rid, DirtyAppNotFoundError(
                f"dirty app {app_path!r} is not loaded in worker {self.pid}",
                {"app_path": app_path, "action": action}))
            return cs.ERROR
        self._running[ident] = deadline
        try:
            result = app(action, *args, **kwargs)
            if inspect.iscoroutine(result):
                result = thread_loop().run_until_complete(result)
            if inspect.isgenerator(result) or inspect.isasyncgen(result):
                return self._stream(conn, rid, result, timeout, ident, app_path, action)
        except Exception as exc:  # the app's error goes back to the caller, with its traceback
            self._reply_error(conn, rid, app_error(app_path, action, exc))
            return cs.ERROR
        bufs = self._encode_value(conn, rid, MsgType.RESULT, result, app_path, action)
        if bufs is None:
            return cs.ERROR  # refused (cannot encode, too large): an ERROR went instead
        conn.send(bufs)
        return cs.OK

    def _encode_value(self, conn: WorkerConn, rid: int, mtype: int, value: Any,
                      app_path: str, action: str) -> list[Any] | None:
        try:
            bufs, size = self.codec.encode_frame(mtype, rid, value)
        except (TypeError, ValueError, DirtyError) as exc:
            self._reply_error(conn, rid, app_error(app_path, action, exc))
            return None
        over = check_size(value, size, self.max_size)
        if over is not None:
            self._reply_error(conn, rid, DirtyMessageTooLargeError(
                f"reply of {over} bytes from {app_path}.{action} exceeds dirty_max_message_size "
                f"of {self.max_size} bytes", size=over, limit=self.max_size))
            return None
        if mtype != MsgType.CHUNK:
            self._release_slot()
        return bufs  # type: ignore[no-any-return]

    def _stream(self, conn: WorkerConn, rid: int, gen: Any, timeout: float | None, ident: int,
                app_path: str, action: str) -> int:
        is_async = inspect.isasyncgen(gen)
        loop = thread_loop() if is_async else None
        try:
            while True:
                if rid in conn.cancelled or not conn.alive:
                    return cs.CANCELLED
                try:
                    item = loop.run_until_complete(gen.__anext__()) if loop else next(gen)
                except (StopIteration, StopAsyncIteration):
                    self._release_slot()
                    conn.send(frame_buffers(MsgType.END, rid, []))
                    return cs.OK
                except Exception as exc:  # raised midway: error after the chunks already sent
                    self._reply_error(conn, rid, app_error(app_path, action, exc))
                    return cs.ERROR
                bufs = self._encode_value(conn, rid, MsgType.CHUNK, item, app_path, action)
                if bufs is None:
                    return cs.ERROR  # refused: the ERROR frame ended the stream
                if not conn.send(bufs):
                    return cs.CANCELLED  # the caller has gone
                if timeout:
                    self._running[ident] = time.monotonic() + timeout
        finally:
            if loop:
                loop.run_until_complete(gen.aclose())
            else:
                gen.close()

    def _heartbeat_loop(self) -> None:
        timeout = self.cfg.dirty_timeout
        interval = min(1.0, max(0.05, timeout / 4)) if timeout else 1.0
        interval = min(interval, 0.5)
        while True:
            now = time.monotonic()
            if self.board is not None:
                self.board.beat(self.slot, now)
                overdue = sum(1 for d in list(self._running.values()) if now > d + OVERDUE_GRACE)
                self.board.set_i64(self.slot, sb.OVERDUE, overdue)
            if os.getppid() != self.ppid:
                log.warning("dirty worker %s: arbiter %s is gone, stopping", self.pid, self.ppid)
                self._request_stop(StopMode.GRACEFUL)
                threading.Timer(max(0.1, self.cfg.dirty_graceful_timeout), os._exit, (1,)).start()
                return
            time.sleep(interval)


def parse_call(value: Any) -> tuple[str, str, tuple[Any, ...], dict[str, Any], float | None]:
    """Check a CALL payload's shape: ``[app_path, action, args, kwargs, timeout]``."""
    if type(value) not in (list, tuple) or len(value) != 5:
        raise DirtyProtocolError("a call is [app_path, action, args, kwargs, timeout]")
    app_path, action, args, kwargs, timeout = value
    if type(app_path) is not str or type(action) is not str:
        raise DirtyProtocolError("a call's app_path and action must be str")
    if type(args) not in (list, tuple):
        raise DirtyProtocolError("a call's args must be a tuple")
    if kwargs is None:
        kwargs = {}
    if type(kwargs) is not dict or not all(type(k) is str for k in kwargs):
        raise DirtyProtocolError("a call's kwargs must be a dict with str keys")
    if timeout is not None and (type(timeout) not in (int, float) or timeout != timeout):
        raise DirtyProtocolError("a call's timeout must be a number or None")
    return app_path, action, tuple(args), kwargs, timeout


def _action(app: Any, action: str) -> Any:
    """The method ``action`` of ``app`` if it is a public action, else None."""
    if not action or action.startswith("_") or action in ("init", "close", "workers", "stashes",
                                                          "resources"):
        return None
    return getattr(app, action, None)


def reopen_log_files() -> None:
    """USR1: close file handlers so they reopen on the next record (log rotation)."""
    for logger in [logging.getLogger()] + [logging.getLogger(n) for n in logging.root.manager.loggerDict]:
        for handler in getattr(logger, "handlers", []):
            if isinstance(handler, logging.FileHandler):
                handler.acquire()
                try:
                    handler.close()
                finally:
                    handler.release()
    sys.stderr.flush()


def set_process_title(title: str) -> None:
    """Set the process title when setproctitle is installed (optional)."""
    try:
        import setproctitle
    except ImportError:
        return
    setproctitle.setproctitle(title)
