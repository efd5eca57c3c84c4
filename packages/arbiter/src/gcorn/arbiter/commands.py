"""The control socket's commands, run in the master's loop (each one quick, none blocking).

Commands and answers follow gunicornc's: ``show all | workers | config | stats
| listeners | dirty``, ``worker add [N] | remove [N] | kill PID``, ``reload``,
``reopen``, ``shutdown [graceful|quick]``, ``help``. The master knows nothing
of the dirty pool but its side process and the socket path the embedding
program put in ``arbiter.control_info``; ``gcorn ctl`` asks the pool itself.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

from gcorn.arbiter.control import ControlError
from gcorn.arbiter.memory import rss_bytes

# the largest N `worker add N` takes at once: a typo must not fork a thousand workers
MAX_ADD = 64

HELP = {
    "show all": "the master, its workers and its side processes",
    "show workers": "HTTP workers: pid, age, requests, in flight, heartbeat, RSS",
    "show dirty": "the dirty pool's side process and socket",
    "show config": "the running configuration",
    "show stats": "uptime, worker counts, requests, restarts",
    "show listeners": "the listening sockets",
    "worker add [N]": "N more workers (default 1)",
    "worker remove [N]": "N workers fewer (default 1, never below 1)",
    "worker kill PID": "stop one worker gracefully; the master replaces it",
    "dirty add [N] | dirty remove [N]": "scale the dirty pool (gcorn ctl asks the pool itself)",
    "reload": "reload the configuration and replace the workers (HUP)",
    "reopen": "reopen the log files (USR1)",
    "shutdown [graceful|quick]": "stop the server (graceful by default)",
    "help": "this list",
}

_PLAIN = (str, int, float, bool, type(None))


def _jsonable(value: Any) -> Any:
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


def _count(args: list[str], default: int = 1) -> int:
    if not args:
        return default
    try:
        n = int(args[0])
    except ValueError:
        raise ControlError(f"not a number: {args[0]!r}") from None
    if not 1 <= n <= MAX_ADD:
        raise ControlError(f"N must be between 1 and {MAX_ADD}, not {n}")
    return n


class ControlCommands:
    """Callable handler: `commands(["show", "workers"])` returns the answer's data."""

    def __init__(self, arbiter: Any) -> None:
        self.arbiter = arbiter

    def __call__(self, parts: list[str]) -> dict[str, Any]:
        """Run one command given as words; ControlError for an unknown one."""
        words = [p.lower() for p in parts[:2]]
        table: dict[tuple[str, ...], Callable[[list[str]], dict[str, Any]]] = {
            ("show", "all"): lambda a: self.show_all(),
            ("show", "workers"): lambda a: self.show_workers(),
            ("show", "dirty"): lambda a: self.show_dirty(),
            ("show", "config"): lambda a: self.show_config(),
            ("show", "stats"): lambda a: self.show_stats(),
            ("show", "listeners"): lambda a: self.show_listeners(),
            ("worker", "add"): self.worker_add,
            ("worker", "remove"): self.worker_remove,
            ("worker", "kill"): self.worker_kill,
            ("reload",): lambda a: self.reload(),
            ("reopen",): lambda a: self.reopen(),
            ("shutdown",): self.shutdown,
            ("help",): lambda a: {"commands": HELP},
            ("dirty", "add"): self._dirty_elsewhere,
            ("dirty", "remove"): self._dirty_elsewhere,
        }
        for size in (2, 1):
            fn = table.get(tuple(words[:size]))
            if fn is not None:
                return fn(parts[size:])
        raise ControlError(f"unknown command: {' '.join(parts)!r} (try 'help')")

    def _dirty_elsewhere(self, args: list[str]) -> dict[str, Any]:
        raise ControlError(
            "dirty add/remove is the dirty arbiter's to do: use `gcorn ctl dirty add|remove [N]`, "
            "which asks the pool at the socket `show dirty` names")

    # -- show ------------------------------------------------------------------

    def show_workers(self) -> dict[str, Any]:
        """Every HTTP worker, oldest first."""
        arbiter = self.arbiter
        now_mono, now = time.monotonic(), time.time()
        workers = []
        for pid, worker in sorted(arbiter.WORKERS.items(), key=lambda kv: kv[1].age):
            row = arbiter.scoreboard.read(getattr(worker, "slot", -1))
            try:
                last, booted = worker.tmp.state()
                heartbeat: float | None = round(max(0.0, now_mono - last), 2)
            except (OSError, ValueError):
                heartbeat, booted = None, False
            workers.append({
                "pid": pid,
                "age": worker.age,
                "uptime": round(now - row.started, 2) if row else None,
                "booted": bool(booted),
                "aborted": bool(worker.aborted),
                "retiring": pid in arbiter._retiring,
                "requests": row.requests if row else None,
                "in_flight": row.in_flight if row else None,
                "last_heartbeat": heartbeat,
                "rss": rss_bytes(pid),
            })
        return {"workers": workers, "count": len(workers)}

    def _side_processes(self) -> list[dict[str, Any]]:
        return [{"name": s.name, "pid": s.pid or None, "restarts": s.restarts}
                for s in self.arbiter.SIDE_PROCESSES]

    def show_dirty(self) -> dict[str, Any]:
        """The dirty pool as the master sees it: its side process and its socket."""
        side = next((s for s in self.arbiter.SIDE_PROCESSES if s.name == "dirty-arbiter"), None)
        return {"enabled": side is not None, "pid": (side.pid or None) if side else None,
                "socket": self.arbiter.control_info.get("dirty_socket")}

    def show_config(self) -> dict[str, Any]:
        """Every setting's current value (or gunicorn's common ones if cfg cannot list them)."""
        cfg = self.arbiter.cfg
        values = getattr(cfg, "values", None)
        if callable(values):
            return {k: _jsonable(v) for k, v in values().items()}
        names = ("bind", "workers", "worker_class", "threads", "timeout", "graceful_timeout",
                 "keepalive", "max_requests", "max_requests_jitter", "preload_app", "daemon",
                 "pidfile", "proc_name", "control_socket", "max_worker_memory")
        return {n: _jsonable(getattr(cfg, n)) for n in names if hasattr(cfg, n)}

    def show_stats(self) -> dict[str, Any]:
        """Counters of the master's life."""
        arbiter = self.arbiter
        stats = arbiter.stats
        live = 0
        for worker in arbiter.WORKERS.values():
            row = arbiter.scoreboard.read(getattr(worker, "slot", -1))
            live += row.requests if row else 0
        dirty = next((s.pid for s in arbiter.SIDE_PROCESSES if s.name == "dirty-arbiter"), 0)
        return {
            "uptime": round(time.time() - stats["start_time"], 2),
            "pid": arbiter.pid,
            "workers_current": len(arbiter.WORKERS),
            "workers_target": arbiter.num_workers,
            "workers_spawned": stats["workers_spawned"],
            "workers_killed": stats["workers_killed"],
            "workers_recycled_memory": stats["workers_recycled_memory"],
            "workers_timed_out": stats["workers_timed_out"],
            "workers_crashed": stats["workers_crashed"],
            "reloads": stats["reloads"],
            "requests_total": stats["requests_of_exited"] + live,
            "dirty_arbiter_pid": dirty or None,
        }

    def show_listeners(self) -> dict[str, Any]:
        """The listening sockets."""
        kinds = {socket.AF_UNIX: "unix", socket.AF_INET: "tcp", socket.AF_INET6: "tcp6"}
        listeners = [{"address": str(lst), "fd": lst.sock.fileno(),
                      "type": kinds.get(lst.sock.family, "unknown")}
                     for lst in self.arbiter.LISTENERS]
        return {"listeners": listeners, "count": len(listeners)}

    def show_all(self) -> dict[str, Any]:
        """The whole tree the master supervises."""
        arbiter = self.arbiter
        workers = self.show_workers()["workers"]
        return {
            "arbiter": {"pid": arbiter.pid, "type": "arbiter", "role": "master",
                        "rss": rss_bytes(arbiter.pid)},
            "web_workers": workers,
            "web_worker_count": len(workers),
            "side_processes": self._side_processes(),
            "dirty": self.show_dirty(),
        }

    # -- act ---------------------------------------------------------------------

    def worker_add(self, args: list[str]) -> dict[str, Any]:
        """N more workers, forked now."""
        n = _count(args)
        arbiter = self.arbiter
        previous = arbiter.num_workers
        arbiter.num_workers = previous + n
        arbiter._manage_workers()
        return {"added": n, "previous": previous, "total": arbiter.num_workers}

    def worker_remove(self, args: list[str]) -> dict[str, Any]:
        """N workers fewer (the oldest retire), never below one."""
        n = _count(args)
        arbiter = self.arbiter
        previous = arbiter.num_workers
        total = max(1, previous - n)
        if total != previous:
            arbiter.num_workers = total
            arbiter._manage_workers()
        return {"removed": previous - total, "previous": previous, "total": total}

    def worker_kill(self, args: list[str]) -> dict[str, Any]:
        """Stop one worker gracefully; the loop forks its replacement."""
        if len(args) != 1:
            raise ControlError("usage: worker kill PID")
        try:
            pid = int(args[0])
        except ValueError:
            raise ControlError(f"not a pid: {args[0]!r}") from None
        arbiter = self.arbiter
        if pid not in arbiter.WORKERS:
            raise ControlError(f"no worker with pid {pid}")
        arbiter.log.info("control socket: stopping worker %s", pid)
        arbiter._retire(pid)
        arbiter.stats["workers_killed"] += 1
        arbiter._manage_workers()
        return {"success": True, "killed": pid}

    def reload(self) -> dict[str, Any]:
        """Queue a HUP: the loop reloads as on the signal."""
        self.arbiter._signals.record(signal.SIGHUP)
        return {"status": "reloading"}

    def reopen(self) -> dict[str, Any]:
        """Queue a USR1: reopen the log files."""
        self.arbiter._signals.record(signal.SIGUSR1)
        return {"status": "reopening"}

    def shutdown(self, args: list[str]) -> dict[str, Any]:
        """Stop the server, gracefully unless told `quick`."""
        mode = (args[0].lower().lstrip("-") if args else "graceful")
        if mode not in ("graceful", "quick"):
            raise ControlError(f"usage: shutdown [graceful|quick], not {args[0]!r}")
        self.arbiter.log.info("control socket: %s shutdown", mode)
        self.arbiter.stop(graceful=mode == "graceful")
        return {"status": "shutting_down", "mode": mode, "pid": os.getpid()}
