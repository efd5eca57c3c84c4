"""The Ray actor that holds one dirty app (``dirty_backend = "ray"``).

It runs inside a Ray worker process, anywhere in the cluster: it imports the
app, runs its ``init()`` once, then runs actions by name for the dirty worker
that created it (ray_proxy.py). Nothing the app raises crosses Ray as an
exception: every method answers a tagged value, and app errors travel as the
same wire dict a local worker sends (``DirtyAppError`` with the traceback), so
a caller cannot tell the two backends apart by their errors.

Streams: :meth:`AppActor.call` parks a generator the action returned under a
stream id; :meth:`AppActor.pull`, a Ray generator method, yields its items (as
many as are ready in one Ray object), and :meth:`AppActor.close_stream` stops it
early (a caller that gave up).
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import os
import queue
import sys
import threading
from typing import Any

from .app import load_app_class, thread_loop
from .batching import batch_spec, batched_actions
from .errors import DirtyError, app_error
from .resources import set_current

# Tags of the answers (first item of every tuple a method returns or yields).
OK = "ok"
ERROR = "error"
STREAM = "stream"
CHUNK = "chunk"
END = "end"
# Items a stream's generator may run ahead of its reader, and most items in one Ray object.
STREAM_BUFFER = 256
MAX_PER_YIELD = 256

def _put(out: queue.Queue[tuple[str, Any]], entry: tuple[str, Any], stop: threading.Event) -> bool:
    """Queue ``entry`` for the reader unless the stream is stopped meanwhile (False then)."""
    while not stop.is_set():
        try:
            out.put(entry, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _wire(app_path: str, action: str, exc: BaseException) -> dict[str, Any]:
    err = app_error(app_path, action, exc)
    try:
        return err.to_wire()
    except Exception:  # details that cannot be pickled: the text is enough
        return DirtyError(str(err)).to_wire()


class AppActor:
    """One dirty app inside a Ray actor (threaded: ``dirty_threads`` calls at once, plus control).

    Needs ``max_concurrency = dirty_threads + 2``: the calls, :meth:`watch`
    (always pending) and one for :meth:`close_stream` and :meth:`stop`.
    """

    def __init__(self, app_path: str, extra_paths: list[str], env: dict[str, str]) -> None:
        # Light on purpose: an error here is a Ray creation failure; start() reports app errors.
        for path in extra_paths:
            if path not in sys.path and os.path.isdir(path):
                sys.path.append(path)  # after the node's own entries: never shadow them
        os.environ.update(env)
        self.app_path = app_path
        self.app: Any = None
        self._streams: dict[int, Any] = {}  # parked by call(), until pull() takes them
        self._stops: dict[int, threading.Event] = {}  # set: that stream ends (its caller left)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._stopped = threading.Event()

    def start(self) -> tuple[str, Any]:
        """Import the app and run its init(); answers what the dirty worker needs to know."""
        import ray

        ids = ray.get_runtime_context().get_accelerator_ids()
        set_current({"gpu" if kind == "GPU" else kind: list(v) for kind, v in ids.items() if v})
        try:
            app = load_app_class(self.app_path)()
            app.init()
        except Exception as exc:  # init() of user code failed: the worker logs it and retries
            return ERROR, _wire(self.app_path, "init", exc)
        self.app = app
        batched = {}
        for name in batched_actions(type(app)):
            spec = batch_spec(getattr(app, name))
            if spec is not None:
                batched[name] = (spec.max_size, spec.max_wait)
        return OK, {"pid": os.getpid(), "node": ray.get_runtime_context().get_node_id(),
                    "batched": batched}

    def call(self, action: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, Any]:
        """Run one action: its value, its error, or the id of the stream it returned."""
        try:
            result = self.app(action, *args, **kwargs)
            if inspect.iscoroutine(result):
                result = thread_loop().run_until_complete(result)
        except Exception as exc:  # the app's error goes back as a DirtyAppError wire dict
            return ERROR, _wire(self.app_path, action, exc)
        if inspect.isgenerator(result) or inspect.isasyncgen(result):
            with self._lock:
                sid = next(self._ids)
                self._streams[sid] = result
                self._stops[sid] = threading.Event()
            return STREAM, sid
        return OK, result

    def batch(self, action: str, calls: list[tuple[Any, ...]]) -> tuple[str, Any]:
        """Run a batched action on a batch gathered by the dirty worker; per-caller errors by index."""
        try:
            results = getattr(self.app, action)(calls)
            if inspect.iscoroutine(results):
                results = thread_loop().run_until_complete(results)
        except Exception as exc:  # the whole batch failed
            return ERROR, _wire(self.app_path, action, exc)
        if not isinstance(results, (list, tuple)):
            return OK, (results, {})  # the worker's batcher reports the wrong shape
        failed = {i: _wire(self.app_path, action, r) for i, r in enumerate(results)
                  if isinstance(r, BaseException)}
        return OK, ([None if i in failed else r for i, r in enumerate(results)], failed)

    def pull(self, sid: int) -> Any:
        """Yield stream ``sid`` as ``(CHUNK, [items])``; an app error ends it as ``(ERROR, wire)``.

        A producer thread runs the app's generator up to STREAM_BUFFER items ahead; each
        yield carries every item ready by then (one Ray object for many small items), and
        an item is never held back waiting for the next one.
        """
        with self._lock:
            gen = self._streams.pop(sid, None)
            stop = self._stops.get(sid)
        if gen is None or stop is None:
            yield ERROR, DirtyError(f"stream {sid} of {self.app_path} is not open").to_wire()
            return
        out: queue.Queue[tuple[str, Any]] = queue.Queue(STREAM_BUFFER)
        threading.Thread(target=self._produce, args=(sid, gen, out, stop), daemon=True,
                         name=f"dirty-stream-{sid}").start()
        try:
            while True:
                try:
                    tag, value = out.get(timeout=0.1)
                except queue.Empty:
                    if stop.is_set():
                        return
                    continue
                batch: list[Any] = []
                while tag == CHUNK:
                    batch.append(value)
                    if len(batch) >= MAX_PER_YIELD:
                        break
                    try:
                        tag, value = out.get_nowait()
                    except queue.Empty:
                        break
                if batch:
                    yield CHUNK, batch
                if tag == END:
                    return
                if tag == ERROR:
                    yield ERROR, value
                    return
        finally:
            stop.set()  # ended early (the caller went away): the producer stops too

    def _produce(self, sid: int, gen: Any, out: queue.Queue[tuple[str, Any]],
                 stop: threading.Event) -> None:
        loop = asyncio.new_event_loop() if inspect.isasyncgen(gen) else None
        try:
            while not stop.is_set():
                try:
                    item = loop.run_until_complete(gen.__anext__()) if loop else next(gen)
                except (StopIteration, StopAsyncIteration):
                    _put(out, (END, None), stop)
                    return
                except Exception as exc:  # raised midway: after the items already sent
                    _put(out, (ERROR, _wire(self.app_path, "stream", exc)), stop)
                    return
                if not _put(out, (CHUNK, item), stop):
                    return
        finally:
            with self._lock:
                self._stops.pop(sid, None)
            if loop:
                loop.run_until_complete(gen.aclose())
                loop.close()
            else:
                gen.close()

    def close_stream(self, sid: int) -> None:
        """The caller gave up on stream ``sid``: stop it before its next item."""
        with self._lock:
            gen = self._streams.pop(sid, None)
            stop = self._stops.pop(sid, None) if gen is not None else self._stops.get(sid)
        if stop is not None:
            stop.set()
        if gen is not None and inspect.isgenerator(gen):
            gen.close()  # never pulled: close it here

    def watch(self) -> int:
        """Return only once stop() ran: while it waits, its failure is the news that the actor died."""
        self._stopped.wait()
        return os.getpid()

    def stop(self) -> tuple[str, Any]:
        """Run the app's close() (a graceful stop of its dirty worker)."""
        self._stopped.set()
        if self.app is None:
            return OK, None
        try:
            self.app.close()
        except Exception as exc:  # reported by the worker, which stops anyway
            return ERROR, _wire(self.app_path, "close", exc)
        return OK, None
