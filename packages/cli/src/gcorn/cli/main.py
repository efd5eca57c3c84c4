"""The `gcorn` command: parse, configure, load, and hand everything to the Arbiter."""

from __future__ import annotations

import importlib.util
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

from .apploader import AppLoader, prepare_paths
from .config import Config
from .dirty_pool import (
    SOCKET_ENV,
    check_dirty_apps,
    dirty_enabled,
    dirty_side_process,
    wire_dirty_readiness,
)
from .errors import AppLoadError, CliError, ConfigError
from .sources import build_config

PROG = "gcorn"


def run(argv: list[str] | None = None) -> None:
    """Entry point of the `gcorn` command (and `python -m gcorn.cli`)."""
    sys.exit(main(sys.argv[1:] if argv is None else argv))


def main(argv: list[str]) -> int:
    """Run gcorn with `argv` (without the program name); returns the exit code."""
    if argv[:1] == ["ctl"]:
        from .ctl import main as ctl_main

        return ctl_main(argv[1:])
    start_dir = os.getcwd()  # before --chdir: relative paths in argv are relative to it
    try:
        cfg, log, app = prepare(argv)
    except CliError as exc:
        report_error(exc)
        return exc.exit_code
    except OSError as exc:  # e.g. --chdir into a directory we may not enter
        report_error(ConfigError(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")))
        return ConfigError.exit_code
    if cfg.check_config:
        if cfg.print_config:
            try:
                print_config(cfg)
            except BrokenPipeError:  # `gcorn --print-config | head` closed the pipe early
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    from gcorn.arbiter import Arbiter

    arbiter = Arbiter(cfg, log, app, reload=make_reloader(argv, start_dir, cfg, log, app))
    if dirty_enabled(cfg):
        try:
            side = dirty_side_process(cfg)
            arbiter.add_side_process(side)
            wire_dirty_readiness(cfg, side)
        except CliError as exc:
            report_error(exc)
            return exc.exit_code
        # `gcorn ctl show dirty` asks the pool itself, at the path the master hands out
        arbiter.control_info["dirty_socket"] = os.environ.get(SOCKET_ENV)
    metrics_sock = None
    if cfg.metrics_bind:
        from .metrics import bind_metrics, metrics_side_process

        try:
            # bound here, before any fork: a busy port is the operator's one-line error
            metrics_sock = bind_metrics(cfg.metrics_bind, successor="GCORN_PID" in os.environ)
        except CliError as exc:
            report_error(exc)
            return exc.exit_code
        extra = []
        if dirty_enabled(cfg):
            from gcorn.dirty.metrics import DirtyPoolCollector

            extra.append(DirtyPoolCollector(os.environ[SOCKET_ENV]))
        arbiter.add_side_process(metrics_side_process(cfg, arbiter.scoreboard, metrics_sock, log,
                                                      extra))
    try:
        return int(arbiter.run() or 0)
    finally:
        if metrics_sock is not None:
            from .metrics import unlink_unix

            unlink_unix(cfg.metrics_bind, metrics_sock)
            metrics_sock.close()


def report_error(exc: CliError) -> None:
    """Write the one-line error for `exc` to stderr, after the app's traceback if it raised."""
    if isinstance(exc, AppLoadError) and exc.__cause__ is not None:
        # The app's own code failed (not a missing module): its traceback is the useful part.
        traceback.print_exception(exc.__cause__, file=sys.stderr)
    message = " ".join(str(exc).split())
    sys.stderr.write(f"{PROG}: error: {message}\n")
    sys.stderr.flush()


def prepare(argv: list[str]) -> tuple[Config, Any, AppLoader]:
    """Build (cfg, log, app) from argv and the environment; CliError on any problem."""
    cfg = build_config(argv)
    spec = app_spec(cfg)
    prepare_paths(cfg)
    app = AppLoader(cfg, spec)
    name_after_app(cfg, spec)
    app.check_importable()
    check_worker_class(cfg)
    check_binds(cfg)
    if dirty_enabled(cfg):
        check_dirty_apps(cfg)
    if cfg.reload and cfg.reload_engine == "inotify" and not _inotify_available():
        raise ConfigError(
            "invalid value for setting 'reload_engine' (--reload-engine): "
            "inotify is not available on this platform; use auto or poll"
        )
    log = cfg.logger_class(cfg)
    warn_unserved_settings(cfg, log)
    if cfg.spew:
        install_spew()
    if cfg.check_config:
        app.preload()
    elif cfg.preload_app:
        if cfg.reload:
            log.warning("--reload has no effect with --preload: the app is imported once")
        # a green worker (gevent, eventlet) must patch the stdlib before the app imports it
        patch_master = getattr(cfg.worker_class, "patch_master", None)
        if callable(patch_master):
            patch_master(log, dirty_pool=dirty_enabled(cfg))
        app.preload()
    return cfg, log, app


def warn_unserved_settings(cfg: Config, log: Any) -> None:
    """Say so when an HTTP/2 setting asks for what this worker class or install cannot serve."""
    if "h3" in cfg.http_protocols:
        log.warning("setting 'http_protocols': h3 is not served by gcorn; ignored")
    if "h2" not in cfg.http_protocols and cfg.http2_cleartext == "off":
        return
    try:
        worker_class = cfg.worker_class
    except Exception:  # reported where the worker class is loaded
        return
    if not getattr(worker_class, "serves_http2", False):
        log.warning(
            "settings 'http_protocols'/'http2_cleartext': HTTP/2 is served by the asgi and "
            "gthread workers; this worker class speaks HTTP/1.1 only"
        )
    elif importlib.util.find_spec("h2") is None:
        log.warning(
            "settings 'http_protocols'/'http2_cleartext': HTTP/2 needs the h2 library "
            "(pip install 'gcorn-workers[http2]'); serving HTTP/1.1 only"
        )


def _inotify_available() -> bool:
    from .reloader import inotify_available  # ctypes is only loaded when --reload is on

    return inotify_available()


def name_after_app(cfg: Config, spec: str) -> None:
    """Use the app spec as the process-title base unless the config file set one (gunicorn's way)."""
    if cfg.source_of("default_proc_name") == "default":
        cfg.set("default_proc_name", spec, "app spec")


def check_binds(cfg: Config) -> None:
    """Parse every `bind` now, so a bad address is a one-line error before anything starts."""
    from gcorn.arbiter.addresses import parse_bind
    from gcorn.arbiter.errors import BindError

    for spec in cfg.bind:
        try:
            parse_bind(spec)
        except BindError as exc:
            raise ConfigError(
                f"invalid value for setting 'bind' (-b/--bind) in {cfg.source_of('bind')}: {exc}"
            ) from None


def check_worker_class(cfg: Config) -> None:
    """Resolve `worker_class` now, so that a bad -k is a one-line error before any fork."""
    from gcorn.arbiter import Worker

    cls = cfg.worker_class
    if not issubclass(cls, Worker):
        raise ConfigError(
            f"invalid value for setting 'worker_class' (-k/--worker-class): "
            f"{cfg.worker_class_str!r} is not a gcorn worker (a subclass of gcorn.arbiter.Worker)"
        )


def app_spec(cfg: Config) -> str:
    """The app spec from argv, else `wsgi_app` from the config file; ConfigError if neither."""
    spec = cfg.app_uri or cfg.wsgi_app
    if cfg.paste:
        raise ConfigError(
            "setting 'paste' (--paste): PasteDeploy apps are not supported; "
            "name the app as MODULE:NAME instead"
        )
    if not spec:
        raise AppLoadError(
            "no application given: pass MODULE:NAME (e.g. gcorn myapp:app) "
            "or set 'wsgi_app' in the config file"
        )
    return str(spec)


def make_reloader(
    argv: list[str], start_dir: str, cfg: Config, log: Any, app: AppLoader
) -> Callable[[], tuple[Config, Any, AppLoader]]:
    """The arbiter's HUP callback: re-read the config and return (cfg, log, app).

    A broken new configuration is reported and the running one is kept, so
    a typo in the config file never takes a live server down.
    """
    current = {"cfg": cfg, "log": log, "app": app}

    def reload() -> tuple[Config, Any, AppLoader]:
        """Build (cfg, log, app) from the current config sources, or keep the running ones."""
        old_cfg, old_log, old_app = current["cfg"], current["log"], current["app"]
        try:
            # Relative paths in argv (-c, --chdir) mean what they meant at start.
            os.chdir(start_dir)
            new_cfg = build_config(argv)
            spec = app_spec(new_cfg)
            prepare_paths(new_cfg)
            name_after_app(new_cfg, spec)
            check_worker_class(new_cfg)  # fail here, not in every new worker
            if old_cfg.preload_app:
                # gunicorn keeps a preloaded app on HUP; USR2 picks up new code.
                new_app = old_app
            else:
                new_app = AppLoader(new_cfg, spec)
                new_app.check_importable()
            new_log = _reconfigured_logger(old_log, old_cfg, new_cfg)
            new_app.cfg = new_cfg
            if new_cfg.metrics_bind != old_cfg.metrics_bind:
                # the exporter's address is bound at start: keep counting for the one running
                new_log.warning("metrics_bind changed to %r: a HUP keeps the exporter at %r; "
                                "the new address takes effect at the next start or USR2",
                                new_cfg.metrics_bind, old_cfg.metrics_bind)
                new_cfg.set("metrics_bind", old_cfg.metrics_bind, source="running")
        except CliError as exc:
            os.chdir(old_cfg.chdir)
            old_log.error("reload failed, keeping the current configuration: %s", exc)
            return old_cfg, old_log, old_app
        current.update(cfg=new_cfg, log=new_log, app=new_app)
        return new_cfg, new_log, new_app

    return reload


def _reconfigured_logger(log: Any, old_cfg: Config, new_cfg: Config) -> Any:
    """The logger for `new_cfg`: the same object set up again, or a new one if the class changed.

    If the new logging settings fail, the old ones are restored before the error
    propagates, so the master never runs with a half-built logger.
    """
    if not (isinstance(log, new_cfg.logger_class) and hasattr(log, "setup")):
        return new_cfg.logger_class(new_cfg)
    try:
        log.setup(new_cfg)
    except CliError:
        log.setup(old_cfg)
        raise
    return log


def print_config(cfg: Config) -> None:
    """Print every setting as `name = value`, sorted by name (`--print-config`)."""
    values = cfg.values()
    width = max(len(name) for name in values)
    for name in sorted(values):
        sys.stdout.write(f"{name:{width}} = {values[name]}\n")
    sys.stdout.flush()


def install_spew() -> None:
    """Trace every line executed (`--spew`), as gunicorn does."""

    def trace(frame: Any, event: str, arg: Any) -> Any:
        """Print each executed line."""
        if event == "line":
            code = frame.f_code
            sys.stderr.write(f"{code.co_filename}:{frame.f_lineno} {code.co_name}\n")
        return trace

    sys.settrace(trace)
