"""A raw HTTP/2 client for the tests: the `h2` library on a real blocking socket.

It sends what a test asks (including what a conforming client would not) and records
every event it reads, so a test can assert on streams, resets and GOAWAY. Import it
after `pytest.importorskip("h2")`.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

import h2.exceptions
from h2 import events as ev
from h2.config import H2Configuration
from h2.connection import H2Connection

__all__ = ["Client"]


class Client:
    """A blocking h2 client on a real socket that records every event it reads."""

    def __init__(self, port: int, settings: dict[int, int] | None = None,
                 tls: bool = False, ack: bool = True) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.set_alpn_protocols(["h2"])
            sock = ctx.wrap_socket(sock)
        self.sock: socket.socket = sock
        # outbound checks off: some tests send what a conforming client would not
        self.h2 = H2Connection(H2Configuration(client_side=True, header_encoding=None,
                                               validate_outbound_headers=False,
                                               normalize_outbound_headers=False))
        if settings:
            self.h2.local_settings.update(settings)
            self.h2.local_settings.acknowledge()
        self.h2.initiate_connection()
        if settings:
            self.h2.update_settings(settings)
        self.ack = ack
        self.events: list[Any] = []
        self.data: dict[int, bytearray] = {}
        self.closed = False
        self.flush()

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data:
            self.sock.sendall(data)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, path: str, method: str = "GET", body: bytes | None = None,
                extra: list[tuple[str, str]] | None = None, end: bool = True) -> int:
        sid = self.h2.get_next_available_stream_id()
        headers = [(":method", method), (":path", path), (":scheme", "http"),
                   (":authority", "localhost"), *(extra or [])]
        self.h2.send_headers(sid, headers, end_stream=end and not body)
        if body:
            self.h2.send_data(sid, body, end_stream=end)
        self.flush()
        return sid

    def read(self, until: Callable[[], bool], timeout: float = 5.0) -> None:
        """Read events until `until()` holds, the server closes, or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while not until() and not self.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                return
            except OSError:
                self.closed = True
                return
            if not data:
                self.closed = True
                return
            try:
                events = self.h2.receive_data(data)
            except h2.exceptions.ProtocolError:
                self.closed = True
                return
            for event in events:
                self.events.append(event)
                if isinstance(event, ev.DataReceived):
                    self.data.setdefault(event.stream_id, bytearray()).extend(event.data)
                    if self.ack:
                        self.h2.acknowledge_received_data(event.flow_controlled_length,
                                                          event.stream_id)
            try:
                self.flush()
            except OSError:
                self.closed = True

    def ended(self, sid: int) -> bool:
        return any(isinstance(e, ev.StreamEnded) and e.stream_id == sid for e in self.events)

    def reset_of(self, sid: int) -> Any:
        return next((e for e in self.events
                     if isinstance(e, ev.StreamReset) and e.stream_id == sid), None)

    def finished(self, sid: int) -> bool:
        return self.ended(sid) or self.reset_of(sid) is not None

    def goaway(self) -> Any:
        return next((e for e in self.events if isinstance(e, ev.ConnectionTerminated)), None)

    def status(self, sid: int) -> int | None:
        for event in self.events:
            if isinstance(event, ev.ResponseReceived) and event.stream_id == sid:
                return int(dict(event.headers)[b":status"])
        return None

    def close(self) -> None:
        self.sock.close()
