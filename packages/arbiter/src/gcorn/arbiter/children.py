"""The arbiter's children: forking, reaping, heartbeats, retiring and stopping.

Split from arbiter.py so the lifecycle (start, signals, reload, re-exec)
and the per-child bookkeeping each have one home. `ChildrenMixin` is only
used as a base of `Arbiter` and relies on its attributes.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import TYPE_CHECKING, Any

from gcorn.arbiter.contracts import ServerLog, Settings, setting
from gcorn.arbiter.errors import APP_LOAD_ERROR, WORKER_BOOT_ERROR, CrashLoopError, HaltServer
from gcorn.arbiter.memory import MIB, MemoryCap, rss_bytes
from gcorn.arbiter.parentdeath import set_parent_death_signal
from gcorn.arbiter.proctitle import set_process_title
from gcorn.arbiter.scoreboard import ExitReason, Restart, Scoreboard
from gcorn.arbiter.side import SideProcess
from gcorn.arbiter.signals import exited_children, fork_with_signals_blocked, restore_signal_mask
from gcorn.arbiter.worker import Worker

if TYPE_CHECKING:
    from gcorn.arbiter.bootguard import BootGuard
    from gcorn.arbiter.control import ControlServer
    from gcorn.arbiter.listeners import Listener
    from gcorn.arbiter.signals import SignalQueue

# after SIGABRT a worker gets this long to run worker_abort before SIGKILL
ABORT_GRACE = 1.0
# after SIGKILL, how long the master waits to reap before it gives up
KILL_REAP_LIMIT = 2.0
# the memory cap counts checks at most this often, whatever the loop's pace
MEMORY_CHECK_INTERVAL = 1.0


def exit_code_of(exc: SystemExit) -> int:
    """The process exit code a SystemExit stands for."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def describe_exit(code: int) -> str:
    """'exit code N' or 'signal NAME' for a waitstatus_to_exitcode() value."""
    if code >= 0:
        return f"exit code {code}"
    try:
        return f"signal {signal.Signals(-code).name}"
    except ValueError:
        return f"signal {-code}"


def restart_reason(told: ExitReason, aborted: bool, recycled: bool, crashed: bool,
                   boot_failure: bool, code: int) -> Restart | None:
    """Why a reaped worker is replaced, for the restart counters; None: it was retired."""
    if boot_failure:
        return Restart.BOOT_FAILURE
    if aborted:
        return Restart.TIMEOUT
    if recycled:
        return Restart.MEMORY
    if crashed:
        return Restart.CRASH
    if code == 0 and told is ExitReason.MAX_REQUESTS:
        return Restart.MAX_REQUESTS
    if code == 0 and told is ExitReason.REQUEST_TIMEOUT:
        return Restart.REQUEST_TIMEOUT
    return None


