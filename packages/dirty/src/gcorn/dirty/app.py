"""DirtyApp, the base class of apps served by the pool, app-spec parsing, and the
per-thread event loop that async actions run on."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import threading
from typing import Any, ClassVar

from .batching import batched_actions
from .errors import DirtyConfigError
from .resources import parse_demand

_local = threading.local()


def thread_loop() -> asyncio.AbstractEventLoop:
    """The event loop this thread runs async app actions on (made once per thread, kept).

    A local dirty worker's call threads and a Ray actor's threads share this one rule.
    """
    loop = getattr(_local, "loop", None)
    if loop is None:
        loop = _local.loop = asyncio.new_event_loop()
    return loop

class DirtyApp:
    """Base class of a dirty app: state loaded once per worker, actions called by name.

    Subclasses define methods (actions); ``init()`` runs once in each worker
    that loads the app, ``close()`` when that worker stops. A method that
    returns a generator or an async generator streams its items.
    """

    #: how many workers load this app (None: every worker); ``"pkg.mod:App:N"`` wins.
    workers: ClassVar[int | None] = None
    #: stash tables the dirty arbiter creates at start.
    stashes: ClassVar[list[str]] = []
    #: what one worker holding this app needs of the pool's dirty_resources, e.g. {"gpu": 1}.
    resources: ClassVar[dict[str, float]] = {}

    def init(self) -> None:
        """Load state (models, indexes); runs once in each worker that holds the app."""

    def close(self) -> None:
        """Release state; runs once when the worker stops."""

    def __call__(self, action: str, *args: Any, **kwargs: Any) -> Any:
        """Run the method named ``action`` (public names only)."""
        if not isinstance(action, str) or not action or action.startswith("_") \
                or action in _RESERVED:
            raise AttributeError(f"unknown action {action!r} on {type(self).__name__}")
        method = getattr(self, action, None)
        if method is None or not callable(method):
            raise AttributeError(f"unknown action {action!r} on {type(self).__name__}")
        return method(*args, **kwargs)


_RESERVED = frozenset({"init", "close", "workers", "stashes", "resources"})


@dataclasses.dataclass(frozen=True)
class AppSpec:
    """One entry of ``dirty_apps``: import path and optional worker limit."""

    path: str  # "pkg.mod:Class", the name clients call it by
    limit: int | None  # None: every worker
    batched: tuple[tuple[str, int], ...] = ()  # (action, max_size) of its @batched actions
    resources: tuple[tuple[str, float], ...] = ()  # what one worker of it needs (class attribute)

    @classmethod
    def parse(cls, spec: str) -> AppSpec:
        """Parse ``"pkg.mod:Class"`` or ``"pkg.mod:Class:N"``."""
        if not isinstance(spec, str):
            raise DirtyConfigError(f"dirty app spec must be a string, got {spec!r}")
        parts = spec.strip().split(":")
        if len(parts) == 2 and all(parts):
            return cls(f"{parts[0]}:{parts[1]}", None)
        if len(parts) == 3 and parts[0] and parts[1]:
            try:
                n = int(parts[2])
            except ValueError:
                raise DirtyConfigError(
                    f"dirty app spec {spec!r}: worker count {parts[2]!r} is not an integer") from None
            if n < 1:
                raise DirtyConfigError(f"dirty app spec {spec!r}: worker count must be >= 1")
            return cls(f"{parts[0]}:{parts[1]}", n)
        raise DirtyConfigError(
            f"dirty app spec {spec!r} is not 'pkg.module:Class' or 'pkg.module:Class:N'")


def load_app_class(path: str) -> type:
    """Import ``"pkg.mod:Class"`` and return the class."""
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise DirtyConfigError(f"cannot import dirty app module {module_name!r}: {exc}") from exc
    obj: Any = module
    for name in attr.split("."):
        try:
            obj = getattr(obj, name)
        except AttributeError:
            raise DirtyConfigError(f"module {module_name!r} has no attribute {attr!r}") from None
    if not callable(obj):
        raise DirtyConfigError(f"dirty app {path!r} is not a class or factory")
    return obj  # type: ignore[no-any-return]


def resolve_specs(specs: list[str]) -> list[AppSpec]:
    """Parse specs and apply each class's ``workers`` attribute when the spec has no ``:N``."""
    out: list[AppSpec] = []
    seen: set[str] = set()
    for raw in specs:
        spec = AppSpec.parse(raw)
        if spec.path in seen:
            raise DirtyConfigError(f"dirty app {spec.path!r} is listed twice")
        seen.add(spec.path)
        cls = load_app_class(spec.path)
        limit = spec.limit
        if limit is None:
            attr = getattr(cls, "workers", None)
            if attr is not None:
                if not isinstance(attr, int) or isinstance(attr, bool) or attr < 1:
                    raise DirtyConfigError(f"{spec.path}.workers must be an int >= 1, got {attr!r}")
                limit = attr
        demand = parse_demand(spec.path, getattr(cls, "resources", None))
        out.append(AppSpec(spec.path, limit, tuple(sorted(batched_actions(cls).items())),
                           tuple(sorted(demand.items()))))
    return out


def declared_stashes(specs: list[AppSpec]) -> list[str]:
    """Stash tables named by the apps' ``stashes`` class attributes."""
    tables: list[str] = []
    for spec in specs:
        for name in getattr(load_app_class(spec.path), "stashes", None) or []:
            if str(name) not in tables:
                tables.append(str(name))
    return tables


def probe_apps(specs: list[str]) -> tuple[list[AppSpec], list[str]]:
    """Resolve specs and stash tables in a short-lived child process.

    The dirty arbiter must not import app code itself: its workers are forked
    from it, and each must import the apps afresh (so that HUP loads new code,
    and so that no half-initialised extension module is inherited).
    """
    import json
    import os

    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: import, report, exit without running any cleanup of the parent's
        code = 0
        try:
            os.close(rfd)
            try:
                resolved = resolve_specs(specs)
                report = {"specs": [[s.path, s.limit, s.batched, s.resources] for s in resolved],
                          "stashes": declared_stashes(resolved)}
            except DirtyConfigError as exc:
                report = {"error": str(exc)}
            except Exception as exc:  # any import-time failure of user code is a config error
                report = {"error": f"cannot load dirty apps: {type(exc).__name__}: {exc}"}
            with os.fdopen(wfd, "w") as out:
                json.dump(report, out)
        except BaseException:  # the child must reach os._exit whatever happens
            code = 1
        finally:
            os._exit(code)
    os.close(wfd)
    with os.fdopen(rfd) as inp:
        raw = inp.read()
    os.waitpid(pid, 0)
    try:
        report = json.loads(raw)
    except ValueError:
        raise DirtyConfigError("the process that loads the dirty apps crashed") from None
    if "error" in report:
        raise DirtyConfigError(report["error"])
    return ([AppSpec(p, n, tuple((a, int(m)) for a, m in b), tuple((k, float(v)) for k, v in r))
             for p, n, b, r in report["specs"]],
            list(report["stashes"]))
