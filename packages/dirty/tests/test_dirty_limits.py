"""Limits a caller relies on: timeouts (client vs pool) and the message size limit (issue 17)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest
from dirty_helpers import ECHO

from gcorn.dirty import DirtyMessageTooLargeError, DirtyTimeoutError, connect, stash

MiB = 1 << 20


@pytest.fixture
def mute_arbiter(tmp_path):
    """A socket that accepts and never answers: an arbiter that hangs."""
    path = str(tmp_path / "mute.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(16)
    held: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        srv.settimeout(0.1)
        while not done.is_set():
            try:
                held.append(srv.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield path
    done.set()
    t.join(2)
    for s in held:
        s.close()
    srv.close()


@pytest.mark.parametrize("request_of", [
    pytest.param(lambda c: c.status(), id="status"),
    pytest.param(lambda c: c.manage("add", 1), id="manage"),
    pytest.param(lambda c: stash.get("t", "k", client=c), id="stash"),
    pytest.param(lambda c: c.execute(ECHO, "noop"), id="directory"),
    pytest.param(lambda c: asyncio.run(c.execute_async(ECHO, "noop")), id="directory-async"),
])
def test_client_timeout_bounds_arbiter_requests(mute_arbiter, request_of):
    c = connect(mute_arbiter, timeout=0.4)
    t0 = time.monotonic()
    with pytest.raises(DirtyTimeoutError, match="did not answer within 0.4 s"):
        request_of(c)
    assert time.monotonic() - t0 < 2.0  # not the fixed 30 s
    c.close()


def test_pool_timeout_wins_over_a_larger_client_timeout(make_pool):
    p = make_pool(workers=1, extra=["--timeout", "1"])
    c = p.client(timeout=20)
    assert c.execute(ECHO, "noop", 1) == 1
    t0 = time.monotonic()
    with pytest.raises(DirtyTimeoutError):
        c.execute(ECHO, "sleep", 4)
    assert time.monotonic() - t0 < 2.5, "the call outlived the pool's dirty_timeout of 1 s"
    t0 = time.monotonic()
    with pytest.raises(DirtyTimeoutError):
        c.execute(ECHO, "sleep", 4, _timeout=30)
    assert time.monotonic() - t0 < 2.5
    # a shorter client timeout still applies
    t0 = time.monotonic()
    with pytest.raises(DirtyTimeoutError):
        p.client(timeout=0.3).execute(ECHO, "sleep", 0.9)
    assert time.monotonic() - t0 < 0.8


def test_a_value_of_exactly_the_limit_travels_and_one_byte_more_does_not(make_pool):
    p = make_pool(workers=1, extra=["--max-message-size", "1MiB"])
    c = p.client(timeout=10)
    data = b"z" * MiB
    assert c.execute(ECHO, "echo", data) == data  # call and reply of exactly the limit
    assert len(c.execute(ECHO, "make", MiB)) == MiB
    assert asyncio.run(c.execute_async(ECHO, "echo", data)) == data
    with pytest.raises(DirtyMessageTooLargeError) as sent:
        c.execute(ECHO, "echo", data + b"!")
    assert sent.value.limit == MiB and sent.value.size == MiB + 1
    with pytest.raises(DirtyMessageTooLargeError, match="reply of"):
        c.execute(ECHO, "make", MiB + 1)
    stash.put("limits", "k", data, client=c)
    assert stash.get("limits", "k", client=c) == data
    with pytest.raises(DirtyMessageTooLargeError):
        stash.put("limits", "k", data + b"!", client=c)
    assert c.execute(ECHO, "noop", 3) == 3


def test_a_pool_that_cannot_be_reached_is_logged_once_with_path_and_errno(tmp_path, caplog):
    import logging

    from gcorn.dirty import DirtyConnectionError

    missing = str(tmp_path / "missing.sock")
    refused = str(tmp_path / "refused.sock")
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(refused)  # bound, never listening: connect() is refused
    caplog.set_level(logging.ERROR, logger="gcorn.dirty.client")
    for path in (missing, refused):
        c = connect(path, timeout=1)
        for _ in range(3):
            with pytest.raises(DirtyConnectionError, match="cannot connect to the dirty pool"):
                c.status()
        with pytest.raises(DirtyConnectionError):
            asyncio.run(c.execute_async(ECHO, "noop"))
    dead.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "gcorn.dirty.client"]
    assert len(lines) == 2, lines  # once per path and errno, not once per call
    assert missing in lines[0] and "[Errno 2]" in lines[0]
    assert refused in lines[1] and "[Errno 111]" in lines[1]
