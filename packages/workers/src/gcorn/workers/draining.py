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

__all__ = ["SHUTDOWN_IDLE_GRACE", "idle_grace"]

# seconds: far above the gap between a busy client's requests, far below a human's pause
SHUTDOWN_IDLE_GRACE = 1.0


def idle_grace(keepalive: float) -> float:
    """Seconds a stopping worker keeps an idle connection open (never past a positive `keepalive`).

    With keep-alive off the grace still covers a connection accepted whose
    first request is on its way.
    """
    keepalive = float(keepalive)
    return min(keepalive, SHUTDOWN_IDLE_GRACE) if keepalive > 0 else SHUTDOWN_IDLE_GRACE
