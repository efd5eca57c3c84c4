"""Apps for the Ray backend tests (imported inside Ray actors, never by the dirty worker)."""

from __future__ import annotations

import asyncio
import os
import time

from gcorn.dirty import DirtyApp, batched, current_resources


def _actor_name() -> str | None:
    import ray

    return ray.get_runtime_context().get_actor_name()


class Model(DirtyApp):
    """Runs in a Ray actor: says where it runs, sleeps, streams, fails, batches."""

    def init(self) -> None:
        self.loaded = os.getpid()
        self.on_close: str | None = None

    def close(self) -> None:
        if self.on_close:
            with open(self.on_close, "w") as f:
                f.write(str(os.getpid()))

    def mark_close(self, path):
        self.on_close = path

    def where(self):
        return {"pid": os.getpid(), "loaded": self.loaded, "actor": _actor_name()}

    def echo(self, data):
        return data

    def sleep(self, seconds):
        time.sleep(seconds)
        return {"pid": os.getpid(), "actor": _actor_name()}

    async def aadd(self, a, b):
        await asyncio.sleep(0.001)
        return a + b

    def count(self, n):
        for i in range(n):
            yield f"item-{i}"

    async def acount(self, n):
        for i in range(n):
            await asyncio.sleep(0)
            yield i

    def ticker(self, path):
        """Endless; notes in ``path`` how far it got (to see it stop when its caller leaves)."""
        i = 0
        try:
            while True:
                with open(path + ".tmp", "w") as f:
                    f.write(str(i))
                os.replace(path + ".tmp", path)
                yield i
                i += 1
        finally:
            with open(path + ".closed", "w") as f:
                f.write(str(i))

    def fail_after(self, n):
        yield from range(n)
        raise ValueError(f"broke after {n}")

    def boom(self, msg):
        raise KeyError(msg)

    @batched(max_size=8, max_wait_ms=30)
    def double(self, calls):
        return [x * 2 if x >= 0 else ValueError(f"negative: {x}") for (x,) in calls]


class GpuModel(DirtyApp):
    """Needs one GPU: Ray gives each actor its own (virtual GPUs on a head declared with 2)."""

    resources = {"gpu": 1}

    def seen(self):
        return {"pid": os.getpid(), "actor": _actor_name(), "current": current_resources(),
                "visible": os.environ.get("CUDA_VISIBLE_DEVICES")}

    def sleep(self, seconds):
        time.sleep(seconds)
        return os.getpid()


class BrokenInit(DirtyApp):
    def init(self) -> None:
        raise RuntimeError("cannot load the weights")
