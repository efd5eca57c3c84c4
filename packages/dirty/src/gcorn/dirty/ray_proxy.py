"""A dirty worker's stand-in for an app that runs as a Ray actor (``dirty_backend = "ray"``).

The dirty worker keeps doing everything it does for a local app (socket,
slots, queue, deadlines, batching, scoreboard, heartbeat): only the app
object it calls is a :class:`RayApp`, which forwards each call to its actor
(ray_actor.py) and waits for the answer. Ray carries the calls; its errors
become the pool's:

- an app error comes back as the wire dict of a ``DirtyAppError`` (built in
  the actor, with the traceback) and is raised as such;
- an actor that died (killed, OOM, its node lost) raises
  ``DirtyWorkerLostError`` to every caller waiting on it, and calls
  ``on_lost``: the worker then drains and exits, and the dirty arbiter
  replaces it as it replaces any worker that dies; the replacement creates a
  new actor (and runs ``init()`` there) before it reports READY;
- any other Ray failure is a ``DirtyWorkerLostError`` for that call.

A watcher thread keeps one call pending in the actor (AppActor.watch), which
Ray fails the moment the actor dies: an actor that dies while idle is noticed
(and replaced) at once, not by the next call that finds it gone.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

from .batching import BatchSpec, mark_batched
from .errors import DirtyError, DirtyWorkerLostError, error_from_wire
from .ray_actor import CHUNK, ERROR, OK, STREAM, AppActor
from .ray_cluster import NAMESPACE

log = logging.getLogger("gcorn.dirty.worker")

WATCH_RETRY = 1.0
STOP_TIMEOUT = 10.0
# Ray objects (each a list of items) a stream's actor may yield ahead of the dirty worker.
STREAM_AHEAD = 4


def actor_options(resources: dict[str, float], threads: int) -> dict[str, Any]:
    """Ray actor options for an app's ``resources`` (gpu -> num_gpus, cpu -> num_cpus, others custom)."""
    opts: dict[str, Any] = {"max_concurrency": threads + 2, "max_restarts": 0}
    custom: dict[str, float] = {}
    for kind, amount in resources.items():
        if kind.lower() == "gpu":
            opts["num_gpus"] = amount
        elif kind.lower() == "cpu":
            opts["num_cpus"] = amount
        else:
            custom[kind] = amount
    if custom:
        opts["resources"] = custom
    return opts


