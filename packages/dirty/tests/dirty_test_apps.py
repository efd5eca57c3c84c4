"""Apps used by the gcorn-dirty tests (imported by the dirty workers)."""

from __future__ import annotations

import asyncio
import os
import time

from gcorn.dirty import DirtyApp, batched, stash


class EchoApp(DirtyApp):
    """Cheap actions for routing, payload and streaming tests."""

    stashes = ["declared"]

    def init(self) -> None:
        self.pid = os.getpid()
        self.calls = 0

    def noop(self, x=None):
        return x

    def pid_of(self):
        return os.getpid()

    def echo(self, data):
        return data

    def make(self, n):
        return b"x" * n

    def sleep(self, seconds):
        time.sleep(seconds)
        return os.getpid()

    def sleep_report(self, seconds, path):
        with open(path + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.rename(path + ".tmp", path)
        time.sleep(seconds)
        return os.getpid()

    def count(self, n, size=8):
        for i in range(n):
            yield f"{i:0{size}d}"

    def fail_after(self, n):
        yield from range(n)
        raise ValueError(f"broke after {n}")

    async def acount(self, n):
        for i in range(n):
            await asyncio.sleep(0)
            yield i

    async def aadd(self, a, b):
        await asyncio.sleep(0.001)
        return a + b

    def boom(self, msg):
        raise RuntimeError(msg)

    def kwargs(self, *args, **kwargs):
        return [list(args), kwargs]

    def unencodable(self):
        return object()

    def stop_self(self):
        import signal

        os.kill(os.getpid(), signal.SIGSTOP)
        time.sleep(30)  # the stop can land a moment after kill() returns
        return "unreachable"

    def stash_roundtrip(self, key, value):
        stash.put("fromworker", key, value)
        return stash.get("fromworker", key)


class HeavyApp(DirtyApp):
    """An app loaded on one worker only (class attribute)."""

    workers = 1

    def init(self) -> None:
        self.loaded = True

    def pid_of(self):
        return os.getpid()


class BrokenInitApp(DirtyApp):
    def init(self) -> None:
        raise RuntimeError("cannot load model")


class BatchApp(DirtyApp):
    """@batched actions: each batch records its size, so tests can see the gathering."""

    def init(self) -> None:
        self.sizes: list[int] = []
        self.slow_seen: list[object] = []

    @batched(max_size=16, max_wait_ms=30)
    def double(self, calls):
        self.sizes.append(len(calls))
        time.sleep(0.05)  # one "model" pass per batch, whatever its size
        return [x * 2 for (x,) in calls]

    @batched(max_size=8, max_wait_ms=20)
    def picky(self, calls):
        # A returned exception fails its caller only.
        return [ValueError(f"odd {x}") if x % 2 else x for (x,) in calls]

    @batched(max_size=8, max_wait_ms=20)
    def explode(self, calls):
        if any(x == "bomb" for (x,) in calls):
            raise RuntimeError("the whole batch blew up")
        return [x for (x,) in calls]

    @batched(max_size=8, max_wait_ms=20)
    def short(self, calls):
        return [0] * (len(calls) - 1)

    @batched(max_size=4, max_wait_ms=5)
    def slow(self, calls):
        self.slow_seen.extend(x for (x,) in calls)
        time.sleep(1.0)
        return [x for (x,) in calls]

    @batched(max_size=8, max_wait_ms=10)
    def other(self, calls):
        time.sleep(0.5)
        return [x for (x,) in calls]

    @batched(max_size=8, max_wait_ms=20)
    def length(self, calls):
        return [len(x) for (x,) in calls]

    @batched(max_size=16, max_wait_ms=2000)
    def batch_len(self, calls):
        # Each caller learns the size of its batch (and which worker ran it).
        return [[len(calls), os.getpid()]] * len(calls)

    def sizes_seen(self):
        return list(self.sizes)

    def seen_by_slow(self):
        return list(self.slow_seen)

    def pid(self):
        return os.getpid()


class SlowInitApp(DirtyApp):
    """init() takes $SLOW_INIT seconds (default 1.5): readiness and boot-timeout tests."""

    def init(self) -> None:
        time.sleep(float(os.environ.get("SLOW_INIT", "1.5")))
        self.pid = os.getpid()

    def whoami(self):
        return self.pid
