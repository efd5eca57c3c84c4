"""Run a WSGI worker under a real gcorn Arbiter, for the tests (started as a subprocess).

    python wsgi_runner.py '{"worker": "gthread", "app": "wsgi_apps:router",
                            "bind": ["127.0.0.1:8000"], "settings": {"threads": 4}}'

The cfg is a SimpleNamespace with gunicorn's defaults for what the arbiter
and the workers read; `settings` overrides them, `hooks` names a module
whose functions replace the default (no-op) hooks, and `access_log` a file
that receives one access-log line per request.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import threading
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from gcorn.arbiter import Arbiter

HOOKS = ("on_starting", "on_reload", "when_ready", "pre_fork", "post_fork", "post_worker_init",
         "worker_int", "worker_abort", "pre_exec", "pre_request", "post_request", "child_exit",
         "worker_exit", "nworkers_changed", "on_exit")

DEFAULTS: dict[str, Any] = {
    "workers": 1, "threads": 1, "worker_connections": 1000, "max_requests": 0,
    "max_requests_jitter": 0, "timeout": 30, "graceful_timeout": 30, "keepalive": 2,
    "limit_request_line": 4094, "limit_request_fields": 100, "limit_request_field_size": 8190,
    "permit_obsolete_folding": False, "permit_unconventional_http_method": False,
    "permit_unconventional_http_version": False, "casefold_http_method": False,
    "strip_header_spaces": False, "permit_unconventional_request_target": True,
    "header_map": "drop", "http_parser": "auto",
    "forwarded_allow_ips": ["127.0.0.1", "::1"], "proxy_allow_ips": ["127.0.0.1", "::1"],
    "secure_scheme_headers": {"X-FORWARDED-PROTOCOL": "ssl", "X-FORWARDED-PROTO": "https",
                              "X-FORWARDED-SSL": "on"},
    "forwarder_headers": ["SCRIPT_NAME", "PATH_INFO"], "proxy_protocol": "off",
    "sendfile": True, "certfile": None, "keyfile": None, "ca_certs": None, "cert_reqs": 0,
    "ciphers": None, "suppress_ragged_eofs": True, "do_handshake_on_connect": False,
    "is_ssl": False, "backlog": 2048, "reuse_port": False, "umask": 0, "uid": None,
    "gid": None, "initgroups": False, "worker_tmp_dir": None, "proc_name": None,
    "default_proc_name": "wsgi_runner", "env": {}, "preload_app": False, "pidfile": None,
    "daemon": False, "chdir": os.getcwd(), "access_log_format":
    '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"',
}


def _noop(*args: Any) -> None:
    return None


class App:
    """The app loader: `load()` imports module:name."""

    def __init__(self, spec: str, cfg: Any) -> None:
        self.spec = spec
        self.cfg = cfg

    def load(self) -> Any:
        module, _, name = self.spec.partition(":")
        return getattr(importlib.import_module(module), name)


def main() -> int:
    spec = json.loads(sys.argv[1])
    values = dict(DEFAULTS)
    values.update(spec.get("settings", {}))
    values["bind"] = spec["bind"]
    worker_name = spec.get("worker", "sync")
    module = {"sync": "gcorn.workers.sync", "gthread": "gcorn.workers.gthread",
              "gevent": "gcorn.workers.ggevent", "eventlet": "gcorn.workers.geventlet"}[worker_name]
    cls = {"sync": "SyncWorker", "gthread": "ThreadWorker", "gevent": "GeventWorker",
           "eventlet": "EventletWorker"}[worker_name]
    values["worker_class"] = getattr(importlib.import_module(module), cls)
    values["worker_class_str"] = worker_name
    values["is_ssl"] = bool(values.get("certfile") or values.get("keyfile"))
    for hook in HOOKS:
        values.setdefault(hook, _noop)
    values["ssl_context"] = lambda cfg, factory: factory()
    if spec.get("hooks"):
        hooks = importlib.import_module(spec["hooks"])
        for hook in HOOKS + ("ssl_context",):
            if hasattr(hooks, hook):
                values[hook] = getattr(hooks, hook)
    cfg = SimpleNamespace(**values)
    logging.basicConfig(level=spec.get("loglevel", "INFO"), stream=sys.stderr,
                        format="%(asctime)s [%(process)d] [%(levelname)s] %(message)s")
    log = logging.getLogger("wsgi_runner")
    if spec.get("access_log"):
        lock = threading.Lock()
        path = spec["access_log"]

        def access(info: Any) -> None:
            line = cfg.access_log_format % info.atoms()
            with lock, open(path, "a") as f:
                f.write(line + "\n")

        log.access = access  # type: ignore[attr-defined]
    return int(Arbiter(cfg, log, App(spec["app"], cfg)).run() or 0)


if __name__ == "__main__":
    sys.exit(main())
