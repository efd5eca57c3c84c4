"""``gcorn-dirty serve``: run a dirty pool with no HTTP server."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from .arbiter import run
from .config import DirtyConfig, Hooks, load_config_file
from .errors import DirtyConfigError


def _size(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    t = text.strip().lower().removesuffix("ib").removesuffix("b")
    if t and t[-1] in units:
        return int(float(t[:-1]) * units[t[-1]])
    return int(t)


def build_parser() -> argparse.ArgumentParser:
    """The ``gcorn-dirty`` argument parser."""
    p = argparse.ArgumentParser(prog="gcorn-dirty", description="Run a gcorn dirty pool.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run a pool of dirty workers")
    s.add_argument("apps", nargs="*", metavar="pkg.mod:App[:N]", help="dirty apps to load")
    s.add_argument("-c", "--config", help="Python config file (dirty_* settings and dirty hooks)")
    s.add_argument("-w", "--workers", type=int, dest="dirty_workers")
    s.add_argument("--threads", type=int, dest="dirty_threads")
    s.add_argument("--socket", dest="dirty_socket", help="arbiter socket path (default: a private tmp dir)")
    s.add_argument("-t", "--timeout", type=float, dest="dirty_timeout")
    s.add_argument("--graceful-timeout", type=float, dest="dirty_graceful_timeout")
    s.add_argument("--boot-timeout", type=float, dest="dirty_boot_timeout",
                   help="seconds a worker may take to load and init() its apps (0: no limit)")
    s.add_argument("--queue-size", type=int, dest="dirty_queue_size")
    s.add_argument("--max-message-size", type=_size, dest="dirty_max_message_size")
    s.add_argument("--codec", choices=["safe", "pickle"], dest="dirty_codec")
    s.add_argument("--max-worker-memory", type=float, dest="dirty_max_worker_memory", metavar="MIB",
                   help="replace a worker whose RSS stays above MIB (0: off)")
    s.add_argument("--max-worker-memory-checks", type=int, dest="max_worker_memory_checks",
                   metavar="N", help="checks in a row above the cap before replacing (default 3)")
    s.add_argument("--metrics-bind", dest="dirty_metrics_bind", metavar="HOST:PORT",
                   help="serve Prometheus metrics on http://HOST:PORT/metrics "
                        "(needs gcorn-dirty[metrics])")
    s.add_argument("--pidfile", dest="dirty_pidfile")
    s.add_argument("--resources", dest="dirty_resources", metavar="JSON",
                   help='resource tokens per kind, e.g. \'{"gpu": [0, 1, 2, 3]}\' or \'{"gpu": "auto"}\'')
    s.add_argument("--backend", choices=["local", "ray"], dest="dirty_backend",
                   help="where the apps run: in the workers (local, the default) or as Ray actors")
    s.add_argument("--ray-address", dest="dirty_ray_address", metavar="ADDR",
                   help="Ray cluster for --backend ray: host:port, ray://host:port or auto "
                        "(default: start a local one-node Ray)")
    s.add_argument("--exit-with-parent", action="store_true", default=None,
                   help="stop when the process that started the pool exits")
    # --- stash backend (issue 14)
    s.add_argument("--stash-backend", dest="dirty_stash_backend", metavar="URL",
                   help="keep the stash tables in Redis: redis://host:port/db, rediss://..., "
                        "unix:///path/redis.sock (default: in the arbiter's memory)")
    s.add_argument("--log-level", default="info")
    s.add_argument("--log-file", help="log to this file (reopened on USR1)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``gcorn-dirty``."""
    args = build_parser().parse_args(argv)
    handler: logging.Handler = (logging.FileHandler(args.log_file) if args.log_file
                                else logging.StreamHandler(sys.stderr))
    handler.setFormatter(logging.Formatter("[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s"))
    logging.basicConfig(level=args.log_level.upper(), handlers=[handler])
    log = logging.getLogger("gcorn.dirty")
    settings: dict[str, object] = {}
    hooks = Hooks()
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # apps are imported from the working directory, as gunicorn does
    try:
        if args.config:
            settings, hooks = load_config_file(args.config)
        for key, value in vars(args).items():
            if (key.startswith("dirty_") or key == "max_worker_memory_checks") and value is not None:
                settings[key] = value
        if args.apps:
            settings["dirty_apps"] = list(args.apps)
        settings.setdefault("exit_with_parent", bool(args.exit_with_parent))
        if args.exit_with_parent is not None:
            settings["exit_with_parent"] = True
        config = DirtyConfig(**settings)  # type: ignore[arg-type]
        config.validate()
    except (DirtyConfigError, TypeError) as exc:
        log.error("gcorn-dirty: %s", exc)
        return 2
    return run(config, hooks)


if __name__ == "__main__":
    sys.exit(main())
