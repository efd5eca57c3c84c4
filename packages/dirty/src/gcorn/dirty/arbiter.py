"""The dirty arbiter: supervises the dirty workers, serves the directory and the stash.

It never carries a call: clients read the directory (which worker holds which
app, on which socket) from the arbiter's socket once, then talk to workers
directly and pick the least-busy one from the shared scoreboard. The arbiter
forks, reaps, replaces and recycles workers, and bumps the scoreboard epoch
whenever the set of workers changes.

Embedding: ``run(DirtyConfig(...), hooks) -> int`` runs a pool in the current
process (the target of a side process forked by the gcorn arbiter).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import shutil
import signal
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from gcorn.arbiter.backoff import backoff_delay
from gcorn.arbiter.memory import MIB, MemoryCap, rss_bytes
from gcorn.arbiter.signals import exited_children, fork_with_signals_blocked, restore_signal_mask

from . import callstats as cs
from . import scoreboard as sb
from .app import AppSpec, probe_apps
from .codec import get_codec
from .config import DirtyConfig, Hooks, StopMode, check_stash_backend
from .errors import DirtyConfigError, DirtyError, DirtyMessageTooLargeError, DirtyProtocolError
from .listener import publish_listening_socket
from .pidfile import claim_pidfile, release_pidfile
from .privileges import become_user
from .protocol import FrameParser, MsgType, Oversize, frame_buffers
from .resources import ResourcePool
from .seats import Seat, SeatPlan
from .stash_store import StashBackend, StashStore
from .worker import DirtyWorker, reopen_log_files, set_process_title

log = logging.getLogger("gcorn.dirty.arbiter")

SOCKET_ENV = "GCORN_DIRTY_SOCKET"
# Old workers stay reachable this long after a replacement is announced.
HANDOVER_DELAY = 0.05
# a seat's worker that fails to boot is retried after 0.1 s, 0.2 s, ... up to this
MAX_BACKOFF = 10.0
QUICK_STOP_LIMIT = 2.0
# Each worker needs a scoreboard slot, and its replacement another while they hand over.
MAX_WORKERS = sb.MAX_SLOTS // 2
_READ_SIZE = 256 * 1024


def make_socket_path() -> str:
    """A fresh socket path in a new private (0700) directory, for callers that pick it first."""
    return os.path.join(tempfile.mkdtemp(prefix="gcorn-dirty-"), "arbiter.sock")


def open_stash(cfg: DirtyConfig, tables: list[str]) -> StashBackend:
    """The store of the stash tables: ``dirty_stash_backend``'s, or the arbiter's memory."""
    backend = check_stash_backend(cfg.dirty_stash_backend)
    if backend is None:
        return StashStore(tables)
    from .stash_redis import RedisStashStore
    return RedisStashStore(backend, get_codec(cfg.dirty_codec), tables)


def run(config: DirtyConfig, hooks: Hooks | None = None) -> int:
    """Run a dirty arbiter in this process until it is stopped; return the exit code."""
    try:
        # First of all: whatever the pool creates from here on belongs to the configured user.
        become_user(config.uid, config.gid, config.initgroups, config.dirty_socket)
        arbiter = DirtyArbiter(config, hooks or Hooks())
    except DirtyConfigError as exc:
        log.error("%s", exc)
        return exc.exit_code
    return asyncio.run(arbiter.main())


class DirtyArbiter:
    """Supervisor of one dirty pool (the object hooks receive as ``arbiter``)."""

    def __init__(self, cfg: DirtyConfig, hooks: Hooks) -> None:
        self.cfg = cfg.validate()
        self.hooks = hooks
        self.log = log
        self.pid = os.getpid()
        self.ppid = os.getppid()
        self.specs: list[AppSpec]
        self.specs, stashes = probe_apps(cfg.dirty_apps)
        self.plan = SeatPlan(self.specs)
        if cfg.dirty_workers < self.plan.minimum():
            log.warning("dirty_workers=%d is below the %d workers the apps' N require; using %d",
                        cfg.dirty_workers, self.plan.minimum(), self.plan.minimum())
        self.num_workers = max(cfg.dirty_workers, self.plan.minimum())
        self.demands = {s.path: dict(s.resources) for s in self.specs if s.resources}
        configured = self.cfg.dirty_resources
        self.resources = ResourcePool(configured) if configured is not None else None
        self.ray_head: Any = None  # a LocalHead this arbiter started (ray backend, no address)
        if cfg.dirty_backend == "ray" and cfg.dirty_ray_address is not None:
            from .ray_cluster import check_address
            check_address(cfg.dirty_ray_address)  # unreachable: a config error naming it, at once
        if self.resources is None and self.demands and cfg.dirty_backend == "local":
            log.warning("dirty apps declare resources %s but dirty_resources is not set: "
                        "no slots are given out", self.demands)
        self.stash: StashBackend = open_stash(cfg, stashes)
        # A store that waits on I/O (Redis) answers on these threads, never on the loop that
        # supervises the workers; one connection's requests still answer in order.
        self._stash_threads = (ThreadPoolExecutor(max_workers=8, thread_name_prefix="dirty-stash")
                               if self.stash.blocking else None)
        self.codec = get_codec("safe")  # the arbiter channel always uses the safe codec
        self.workers: dict[int, DirtyWorker] = {}  # pid -> worker, every live child
        self.socket_path = cfg.dirty_socket or make_socket_path()
        sweep_stale_runtime_dirs()
        self.runtime_dir = tempfile.mkdtemp(prefix=f"{RUNTIME_PREFIX}{self.pid}-")
        self.board = sb.Scoreboard.create(os.path.join(self.runtime_dir, "scoreboard"))
        self._free_slots = list(range(sb.MAX_SLOTS - 1, -1, -1))
        self._age = 0
        self._stopping = StopMode.NONE
        self._fds_to_close_in_child: set[int] = set()
        self._client_writers: set[asyncio.StreamWriter] = set()
        self._reload_queue: list[Seat] = []  # seats a HUP still has to replace
        self._memory_cap = MemoryCap.from_cfg(self.cfg, "dirty_max_worker_memory")
        self._next_memory_check = 0.0
        self.retired = cs.RetiredTotals()  # what reaped workers counted (METRICS answers)
        self._metrics_sock: Any = None  # --metrics-bind: the listening TCP socket
        self._metrics_pid = 0  # the child serving it
        self._metrics_next = 0.0

    # ------------------------------------------------------------------ main
    async def main(self) -> int:
        """Serve until stopped; returns the exit code."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._wake = asyncio.Event()
        try:
            claim_pidfile(self.cfg.dirty_pidfile)
            server = await self._listen()
        except DirtyError as exc:
            log.error("%s", exc)
            self.board.close()
            shutil.rmtree(self.runtime_dir, ignore_errors=True)
            release_pidfile(self.cfg.dirty_pidfile)
            return exc.exit_code
        if self.cfg.dirty_metrics_bind:
            from .metrics import bind_metrics
            try:
                self._metrics_sock = bind_metrics(self.cfg.dirty_metrics_bind)
            except DirtyConfigError as exc:
                log.error("%s", exc)
                server.close()
                self._cleanup()
                return exc.exit_code
            self._fds_to_close_in_child.add(self._metrics_sock.fileno())
            host, port = self._metrics_sock.getsockname()[:2]
            log.info("dirty arbiter: metrics on http://%s:%s/metrics",
                     f"[{host}]" if ":" in host else host, port)
        os.environ[SOCKET_ENV] = self.socket_path
        set_process_title(f"dirty-arbiter [{self.cfg.proc_name}]")
        try:
            self.hooks.on_dirty_starting(self)
        except Exception:  # a broken hook stops the start, cleanly and loudly
            log.exception("on_dirty_starting hook failed; stopping")
            server.close()
            self._cleanup()
            return 1
        if self.cfg.dirty_backend == "ray" and self.cfg.dirty_ray_address is None:
            try:
                self._start_ray_head()
            except DirtyConfigError as exc:
                log.error("%s", exc)
                server.close()
                self._cleanup()
                return exc.exit_code
        for sig, handler in ((signal.SIGTERM, self._graceful), (signal.SIGINT, self._graceful),
                             (signal.SIGQUIT, self._quick), (signal.SIGHUP, self.reload),
                             (signal.SIGUSR1, self._reopen), (signal.SIGTTIN, self.add_worker),
                             (signal.SIGTTOU, self.remove_worker), (signal.SIGCHLD, self._reap)):
            loop.add_signal_handler(sig, handler)
        for _ in range(self.num_workers):
            try:
                self._seat_resources(self.plan.add_seat())
            except DirtyConfigError as exc:
                log.error("%s", exc)
                server.close()
                self._cleanup()
                return exc.exit_code
        log.info("dirty arbiter %s serving %s on %s with %d workers x %d threads", self.pid,
                 [s.path for s in self.specs], self.socket_path, self.num_workers, self.cfg.dirty_threads)
        try:
            await self._supervise()
        finally:
            server.close()
            for writer in list(self._client_writers):
                writer.close()  # their handlers see EOF and return before the loop ends
            await asyncio.sleep(0)
            await self._stop_workers()
            self._cleanup()
        return 0

    def _start_ray_head(self) -> None:
        """No dirty_ray_address: a one-node Ray of the pool's own, which the workers connect to."""
        from .ray_cluster import LocalHead

        self.ray_head = LocalHead.start()
        self._fds_to_close_in_child.update(self.ray_head.fds())
        self.cfg = dataclasses.replace(self.cfg, dirty_ray_address=self.ray_head.address)

    async def _listen(self) -> asyncio.AbstractServer:
        sock = publish_listening_socket(self.socket_path, 1024)
        self._fds_to_close_in_child.add(sock.fileno())
        return await asyncio.start_unix_server(self._serve_client, sock=sock, backlog=1024)

    async def _supervise(self) -> None:
        while not self._stopping:
            self._reap()
            now = time.monotonic()
            self._check_workers(now)
            for seat in self.plan.seats:
                if seat.worker is None and seat.pending is None and now >= seat.next_spawn_at:
                    self._spawn(seat)
            if self._metrics_sock is not None and not self._metrics_pid and now >= self._metrics_next:
                self._spawn_metrics()
            if self.cfg.exit_with_parent and os.getppid() != self.ppid:
                log.warning("dirty arbiter: parent %s is gone, stopping", self.ppid)
                self._stopping = StopMode.GRACEFUL
                break
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 0.1)

    # ------------------------------------------------------------ spawning
    def _spawn(self, seat: Seat, replacing: str = "") -> DirtyWorker | None:
        """Fork a worker for ``seat``; ``replacing``: why it replaces the seat's (then pending)."""
        if not self._free_slots:
            log.error("dirty arbiter: scoreboard full (%d workers)", sb.MAX_SLOTS)
            return None
        self._age += 1
        slot = self._free_slots.pop()
        path = os.path.join(self.runtime_dir, f"w{self._age}.sock")
        worker = DirtyWorker(self.cfg, self.hooks, self._age, slot, seat.apps, path, self.board,
                             seat.resources, cs.CallStats.create(), self.demands)
        worker.seat = seat
        self.board.claim(slot, self._age, self.cfg.dirty_threads)
        # Signals stay blocked across fork until the child has its own handlers: the
        # child inherits the event loop's signal wake-up pipe, and a signal landing
        # there would be handled by the arbiter as if it were its own.
        try:
            pid, blocked = fork_with_signals_blocked(_FORWARDED_SIGNALS)
        except OSError:
            self._free_slots.append(slot)
            self.board.release(slot)
            worker.stats.close()
            log.exception("dirty arbiter cannot fork a worker")
            seat.next_spawn_at = time.monotonic() + 1.0
            return None
        if pid == 0:  # child: never returns into the arbiter's event loop
            code = 1
            try:
                signal.set_wakeup_fd(-1)
                for fd in self._fds_to_close_in_child:
                    with contextlib.suppress(OSError):
                        os.close(fd)
                for other in self.workers.values():
                    other.stats.close()  # the other workers' counters are none of this one's business
                code = worker.run(self, unblock=blocked)
            except BaseException:  # the child must reach os._exit whatever happens
                log.exception("dirty worker crashed")
            finally:
                logging.shutdown()
                os._exit(code)
        worker.pid = pid
        self.board.set_i64(slot, sb.PID, pid)
        self.workers[pid] = worker
        if replacing:
            worker.replaces = replacing
            seat.pending = worker
        else:
            seat.worker = worker
        self.board.bump_epoch()
        log.debug("spawned dirty worker %s (age %d) for %s", pid, self._age, list(seat.apps))
        return worker

    def _spawn_metrics(self) -> None:
        """Fork the child that serves --metrics-bind (it asks this arbiter, like any collector)."""
        sock = self._metrics_sock
        try:
            pid, blocked = fork_with_signals_blocked(_FORWARDED_SIGNALS)
        except OSError:
            log.exception("dirty arbiter cannot fork its metrics server")
            self._metrics_next = time.monotonic() + 1.0
            return
        if pid == 0:
            code = 1
            try:
                signal.set_wakeup_fd(-1)
                for sig in _FORWARDED_SIGNALS:
                    signal.signal(sig, signal.SIG_DFL)
                for sig in (signal.SIGHUP, signal.SIGUSR1, signal.SIGTTIN, signal.SIGTTOU):
                    signal.signal(sig, signal.SIG_IGN)
                for fd in self._fds_to_close_in_child - {sock.fileno()}:
                    with contextlib.suppress(OSError):
                        os.close(fd)
                for other in self.workers.values():
                    other.stats.close()
                restore_signal_mask(blocked)
                set_process_title(f"dirty-metrics [{self.cfg.proc_name}]")
                from .metrics import serve_metrics
                code = serve_metrics(sock, self.socket_path, self.pid)
            except BaseException:  # the child must reach os._exit whatever happens
                log.exception("dirty metrics server crashed")
            finally:
                logging.shutdown()
                os._exit(code)
        self._metrics_pid = pid
        log.debug("dirty arbiter: metrics server %s", pid)

    def _reaped_other(self, pid: int, status: int) -> None:
        """A child that is not a worker exited: the metrics server comes back a second later."""
        if pid != self._metrics_pid:
            return
        self._metrics_pid = 0
        if not self._stopping:
            log.error("dirty metrics server %s exited with %s; restarting it in 1 s", pid,
                      os.waitstatus_to_exitcode(status))
            self._metrics_next = time.monotonic() + 1.0

    def _check_workers(self, now: float) -> None:
        timeout = self.cfg.dirty_timeout
        for worker in list(self.workers.values()):
            state = self.board.state(worker.slot)
            seat = worker.seat
            if not worker.booted and state == sb.SlotState.READY:
                worker.booted = True
                seat.failures = 0
                if seat.pending is worker:
                    self._hand_over(seat)
            if worker.kill_at is not None and now >= worker.kill_at:
                log.warning("dirty worker %s did not stop in time: SIGKILL", worker.pid)
                self._kill(worker.pid, signal.SIGKILL)
                worker.kill_at = now + 5.0
                continue
            boot_timeout = self.cfg.dirty_boot_timeout
            if not worker.booted and boot_timeout and now - worker.spawned_at > boot_timeout:
                log.error("dirty worker %s did not finish loading and init() of %s within "
                          "dirty_boot_timeout=%g s: killing it", worker.pid, list(worker.app_paths),
                          boot_timeout)
                worker.exit_reason = "boot_timeout"
                self._kill(worker.pid, signal.SIGKILL)
                worker.kill_at = now + 5.0
                continue
            if timeout and (worker.booted or not boot_timeout):
                # Before boot, dirty_boot_timeout bounds init(); after, the heartbeat does.
                last = self.board.heartbeat(worker.slot) if worker.booted else worker.spawned_at
                if now - max(last, worker.spawned_at) > timeout:
                    log.critical("DIRTY WORKER TIMEOUT (pid:%s): no heartbeat for %.1f s",
                                 worker.pid, now - last)
                    worker.exit_reason = "timeout"
                    self._kill(worker.pid, signal.SIGKILL)
                    worker.kill_at = now + 5.0
                    continue
            if (worker.booted and seat.worker is worker and seat.pending is None
                    and worker.kill_at is None and self.board.get_i64(worker.slot, sb.OVERDUE) > 0):
                log.warning("dirty worker %s runs a call past its deadline: recycling it", worker.pid)
                self._spawn(seat, replacing="overdue")
        self._check_memory(now)

    def _check_memory(self, now: float) -> None:
        """Memory cap: replace a worker over it for N checks in a row (one check a second)."""
        cap = self._memory_cap
        if not cap.enabled or now < self._next_memory_check:
            return
        self._next_memory_check = now + 1.0
        for worker in list(self.workers.values()):
            seat = worker.seat
            if not (worker.booted and seat.worker is worker and seat.pending is None
                    and worker.kill_at is None):
                cap.forget(worker.pid)
                continue
            rss = rss_bytes(worker.pid)
            if cap.check(worker.pid, rss):
                cap.forget(worker.pid)
                log.warning("dirty worker %s uses %.1f MiB of RSS, over dirty_max_worker_memory=%g "
                            "MiB for %d checks in a row: replacing it", worker.pid, (rss or 0) / MIB,
                            self.cfg.dirty_max_worker_memory, cap.checks)
                # the replacement loads its apps and reports READY before _hand_over retires this one
                self._spawn(seat, replacing="memory")

    def _hand_over(self, seat: Seat) -> None:
        """The seat's replacement is ready: route to it, retire the old worker."""
        old, seat.worker, seat.pending = seat.worker, seat.pending, None
        if old is not None and seat.worker is not None:
            self.retired.restart(seat.worker.replaces or "reload")
        if old is not None and old.pid in self.workers:
            self._retire(old)
        self.board.bump_epoch()
        self._reload_next()

    def _retire(self, worker: DirtyWorker, delay: float = HANDOVER_DELAY) -> None:
        self.board.set_state(worker.slot, sb.SlotState.DRAINING)
        self.board.bump_epoch()
        worker.kill_at = time.monotonic() + delay + self.cfg.dirty_graceful_timeout
        self._loop.call_later(delay, self._kill, worker.pid, signal.SIGTERM)

    def _kill(self, pid: int, sig: int) -> None:
        if pid in self.workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def _reap(self) -> None:
        for pid, status in exited_children():
            worker = self.workers.pop(pid, None)
            self._memory_cap.forget(pid)
            if worker is None:
                if self.ray_head is not None and pid == self.ray_head.proc.pid and not self._stopping:
                    log.error("the pool's local Ray head (pid %s) exited with %s: the workers' actors "
                              "are gone", pid, os.waitstatus_to_exitcode(status))
                self._reaped_other(pid, status)
                continue
            code = os.waitstatus_to_exitcode(status)
            # Its final counts move to the retired totals in this same loop turn, so a
            # METRICS answer counts them exactly once.
            self.retired.fold(worker.stats.snapshot())
            worker.stats.close()
            if self.board.state(worker.slot) in (sb.SlotState.READY, sb.SlotState.DRAINING):
                worker.booted = True  # it was READY, even if the supervision loop had not looked yet
            self.board.release(worker.slot)
            self._free_slots.append(worker.slot)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(worker.socket_path)
            seat = worker.seat
            if seat.worker is worker and seat in self.plan.seats and not self._stopping:
                self.retired.restart(worker.exit_reason or ("crash" if worker.booted else "boot_failure"))
            if seat.worker is worker:
                seat.worker = None
                if not worker.booted:
                    seat.failures += 1
                    backoff = backoff_delay(seat.failures, 0.1, MAX_BACKOFF)
                    seat.next_spawn_at = time.monotonic() + backoff
                    log.error("dirty worker %s exited with %s before booting (%d in a row); "
                              "next try in %.1f s", pid, code, seat.failures, backoff)
                elif not self._stopping and worker.kill_at is None:
                    log.warning("dirty worker %s exited unexpectedly with %s; replacing it", pid, code)
            elif seat.pending is worker:
                seat.pending = None
                log.error("replacement dirty worker %s exited with %s before booting; "
                          "keeping the old one", pid, code)
                self._reload_next()
            self.board.bump_epoch()
            try:
                self.hooks.dirty_worker_exit(self, worker)
            except Exception:  # a failing hook must not stop supervision
                log.exception("dirty_worker_exit hook failed")
            self._wake.set()

    # ------------------------------------------------------------- signals
    def _graceful(self) -> None:
        if not self._stopping:
            self._stopping = StopMode.GRACEFUL
        self._wake.set()

    def _quick(self) -> None:
        self._stopping = StopMode.QUICK
        self._wake.set()

    def _reopen(self) -> None:
        reopen_log_files()
        for pid in list(self.workers):
            self._kill(pid, signal.SIGUSR1)

    def _seat_resources(self, seat: Seat) -> None:
        """Give a new seat the resource tokens its apps need (kept for its replacements)."""
        if self.resources is None:
            return
        seat.resources = self.resources.allocate(
            {p: self.demands[p] for p in seat.apps if p in self.demands})
        if seat.resources:
            log.info("dirty arbiter: worker seat %d for %s holds %s", self.plan.seats.index(seat),
                     list(seat.apps), seat.resources)

    def reload(self) -> None:
        """HUP: replace every worker by a new one, handing over once each new one is ready."""
        if self._stopping:
            return
        log.info("dirty arbiter: reloading, replacing %d workers one by one", len(self.plan.seats))
        # One seat at a time, each new worker ready before the old one drains: the pool keeps
        # all its ready workers throughout (the replacement is one extra), and the new code's
        # init() runs in one worker at a time, not in all of them at once.
        self._reload_queue += [s for s in self.plan.seats if s not in self._reload_queue]
        self._reload_next()

    def _reload_next(self) -> None:
        """Start the next replacement of a HUP, if none is in progress."""
        if any(seat.pending is not None for seat in self.plan.seats):
            return
        while self._reload_queue and not self._stopping:
            seat = self._reload_queue.pop(0)
            if seat not in self.plan.seats:
                continue  # removed (TTOU) meanwhile
            if seat.worker is None:
                self._spawn(seat)
                continue  # nothing to hand over: go on with the next
            if self._spawn(seat, replacing="reload") is not None:
                return

    def add_worker(self) -> int:
        """TTIN: one worker more."""
        if self._stopping:
            return 0
        if len(self.plan.seats) >= MAX_WORKERS:
            log.warning("dirty arbiter: cannot add a worker: %d is the most a pool runs", MAX_WORKERS)
            return 0
        seat = self.plan.add_seat()
        try:
            self._seat_resources(seat)
        except DirtyConfigError as exc:  # never over-subscribe: the pool stays as it was
            self.plan.seats.remove(seat)
            log.error("dirty arbiter: cannot add a worker (TTIN): %s", exc)
            return 0
        self.num_workers = len(self.plan.seats)
        self._spawn(seat)
        log.info("dirty arbiter: %d workers (TTIN)", self.num_workers)
        return 1

    def remove_worker(self) -> int:
        """TTOU: one worker less, never below what the apps' N require."""
        seat = self.plan.removable_seat()
        if seat is None:
            log.warning("dirty arbiter: cannot remove a worker: %d is the minimum the apps require",
                        len(self.plan.seats))
            return 0
        self.plan.seats.remove(seat)
        if self.resources is not None:
            self.resources.release(seat.resources)
        self.num_workers = len(self.plan.seats)
        for worker in (seat.worker, seat.pending):
            if worker is not None:
                self._retire(worker)
        log.info("dirty arbiter: %d workers (TTOU)", self.num_workers)
        return 1

    # -------------------------------------------------------------- stopping
    async def _stop_workers(self) -> None:
        if self._metrics_pid:
            pid, self._metrics_pid = self._metrics_pid, 0
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)  # it holds nothing: no need to wait for it politely
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        quick = self._stopping is StopMode.QUICK
        limit = QUICK_STOP_LIMIT if quick else self.cfg.dirty_graceful_timeout
        for pid in list(self.workers):
            self._kill(pid, signal.SIGQUIT if quick else signal.SIGTERM)
        deadline = time.monotonic() + limit
        while self.workers and time.monotonic() < deadline:
            self._reap()
            if self._stopping is StopMode.QUICK and not quick:
                quick = True  # QUIT during a graceful stop: hurry up
                deadline = min(deadline, time.monotonic() + QUICK_STOP_LIMIT)
                for pid in list(self.workers):
                    self._kill(pid, signal.SIGQUIT)
            await asyncio.sleep(0.02)
        for pid in list(self.workers):
            log.warning("dirty worker %s still running at shutdown: SIGKILL", pid)
            self._kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5.0
        while self.workers and time.monotonic() < deadline:
            self._reap()
            await asyncio.sleep(0.02)

    def _cleanup(self) -> None:
        if self.ray_head is not None:
            self.ray_head.stop()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        parent = os.path.dirname(self.socket_path)
        if os.path.basename(parent).startswith("gcorn-dirty-"):
            with contextlib.suppress(OSError):
                os.rmdir(parent)  # the private directory of make_socket_path(), if now empty
        self.board.close()
        if self._metrics_sock is not None:
            self._metrics_sock.close()
        shutil.rmtree(self.runtime_dir, ignore_errors=True)
        release_pidfile(self.cfg.dirty_pidfile)
        if self._stash_threads is not None:
            self._stash_threads.shutdown(wait=False, cancel_futures=True)
        self.stash.close()
        log.info("dirty arbiter %s stopped", self.pid)

    # ------------------------------------------------------- client requests
    def directory(self) -> dict[str, Any]:
        """What clients need to call workers directly."""
        seats = []
        for seat in self.plan.seats:
            w = seat.worker
            seats.append({"apps": list(seat.apps), "slot": w.slot if w else -1,
                          "generation": w.age if w else 0, "socket": w.socket_path if w else ""})
        return {"pid": self.pid, "epoch": self.board.epoch(), "scoreboard": self.board.path,
                "codec": self.cfg.dirty_codec, "max_message_size": self.cfg.dirty_max_message_size,
                "timeout": float(self.cfg.dirty_timeout), "threads": self.cfg.dirty_threads,
                "queue_size": self.cfg.dirty_queue_size, "apps": [s.path for s in self.specs],
                "batched": {s.path: dict(s.batched) for s in self.specs if s.batched},
                "seats": seats}

    def status(self) -> dict[str, Any]:
        """Pool status (pids, apps, state of every worker)."""
        return {"arbiter_pid": self.pid, "worker_count": len(self.plan.seats),
                "backend": self.cfg.dirty_backend, "ray_address": self.cfg.dirty_ray_address,
                "apps": [s.path for s in self.specs],
                "workers": [{"pid": w.pid, "age": w.age, "apps": list(w.app_paths), "booted": w.booted,
                             "state": self.board.state(w.slot).name,
                             "inflight": self.board.get_i64(w.slot, sb.INFLIGHT),
                             "batched": self.board.get_i64(w.slot, sb.BATCHED),
                             "threads": self.cfg.dirty_threads,
                             "calls": self.board.get_i64(w.slot, sb.CALLS),
                             "rss": rss_bytes(w.pid),
                             "resources": {k: [[t, s] for t, s in v] for k, v in (w.resources or {}).items()}}
                            for w in self.workers.values()],
                "ready_apps": self._ready_apps(),
                "boot_failures": {p: max([seat.failures for seat in self.plan.seats if p in seat.apps] or [0])
                                  for p in (s.path for s in self.specs)},
                "resources": None if self.resources is None else {
                    "free": self.resources.free(),
                    "seats": [{"apps": list(seat.apps), "pid": seat.worker.pid if seat.worker else None,
                               "resources": {k: [[t, s] for t, s in v] for k, v in seat.resources.items()}}
                              for seat in self.plan.seats]}}

    def metrics(self) -> dict[str, Any]:
        """Counters and gauges for a Prometheus collector (metrics.py): live workers plus retired."""
        # Served in the loop that folds reaped workers into self.retired: each worker is
        # counted once, live or retired, never both and never neither.
        live = [w.stats.snapshot() for w in self.workers.values()]
        return {"pid": self.pid, "apps": [s.path for s in self.specs],
                "ready": self._ready_apps(),
                "batched": {s.path: dict(s.batched) for s in self.specs if s.batched},
                "workers": [{"apps": list(w.app_paths), "state": self.board.state(w.slot).name,
                             "inflight": self.board.get_i64(w.slot, sb.INFLIGHT),
                             "batched": self.board.get_i64(w.slot, sb.BATCHED),
                             "threads": self.cfg.dirty_threads} for w in self.workers.values()],
                "series": cs.wire_series(self.retired, live),
                "restarts": dict(self.retired.restarts),
                "buckets": {"duration": list(cs.DURATION_BUCKETS),
                            "batch_size": list(cs.BATCH_SIZE_BUCKETS),
                            "batch_wait": list(cs.BATCH_WAIT_BUCKETS)}}

    def _ready_apps(self) -> dict[str, bool]:
        return {s.path: any(seat.worker is not None and s.path in seat.apps
                            and self.board.state(seat.worker.slot) == sb.SlotState.READY
                            for seat in self.plan.seats)
                for s in self.specs}

    def _handle(self, mtype: int, request: Any) -> Any:
        if mtype == MsgType.DIRECTORY:
            return self.directory()
        if mtype == MsgType.METRICS:
            return self.metrics()
        if mtype == MsgType.STASH:
            return self.stash.handle(request)
        if mtype == MsgType.STATUS:
            return self.status()
        if mtype == MsgType.MANAGE:
            op, count = request
            fn = self.add_worker if op == "add" else self.remove_worker if op == "remove" else None
            if fn is None or type(count) is not int or not 1 <= count <= MAX_WORKERS:
                raise DirtyError(f"bad manage request: want ['add' or 'remove', 1..{MAX_WORKERS}]")
            done = 0
            for _ in range(count):
                if not fn():
                    break  # at a bound (minimum or MAX_WORKERS): the rest would fail the same way
                done += 1
            return {"changed": done, "total_workers": len(self.plan.seats)}
        raise DirtyError(f"unexpected frame type {mtype} sent to the dirty arbiter")

    async def _serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Every exit of this loop closes this one connection; nothing a peer sends can
        # keep the loop from reading again (EOF, an error or a bad header end it), so the
        # arbiter's other work never waits on one client.
        parser = FrameParser(self.cfg.dirty_max_message_size)
        self._client_writers.add(writer)
        try:
            while True:
                data = await reader.read(_READ_SIZE)
                if not data:
                    return  # EOF, with or without half a frame: that peer is gone
                try:
                    frames = parser.feed(data)
                except DirtyProtocolError as exc:
                    log.warning("dirty arbiter: closing a client connection: %s", exc)
                    return
                for mtype, rid, payload in frames:
                    if mtype == MsgType.STASH and self._stash_threads is not None:
                        writer.writelines(await self._loop.run_in_executor(
                            self._stash_threads, self._answer, mtype, rid, payload))
                    else:
                        writer.writelines(self._answer(mtype, rid, payload))
                if frames:
                    await writer.drain()
        except (ConnectionError, OSError):
            return
        finally:
            self._client_writers.discard(writer)
            writer.close()

    def _answer(self, mtype: int, rid: int, payload: Any) -> list[Any]:
        """The reply frame to one request (an ERROR frame for anything it cannot serve)."""
        if isinstance(payload, Oversize):
            log.warning("dirty arbiter: refusing an oversized request of %d bytes (limit %d)",
                        payload.size, payload.limit)
            err: DirtyError = DirtyMessageTooLargeError(
                f"request of {payload.size} bytes exceeds dirty_max_message_size of {payload.limit} bytes",
                size=payload.size, limit=payload.limit)
            return frame_buffers(MsgType.ERROR, rid, self.codec.encode(err.to_wire()))
        try:
            result = self._handle(mtype, self.codec.decode(payload) if payload else None)
            return frame_buffers(MsgType.RESULT, rid, self.codec.encode(result))
        except (DirtyError, TypeError, ValueError) as exc:
            err = exc if isinstance(exc, DirtyError) else DirtyError(f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # a bug must cost one request its answer, never the arbiter
            log.exception("dirty arbiter: request of type %s failed", mtype)
            err = DirtyError(f"internal error in the dirty arbiter: {type(exc).__name__}")
        try:
            return frame_buffers(MsgType.ERROR, rid, self.codec.encode(err.to_wire()))
        except (DirtyError, TypeError, ValueError):  # details that cannot travel: send the text only
            return frame_buffers(MsgType.ERROR, rid, self.codec.encode(DirtyError(str(err)).to_wire()))

RUNTIME_PREFIX = "gcorn-dirty-w-"
_FORWARDED_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGUSR1,
                      signal.SIGTTIN, signal.SIGTTOU, signal.SIGCHLD, signal.SIGWINCH}


def sweep_stale_runtime_dirs() -> None:
    """Remove worker directories left in the temp dir by arbiters that died (SIGKILL)."""
    root = tempfile.gettempdir()
    try:
        names = os.listdir(root)
    except OSError:
        return
    for name in names:
        if not name.startswith(RUNTIME_PREFIX):
            continue
        pid_text = name[len(RUNTIME_PREFIX):].split("-", 1)[0]
        path = os.path.join(root, name)
        try:
            if not pid_text.isdigit() or os.stat(path).st_uid != os.getuid():
                continue
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            log.info("removing stale dirty pool directory %s", path)
            shutil.rmtree(path, ignore_errors=True)
        except OSError:
            continue  # alive but not ours to signal, or vanished meanwhile
