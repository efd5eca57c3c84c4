"""Run a real gcorn Arbiter with the asgi worker, for the ASGI worker's tests and benchmarks.

Usage: python asgi_runner.py OPTS.json

OPTS holds `app` ("module:attr", imported with this folder on sys.path),
`port_file` (where the bound "host port" is written once listening) and any
setting overrides by gunicorn name. `access_file` turns on an access log
written with `access_log_format`; `events` appends one line per hook call.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import types
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


class _BlockWebsockets:
    """Meta-path finder that makes `import websockets` fail, as if it were not installed."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "websockets" or name.startswith("websockets."):
            raise ImportError(f"No module named {name!r} (blocked by the test)")


if "--block-websockets" in sys.argv:
    sys.meta_path.insert(0, _BlockWebsockets())

from gcorn.arbiter import Arbiter  # noqa: E402
from gcorn.workers.asgi import AsgiWorker  # noqa: E402

ACCESS_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'


def _record(path: str | None, line: str) -> None:
    if not path:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line.rstrip("\n") + "\n").encode("utf-8", "replace"))
    finally:
        os.close(fd)


class TestLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A stderr logger with gcorn's `access(info)` writing lines to a file."""

    def __init__(self, cfg: Any, level: str) -> None:
        logger = logging.getLogger("gcorn.asgi.test")
        if not logger.handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("[%(process)d] [%(levelname)s] %(message)s"))
            logger.addHandler(handler)
        logger.setLevel(getattr(logging, level.upper()))
        super().__init__(logger, {})
        self.cfg = cfg

    def access(self, info: Any) -> None:
        _record(self.cfg.accesslog, self.cfg.access_log_format % info.atoms())

    def reopen_files(self) -> None:
        _record(self.cfg.events, "reopen")


class AppLoader:
    """Imports `module:attr` in the worker, as gcorn.cli's loader does."""

    def __init__(self, spec: str, cfg: Any) -> None:
        self.spec = spec
        self.cfg = cfg

    def load(self) -> Any:
        module, _, attr = self.spec.partition(":")
        return getattr(importlib.import_module(module), attr or "app")


def _hook(events: str | None, name: str):  # type: ignore[no-untyped-def]
    def hook(*args: Any) -> None:
        detail = ""
        if name == "pre_request":
            req = args[1]
            if req.path == "/hook-boom":
                raise RuntimeError("hook failure")
            detail = f"{req.method} {req.path}"
        elif name == "post_request":
            detail = f"{args[1].method} {args[1].path} {args[3].status_code}"
        _record(events, f"{name} {os.getpid()} {detail}")
    return hook


def _no_hook(*args: Any) -> None:
    return None


def build_cfg(opts: dict[str, Any]) -> types.SimpleNamespace:
    """A settings namespace holding gunicorn's defaults plus the overrides in `opts`."""
    events = opts.get("events")
    cfg = types.SimpleNamespace(
        bind=["127.0.0.1:0"], workers=1, worker_class=AsgiWorker, worker_class_str="asgi",
        threads=1, worker_connections=1000, timeout=30, graceful_timeout=30, keepalive=2,
        max_requests=0, max_requests_jitter=0, backlog=2048, limit_request_line=4094,
        limit_request_fields=100, limit_request_field_size=8190, http_parser="auto",
        asgi_loop="auto", asgi_lifespan="auto", asgi_disconnect_grace_period=3, root_path="",
        forwarded_allow_ips=["127.0.0.1", "::1"], proxy_allow_ips=["127.0.0.1", "::1"],
        secure_scheme_headers={"X-FORWARDED-PROTOCOL": "ssl", "X-FORWARDED-PROTO": "https",
                               "X-FORWARDED-SSL": "on"},
        forwarder_headers="SCRIPT_NAME,PATH_INFO", header_map="drop",
        accesslog=None, access_log_format=ACCESS_FORMAT, errorlog="-", loglevel="info",
        proc_name=None, default_proc_name="gcorn-asgi-test", env={}, pidfile=None,
        daemon=False, umask=0, worker_tmp_dir=None, uid=None, gid=None, initgroups=False,
        reuse_port=False, certfile=None, keyfile=None, is_ssl=False, preload_app=False,
        limit_concurrency=0, websocket_max_message_size=16 * 1024 * 1024,
        websocket_ping_interval=20.0, websocket_ping_timeout=20.0, events=events,
        boot_failure_limit=1,
    )
    for name in ("on_starting", "on_reload", "pre_fork", "post_fork", "post_worker_init",
                 "worker_int", "worker_abort", "pre_exec", "child_exit", "worker_exit",
                 "nworkers_changed", "on_exit", "pre_request", "post_request"):
        setattr(cfg, name, _hook(events, name) if opts.get("hooks", True) else _no_hook)
    for key, value in opts.items():
        if key not in ("app", "port_file", "access_file", "hooks", "block_websockets"):
            setattr(cfg, key, value)
    if opts.get("access_file"):
        cfg.accesslog = opts["access_file"]
    port_file = opts["port_file"]

    def when_ready(server: Any) -> None:
        host, port = server.LISTENERS[0].sock.getsockname()[:2]
        tmp = port_file + ".tmp"
        with open(tmp, "w") as fh:
            fh.write(f"{host} {port}\n")
        os.replace(tmp, port_file)

    cfg.when_ready = when_ready
    return cfg


def main() -> int:
    """Run the arbiter until it stops; its exit code is ours."""
    with open(sys.argv[1]) as fh:
        opts = json.load(fh)
    cfg = build_cfg(opts)
    log = TestLogger(cfg, str(opts.get("loglevel", "info")))
    return Arbiter(cfg, log, AppLoader(opts["app"], cfg)).run()


if __name__ == "__main__":
    sys.exit(main())
