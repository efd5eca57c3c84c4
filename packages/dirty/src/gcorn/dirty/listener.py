"""The arbiter's listening socket: its path appears only once it accepts connections.

A Unix socket's path exists from bind(), but connect() is refused until
listen(). A client (or a test) that takes "the path exists" for "the pool is
up" could hit that gap when the arbiter is descheduled between the two calls,
and a refused connection is, rightly, final for a client: it is also what a
dead arbiter's leftover socket answers. So the socket is bound under a private
name in the same directory, made listening, and only then renamed into place:
rename() is atomic, so whoever sees the path can connect.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import stat

from .errors import DirtyConfigError

log = logging.getLogger("gcorn.dirty.arbiter")

# sun_path holds 108 bytes, one of them the terminating NUL.
_MAX_SUN_PATH = 107


def publish_listening_socket(path: str, backlog: int) -> socket.socket:
    """Bind, listen and only then expose a Unix socket at ``path`` (mode 0600)."""
    remove_stale_socket(path)
    staging = _staging_path(path)
    if staging != path:
        # Named after our pid, so no live process owns it: a leftover of a predecessor
        # that crashed between bind and rename and had the same pid.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staging)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        old = os.umask(0o177)
        try:
            sock.bind(staging)
        finally:
            os.umask(old)
        try:
            os.chmod(staging, 0o600)
            sock.listen(backlog)
            if staging != path:
                os.rename(staging, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(staging)
            raise
    except BaseException:
        sock.close()
        raise
    return sock


def _staging_path(path: str) -> str:
    """A private name next to ``path`` (same directory, so rename() is atomic)."""
    staging = os.path.join(os.path.dirname(path), f".{os.getpid():x}.sock-staging")
    if len(os.fsencode(staging)) <= _MAX_SUN_PATH:
        return staging
    # A path this close to the sun_path limit has no room for a staging name: bind in
    # place, and the path exists a moment before it listens (the gap the staging name closes).
    log.debug("dirty socket path %s is too long for a staging name; binding in place", path)
    return path


def remove_stale_socket(path: str) -> None:
    """Unlink a socket left by a dead predecessor; refuse if a live pool answers on it."""
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
        return
    if not stat.S_ISSOCK(os.stat(path).st_mode):
        raise DirtyConfigError(f"{path} exists and is not a socket; refusing to remove it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        log.info("removing stale dirty socket %s", path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    except OSError as exc:
        raise DirtyConfigError(f"cannot probe existing socket {path}: {exc}") from exc
    finally:
        probe.close()
    raise DirtyConfigError(f"another dirty pool is already serving on {path}")
