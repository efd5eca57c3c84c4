"""Dropping privileges in a child process (workers and side processes)."""

from __future__ import annotations

import os
import pwd


def drop_privileges(uid: int | None, gid: int | None, initgroups: bool = False) -> None:
    """Switch to gid then uid (and the user's supplementary groups) when they differ."""
    if gid is not None and gid != os.getegid():
        if initgroups and uid is not None:
            user = pwd.getpwuid(uid).pw_name
            os.initgroups(user, gid)
        elif os.geteuid() == 0:
            # keep root's supplementary groups from leaking into the worker
            os.setgroups([])
        os.setgid(gid)
    elif initgroups and uid is not None and uid != os.geteuid():
        os.initgroups(pwd.getpwuid(uid).pw_name, os.getegid())
    if uid is not None and uid != os.geteuid():
        os.setuid(uid)
