"""USR2: replace the master's program with a new one on the same listening sockets.

The old master forks; the child runs the `pre_exec` hook and execs the
original command line with the listening fds named in GCORN_FD (or in
LISTEN_FDS/LISTEN_PID when they came from systemd) and the old master's pid
in GCORN_PID. The new master writes `<pidfile>.2` and promotes itself when
the old master is gone.
"""

from __future__ import annotations

import os
import sys
from typing import Any

ENV_FDS = "GCORN_FD"
ENV_PID = "GCORN_PID"


def _start_cwd() -> str:
    cwd = os.getcwd()
    # prefer $PWD: it keeps symlinks (a 'current' release link) intact
    pwd = os.environ.get("PWD")
    if pwd:
        try:
            if os.path.samefile(pwd, cwd):
                return pwd
        except OSError:
            pass
    return cwd


def start_context() -> dict[Any, Any]:
    """How this process was started: the interpreter, its full argv, and the cwd."""
    # sys.orig_argv keeps '-m pkg' and interpreter options, unlike sys.argv
    argv = list(getattr(sys, "orig_argv", [sys.executable, *sys.argv]))
    args = [sys.executable, *argv[1:]]
    return {0: sys.executable, "args": args, "cwd": _start_cwd()}


# captured when the arbiter is imported, before the cli changes directory
START_CTX: dict[Any, Any] = start_context()


def inherited_state(environ: Any) -> tuple[list[int], int]:
    """(fds, old master pid) passed by a re-executing master; removes them from environ."""
    fds_text = environ.pop(ENV_FDS, "")
    pid_text = environ.pop(ENV_PID, "")
    fds = [int(fd) for fd in fds_text.split(",") if fd.strip().isdigit()]
    pid = int(pid_text) if pid_text.isdigit() else 0
    return fds, pid


def exec_new_master(
    start_ctx: dict[Any, Any], fds: list[int], master_pid: int, systemd: bool, environ: dict[str, str]
) -> None:
    """In the forked child: exec the new master with the listening fds. Does not return."""
    env = dict(environ)
    for fd in fds:
        os.set_inheritable(fd, True)
    if systemd:
        # systemd's fds are still at 3.. and LISTEN_PID must name the new program
        env["LISTEN_PID"] = str(os.getpid())
        env["LISTEN_FDS"] = str(len(fds))
    else:
        env[ENV_FDS] = ",".join(str(fd) for fd in fds)
    env[ENV_PID] = str(master_pid)
    os.chdir(start_ctx["cwd"])
    os.execvpe(start_ctx[0], start_ctx["args"], env)
