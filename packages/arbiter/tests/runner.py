"""Run a real Arbiter with a tiny non-HTTP worker, for the arbiter's tests.

Usage: python runner.py OPTS.json. The JSON holds cfg overrides (gunicorn
setting names) plus test knobs; the file is re-read on HUP. Every hook and
notable event appends one line "<name> <pid> <detail>" to opts["events"].

The worker accepts on the listening sockets and answers one line-based
command per connection: "pid", "slow SECONDS", "hang", "env KEY", "info".
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import socket
import sys
import time
import types
from typing import Any

from gcorn.arbiter import Arbiter, SideProcess, Worker

OPTS_PATH = sys.argv[1] if len(sys.argv) > 1 else ""


def load_opts() -> dict[str, Any]:
    with open(OPTS_PATH) as fh:
        return json.load(fh)


def record(events: str, name: str, detail: str = "") -> None:
    line = f"{name} {os.getpid()} {detail}".rstrip() + "\n"
    fd = os.open(events, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


class EventLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A plain logger plus reopen_files(), which records an event (USR1)."""

    def __init__(self, events: str) -> None:
        logger = logging.getLogger("gcorn.test")
        if not logger.handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("[%(process)d] [%(levelname)s] %(message)s"))
            logger.addHandler(handler)
            logger.setLevel(logging.DEBUG)
        super().__init__(logger, {})
        self.events = events

    def reopen_files(self) -> None:
        record(self.events, "reopen")


class App:
    """The app loader: load() fails when opts['app_fail'] is set."""

    def __init__(self, opts: dict[str, Any]) -> None:
        self.opts = opts

    def load(self) -> object:
        if self.opts.get("app_fail"):
            raise ImportError("no module named 'broken_app'")
        delay = float(self.opts.get("load_delay", 0))
        if delay:
            time.sleep(delay)
        return object()


class ProbeWorker(Worker):
    """Answers one command per connection; never speaks HTTP."""

    def run(self) -> None:
        wait = min(0.2, self.timeout / 2)
        while self.alive and self.is_parent_alive():
            self.notify()
            try:
                ready, _, _ = select.select(self.sockets, [], [], wait)
            except InterruptedError:
                continue
            for sock in ready:
                if not self.alive:
                    break  # TERM came during select(): accept nothing new
                try:
                    conn, _ = sock.accept()
                except (BlockingIOError, InterruptedError):
                    continue
                with conn:
                    self.serve(conn)

    def serve(self, conn: socket.socket) -> None:
        conn.setblocking(True)
        conn.settimeout(5)
        data = b""
        while not data.endswith(b"\n"):
            chunk = conn.recv(1024)
            if not chunk:
                break
            data += chunk
        cmd, _, arg = data.decode().strip().partition(" ")
        self.nr += 1
        if cmd == "slow":
            # lets a test signal once the job is in flight, instead of sleeping
            record(self.log.events, "slow-start")
            end = time.monotonic() + float(arg)
            while time.monotonic() < end:
                self.notify()
                time.sleep(0.02)
            reply = f"done {os.getpid()}"
        elif cmd == "hang":
            conn.sendall(b"hanging\n")
            time.sleep(60)  # no heartbeat: the master must abort this worker
            reply = "woke"
        elif cmd == "crash":
            raise RuntimeError("worker crashed on purpose")
        elif cmd == "env":
            reply = os.environ.get(arg, "")
        elif cmd == "info":
            reply = json.dumps(
                {
                    "pid": os.getpid(),
                    "ppid": os.getppid(),
                    "age": self.age,
                    "blocking": [sock.getblocking() for sock in self.sockets],
                    "max_requests": self.max_requests,
                    "uid": os.getuid(),
                    "gid": os.getgid(),
                    "groups": sorted(os.getgroups()),
                    "cwd": os.getcwd(),
                    "heartbeat": os.readlink(f"/proc/self/fd/{self.tmp.fileno()}"),
                }
            )
        else:
            reply = str(os.getpid())
        conn.sendall(reply.encode() + b"\n")


def side_main(events: str, crash_after: float) -> int:
    """A side process: records signals, exits on TERM, optionally crashes."""
    record(events, "side-start")
    state = {"run": True}

    def on_term(sig: int, frame: Any) -> None:
        record(events, "side-term")
        state["run"] = False

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, lambda s, f: record(events, "side-hup"))
    signal.signal(signal.SIGUSR1, lambda s, f: record(events, "side-usr1"))
    started = time.monotonic()
    parent = os.getppid()
    while state["run"] and os.getppid() == parent:
        if crash_after and time.monotonic() - started > crash_after:
            record(events, "side-crash")
            return 7
        time.sleep(0.05)
    return 0


