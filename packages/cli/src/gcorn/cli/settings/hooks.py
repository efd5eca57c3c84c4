"""Settings of the section "Server Hooks": callables run at points of the server's life.

Every hook keeps gunicorn's name and signature. A config file may give a
callable or a dotted-path string; the validator checks that it takes the
right number of positional arguments.
"""

from __future__ import annotations

from typing import Any

from . import validators as v
from .base import Setting

SECTION = "Server Hooks"
DIRTY_SECTION = "Dirty Arbiter Hooks"


def on_starting(server: Any) -> None:
    """Default on_starting: nothing."""


def on_reload(server: Any) -> None:
    """Default on_reload: nothing."""


def when_ready(server: Any) -> None:
    """Default when_ready: nothing."""


def pre_fork(server: Any, worker: Any) -> None:
    """Default pre_fork: nothing."""


def post_fork(server: Any, worker: Any) -> None:
    """Default post_fork: nothing."""


def post_worker_init(worker: Any) -> None:
    """Default post_worker_init: nothing."""


def worker_int(worker: Any) -> None:
    """Default worker_int: nothing."""


def worker_abort(worker: Any) -> None:
    """Default worker_abort: nothing."""


def pre_exec(server: Any) -> None:
    """Default pre_exec: nothing."""


def pre_request(worker: Any, req: Any) -> None:
    """Default pre_request: log the method and path at debug level."""
    worker.log.debug("%s %s", req.method, req.path)


def post_request(worker: Any, req: Any, environ: Any, resp: Any) -> None:
    """Default post_request: nothing."""


def child_exit(server: Any, worker: Any) -> None:
    """Default child_exit: nothing."""


def worker_exit(server: Any, worker: Any) -> None:
    """Default worker_exit: nothing."""


def nworkers_changed(server: Any, new_value: int, old_value: int | None) -> None:
    """Default nworkers_changed: nothing."""


def on_exit(server: Any) -> None:
    """Default on_exit: nothing."""


def ssl_context(config: Any, default_ssl_context_factory: Any) -> Any:
    """Default ssl_context: the context built from the SSL settings."""
    return default_ssl_context_factory()


def on_dirty_starting(arbiter: Any) -> None:
    """Default on_dirty_starting: nothing."""


def dirty_post_fork(arbiter: Any, worker: Any) -> None:
    """Default dirty_post_fork: nothing."""


def dirty_worker_init(worker: Any) -> None:
    """Default dirty_worker_init: nothing."""


def dirty_worker_exit(arbiter: Any, worker: Any) -> None:
    """Default dirty_worker_exit: nothing."""


def _hook(func: Any, signature: str, doc: str, section: str = SECTION) -> Setting:
    arity = signature.count(",") + 1
    return Setting(
        name=func.__name__,
        section=section,
        default=func,
        validator=v.hook(arity),
        value_type="callable",
        default_doc="no-op",
        arity=(arity,),
        doc=f"`{func.__name__}({signature})`: {doc}",
    )


SETTINGS = (
    _hook(on_starting, "server", "in the master, before the listeners are opened."),
    _hook(on_reload, "server", "in the master on HUP, after the config is re-read."),
    _hook(when_ready, "server", "in the master, once the listeners are open."),
    _hook(pre_fork, "server, worker", "in the master, just before a worker is forked."),
    _hook(post_fork, "server, worker", "in the worker, just after it is forked."),
    _hook(post_worker_init, "worker", "in the worker, after the app is loaded."),
    _hook(worker_int, "worker", "in the worker, on SIGINT or SIGQUIT (and a reload exit)."),
    _hook(worker_abort, "worker", "in the worker, on SIGABRT (its heartbeat timed out)."),
    _hook(pre_exec, "server", "in the new master's child, just before a USR2 re-exec."),
    Setting(
        name="pre_request",
        section=SECTION,
        default=pre_request,
        validator=v.hook(2),
        value_type="callable",
        default_doc="logs METHOD PATH at debug level",
        arity=(2,),
        doc="`pre_request(worker, req)`: in the worker, before each request.",
    ),
    Setting(
        name="post_request",
        section=SECTION,
        default=post_request,
        validator=v.post_request_hook,
        value_type="callable",
        default_doc="no-op",
        arity=(2, 3, 4),
        doc="`post_request(worker, req, environ, resp)`: in the worker, after each request; "
        "a callable taking 2 or 3 arguments gets the first ones.",
    ),
    _hook(child_exit, "server, worker", "in the master, after a worker was reaped."),
    _hook(worker_exit, "server, worker", "in the worker, as it exits."),
    _hook(
        nworkers_changed,
        "server, new_value, old_value",
        "in the master, whenever the number of workers changes (old_value is None at first).",
    ),
    _hook(on_exit, "server", "in the master, just before it exits."),
    Setting(
        name="ssl_context",
        section=SECTION,
        default=ssl_context,
        validator=v.hook(2),
        value_type="callable",
        default_doc="returns `default_ssl_context_factory()`",
        arity=(2,),
        doc="`ssl_context(config, default_ssl_context_factory)`: builds the server's "
        "SSLContext; call the factory to get the default one and change it.",
    ),
    _hook(on_dirty_starting, "arbiter", "in the dirty arbiter, as it starts.", DIRTY_SECTION),
    _hook(
        dirty_post_fork,
        "arbiter, worker",
        "in the dirty arbiter, after a dirty worker is forked.",
        DIRTY_SECTION,
    ),
    _hook(
        dirty_worker_init,
        "worker",
        "in a dirty worker, after every app it holds ran init().",
        DIRTY_SECTION,
    ),
    _hook(
        dirty_worker_exit,
        "arbiter, worker",
        "in the dirty arbiter, after a dirty worker was reaped.",
        DIRTY_SECTION,
    ),
)