class RayApp:
    """The app object a dirty worker calls; the app itself runs in a Ray actor."""

    def __init__(self, app_path: str, ray: Any, name: str, resources: dict[str, float], threads: int,
                 on_lost: Callable[[str, BaseException], None]) -> None:
        self._path = app_path
        self._ray = ray
        self._name = name
        self._resources = dict(resources)
        self._threads = threads
        self._on_lost = on_lost
        self._actor: Any = None
        self._batched: dict[str, Callable[[list[Any]], list[Any]]] = {}
        self._closed = threading.Event()
        self._lost = False
        self.pid = 0  # the actor's process, on its node

    def __repr__(self) -> str:
        return f"<RayApp {self._path} actor={self._name}>"

    # ------------------------------------------------------------ lifecycle
    def init(self) -> None:
        """Create the actor and run the app's init() in it (the worker's boot waits for this)."""
        ray = self._ray
        opts = actor_options(self._resources, self._threads)
        env = {k: v for k, v in os.environ.items() if k == "GCORN_DIRTY_SOCKET"}
        _warn_if_missing(ray, self._path, opts)
        remote = ray.remote(AppActor).options(name=self._name, namespace=NAMESPACE, **opts)
        self._actor = remote.remote(self._path, list(sys.path), env)
        tag, value = self._get(self._actor.start.remote())
        if tag != OK:
            self._kill()
            raise error_from_wire(value)
        self.pid = int(value["pid"])
        for action, (max_size, max_wait) in value["batched"].items():
            self._batched[action] = self._batch_fn(action, BatchSpec(int(max_size), float(max_wait)))
        log.info("dirty app %s runs in Ray actor %s (pid %s on node %s) with %s", self._path,
                 self._name, self.pid, str(value["node"])[:12], opts)
        threading.Thread(target=self._watch, name="dirty-ray-watch", daemon=True).start()

    def close(self) -> None:
        """Run the app's close() in the actor, then end the actor."""
        self._closed.set()
        if self._actor is None:
            return
        try:
            if not self._lost:
                tag, value = self._get(self._actor.stop.remote(), timeout=STOP_TIMEOUT)
                if tag != OK:
                    log.error("close() of %s failed in its Ray actor: %s", self._path,
                              error_from_wire(value))
        except DirtyError as exc:
            log.warning("close() of %s: %s", self._path, exc)
        finally:
            self._kill()

    # ------------------------------------------------------------ calls
    def __call__(self, action: str, *args: Any, **kwargs: Any) -> Any:
        """Run ``action`` in the actor: its value, a generator of its items, or its error."""
        tag, value = self._get(self._actor.call.remote(action, args, kwargs))
        if tag == OK:
            return value
        if tag == STREAM:
            return self._stream(int(value))
        raise error_from_wire(value)

    def __getattr__(self, name: str) -> Any:
        # Only batched actions are attributes: the worker's batcher finds them (and their
        # @batched mark) as it finds a local app's methods; any other name is no action here.
        batched = self.__dict__.get("_batched") or {}
        if name in batched:
            return batched[name]
        raise AttributeError(name)

    def _batch_fn(self, action: str, spec: BatchSpec) -> Callable[[list[Any]], list[Any]]:
        def run_batch(calls: list[Any]) -> list[Any]:
            tag, value = self._get(self._actor.batch.remote(action, list(calls)))
            if tag != OK:
                raise error_from_wire(value)
            results, failed = value
            if not failed:
                return results  # type: ignore[no-any-return]
            return [error_from_wire(failed[i]) if i in failed else r for i, r in enumerate(results)]
        return mark_batched(run_batch, spec)

    def _stream(self, sid: int) -> Iterator[Any]:
        method = self._actor.pull.options(num_returns="streaming",
                                          _generator_backpressure_num_objects=STREAM_AHEAD)
        finished = False
        try:
            refs = method.remote(sid)
            while True:
                try:
                    ref = next(refs)
                except StopIteration:
                    finished = True
                    return
                except Exception as exc:  # a Ray failure while waiting for the next item
                    self._fail(exc)
                tag, value = self._get(ref)
                if tag == CHUNK:
                    yield from value
                elif tag == ERROR:
                    finished = True
                    raise error_from_wire(value)
        finally:
            if not finished and not self._lost:
                try:
                    self._actor.close_stream.remote(sid)  # the caller gave up: stop the generator
                except Exception as exc:  # the actor is going away anyway
                    log.debug("closing stream %s of %s: %s", sid, self._path, exc)

    # ------------------------------------------------------------ Ray errors
    def _get(self, ref: Any, timeout: float | None = None) -> Any:
        try:
            return self._ray.get(ref, timeout=timeout)
        except Exception as exc:  # every Ray failure becomes a pool error (see _fail)
            self._fail(exc)

    def _fail(self, exc: BaseException) -> NoReturn:
        ray_exc = self._ray.exceptions
        if isinstance(exc, ray_exc.RayActorError):
            first = not self._lost
            self._lost = True
            if first:
                self._on_lost(self._path, exc)
            raise DirtyWorkerLostError(
                f"the Ray actor {self._name} running {self._path} died: {_first_line(exc)}",
                {"app_path": self._path, "actor": self._name}) from None
        if isinstance(exc, ray_exc.GetTimeoutError):
            raise DirtyWorkerLostError(f"the Ray actor {self._name} did not answer in time",
                                       {"app_path": self._path, "actor": self._name}) from None
        if isinstance(exc, ray_exc.RayTaskError):  # not app code (the actor catches that): Ray's own
            raise DirtyWorkerLostError(f"Ray failed a call to {self._path}: {_first_line(exc)}",
                                       {"app_path": self._path, "actor": self._name}) from None
        if isinstance(exc, ray_exc.RayError):
            raise DirtyWorkerLostError(f"Ray failed a call to {self._path}: "
                                       f"{type(exc).__name__}: {_first_line(exc)}",
                                       {"app_path": self._path, "actor": self._name}) from None
        raise exc  # not Ray's (a value Ray cannot serialize...): the worker reports it as an app error

    def _watch(self) -> None:
        # One call stays pending in the actor until close(): Ray fails it the moment the actor
        # dies, so an idle actor's death is known at once, with no polling.
        while not self._closed.is_set():
            try:
                self._get(self._actor.watch.remote())
                return  # close() ran
            except DirtyWorkerLostError:
                if self._lost:
                    return  # on_lost ran: the worker is on its way out
            except Exception:  # the watcher must never die of something else
                log.exception("watching the Ray actor of %s", self._path)
            self._closed.wait(WATCH_RETRY)

    def _kill(self) -> None:
        try:
            self._ray.kill(self._actor, no_restart=True)
        except Exception as exc:  # gone already, or Ray is shutting down
            log.debug("ending Ray actor %s: %s", self._name, exc)


def _warn_if_missing(ray: Any, app_path: str, opts: dict[str, Any]) -> None:
    """Say so when the cluster lacks what the actor needs (it then waits for a node that has it)."""
    need = dict(opts.get("resources") or {})
    if "num_gpus" in opts:
        need["GPU"] = opts["num_gpus"]
    if "num_cpus" in opts:
        need["CPU"] = opts["num_cpus"]
    try:
        have = ray.cluster_resources()
    except Exception:  # only a hint: never stop the boot for it
        return
    short = {k: v for k, v in need.items() if have.get(k, 0) < v}
    if short:
        log.warning("dirty app %s needs %s of Ray but the cluster has %s: its actor waits for a node "
                    "that has them (dirty_boot_timeout bounds the wait)", app_path, short,
                    {k: have.get(k, 0) for k in short})


def _first_line(exc: BaseException) -> str:
    """Ray's first line, and its last (the cause: "killed by `ray.kill`", OOM...) when it differs."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    return lines[0] if len(lines) == 1 else f"{lines[0]} {lines[-1]}"
