"""Hostile and broken peers: bad frames must never hang the arbiter or a worker (issue 17)."""

from __future__ import annotations

import random
import signal
import socket
import struct
import time

from dirty_helpers import ECHO, wait_for

from gcorn.dirty import DirtyMessageTooLargeError, stash
from gcorn.dirty.protocol import wire_limit

HEADER = struct.Struct(">2sBBIQ")  # the wire header, spelled out: see PROTOCOL.md
MiB = 1 << 20


def raw(path: str, data: bytes, close: bool = True) -> socket.socket:
    """Connect to ``path``, send ``data`` and (by default) close: a peer that vanishes."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2)
    s.connect(path)
    try:
        s.sendall(data)
    except OSError:
        pass  # the peer closed on us first: that is one of the answers we allow
    if close:
        s.close()
    return s


def worker_socket(client) -> str:
    d = client._directory()
    return d.by_app[ECHO][0][2]


def assert_pool_serves(p, client) -> None:
    """Status, directory, stash and calls all answer promptly."""
    t0 = time.monotonic()
    st = p.status()
    assert st["worker_count"] == p.workers
    assert client.execute(ECHO, "noop", 7) == 7
    stash.put("hostile", "k", b"v", client=client)
    assert stash.get("hostile", "k", client=client) == b"v"
    assert time.monotonic() - t0 < 3, "the pool answered, but slowly"


def test_oversized_header_then_eof_does_not_hang_the_arbiter(make_pool):
    p = make_pool(workers=1, extra=["--max-message-size", "1MiB"])
    c = p.client(timeout=5)
    # declare more than the limit, send a little of it, then go away
    raw(p.socket, HEADER.pack(b"gD", 1, 0x12, 2 * MiB, 1) + b"x" * 100)
    t0 = time.monotonic()
    assert c.status()["worker_count"] == 1
    assert time.monotonic() - t0 < 2
    assert_pool_serves(p, c)
    assert "oversized" in p.log() or "larger than" in p.log()
    # the arbiter still replaces a dead worker and stops on TERM
    (pid,) = p.ready_pids()
    p.send(signal.SIGTTIN)
    p.wait_ready(2)
    p.workers = 2
    t0 = time.monotonic()
    assert p.stop(signal.SIGTERM, timeout=10) == 0
    assert time.monotonic() - t0 < 8


def test_oversized_frame_to_the_arbiter_is_answered_and_the_connection_stays_in_sync(make_pool):
    p = make_pool(workers=1, extra=["--max-message-size", "1MiB"])
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(p.socket)
    over = wire_limit(MiB) + 1  # past the data limit and the room the encoding gets
    s.sendall(HEADER.pack(b"gD", 1, 0x12, over, 5) + b"\0" * over
              + HEADER.pack(b"gD", 1, 0x12, 0, 6))
    got = b""
    replies = []
    while len(replies) < 2:
        chunk = s.recv(65536)
        assert chunk, "the arbiter closed the connection"
        got += chunk
        while len(got) >= 16:
            _m, _v, mtype, length, rid = HEADER.unpack_from(got)
            if len(got) < 16 + length:
                break
            replies.append((mtype, rid, got[16:16 + length]))
            got = got[16 + length:]
    s.close()
    assert replies[0][:2] == (0x03, 5) and b"DirtyMessageTooLargeError" in replies[0][2]
    assert replies[1][:2] == (0x02, 6)


def test_a_stash_value_over_the_limit_is_refused_before_sending(make_pool):
    p = make_pool(workers=1, extra=["--max-message-size", "1MiB"])
    c = p.client(timeout=5)
    c.execute(ECHO, "noop")
    t0 = time.monotonic()
    try:
        stash.put("big", "k", b"x" * (2 * MiB), client=c)
    except DirtyMessageTooLargeError as exc:
        assert exc.limit == MiB
    else:
        raise AssertionError("a 2 MiB stash value was accepted by a 1 MiB pool")
    assert time.monotonic() - t0 < 1
    assert stash.get("big", "k", "absent", client=c) == "absent"


def _fuzz_frames(rng: random.Random, limit: int) -> list[bytes]:
    """Random, truncated, oversized and misdeclared frames (some valid-looking)."""
    frames = []
    for _ in range(120):
        kind = rng.randrange(8)
        mtype = rng.choice([0, 1, 2, 3, 4, 5, 6, 0x10, 0x11, 0x12, 0x13, 0x7F, 0xFF])
        rid = rng.getrandbits(64)
        body = rng.randbytes(rng.randrange(0, 300))
        if kind == 0:  # pure noise
            frames.append(rng.randbytes(rng.randrange(1, 200)))
        elif kind == 1:  # a header cut short
            frames.append(HEADER.pack(b"gD", 1, mtype, len(body), rid)[:rng.randrange(1, 16)])
        elif kind == 2:  # declares more than the limit, then stops
            frames.append(HEADER.pack(b"gD", 1, mtype, rng.randrange(limit + 1, 1 << 32), rid) + body)
        elif kind == 3:  # declares more than it sends (under the limit)
            frames.append(HEADER.pack(b"gD", 1, mtype, len(body) + rng.randrange(1, limit), rid) + body)
        elif kind == 4:  # a complete frame with a random payload
            frames.append(HEADER.pack(b"gD", 1, mtype, len(body), rid) + body)
        elif kind == 5:  # wrong magic or version
            frames.append(HEADER.pack(rng.randbytes(2), rng.randrange(256), mtype, len(body), rid) + body)
        elif kind == 6:  # a well-formed safe value of the wrong shape
            value = rng.choice([b"\x00", b"\x03" + b"\x00" * 8, b"\x08\x00\x00\x00\x05" + b"\x00" * 5,
                                b"\x09\x00\x00\x00\x05\x00\x00\x00\x00\x06\x00\x00\x00\x00",
                                b"\x0a\x00\x00\x00\x01\x08\x00\x00\x00\x00\x00"])
            frames.append(HEADER.pack(b"gD", 1, mtype, len(value), rid) + value)
        else:  # a valid frame followed by garbage
            frames.append(HEADER.pack(b"gD", 1, 0x12, 0, rid) + rng.randbytes(rng.randrange(1, 40)))
    return frames


def test_fuzzed_frames_leave_arbiter_and_workers_serving(make_pool):
    limit = 64 * 1024
    p = make_pool(workers=2, threads=2, extra=["--max-message-size", str(limit)])
    c = p.client(timeout=5)
    c.execute(ECHO, "noop")
    targets = [p.socket, worker_socket(c)]
    rng = random.Random(17)
    held = []
    for i, data in enumerate(_fuzz_frames(rng, limit)):
        path = targets[i % 2]
        held.append(raw(path, data, close=rng.random() < 0.8))
        if len(held) > 20:
            for s in held:
                s.close()
            held = []
        if i % 30 == 29:
            assert_pool_serves(p, c)
    assert_pool_serves(p, c)
    # connections still open with half a frame do not block anybody either
    assert_pool_serves(p, c)
    for s in held:
        s.close()
    assert wait_for(lambda: "bad frame header" in p.log(), 2), p.log()[-2000:]
    # supervision is still alive: a killed worker is replaced
    before = p.ready_pids()
    import os

    os.kill(sorted(before)[0], signal.SIGKILL)
    p.wait_ready(2, exclude={sorted(before)[0]})
    assert c.execute(ECHO, "noop", 8) == 8
    t0 = time.monotonic()
    assert p.stop(signal.SIGTERM, timeout=10) == 0
    assert time.monotonic() - t0 < 8


def rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` from /proc (no psutil: these tests run with gcorn-dirty alone)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def test_a_header_alone_does_not_make_a_worker_or_the_arbiter_allocate(make_pool):
    import os

    import pytest

    if not os.path.exists("/proc/self/status"):
        pytest.skip("needs /proc to read resident memory")
    p = make_pool(workers=1)  # the default limit, 64 MiB
    c = p.client(timeout=5)
    c.execute(ECHO, "noop")
    (worker,) = p.ready_pids()
    arbiter = p.proc.pid
    before = {pid: rss_kib(pid) for pid in (worker, arbiter)}
    declared = 60 * MiB
    held = []
    for path in (worker_socket(c), p.socket):
        for i in range(10):
            held.append(raw(path, HEADER.pack(b"gD", 1, 0x01 if path != p.socket else 0x12, declared, i)
                            + b"x", close=False))
    time.sleep(0.5)  # let both read what was sent
    assert c.execute(ECHO, "noop", 1) == 1 and p.status()["worker_count"] == 1
    grew = {pid: (rss_kib(pid) - before[pid]) // 1024 for pid in before}
    for s in held:
        s.close()
    # 10 x 60 MiB declared to each; what was sent is 10 bytes. Allow the buffers' minimum.
    assert grew[worker] < 40 and grew[arbiter] < 40, f"MiB grown: {grew}"
