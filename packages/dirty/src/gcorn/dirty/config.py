"""DirtyConfig (gunicorn's setting names) and the dirty hooks."""

from __future__ import annotations

import dataclasses
import enum
import importlib.util
import os
import runpy
from collections.abc import Callable
from typing import Any

from .codec import CODECS
from .errors import DirtyConfigError
from .protocol import DEFAULT_MAX_MESSAGE_SIZE, MAX_FRAME_LIMIT
from .stash_url import SETTING as STASH_SETTING
from .stash_url import StashBackendURL, parse_stash_url

BACKENDS = ("local", "ray")


def _noop(*_args: Any) -> None:
    return None


class StopMode(enum.IntEnum):
    """How a dirty process was told to stop, in rising urgency (NONE: it was not; falsy)."""

    NONE = 0
    GRACEFUL = 1  # TERM: finish the calls in flight, up to dirty_graceful_timeout
    QUICK = 2  # INT, QUIT: stop now


@dataclasses.dataclass
class Hooks:
    """The dirty hooks, with gunicorn's names and signatures."""

    on_dirty_starting: Callable[[Any], None] = _noop  # (arbiter), in the dirty arbiter
    dirty_post_fork: Callable[[Any, Any], None] = _noop  # (arbiter, worker), in the new worker
    dirty_worker_init: Callable[[Any], None] = _noop  # (worker), after every app's init()
    dirty_worker_exit: Callable[[Any, Any], None] = _noop  # (arbiter, worker), after reaping


HOOK_NAMES = tuple(f.name for f in dataclasses.fields(Hooks))


