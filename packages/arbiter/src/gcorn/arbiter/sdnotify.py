"""systemd's notify protocol (sd_notify): READY=1, RELOADING=1, STOPPING=1."""

from __future__ import annotations

import os
import socket
import time


def notify_socket_address() -> str | None:
    """The address from NOTIFY_SOCKET ('@' means the abstract namespace), or None."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return None
    return "\0" + addr[1:] if addr.startswith("@") else addr


def sd_notify(state: str) -> bool:
    """Send `state` to systemd when NOTIFY_SOCKET is set; True when it was sent."""
    addr = notify_socket_address()
    if addr is None:
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(state.encode(), addr)
    return True


def reloading_state() -> str:
    """RELOADING=1 with the MONOTONIC_USEC field systemd's reload protocol requires."""
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return f"RELOADING=1\nMONOTONIC_USEC={usec}"
