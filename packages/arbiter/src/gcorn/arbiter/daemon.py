"""Detaching the master from its terminal (`daemon = True`)."""

from __future__ import annotations

import os
import sys


def daemonize(enable_stdio_inheritance: bool = False) -> None:
    """Fork, setsid, fork again; the caller continues in the grandchild."""
    sys.stdout.flush()
    sys.stderr.flush()
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    os.umask(0o22)
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        # stdin never stays attached; stdout/stderr only with enable_stdio_inheritance
        targets = (0,) if enable_stdio_inheritance else (0, 1, 2)
        for fd in targets:
            os.dup2(devnull, fd)
    finally:
        if devnull > 2:
            os.close(devnull)
