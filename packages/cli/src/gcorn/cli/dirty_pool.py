"""Running the dirty pool (gcorn-dirty) as a supervised side process of the arbiter."""

from __future__ import annotations

import importlib.util
import os
import time
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
        checked = DirtyConfig.from_cfg(cfg).validate()
        if checked.dirty_backend == "ray" and checked.dirty_ray_address is not None:
            from gcorn.dirty.ray_cluster import check_address

            check_address(checked.dirty_ray_address)  # unreachable: stop before any fork
    except DirtyConfigError as exc:
        raise ConfigError(f"invalid dirty pool settings: {exc}") from None
    path = make_socket_path()
    dirty_cfg = DirtyConfig.from_cfg(cfg, dirty_socket=path, proc_name=f"{cfg.proc_name}-dirty")
    # Set before any fork, so every HTTP worker's get_dirty_client() finds the pool.
    os.environ[SOCKET_ENV] = path
    return SideProcess("dirty-arbiter", target=run, args=(dirty_cfg, hooks))


def wire_dirty_readiness(cfg: Config, side: Any) -> None:
    """Make the master's when_ready (and so READY=1 and the HTTP workers) wait for the pool.

    The master reports ready only once every dirty app has a worker whose init()
    returned, so that no request meets a pool that is still loading its models.
    """
    path = os.environ[SOCKET_ENV]
    user_hook = cfg.when_ready
    timeout = float(cfg.dirty_boot_timeout or 0)

    def when_ready(server: Any) -> None:
        wait_for_dirty_pool(side, path, timeout, server.log)
        user_hook(server)

    when_ready.__doc__ = user_hook.__doc__
    cfg.set("when_ready", when_ready, source="dirty pool readiness")


def wait_for_dirty_pool(side: Any, path: str, timeout: float, log: Any) -> bool:
    """Block until every dirty app has a READY worker; False (logged) on timeout or failure."""
    from gcorn.dirty import DirtyError, connect

    started = time.monotonic()
    # dirty_boot_timeout bounds each worker's init(); the pool also has to import and fork.
    deadline = started + (timeout + 10.0 if timeout > 0 else 600.0)
    client = None
    missing: list[str] = []
    try:
        while time.monotonic() < deadline:
            if not _alive(int(getattr(side, "pid", 0) or 0)) and time.monotonic() - started > 1.0:
                log.error("the dirty arbiter exited before its workers were ready")
                return False
            if os.path.exists(path):  # before that, a connect would only log an error
                try:
                    client = client or connect(path, timeout=5)
                    status = client.status()
                    missing = [app for app, ok in status.get("ready_apps", {}).items() if not ok]
                    if not missing:
                        log.info("dirty pool ready after %.2f s", time.monotonic() - started)
                        return True
                    failures = status.get("boot_failures", {})
                    if all(failures.get(app) for app in missing):
                        log.error("dirty apps %s fail to boot (see above); serving without them", missing)
                        return False
                except DirtyError:
                    if client is not None:
                        client.close()
                    client = None
            time.sleep(0.02)
        log.error("dirty pool not ready after %.0f s: no ready worker for %s",
                  time.monotonic() - started, missing or "any app (no arbiter socket)")
        return False
    finally:
        if client is not None:
            client.close()


def _alive(pid: int) -> bool:
    if pid <= 0:
        return True  # not started yet (or not known): keep waiting
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