def plain_side_main(events: str) -> int:
    """A side process that installs no signal handlers at all."""
    record(events, "plain-start")
    parent = os.getppid()
    while os.getppid() == parent:
        time.sleep(0.05)
    return 0


def hooks(events: str, opts: dict[str, Any]) -> dict[str, Any]:
    """Every server hook, each recording its call."""

    def on_starting(server: Arbiter) -> None:
        record(events, "on_starting")

    def on_reload(server: Arbiter) -> None:
        record(events, "on_reload")

    def when_ready(server: Arbiter) -> None:
        names = [lst.sock.getsockname() for lst in server.LISTENERS]
        record(events, "when_ready", json.dumps(names))

    def pre_fork(server: Arbiter, worker: Worker) -> None:
        record(events, "pre_fork", str(worker.age))

    def post_fork(server: Arbiter, worker: Worker) -> None:
        record(events, "post_fork", str(worker.age))
        if opts.get("post_fork_fail"):
            raise RuntimeError("post_fork failed on purpose")

    def post_worker_init(worker: Worker) -> None:
        record(events, "post_worker_init", str(worker.age))

    def worker_int(worker: Worker) -> None:
        record(events, "worker_int")

    def worker_abort(worker: Worker) -> None:
        record(events, "worker_abort")
        if opts.get("abort_hangs"):
            time.sleep(60)

    def pre_exec(server: Arbiter) -> None:
        record(events, "pre_exec")

    def child_exit(server: Arbiter, worker: Worker) -> None:
        record(events, "child_exit", f"{worker.pid} booted={worker.booted}")

    def worker_exit(server: Arbiter, worker: Worker) -> None:
        record(events, "worker_exit")

    def nworkers_changed(server: Arbiter, new: int, old: int | None) -> None:
        record(events, "nworkers_changed", f"{new} {old}")
        if old is not None and opts.get("resize_delay"):
            # keeps the master busy, so a test can queue signals behind this one
            time.sleep(float(opts["resize_delay"]))

    def on_exit(server: Arbiter) -> None:
        record(events, "on_exit")

    return {name: fn for name, fn in locals().items() if callable(fn)}


def build(opts: dict[str, Any]) -> tuple[Any, Any, Any]:
    """(cfg, log, app) from the options, with gunicorn's defaults."""
    events = opts["events"]
    cfg = types.SimpleNamespace(
        bind=["127.0.0.1:0"],
        backlog=2048,
        workers=1,
        worker_class=ProbeWorker,
        worker_class_str="runner.ProbeWorker",
        timeout=30,
        graceful_timeout=30,
        max_requests=0,
        max_requests_jitter=0,
        reuse_port=False,
        daemon=False,
        enable_stdio_inheritance=False,
        pidfile=None,
        worker_tmp_dir=None,
        uid=os.geteuid(),
        gid=os.getegid(),
        umask=0,
        initgroups=False,
        chdir=None,
        env={},
        proc_name="probe",
        default_proc_name="probe",
        boot_failure_limit=5,
        boot_failure_window=60.0,
        **hooks(events, opts),
    )
    for key, value in opts.get("cfg", {}).items():
        setattr(cfg, key, value)
    return cfg, EventLogger(events), App(opts)


def main() -> int:
    opts = load_opts()
    cfg, log, app = build(opts)

    def reload() -> tuple[Any, Any, Any]:
        fresh = load_opts()
        if fresh.get("reload_fail"):
            raise ValueError("bad config on purpose")
        return build(fresh)

    arbiter = Arbiter(cfg, log, app, reload=reload)
    if "bind_retries" in opts:
        arbiter.BIND_RETRIES = int(opts["bind_retries"])
        arbiter.BIND_RETRY_DELAY = 0.1
    if opts.get("side"):
        arbiter.add_side_process(
            SideProcess(
                "probe-side",
                side_main,
                args=(opts["events"], float(opts.get("side_crash_after", 0))),
                backoff_base=0.2,
            )
        )
    if opts.get("plain_side"):
        arbiter.add_side_process(SideProcess("plain-side", plain_side_main, args=(opts["events"],)))
    code = arbiter.run()
    record(opts["events"], "master_exit", str(code))
    return code


if __name__ == "__main__":
    sys.exit(main())
