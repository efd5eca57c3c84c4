"""`Arbiter`: the pre-fork master. It binds, forks, watches and replaces workers.

The master never touches a client socket. Everything it learns about a
worker comes from signals, exit codes and the worker's heartbeat file.
Signal handlers only queue the signal; `run()`'s loop acts on it.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from gcorn.arbiter import reexec as _reexec
from gcorn.arbiter.bootguard import BootGuard
from gcorn.arbiter.children import ChildrenMixin
from gcorn.arbiter.commands import ControlCommands
from gcorn.arbiter.contracts import ServerLog, Settings, graceful_timeout, setting
from gcorn.arbiter.control import ControlServer
from gcorn.arbiter.daemon import daemonize
from gcorn.arbiter.errors import ArbiterError, BindError, HaltServer
from gcorn.arbiter.listeners import Listener, adopt_fds, create_listeners, serves, systemd_fds
from gcorn.arbiter.memory import MemoryCap
from gcorn.arbiter.pidfile import Pidfile
from gcorn.arbiter.proctitle import set_process_title
from gcorn.arbiter.scoreboard import Scoreboard
from gcorn.arbiter.sdnotify import reloading_state, sd_notify
from gcorn.arbiter.side import SideProcess
from gcorn.arbiter.signals import SignalQueue, fork_with_signals_blocked, restore_signal_mask

ReloadFn = Callable[[], tuple[Any, Any, Any]]

SIGNAL_NAMES = {
    int(sig): sig.name[3:].lower() for sig in signal.Signals if not sig.name.startswith("SIG_")
}



class Arbiter(ChildrenMixin):
    """The master process: `Arbiter(cfg, log, app, reload=fn).run()` returns the exit code."""

    START_CTX = _reexec.START_CTX
    # a listener stays busy this many times, a second apart, before start fails
    BIND_RETRIES = 5
    BIND_RETRY_DELAY = 1.0

    def __init__(self, cfg: Settings, log: ServerLog, app: Any, reload: ReloadFn | None = None) -> None:
        self.cfg = cfg
        self.log = log
        self.app = app
        self._reload_fn = reload
        self.pid = 0
        self.WORKERS: dict[int, Any] = {}
        self.LISTENERS: list[Listener] = []
        self.SIDE_PROCESSES: list[SideProcess] = []
        self.worker_age = 0
        self.reexec_pid = 0
        self.master_pid = 0  # the old master, while this one is a USR2 child
        self.master_name = "Master"
        self.systemd = False
        self.pidfile: Pidfile | None = None
        self._num_workers: int | None = None
        self._signals = SignalQueue()
        self._stop: tuple[bool, int] | None = None
        self._stop_reason: str | None = None  # gunicorn's `Reason:` line at shutdown
        self._stopping = False
        self._env_saved: dict[str, str | None] = {}
        self._retiring: dict[int, float] = {}  # pid -> when to SIGKILL it
        self._aborted_at: dict[int, float] = {}  # pid -> when SIGABRT was sent
        self._booted: set[int] = set()
        self._old_generation: set[int] = set()
        self._generation_deadline = 0.0
        self._reported_workers = -1
        self._guard = BootGuard()
        # per-worker counters in shared memory, read by the control socket (and metrics)
        self.scoreboard = Scoreboard()
        self.stats: dict[str, Any] = {
            "start_time": time.time(), "workers_spawned": 0, "workers_killed": 0,
            "workers_recycled_memory": 0, "workers_timed_out": 0, "workers_crashed": 0,
            "reloads": 0, "requests_of_exited": 0,
        }
        # what the embedding program tells ctl clients (the cli: "dirty_socket")
        self.control_info: dict[str, Any] = {}
        self._control: ControlServer | None = None
        self._memory_cap = MemoryCap()
        self._next_memory_check = 0.0
        self._recycled_for_memory: set[int] = set()
        self._read_cfg()

    # -- settings ------------------------------------------------------------

    def _read_cfg(self) -> None:
        cfg = self.cfg
        self.timeout = float(setting(cfg, "timeout", 30))
        self.graceful_timeout = graceful_timeout(cfg)
        self.proc_name = str(
            setting(cfg, "proc_name", None) or setting(cfg, "default_proc_name", "gcorn")
        )
        self._guard.limit = int(setting(cfg, "boot_failure_limit", 5))
        self._guard.window = float(setting(cfg, "boot_failure_window", 60.0))
        self.worker_class = setting(cfg, "worker_class", None)
        self._memory_cap = MemoryCap.from_cfg(cfg)
        if self.master_pid:
            self.proc_name += ".2"

    @property
    def num_workers(self) -> int:
        """The target number of workers; assigning it calls `nworkers_changed`."""
        return self._num_workers or 0

    @num_workers.setter
    def num_workers(self, value: int) -> None:
        old = self._num_workers
        self._num_workers = value
        self._hook("nworkers_changed", self, value, old)

    def _hook(self, name: str, *args: Any) -> None:
        fn = getattr(self.cfg, name, None)
        if fn is None:
            return
        try:
            fn(*args)
        except Exception:
            self.log.exception("Exception in the %s hook", name)

    def _notify_systemd(self, state: str) -> None:
        try:
            sd_notify(state)
        except OSError as exc:
            self.log.warning("sd_notify(%s) failed: %s", state.split("\n")[0], exc)

    def _apply_env(self) -> None:
        """Undo the previous raw_env values, then apply cfg.env (so HUP restores)."""
        for key, old in self._env_saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
        self._env_saved = {}
        for key, value in (setting(self.cfg, "env", {}) or {}).items():
            self._env_saved[key] = os.environ.get(key)
            os.environ[key] = value

    def _set_title(self) -> None:
        set_process_title(f"master [{self.proc_name}]")

    # -- public ----------------------------------------------------------------

    def add_side_process(self, side: SideProcess) -> None:
        """Supervise `side`: started with the master (or at the next loop if running)."""
        if any(s.name == side.name for s in self.SIDE_PROCESSES):
            raise ValueError(f"a side process named {side.name!r} is already registered")
        self.SIDE_PROCESSES.append(side)
        self._signals.wake()

    def stop(self, graceful: bool = True, exit_code: int = 0) -> None:
        """Ask the main loop to stop (graceful: TERM workers; else QUIT)."""
        if self._stop is None or not graceful:
            self._stop = (graceful, exit_code)
        self._signals.wake()

    def halt(self, reason: str | None = None, exit_status: int = 0) -> None:
        """Stop gracefully and make run() return `exit_status` (gunicorn's name)."""
        if reason:
            self.log.info("Halting: %s", reason)
        self.stop(graceful=True, exit_code=exit_status)

    def kill_worker(self, pid: int, sig: int) -> None:
        """Send `sig` to one worker (ignored if it is already gone)."""
        self._kill(pid, sig)

    def kill_workers(self, sig: int) -> None:
        """Send `sig` to every worker."""
        self._kill_all(sig)

    def run(self) -> int:
        """Start, supervise until told to stop, stop; return the process exit code."""
        try:
            self.start()
        except ArbiterError as exc:
            self.log.error("%s", exc.message)
            self._close_after_failed_start()
            return exc.exit_code
        except Exception:
            self.log.exception("The arbiter failed to start")
            self._close_after_failed_start()
            return 1
        try:
            self._manage_workers()
            self._notify_systemd(f"READY=1\nSTATUS=gcorn master {self.pid} running")
            self.scoreboard.set_ready(True, self.pid)  # the metrics' gcorn_up
            while self._stop is None:
                self._wait_and_serve_control()
                self._tick()
        except ArbiterError as exc:
            self.log.error("%s", exc.message)
            self._stop = (False, exc.exit_code)
            self._stop_reason = exc.reason
        except Exception:
            self.log.exception("Unhandled exception in the arbiter's main loop")
            self._stop = (False, 1)
        graceful, code = self._stop or (False, 1)
        self._shutdown(graceful, code)
        return code

    def _wait_and_serve_control(self) -> None:
        """Sleep in select on the signal pipe and the control socket; serve ctl clients."""
        control = self._control
        if control is None:
            self._signals.wait(self._sleep_time())
            return
        timeout = self._sleep_time()
        deadline = control.next_deadline()
        if deadline is not None:
            timeout = min(timeout, max(0.0, deadline - time.monotonic()))
        readable, writable = self._signals.wait(timeout, control.read_fds(), control.write_fds())
        control.poll(readable, writable)

    def _tick(self) -> None:
        """One pass of the main loop."""
        self._handle_signals()
        if self._stop is not None:
            return
        self._reap()
        if self._stop is not None:
            return
        self._maybe_promote()
        self._check_heartbeats()
        self._check_memory()
        self._retire_old_generation()
        self._manage_workers()
        self._manage_side_processes()

    def _sleep_time(self) -> float:
        interval = 1.0 if self.timeout <= 0 else min(1.0, max(0.05, self.timeout / 4))
        now = time.monotonic()
        dues = [self._guard.next_spawn_at] + [s.next_start_at for s in self.SIDE_PROCESSES if not s.pid]
        for due in dues:
            if due > now:
                interval = min(interval, due - now)
        return interval

    # -- start -----------------------------------------------------------------

    def start(self) -> None:
        """Daemonize if asked, write the pidfile, bind, start side processes, when_ready."""
        inherited_fds, self.master_pid = _reexec.inherited_state(os.environ)
        if self.master_pid:
            self.master_name = "Master.2"
            self._read_cfg()
        if setting(self.cfg, "daemon", False) and not self.master_pid:
            if os.environ.get("NOTIFY_SOCKET"):
                self.log.warning("daemon mode with NOTIFY_SOCKET set: systemd loses the master")
            daemonize(bool(setting(self.cfg, "enable_stdio_inheritance", False)))
        self.pid = os.getpid()
        chdir = setting(self.cfg, "chdir", None)
        if chdir:
            try:
                os.chdir(chdir)
            except OSError as exc:
                raise HaltServer(f"cannot chdir to {chdir}: {exc.strerror}") from exc
        if self.worker_class is None:
            raise HaltServer("cfg.worker_class is not set: nothing to fork")
        self._apply_env()
        self.log.info("Starting gcorn arbiter (pid: %s)", self.pid)
        self._write_pidfile()
        self._hook("on_starting", self)
        self._signals.install()
        self._open_listeners(inherited_fds)
        for listener in self.LISTENERS:
            self.log.info("Listening at: %s (%s)", listener, self.pid)
        self.log.info("Using worker: %s", setting(self.cfg, "worker_class_str", self.worker_class))
        self._set_title()
        self._open_control()
        self.num_workers = int(setting(self.cfg, "workers", 1))
        self._manage_side_processes()
        self._hook("when_ready", self)

    def _control_wanted(self) -> ControlServer | None:
        """The control socket the settings ask for (not opened yet), or None when off."""
        if setting(self.cfg, "control_socket_disable", False):
            return None
        path = setting(self.cfg, "control_socket", "")
        if not path:
            return None
        mode = int(setting(self.cfg, "control_socket_mode", 0o600))
        return ControlServer(str(path), mode, self.log, ControlCommands(self))

    def _open_control(self) -> None:
        """Serve the control socket unless it is disabled; a failure is logged, not fatal."""
        if self._control is not None:
            return
        server = self._control_wanted()
        if server is not None and self._bind_control(server):
            self._control = server

    def _bind_control(self, server: ControlServer) -> bool:
        """Open `server`'s socket and log where; False (logged) when it cannot be."""
        try:
            server.open()
        except OSError as exc:
            if self.master_pid:
                self.log.info("Control socket %s stays with the old master until it exits",
                              server.path)
            else:
                self.log.warning("Control socket %s not served: %s", server.path, exc)
            return False
        self.log.info("Control socket listening at %s", server.path)
        return True

    def _reload_control(self) -> None:
        """HUP: serve the control socket the new settings ask for: a new path, mode, or none.

        A new path is opened before the old socket is closed (and its file removed),
        so that a path that cannot be served leaves the running socket in place.
        """
        current = self._control
        wanted = self._control_wanted()
        if current is not None and wanted is not None and wanted.path == current.path:
            if wanted.mode != current.mode:
                try:
                    os.chmod(current.path, wanted.mode)
                except OSError as exc:
                    self.log.warning("Control socket %s: mode %o not applied: %s",
                                     current.path, wanted.mode, exc)
                    return
                current.mode = wanted.mode
                self.log.info("Control socket %s: mode now %o", current.path, wanted.mode)
            return
        if wanted is not None and not self._bind_control(wanted):
            if current is not None:
                self.log.warning("Control socket stays at %s", current.path)
            return
        if current is not None:
            current.close()
            self.log.info("Control socket %s closed", current.path)
        self._control = wanted

    def _write_pidfile(self) -> None:
        path = setting(self.cfg, "pidfile", None)
        if not path:
            return
        if self.master_pid:
            path = f"{path}.2"
        self.pidfile = Pidfile(path)
        self.pidfile.create(self.pid, allowed=(self.master_pid,) if self.master_pid else ())

    def _open_listeners(self, inherited_fds: list[int]) -> None:
        if inherited_fds:
            self.LISTENERS = adopt_fds(inherited_fds, self.cfg, owns_path=True)
            return
        sd_fds = systemd_fds(os.environ)
        if sd_fds:
            self.systemd = True
            self.LISTENERS = adopt_fds(sd_fds, self.cfg, owns_path=False)
            self.log.debug("Using %d socket(s) from systemd", len(sd_fds))
            return
        binds = list(setting(self.cfg, "bind", ["127.0.0.1:8000"]))
        self.LISTENERS = create_listeners(
            binds, self.cfg, self.log, self.BIND_RETRIES, self.BIND_RETRY_DELAY
        )
        for spec, listener in zip(binds, self.LISTENERS, strict=True):
            listener.spec = spec

    def _close_after_failed_start(self) -> None:
        if self._control is not None:
            self._control.close()
            self._control = None
        for listener in self.LISTENERS:
            listener.close()
        self.LISTENERS = []
        if self.pidfile is not None:
            self.pidfile.unlink()

    # -- signals ---------------------------------------------------------------

    def _handle_signals(self) -> None:
        while (sig := self._signals.pop()) is not None:
            if sig == signal.SIGCHLD:
                continue  # reaping happens every loop
            name = SIGNAL_NAMES.get(sig, str(sig))
            handler = getattr(self, f"handle_{name}", None)
            if handler is None:
                self.log.warning("Ignoring unknown signal %s", name)
                continue
            self.log.info("Handling signal: %s", name)
            handler()
            if self._stop is not None:
                return

    def handle_term(self) -> None:
        """TERM: graceful stop."""
        self.stop(graceful=True)

    def handle_int(self) -> None:
        """INT: quick stop."""
        self.stop(graceful=False)

    handle_quit = handle_int

    def handle_hup(self) -> None:
        """HUP: reload the config, start new workers, retire the old ones gracefully."""
        self.reload()

    def handle_ttin(self) -> None:
        """TTIN: one worker more, forked at once."""
        self.num_workers += 1
        # act now, as gunicorn does: several signals can arrive in one wake-up, and
        # a HUP queued after this TTIN would reset num_workers before the loop's
        # _manage_workers() ran, so the TTIN would never fork anything
        self._manage_workers()

    def handle_ttou(self) -> None:
        """TTOU: one worker less (the oldest retires at once), never below one."""
        if self.num_workers > 1:
            self.num_workers -= 1
            self._manage_workers()

    def handle_usr1(self) -> None:
        """USR1: reopen the master's log files and tell every child to do the same."""
        if hasattr(self.log, "reopen_files"):
            self.log.reopen_files()
        self._kill_all(signal.SIGUSR1)
        self._signal_side_processes(signal.SIGUSR1)

    def handle_usr2(self) -> None:
        """USR2: exec a new master on the same listening sockets."""
        self.reexec()

    def handle_winch(self) -> None:
        """WINCH: when daemonized, stop every worker but keep the master."""
        if not setting(self.cfg, "daemon", False):
            self.log.debug("SIGWINCH ignored: not daemonized")
            return
        self.log.info("graceful stop of workers")
        self.num_workers = 0
        for pid in list(self.WORKERS):
            self._retire(pid)

    # -- reload and re-exec ----------------------------------------------------

    def reload(self) -> None:
        """Apply a fresh config (from the reload callable) and replace every worker."""
        self._notify_systemd(reloading_state())
        old_binds = list(setting(self.cfg, "bind", []))
        old_pidfile = setting(self.cfg, "pidfile", None)
        if self._reload_fn is not None:
            try:
                self.cfg, self.log, self.app = self._reload_fn()
            except Exception:
                self.log.exception("Reload failed; keeping the running configuration")
                self._notify_systemd("READY=1")
                return
        self._read_cfg()
        self.stats["reloads"] += 1
        self._apply_env()
        if hasattr(self.log, "reopen_files"):
            self.log.reopen_files()
        new_binds = list(setting(self.cfg, "bind", []))
        if new_binds != old_binds and not self.systemd:
            self._rebind(new_binds)
        self._reload_control()
        self._hook("on_reload", self)
        new_pidfile = setting(self.cfg, "pidfile", None)
        if new_pidfile != old_pidfile:
            if self.pidfile is not None:
                self.pidfile.unlink()
                self.pidfile = None
            self._write_pidfile()
        self._set_title()
        # the current workers keep serving until the new ones have booted
        self._old_generation = set(self.WORKERS) - set(self._retiring)
        self._generation_deadline = time.monotonic() + (self.timeout if self.timeout > 0 else 30.0)
        self.num_workers = int(setting(self.cfg, "workers", 1))
        self._manage_workers()
        self._signal_side_processes(signal.SIGHUP)
        self._notify_systemd("READY=1")

    def _rebind(self, new_binds: list[str]) -> None:
        """Keep the listeners still asked for, bind the new ones, close the rest."""
        keep: list[Listener] = []
        added: list[str] = []
        for spec in new_binds:
            match = next((lst for lst in self.LISTENERS if lst not in keep and serves(lst, spec)), None)
            if match is None:
                added.append(spec)
            else:
                match.spec = spec
                keep.append(match)
        try:
            # no retries: a HUP must not stall the master for seconds
            fresh = create_listeners(added, self.cfg, self.log, retries=1, delay=0.0)
        except BindError as exc:
            self.log.error("%s; keeping the current listeners", exc.message)
            return
        for listener in self.LISTENERS:
            if listener not in keep:
                self.log.info("Closing listener %s", listener)
                listener.close()
        for spec, listener in zip(added, fresh, strict=True):
            listener.spec = spec
            self.log.info("Listening at: %s (%s)", listener, self.pid)
        self.LISTENERS = keep + fresh

    def reexec(self) -> None:
        """Fork a child that execs a new master holding the same listening sockets."""
        if self.reexec_pid:
            self.log.warning("USR2 ignored: a new master (pid %s) is already running", self.reexec_pid)
            return
        if self.master_pid:
            self.log.warning("USR2 ignored: this master is itself a re-exec'd child")
            return
        self.log.info("Re-executing the master")
        pid, mask = fork_with_signals_blocked()
        if pid:
            self.reexec_pid = pid
            return
        code = 1
        try:
            self._signals.close_in_child()
            restore_signal_mask(mask)
            self._hook("pre_exec", self)
            # the new master must start from the original environment
            self._env_saved, saved = {}, self._env_saved
            for key, old in saved.items():
                if old is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = old
            if hasattr(self.log, "close_on_exec"):
                self.log.close_on_exec()
            fds = [listener.fileno() for listener in self.LISTENERS]
            _reexec.exec_new_master(self.START_CTX, fds, self.pid, self.systemd, dict(os.environ))
        except BaseException:
            self.log.exception("Re-exec of the master failed")
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    def _maybe_promote(self) -> None:
        """A USR2 child takes over the plain pidfile and name once the old master is gone."""
        if not self.master_pid or os.getppid() == self.master_pid:
            return
        self.log.info("Master %s is gone; this master (%s) takes over", self.master_pid, self.pid)
        self.master_pid = 0
        self.master_name = "Master"
        self._read_cfg()
        self._open_control()  # the old master removed its socket on the way out
        path = setting(self.cfg, "pidfile", None)
        if self.pidfile is not None and path:
            self.pidfile.rename(path)
        self._set_title()

    # -- stop ----------------------------------------------------------------

    def _shutdown(self, graceful: bool, code: int = 0) -> None:
        self._stopping = True
        self.scoreboard.set_ready(False)
        self._notify_systemd("STOPPING=1")
        # another master (USR2 child or parent) or systemd may still use the sockets
        final = not (self.systemd or self.reexec_pid or self.master_pid)
        for listener in self.LISTENERS:
            if final:
                listener.stop_admitting()  # the workers drain what is queued, nothing more
            listener.close(unlink=final)
        self.LISTENERS = []
        if self._control is not None:
            self._control.close()
            self._control = None
        graceful = self._stop_workers(graceful)
        self._stop_side_processes(graceful)
        self._hook("on_exit", self)
        if self.pidfile is not None:
            self.pidfile.unlink()
        self._signals.close()
        self.scoreboard.close()
        # gunicorn's last lines, at error level when the master stops on a failure
        log_line = self.log.info if code == 0 else self.log.error
        log_line("Shutting down: %s", self.master_name)
        if self._stop_reason is not None:
            log_line("Reason: %s", self._stop_reason)
