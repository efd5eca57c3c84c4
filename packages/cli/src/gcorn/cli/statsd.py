"""A StatsD (and DogStatsD) client over UDP or a Unix datagram socket.

Metric names are gunicorn's (`gunicorn.requests`, ...), so dashboards built
for gunicorn keep working. Sending never raises: a failed send is reported
through `on_error` and the metric is dropped.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

#: gunicorn's metric type names and their StatsD suffixes.
METRIC_TYPES = {"gauge": "g", "counter": "c", "histogram": "h", "timer": "ms"}


def parse_address(address: str) -> tuple[int, str | tuple[str, int]]:
    """(socket family, address) for `HOST:PORT` or `unix:PATH` / `unix://PATH`."""
    if address.startswith("unix:"):
        path = address[len("unix:") :]
        if path.startswith("//"):
            path = path[2:]
        return socket.AF_UNIX, path
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return family, (host, int(port))


class StatsdClient:
    """Sends `<prefix><name>:<value>|<type>[|@rate][|#tags]` datagrams."""

    def __init__(
        self,
        address: str,
        prefix: str = "",
        tags: str = "",
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        family, target = parse_address(address)
        self.target = target
        self.prefix = f"{prefix.rstrip('.')}." if prefix else ""
        self.tags = f"|#{tags}" if tags else ""
        self.on_error = on_error
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.setblocking(False)

    def gauge(self, name: str, value: float) -> None:
        """Send a gauge."""
        self.send(f"{name}:{value}|g")

    def increment(self, name: str, value: float = 1, rate: float = 1.0) -> None:
        """Send a counter increment (gunicorn sends the sample rate `|@1.0` too)."""
        self.send(f"{name}:{value}|c|@{rate}")

    def decrement(self, name: str, value: float = 1, rate: float = 1.0) -> None:
        """Send a counter decrement."""
        self.send(f"{name}:-{value}|c|@{rate}")

    def histogram(self, name: str, value: float) -> None:
        """Send a histogram value."""
        self.send(f"{name}:{value}|h")

    def timing(self, name: str, milliseconds: float) -> None:
        """Send a timer value in milliseconds."""
        self.send(f"{name}:{milliseconds}|ms")

    def metric(self, name: str, value: float, mtype: str) -> None:
        """Send a metric given by gunicorn's type name: gauge, counter, histogram or timer."""
        if mtype == "gauge":
            self.gauge(name, value)
        elif mtype == "counter":
            self.increment(name, value)
        elif mtype == "histogram":
            self.histogram(name, value)
        elif mtype == "timer":
            self.timing(name, value)

    def send(self, body: str) -> None:
        """Send one datagram; failures go to `on_error`, never to the caller."""
        data = f"{self.prefix}{body}{self.tags}".encode()
        try:
            self.sock.sendto(data, self.target)
        except OSError as exc:
            if self.on_error is not None:
                self.on_error(f"statsd: cannot send to {self.target}: {exc}")

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()