@dataclasses.dataclass
class DirtyConfig:
    """Settings of one dirty pool; field names are gunicorn's setting names."""

    dirty_apps: list[str] = dataclasses.field(default_factory=list)
    dirty_workers: int = 1
    dirty_timeout: float = 300.0  # per-call default deadline and heartbeat limit; 0 = off
    dirty_threads: int = 1
    dirty_graceful_timeout: float = 30.0
    dirty_boot_timeout: float = 120.0  # seconds a worker may take to import and init() its apps; 0 = off
    dirty_queue_size: int = 1024  # calls waiting per app once every slot is busy
    dirty_max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    dirty_codec: str = "safe"
    dirty_socket: str | None = None  # None: a fresh private directory
    dirty_pidfile: str | None = None
    # resource tokens per kind, e.g. {"gpu": [0, 1]} or {"gpu": "auto"} (or its JSON text)
    dirty_resources: Any = None
    proc_name: str = "gcorn-dirty"
    exit_with_parent: bool = True  # stop when the process that started us dies
    # memory cap: a worker whose RSS stays above this many MiB for `max_worker_memory_checks`
    # checks in a row (one a second) is replaced, its replacement ready first; 0 = off
    dirty_max_worker_memory: float = 0
    max_worker_memory_checks: int = 3
    # HOST:PORT where the standalone pool serves Prometheus metrics (`gcorn-dirty serve
    # --metrics-bind`; needs gcorn-dirty[metrics]). None: off. Under gcorn, its own exporter
    # reads the pool instead (gcorn.dirty.metrics.DirtyPoolCollector).
    dirty_metrics_bind: str | None = None
    # gcorn's --user/--group (numeric, as its cfg.uid/cfg.gid) and --initgroups: the pool runs
    # as the HTTP workers do. None: stay who we are.
    uid: int | None = None
    gid: int | None = None
    initgroups: bool = False
    # --- stash backend (issue 14): where the stash tables live; None: the arbiter's memory,
    # "redis://host:port/db" (rediss://, unix://): one Redis hash per table, shared by
    # every pool pointed at it and kept across arbiter restarts (needs gcorn-dirty[redis])
    dirty_stash_backend: str | None = None

    # Where the apps run (docs/dirty-ray.md): "local", in the dirty workers themselves, or
    # "ray", each app of each dirty worker in a Ray actor (pip install 'gcorn-dirty[ray]').
    # dirty_ray_address: the cluster ("host:port", "ray://host:port", "auto"); None: the
    # arbiter starts a local one-node Ray for the pool.
    dirty_backend: str = "local"
    dirty_ray_address: str | None = None

    def validate(self) -> DirtyConfig:
        """Check every value; raise DirtyConfigError naming the bad one."""
        if not self.dirty_apps:
            raise DirtyConfigError("no dirty apps configured (dirty_apps is empty)")
        for name in ("dirty_workers", "dirty_threads"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise DirtyConfigError(f"{name} must be an int >= 1, got {value!r}")
        if not isinstance(self.dirty_queue_size, int) or self.dirty_queue_size < 0:
            raise DirtyConfigError(f"dirty_queue_size must be an int >= 0, got {self.dirty_queue_size!r}")
        if not isinstance(self.max_worker_memory_checks, int) or self.max_worker_memory_checks < 1:
            raise DirtyConfigError(
                f"max_worker_memory_checks must be an int >= 1, got {self.max_worker_memory_checks!r}")
        for name in ("dirty_timeout", "dirty_graceful_timeout", "dirty_boot_timeout",
                     "dirty_max_worker_memory"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0:
                raise DirtyConfigError(f"{name} must be a number >= 0, got {value!r}")
        size = self.dirty_max_message_size
        if not isinstance(size, int) or not 1024 <= size <= MAX_FRAME_LIMIT:
            raise DirtyConfigError(
                f"dirty_max_message_size must be an int in [1024, {MAX_FRAME_LIMIT}], got {size!r}")
        for name in ("uid", "gid"):
            value = getattr(self, name)
            if value is not None and (type(value) is not int or value < 0):
                raise DirtyConfigError(f"{name} must be an int >= 0 or None, got {value!r}")
        if self.dirty_metrics_bind is not None:
            parse_bind(self.dirty_metrics_bind)
            try:
                import prometheus_client  # noqa: F401
            except ImportError as exc:
                raise DirtyConfigError(
                    f"--metrics-bind (dirty_metrics_bind={self.dirty_metrics_bind!r}) needs "
                    f"prometheus-client, which cannot be imported ({exc}): "
                    f"pip install 'gcorn-dirty[metrics]'") from None
        from .resources import parse_resources
        self.dirty_resources = parse_resources(self.dirty_resources)
        self._validate_backend()
        if self.dirty_codec not in CODECS:
            raise DirtyConfigError(f"dirty_codec must be one of {sorted(CODECS)}, got {self.dirty_codec!r}")
        check_stash_backend(self.dirty_stash_backend)
        return self

    def _validate_backend(self) -> None:
        if self.dirty_backend not in BACKENDS:
            raise DirtyConfigError(f"dirty_backend must be one of {list(BACKENDS)}, got {self.dirty_backend!r}")
        address = self.dirty_ray_address
        if address is not None and (not isinstance(address, str) or not address.strip()):
            raise DirtyConfigError(f"dirty_ray_address must be a non-empty string, got {address!r}")
        if self.dirty_backend == "local":
            if address is not None:
                raise DirtyConfigError(f"dirty_ray_address={address!r} is set but dirty_backend is "
                                       "'local': set dirty_backend='ray' (--backend ray) to use it")
            return
        from .ray_cluster import require_ray
        require_ray()
        if self.dirty_resources is not None:
            raise DirtyConfigError("dirty_resources gives out this machine's tokens to local workers; "
                                   "with dirty_backend='ray' Ray places each actor by its app's "
                                   "`resources` (gpu -> num_gpus): leave dirty_resources unset")

    @classmethod
    def from_cfg(cls, cfg: Any, **overrides: Any) -> DirtyConfig:
        """Build from any object with gunicorn-named attributes (gcorn's ``cfg``)."""
        values = {}
        for f in dataclasses.fields(cls):
            if hasattr(cfg, f.name):
                values[f.name] = getattr(cfg, f.name)
        values.update(overrides)
        return cls(**values)


def check_stash_backend(url: object) -> StashBackendURL | None:
    """Parse ``dirty_stash_backend``; a Redis URL also needs redis-py (DirtyConfigError if not)."""
    backend = parse_stash_url(url)
    if backend is not None and importlib.util.find_spec("redis") is None:
        raise DirtyConfigError(f"{STASH_SETTING}: {backend.display} needs redis-py, which is not "
                               "installed: pip install 'gcorn-dirty[redis]'",
                               {"reason": f"{backend.display} needs redis-py, which is not "
                                          "installed: pip install 'gcorn-dirty[redis]'"})
    return backend


def parse_bind(value: Any) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) as (host, port); DirtyConfigError naming the value."""
    bad = DirtyConfigError(f"--metrics-bind (dirty_metrics_bind) must be HOST:PORT, e.g. "
                           f"127.0.0.1:9101 or [::1]:9101, with a port in 0..65535; got {value!r}")
    if not isinstance(value, str):
        raise bad
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise bad
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host or "[" in host or "]" in host:
        raise bad
    if not host:
        raise bad
    return host, int(port)


def hooks_from(source: Any) -> Hooks:
    """Collect the dirty hooks from an object or mapping (a gunicorn ``cfg`` or a config module)."""
    hooks = Hooks()
    for name in HOOK_NAMES:
        fn = source.get(name) if isinstance(source, dict) else getattr(source, name, None)
        if fn is not None:
            if not callable(fn):
                raise DirtyConfigError(f"hook {name} must be callable, got {fn!r}")
            setattr(hooks, name, fn)
    return hooks


def load_config_file(path: str) -> tuple[dict[str, Any], Hooks]:
    """Run a gunicorn-style Python config file; return its dirty settings and hooks."""
    if not os.path.exists(path):
        raise DirtyConfigError(f"config file {path!r} does not exist")
    try:
        namespace = runpy.run_path(path)
    except Exception as exc:  # a broken config file must stop the start with its cause
        raise DirtyConfigError(f"error in config file {path!r}: {exc!r}") from exc
    names = {f.name for f in dataclasses.fields(DirtyConfig)}
    settings = {k: v for k, v in namespace.items() if k in names}
    return settings, hooks_from(namespace)
