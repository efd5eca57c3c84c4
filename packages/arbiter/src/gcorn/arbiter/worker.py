"""`Worker`: the base class of every worker the arbiter forks.

The arbiter knows a worker only through this interface (gunicorn's
constructor signature and attributes); subclasses implement `run()`.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time
from types import FrameType
from typing import Any

from gcorn.arbiter.contracts import ServerLog, Settings, setting
from gcorn.arbiter.errors import APP_LOAD_ERROR, WORKER_BOOT_ERROR, AppImportError, ExitCode
from gcorn.arbiter.heartbeat import Heartbeat
from gcorn.arbiter.privileges import drop_privileges
from gcorn.arbiter.proctitle import set_process_title
from gcorn.arbiter.scoreboard import WorkerStats

# signals whose master-side meaning must not leak into a worker
_DEFAULT_IN_WORKER = (signal.SIGHUP, signal.SIGUSR2, signal.SIGCHLD, signal.SIGTTIN, signal.SIGTTOU)



class Worker:
    """Base worker: signals, heartbeat, privileges, app loading; subclasses serve in run()."""

    # gunicorn exposes the signals it handles on the class
    SIGNALS = [
        getattr(signal, f"SIG{name}")
        for name in ("ABRT", "HUP", "QUIT", "INT", "TERM", "USR1", "USR2", "WINCH", "CHLD")
    ]

    def __init__(
        self,
        age: int,
        ppid: int,
        sockets: list[Any],
        app: Any,
        timeout: float,
        cfg: Settings,
        log: ServerLog,
    ) -> None:
        self.age = age
        self.pid: int | str = "[booting]"
        self.ppid = ppid
        self.sockets = sockets
        self.app = app
        self.timeout = timeout
        self.cfg = cfg
        self.log = log
        self._booted = False
        self.aborted = False
        self.alive = True
        self.nr = 0
        self.wsgi: Any = None
        # the master gives each worker a scoreboard slot before fork (-1: none);
        # the serving code calls stats.begin()/stats.end() around each request
        self.slot = -1
        self.stats = WorkerStats(None, 0)
        max_requests = int(setting(cfg, "max_requests", 0))
        if max_requests > 0:
            jitter = int(setting(cfg, "max_requests_jitter", 0))
            self.max_requests = max_requests + (random.randint(0, jitter) if jitter > 0 else 0)
        else:
            self.max_requests = sys.maxsize
        # beat often enough for the master, but not a syscall per request
        min_interval = min(1.0, timeout / 10.0) if timeout > 0 else 1.0
        self.tmp: Heartbeat = Heartbeat(
            tmp_dir=setting(cfg, "worker_tmp_dir", None),
            uid=setting(cfg, "uid", None),
            gid=setting(cfg, "gid", None),
            umask=int(setting(cfg, "umask", 0)),
            min_interval=min_interval,
        )

    @property
    def booted(self) -> bool:
        """True once the app is loaded; setting it also tells the master (heartbeat flag)."""
        if self._booted:
            return True
        # in the master, the worker's own flag is read from the shared heartbeat file
        try:
            return self.tmp.is_booted()
        except OSError:
            return False

    @booted.setter
    def booted(self, value: bool) -> None:
        self._booted = value
        if value:
            self.tmp.mark_booted()

    def __str__(self) -> str:
        return f"<Worker {self.pid}>"

    # -- the heartbeat ---------------------------------------------------

    def notify(self) -> None:
        """Tell the master this worker is alive; call at least every timeout / 2 seconds."""
        self.tmp.notify()

    def is_parent_alive(self) -> bool:
        """False once the master that forked this worker is gone."""
        return os.getppid() == self.ppid

    def master_gone(self) -> bool:
        """True once the master is gone: then logged, and `alive` is off (every worker's
        heartbeat loop asks this)."""
        if self.is_parent_alive():
            return False
        self.log.info("Parent changed, shutting down: %s", self)
        self.alive = False
        return True

    # -- boot --------------------------------------------------------------

    def init_process(self) -> None:
        """Set up the child (env, title, privileges, signals, app) and call run()."""
        for key, value in (setting(self.cfg, "env", {}) or {}).items():
            os.environ[key] = value
        name = setting(self.cfg, "proc_name", None) or "gcorn"
        set_process_title(f"worker [{name}]")
        drop_privileges(
            setting(self.cfg, "uid", None),
            setting(self.cfg, "gid", None),
            bool(setting(self.cfg, "initgroups", False)),
        )
        # a forked child inherits the parent's random state: reseed
        random.seed()
        self.init_signals()
        self.load_app()
        self.cfg.post_worker_init(self)
        self.booted = True
        self.notify()
        self.run()

    def init_signals(self) -> None:
        """Install the worker's signal handlers (TERM, INT/QUIT, ABRT, USR1, WINCH)."""
        for sig in _DEFAULT_IN_WORKER:
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, self.handle_exit)
        signal.signal(signal.SIGINT, self.handle_quit)
        signal.signal(signal.SIGQUIT, self.handle_quit)
        signal.signal(signal.SIGABRT, self.handle_abort)
        signal.signal(signal.SIGUSR1, self.handle_usr1)
        signal.signal(signal.SIGWINCH, self.handle_winch)

    def load_app(self) -> None:
        """Load the app into self.wsgi; exit 4 when the app object is missing, 3 on any other failure."""
        try:
            self.wsgi = self.app.load()
        except AppImportError:
            self.log.exception("Exception while loading the application")
            sys.exit(int(APP_LOAD_ERROR))
        except Exception:
            # gunicorn's split: an import that raises is a boot failure, not an app-load error
            self.log.exception("Exception while loading the application")
            sys.exit(int(WORKER_BOOT_ERROR))

    def run(self) -> None:
        """Serve until self.alive is false or the parent is gone (subclasses implement)."""
        raise NotImplementedError(f"{type(self).__name__} must implement run()")

    # -- signal handlers (run in the worker) -------------------------------

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """TERM: stop accepting, finish what is in flight, then return from run()."""
        self.alive = False

    def handle_quit(self, sig: int, frame: FrameType | None) -> None:
        """INT/QUIT: run the worker_int hook and exit at once."""
        self.alive = False
        self.cfg.worker_int(self)
        time.sleep(0.1)
        sys.exit(int(ExitCode.OK))

    def handle_abort(self, sig: int, frame: FrameType | None) -> None:
        """ABRT (heartbeat timeout): run the worker_abort hook and exit 1."""
        self.alive = False
        self.aborted = True
        self.cfg.worker_abort(self)
        sys.exit(int(ExitCode.ABORTED))

    def handle_usr1(self, sig: int, frame: FrameType | None) -> None:
        """USR1: reopen log files."""
        if hasattr(self.log, "reopen_files"):
            self.log.reopen_files()

    def handle_winch(self, sig: int, frame: FrameType | None) -> None:
        """WINCH is the master's business: ignore it here."""
        self.log.debug("worker: SIGWINCH ignored")