class ChildrenMixin:
    """Worker and side-process bookkeeping for `Arbiter`."""

    # provided by Arbiter
    cfg: Settings
    log: ServerLog
    app: Any
    pid: int
    proc_name: str
    timeout: float
    graceful_timeout: float
    worker_age: int
    worker_class: Any
    reexec_pid: int
    WORKERS: dict[int, Any]
    LISTENERS: list[Listener]
    SIDE_PROCESSES: list[SideProcess]
    _signals: SignalQueue
    _guard: BootGuard
    _stop: tuple[bool, int] | None
    _stopping: bool
    _retiring: dict[int, float]
    _aborted_at: dict[int, float]
    _booted: set[int]
    _old_generation: set[int]
    _generation_deadline: float
    _reported_workers: int
    scoreboard: Scoreboard
    stats: dict[str, Any]
    _control: ControlServer | None
    _memory_cap: MemoryCap
    _next_memory_check: float
    _recycled_for_memory: set[int]

    @property
    def num_workers(self) -> int:  # overridden by Arbiter
        raise NotImplementedError

    @property
    def _worker_timeout(self) -> float:
        # workers beat every timeout/2; with the check off they still wake up
        return self.timeout if self.timeout > 0 else 1_000_000.0

    def _hook(self, name: str, *args: Any) -> None:  # overridden by Arbiter
        raise NotImplementedError

    # -- workers: spawn --------------------------------------------------------

    def _active_workers(self) -> list[Any]:
        skip = self._retiring.keys() | self._old_generation
        return [w for pid, w in self.WORKERS.items() if pid not in skip]

    def _manage_workers(self) -> None:
        """Spawn or retire workers until the active ones match num_workers."""
        if self._stopping:
            return
        active = self._active_workers()
        missing = self.num_workers - len(active)
        if missing > 0 and self._guard.may_spawn():
            for _ in range(missing):
                self.spawn_worker()
                if self._stop is not None:
                    return
        elif missing < 0:
            for worker in sorted(active, key=lambda w: w.age)[:-missing]:
                self._retire(worker.pid)
        self._report_worker_count()

    def _report_worker_count(self) -> None:
        """Log the active worker count when it changes, as gunicorn's `gunicorn.workers` gauge."""
        count = len(self._active_workers())
        if count != self._reported_workers:
            self._reported_workers = count
            metric = {"metric": "gunicorn.workers", "value": count, "mtype": "gauge"}
            self.log.debug("%d workers", count, extra=metric)

    def _worker_label(self) -> str:
        """The worker class as metrics name it: the cli's short name, else the dotted path."""
        for name in ("worker_class_label", "worker_class_str"):
            value = getattr(self.cfg, name, None)
            if value:
                return str(value)
        cls = self.worker_class
        return f"{cls.__module__}.{cls.__qualname__}" if isinstance(cls, type) else "worker"

    def spawn_worker(self) -> int:
        """Fork one worker of cfg.worker_class; returns its pid in the master."""
        self.worker_age += 1
        sockets = [listener.sock for listener in self.LISTENERS]
        try:
            worker = self.worker_class(
                self.worker_age, self.pid, sockets, self.app, self._worker_timeout, self.cfg, self.log
            )
        except OSError as exc:
            tmp_dir = setting(self.cfg, "worker_tmp_dir", None) or "the temp dir"
            raise HaltServer(f"cannot create a worker heartbeat file in {tmp_dir}: {exc}") from exc
        worker.slot = self.scoreboard.claim(self.worker_age, self._worker_label())
        # the detailed counters (methods, statuses, durations) only when metrics are served
        worker.stats = self.scoreboard.stats_for(
            worker.slot, detailed=bool(setting(self.cfg, "metrics_bind", None)))
        self._hook("pre_fork", self, worker)
        try:
            pid, mask = fork_with_signals_blocked()
        except BaseException:
            self.scoreboard.release(worker.slot)
            raise
        if pid:
            worker.pid = pid
            self.WORKERS[pid] = worker
            self.scoreboard.set_pid(worker.slot, pid)
            self.stats["workers_spawned"] += 1
            return pid
        self._run_worker_child(worker, mask)
        raise AssertionError("unreachable: the worker child exits")

    def _close_in_child(self, keep: Any = None) -> None:
        self._signals.close_in_child()
        if self._control is not None:
            self._control.close_in_child()
            self._control = None
        for other in self.WORKERS.values():
            if other is not keep:
                other.tmp.close()

    def _run_worker_child(self, worker: Any, mask: set[signal.Signals | int]) -> None:
        code = 1
        try:
            worker.pid = os.getpid()
            self._close_in_child(keep=worker)
            # the base handlers, before any signal held back during fork is let
            # in: a TERM or USR1 aimed at the new worker must not be lost or kill it
            Worker.init_signals(worker)
            restore_signal_mask(mask)
            set_process_title(f"worker [{self.proc_name}]")
            self.log.info("Booting worker with pid: %s", worker.pid)
            self.cfg.post_fork(self, worker)
            worker.init_process()
            code = 0
        except SystemExit as exc:
            code = exit_code_of(exc)
        except BaseException:
            self.log.exception("Exception in worker process")
            code = 1 if worker.booted else int(WORKER_BOOT_ERROR)
        finally:
            try:
                self.log.info("Worker exiting (pid: %s)", worker.pid)
                self.cfg.worker_exit(self, worker)
            except Exception:
                self.log.exception("Exception in the worker_exit hook")
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)

    # -- workers: watch ----------------------------------------------------------

    def _check_heartbeats(self) -> None:
        """Notice booted workers; ABRT then KILL workers whose heartbeat is too old."""
        now = time.monotonic()
        for pid, worker in list(self.WORKERS.items()):
            try:
                last, booted = worker.tmp.state()
            except OSError as exc:
                self.log.warning("cannot read the heartbeat of worker %s: %s", pid, exc)
                continue
            self.scoreboard.set_heartbeat(getattr(worker, "slot", -1), last)
            if booted and pid not in self._booted:
                self._booted.add(pid)
                self._guard.record_boot()
            if pid in self._aborted_at:
                if now - self._aborted_at[pid] >= ABORT_GRACE:
                    self._kill(pid, signal.SIGKILL)
                    self._aborted_at[pid] = float("inf")
            elif self.timeout > 0 and now - last > self.timeout:
                if pid in self._booted:
                    self.log.critical("WORKER TIMEOUT (pid:%s)", pid)
                else:
                    self.log.critical(
                        "WORKER TIMEOUT (pid:%s) while booting: loading the app took "
                        "longer than timeout=%gs",
                        pid,
                        self.timeout,
                    )
                worker.aborted = True
                self.stats["workers_timed_out"] += 1
                self._aborted_at[pid] = now
                self._kill(pid, signal.SIGABRT)
        for pid, deadline in list(self._retiring.items()):
            if now >= deadline and pid in self.WORKERS:
                self.log.warning("Worker %s ignored TERM for %ss: killing it", pid, self.graceful_timeout)
                self._kill(pid, signal.SIGKILL)
                self._retiring[pid] = float("inf")

    def _check_memory(self) -> None:
        """Measure each worker's RSS (once a second); replace one over the cap N times in a row.

        The replacement is forked first; the old worker gets its graceful TERM
        once the new one has booted, as on HUP, so capacity never dips.
        """
        now = time.monotonic()
        if now < self._next_memory_check:
            return
        self._next_memory_check = now + MEMORY_CHECK_INTERVAL
        cap = self._memory_cap
        replacing = False
        for pid, worker in list(self.WORKERS.items()):
            rss = rss_bytes(pid)
            self.scoreboard.set_rss(getattr(worker, "slot", -1), rss or 0)
            if not cap.enabled or pid in self._retiring or pid in self._old_generation:
                continue
            if pid not in self._booted or not cap.check(pid, rss):
                continue
            cap.forget(pid)
            self.log.warning(
                "Worker (pid:%s) uses %.1f MiB of RSS, over max_worker_memory=%g MiB for %d "
                "checks in a row: replacing it gracefully",
                pid, (rss or 0) / MIB, cap.limit / MIB, cap.checks,
            )
            self.stats["workers_recycled_memory"] += 1
            self._recycled_for_memory.add(pid)
            if not self._old_generation:
                self._generation_deadline = now + (self.timeout if self.timeout > 0 else 30.0)
            self._old_generation.add(pid)
            replacing = True
        if replacing:
            self._manage_workers()  # forks the replacements now

    def _retire_old_generation(self) -> None:
        """After HUP: TERM the old workers once the new ones booted (or after timeout)."""
        self._old_generation &= self.WORKERS.keys()
        if not self._old_generation:
            return
        new = self._active_workers()
        all_booted = all(w.pid in self._booted for w in new)
        if all_booted or time.monotonic() >= self._generation_deadline:
            for pid in sorted(self._old_generation, key=lambda p: self.WORKERS[p].age):
                self._retire(pid)
            self._old_generation.clear()

    def _retire(self, pid: int) -> None:
        """TERM a worker; SIGKILL it if it is still there after graceful_timeout."""
        if pid in self._retiring:
            return
        self._retiring[pid] = time.monotonic() + self.graceful_timeout
        self._kill(pid, signal.SIGTERM)

    def _kill(self, pid: int, sig: int) -> None:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            self.log.debug("kill(%s, %s): already gone", pid, sig)

    def _kill_all(self, sig: int) -> None:
        for pid in list(self.WORKERS):
            self._kill(pid, sig)

    # -- reaping -------------------------------------------------------------------

    def _reap(self) -> None:
        """Collect every child that exited and react to each."""
        for pid, status in exited_children():
            code = os.waitstatus_to_exitcode(status)
            if pid == self.reexec_pid:
                self.log.info("The re-exec'd master (pid %s) exited with %s", pid, describe_exit(code))
                self.reexec_pid = 0
            elif pid in self.WORKERS:
                self._worker_exited(pid, code)
            else:
                side = next((s for s in self.SIDE_PROCESSES if s.pid == pid), None)
                if side is not None:
                    self._side_exited(side, code)
                else:
                    # e.g. a process a hook started without waiting for it
                    self.log.debug("Reaped unknown child %s (%s)", pid, describe_exit(code))

    def _worker_exited(self, pid: int, code: int) -> None:
        worker = self.WORKERS.pop(pid)
        slot = getattr(worker, "slot", -1)
        row = self.scoreboard.read(slot)
        if row is not None:
            self.stats["requests_of_exited"] += row.requests
        self._memory_cap.forget(pid)
        try:
            booted = pid in self._booted or worker.tmp.is_booted()
        except OSError:
            booted = pid in self._booted
        worker._booted = booted  # hooks read worker.booted after tmp is closed
        aborted = pid in self._aborted_at
        by_master = pid in self._retiring or aborted or self._stopping
        recycled = pid in self._recycled_for_memory
        self._recycled_for_memory.discard(pid)
        self._retiring.pop(pid, None)
        self._aborted_at.pop(pid, None)
        self._booted.discard(pid)
        self._old_generation.discard(pid)
        crashed = False
        if code == int(WORKER_BOOT_ERROR):
            self.log.error("Worker (pid:%s) failed to boot.", pid)
        elif code == int(APP_LOAD_ERROR):
            self.log.error("Worker (pid:%s) failed to load the application.", pid)
        elif code == -signal.SIGKILL and not by_master:
            crashed = True
            self.stats["workers_crashed"] += 1
            self.log.error("Worker (pid:%s) was sent SIGKILL! Perhaps out of memory?", pid)
        elif code != 0 and not by_master:
            crashed = True
            self.stats["workers_crashed"] += 1
            self.log.error("Worker (pid:%s) exited with %s", pid, describe_exit(code))
        else:
            self.log.debug("Worker (pid:%s) exited with %s", pid, describe_exit(code))
        # a worker that never booted failed to boot, even when it was aborted for
        # taking longer than `timeout`; one retired by the master did not
        boot_failure = code in (int(WORKER_BOOT_ERROR), int(APP_LOAD_ERROR)) or (
            not booted and code != 0 and (aborted or not by_master)
        )
        restart = None
        if not self._stopping:
            restart = restart_reason(self.scoreboard.exit_reason(slot), aborted, recycled,
                                     crashed, boot_failure, code)
        # the slot's counters go to its class's retired block before the slot is reused
        self.scoreboard.release(slot, restart)
        self._hook("child_exit", self, worker)
        worker.tmp.close()
        if boot_failure and not self._stopping:
            self._boot_failed(code)

    def _boot_failed(self, code: int) -> None:
        if not self._guard.record_failure():
            delay = max(0.0, self._guard.next_spawn_at - time.monotonic())
            self.log.warning("A worker failed to boot; next spawn in %.1fs", delay)
            return
        exit_code = code if code in (int(WORKER_BOOT_ERROR), int(APP_LOAD_ERROR)) else int(WORKER_BOOT_ERROR)
        reason = "could not load the application" if exit_code == int(APP_LOAD_ERROR) else "failed to boot"
        raise CrashLoopError(
            f"Crash loop: {self._guard.recent_failures} workers {reason} within "
            f"{self._guard.window:g}s (boot_failure_limit={self._guard.limit}); "
            "stopping. See the worker errors above.",
            exit_code=exit_code,
        )

    # -- side processes --------------------------------------------------------

    def _manage_side_processes(self) -> None:
        """Start side processes that are not running and whose backoff has passed."""
        if self._stopping:
            return
        for side in self.SIDE_PROCESSES:
            if side.due():
                self._spawn_side(side)

    def _spawn_side(self, side: SideProcess) -> None:
        pid, mask = fork_with_signals_blocked()
        if pid:
            side.started(pid)
            self.log.info("Started side process %s (pid: %s)", side.name, pid)
            return
        code = 1
        try:
            self._close_in_child()
            if side.parent_death_signal is not None:
                set_parent_death_signal(side.parent_death_signal)
                if os.getppid() != self.pid:
                    os._exit(0)  # the master died before the kernel could watch it
            # HUP/USR1 are forwarded, and by default they would kill a side process
            # that has not installed its own handlers yet
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            signal.signal(signal.SIGUSR1, signal.SIG_IGN)
            restore_signal_mask(mask)
            # a side process serves no HTTP: keep the ports free for other masters
            for listener in self.LISTENERS:
                listener.sock.close()
            set_process_title(f"{side.name} [{self.proc_name}]")
            result = side.target(*side.args, **side.kwargs)
            code = result if isinstance(result, int) else 0
        except SystemExit as exc:
            code = exit_code_of(exc)
        except BaseException:
            self.log.exception("Side process %s failed", side.name)
            code = 1
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)

    def _side_exited(self, side: SideProcess, code: int) -> None:
        if self._stopping:
            side.pid = 0
            return
        delay = side.exited()
        self.log.error(
            "Side process %s exited with %s; restarting in %.1fs", side.name, describe_exit(code), delay
        )

    def _signal_side_processes(self, sig: int) -> None:
        for side in self.SIDE_PROCESSES:
            if side.pid:
                self._kill(side.pid, sig)

    # -- stopping ------------------------------------------------------------------

    def _wait_children(self, pids: set[int], graceful: bool, sig_for_quick: int) -> bool:
        """Wait up to graceful_timeout for `pids` to exit; INT/QUIT turns it quick."""
        deadline = time.monotonic() + self.graceful_timeout
        while self._alive(pids) and time.monotonic() < deadline:
            self._signals.wait(0.05)
            while (sig := self._signals.pop()) is not None:
                if graceful and sig in (signal.SIGINT, signal.SIGQUIT):
                    graceful = False
                    for pid in self._alive(pids):
                        self._kill(pid, sig_for_quick)
            self._reap()
        return graceful

    def _alive(self, pids: set[int]) -> set[int]:
        pids &= self.WORKERS.keys() | {s.pid for s in self.SIDE_PROCESSES if s.pid}
        return pids

    def _kill_and_reap(self, pids: set[int]) -> None:
        for pid in self._alive(pids):
            self._kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + KILL_REAP_LIMIT
        while self._alive(pids) and time.monotonic() < deadline:
            time.sleep(0.01)
            self._reap()

    def _stop_workers(self, graceful: bool) -> bool:
        sig = signal.SIGTERM if graceful else signal.SIGQUIT
        pids = set(self.WORKERS)
        for pid in pids:
            self._kill(pid, sig)
        graceful = self._wait_children(pids, graceful, signal.SIGQUIT)
        self._kill_and_reap(pids)
        return graceful

    def _stop_side_processes(self, graceful: bool) -> None:
        pids = {s.pid for s in self.SIDE_PROCESSES if s.pid}
        if not pids:
            return
        sig = signal.SIGTERM if graceful else signal.SIGQUIT
        for pid in pids:
            self._kill(pid, sig)
        self._wait_children(pids, graceful, signal.SIGQUIT)
        self._kill_and_reap(pids)
