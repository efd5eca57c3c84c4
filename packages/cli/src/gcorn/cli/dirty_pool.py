"""Running the dirty pool (gcorn-dirty) as a supervised side process of the arbiter."""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from .config import Config
from .errors import ConfigError

SOCKET_ENV = "GCORN_DIRTY_SOCKET"


def dirty_enabled(cfg: Config) -> bool:
    """True when the pool should run: `dirty_workers` > 0 and some `dirty_apps` (as gunicorn)."""
    return bool(cfg.dirty_workers > 0 and cfg.dirty_apps)


def check_dirty_apps(cfg: Config) -> None:
    """Fail before any fork when a dirty app's module cannot be found."""
    for spec in cfg.dirty_apps:
        parts = spec.split(":")
        if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
            raise ConfigError(
                f"invalid value for setting 'dirty_apps' (--dirty-app): {spec!r} is not "
                "MODULE:CLASS or MODULE:CLASS:N"
            )
        try:
            found = importlib.util.find_spec(parts[0])
        except (ImportError, ValueError):
            found = None
        if found is None:
            raise ConfigError(
                f"invalid value for setting 'dirty_apps' (--dirty-app): no module named {parts[0]!r}"
            )


def dirty_side_process(cfg: Config) -> Any:
    """A SideProcess running the dirty arbiter; sets $GCORN_DIRTY_SOCKET for the workers."""
    try:
        from gcorn.dirty.arbiter import make_socket_path, run
        from gcorn.dirty.config import DirtyConfig, Hooks
        from gcorn.dirty.errors import DirtyConfigError
    except ImportError:
        raise ConfigError(
            "setting 'dirty_workers': the dirty pool needs gcorn-dirty "
            "(pip install 'gcorn-cli[dirty]')"
        ) from None
    from gcorn.arbiter import SideProcess

    check_dirty_apps(cfg)
    hooks = Hooks(
        on_dirty_starting=cfg.on_dirty_starting,
        dirty_post_fork=cfg.dirty_post_fork,
        dirty_worker_init=cfg.dirty_worker_init,
        dirty_worker_exit=cfg.dirty_worker_exit,
    )
    try:
        DirtyConfig.from_cfg(cfg).validate()
    except DirtyConfigError as exc:
        raise ConfigError(f"invalid dirty pool settings: {exc}") from None
    path = make_socket_path()
    dirty_cfg = DirtyConfig.from_cfg(cfg, dirty_socket=path, proc_name=f"{cfg.proc_name}-dirty")
    # Set before any fork, so every HTTP worker's get_dirty_client() finds the pool.
    os.environ[SOCKET_ENV] = path
    return SideProcess("dirty-arbiter", target=run, args=(dirty_cfg, hooks))
