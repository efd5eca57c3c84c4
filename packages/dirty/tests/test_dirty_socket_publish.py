"""The arbiter's socket path appears only once it accepts connections, so "the path exists"
is a sound readiness check (a refused connection is final for a client: a dead arbiter's
leftover socket answers the same way)."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

from dirty_helpers import ECHO, Pool

ROUNDS = 3


def test_the_socket_path_appears_only_once_it_accepts_connections(tmp_path: Path) -> None:
    for round_ in range(ROUNDS):
        home = tmp_path / str(round_)
        home.mkdir()
        pool = Pool(home, [ECHO], workers=1, wait=False)
        frozen = False
        try:
            deadline = time.monotonic() + 10
            while not os.path.exists(pool.socket):  # spin: catch the path the moment it appears
                assert time.monotonic() < deadline and pool.proc.poll() is None, pool.log()
            # Freeze the arbiter right there: a socket that only listened later would refuse.
            pool.proc.send_signal(signal.SIGSTOP)
            frozen = True
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            probe.settimeout(5)
            try:
                probe.connect(pool.socket)  # queued in the backlog while the arbiter is stopped
            finally:
                probe.close()
            pool.proc.send_signal(signal.SIGCONT)
            frozen = False
            pool.wait_ready(1)
            assert not [n for n in os.listdir(home) if "staging" in n]
            assert oct(os.stat(pool.socket).st_mode & 0o777) == oct(0o600)
        finally:
            if frozen:
                pool.proc.send_signal(signal.SIGCONT)
            assert pool.stop() == 0
        assert not os.path.exists(pool.socket)
