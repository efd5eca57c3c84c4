"""How a retiring worker treats its idle keep-alive connections (gthread and asgi alike).

A keep-alive client may send its next request at any moment, and one that
sends it just as the server closes the connection sees a failure (RFC 9112
§9.6 only lets it retry). So a worker told to stop gracefully does not close
idle keep-alive connections at once: for a short grace it still answers the
next request on them, with `Connection: close`, and only closes those that
stay idle through the grace. A busy client thus always gets a close it can
see coming; an idle one is let go within about a second.
"""

from __future__ import annotations

import os
import socket
from typing import Any

__all__ = ["BACKLOG_TAKE_LIMIT", "SHUTDOWN_IDLE_GRACE", "idle_grace", "retire_listener", "take_backlog"]

# seconds: far above the gap between a busy client's requests, far below a human's pause
SHUTDOWN_IDLE_GRACE = 1.0


def idle_grace(keepalive: float) -> float:
    """Seconds a stopping worker keeps an idle connection open (never past a positive `keepalive`).

    With keep-alive off the grace still covers a connection accepted whose
    first request is on its way.
    """
    keepalive = float(keepalive)
    return min(keepalive, SHUTDOWN_IDLE_GRACE) if keepalive > 0 else SHUTDOWN_IDLE_GRACE


# connections taken from a listener's backlog at a graceful stop, at most
BACKLOG_TAKE_LIMIT = 4096


def take_backlog(sock: socket.socket, limit: int = BACKLOG_TAKE_LIMIT) -> list[tuple[socket.socket, Any]]:
    """Accept every connection already queued on `sock`, then close this process's copy of it.

    A stopping worker that only stops accepting leaves the clients the kernel queued
    meanwhile to the last process that closes the listener, and that close resets
    them after they sent their request. Taking them (and serving them with
    `Connection: close`) and closing the listener at once means a client either
    reaches a process that answers or is refused before it sends anything. The master
    and the other workers keep their own copies: on HUP the socket stays open.
    """
    taken: list[tuple[socket.socket, Any]] = []
    try:
        sock.setblocking(False)
        while len(taken) < limit:
            try:
                taken.append(sock.accept())
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break  # EMFILE and the like: what is taken is served, the rest cannot be
    finally:
        retire_listener(sock)
    return taken


def retire_listener(sock: socket.socket) -> None:
    """Close this process's copy of a listening socket but keep its fd number taken.

    The fd then names an unbound socket: an fd number that a client socket could
    reuse would look like the listener to code that still holds it (epoll sets,
    caches keyed by fd), and the socket object stays safe to call.
    """
    try:
        fd = sock.fileno()
    except OSError:
        return
    if fd < 0:
        return
    try:
        placeholder = socket.socket(sock.family, socket.SOCK_STREAM)
    except OSError:
        sock.close()
        return
    try:
        os.dup2(placeholder.fileno(), fd)  # the listening socket leaves this process
    except OSError:
        sock.close()
    finally:
        placeholder.close()
