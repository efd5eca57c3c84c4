"""Running the pool as the configured user: the HTTP workers' user and group.

gcorn's master forks the dirty arbiter as root when it was started as root
with ``--user``/``--group``. The arbiter then takes over the private
directory that holds its socket (made by the master) and drops to that user
and group before it creates anything else, so every socket, the scoreboard
and every dirty worker belong to the user the HTTP workers run as, and the
0600 sockets in 0700 folders admit them.
"""

from __future__ import annotations

import logging
import os
import pwd

from .errors import DirtyConfigError

log = logging.getLogger("gcorn.dirty.arbiter")


def become_user(uid: int | None, gid: int | None, initgroups: bool, socket_path: str | None) -> None:
    """Hand the socket's private directory to ``uid:gid``, then switch to them (no-op if already)."""
    change_uid = uid is not None and uid != os.geteuid()
    change_gid = gid is not None and gid != os.getegid()
    if not change_uid and not change_gid:
        return
    try:
        if socket_path:
            folder = os.path.dirname(os.path.abspath(socket_path))
            # Only the private folder a master made for this pool (make_socket_path), never
            # a folder the user named, which may be shared.
            if os.path.basename(folder).startswith("gcorn-dirty-") and os.path.isdir(folder):
                os.chown(folder, -1 if uid is None else uid, -1 if gid is None else gid)
        if change_gid:
            assert gid is not None
            if initgroups and uid is not None:
                os.initgroups(pwd.getpwuid(uid).pw_name, gid)
            elif os.geteuid() == 0:
                os.setgroups([])  # root's supplementary groups must not follow us
            os.setgid(gid)
        elif initgroups and change_uid:
            assert uid is not None
            os.initgroups(pwd.getpwuid(uid).pw_name, os.getegid())
        if change_uid:
            assert uid is not None
            os.setuid(uid)
    except (OSError, KeyError) as exc:
        raise DirtyConfigError(f"the dirty pool cannot run as uid {uid}, gid {gid}: {exc}") from exc
    log.debug("dirty arbiter %s runs as uid %s, gid %s", os.getpid(), os.getuid(), os.getgid())
