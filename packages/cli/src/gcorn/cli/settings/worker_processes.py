"""Settings of the section "Worker Processes": how many workers, of which kind, for how long."""

from __future__ import annotations

import os

from . import validators as v
from .base import Setting

SECTION = "Worker Processes"


def _default_workers() -> str | int:
    return os.environ.get("WEB_CONCURRENCY") or 1


SETTINGS = (
    Setting(
        name="workers",
        section=SECTION,
        flags=("-w", "--workers"),
        metavar="INT",
        value_type="int",
        default=1,
        default_factory=_default_workers,
        default_doc="`1`, or `$WEB_CONCURRENCY` when set",
        validator=v.positive_int,
        doc="The number of HTTP worker processes.",
    ),
    Setting(
        name="worker_class",
        section=SECTION,
        flags=("-k", "--worker-class"),
        metavar="STRING",
        default="sync",
        validator=v.class_spec,
        doc="The worker type: `sync`, `gthread`, `gevent` (also `gevent_wsgi`, `gevent_pywsgi`), "
        "`eventlet` (for existing deployments: eventlet is in maintenance upstream), `asgi`, or "
        "the dotted path of a subclass of `gcorn.arbiter.Worker`. `sync` with `threads` > 1 runs "
        "gthread.",
    ),
    Setting(
        name="threads",
        section=SECTION,
        flags=("--threads",),
        metavar="INT",
        value_type="int",
        default=1,
        validator=v.positive_int,
        doc="Threads per worker serving requests (gthread).",
    ),
    Setting(
        name="worker_connections",
        section=SECTION,
        flags=("--worker-connections",),
        metavar="INT",
        value_type="int",
        default=1000,
        validator=v.positive_int,
        doc="The most simultaneous clients one worker holds (gthread, gevent, eventlet, asgi); "
        "past it, new connections wait in the listen backlog.",
    ),
    Setting(
        name="max_requests",
        section=SECTION,
        flags=("--max-requests",),
        metavar="INT",
        value_type="int",
        default=0,
        validator=v.positive_int,
        doc="Restart a worker after it has served this many requests; 0 never restarts.",
    ),
    Setting(
        name="max_requests_jitter",
        section=SECTION,
        flags=("--max-requests-jitter",),
        metavar="INT",
        value_type="int",
        default=0,
        validator=v.positive_int,
        doc="Add a random 0..N to `max_requests` per worker, so workers do not all restart at once.",
    ),
    Setting(
        name="max_worker_memory",
        section=SECTION,
        flags=("--max-worker-memory",),
        metavar="INT",
        value_type="int",
        default=0,
        validator=v.positive_int,
        doc="Replace a worker whose resident memory (RSS) stays above this many MiB for "
        "`max_worker_memory_checks` checks in a row (one a second): a new worker is started "
        "first, then the old one stops gracefully. 0 disables the cap.",
    ),
    Setting(
        name="max_worker_memory_checks",
        section=SECTION,
        flags=("--max-worker-memory-checks",),
        metavar="INT",
        value_type="int",
        default=3,
        validator=v.int_range(1, 1_000_000),
        doc="How many checks in a row a worker (HTTP or dirty) must be above its memory cap "
        "before it is replaced, so a short spike does not recycle it.",
    ),
    Setting(
        name="timeout",
        section=SECTION,
        flags=("-t", "--timeout"),
        metavar="INT",
        value_type="int",
        default=30,
        validator=v.positive_int,
        doc="A worker whose heartbeat is older than this many seconds is killed "
        "(SIGABRT, then SIGKILL) and replaced; 0 disables the check.",
    ),
    Setting(
        name="graceful_timeout",
        section=SECTION,
        flags=("--graceful-timeout",),
        metavar="INT",
        value_type="int",
        default=30,
        validator=v.positive_int,
        doc=("Seconds workers get to finish their requests after a graceful stop, before SIGKILL; "
             "0 is no grace: neither the master nor a worker stopping by itself waits (an ASGI "
             "app's lifespan shutdown is then not sent)."),
    ),
    Setting(
        name="keepalive",
        section=SECTION,
        flags=("--keep-alive",),
        metavar="INT",
        value_type="int",
        default=2,
        validator=v.positive_int,
        doc="Seconds to wait for the next request on a keep-alive connection (not sync).",
    ),
    Setting(
        name="header_timeout",
        section=SECTION,
        flags=("--header-timeout",),
        metavar="FLOAT",
        value_type="float",
        default=10.0,
        validator=v.positive_number,
        doc="Seconds a client gets to send a whole request head, from its first byte (sync: from "
        "the accept); past it the request is answered 408 and the connection closed, on every "
        "worker. 0 = no limit. gcorn only: gunicorn has no such limit (a client sending one "
        "header line a second holds a gunicorn worker or thread for as long as it likes).",
    ),
    Setting(
        name="request_timeout",
        section=SECTION,
        flags=("--request-timeout",),
        metavar="FLOAT",
        value_type="float",
        default=0.0,
        validator=v.positive_number,
        doc="Seconds one request may run in the app, on every worker type; past it the request "
        "is answered 504 (or its connection closed if the response had started), the traceback "
        "of where it was stuck is logged, and the worker keeps serving. sync: SIGALRM in the "
        "app's frame; gthread: a watchdog thread, and a worker whose `threads` threads are all "
        "stuck in C code is recycled gracefully; asgi: the task is cancelled; gevent, eventlet: "
        "the greenlet is interrupted. An HTTP/2 stream (asgi, gthread) is answered 504 or reset "
        "alone: the connection's other streams go on. 0 = no limit (the default). gcorn only: "
        "gunicorn's "
        "`timeout` ends a stuck request on sync workers only, by killing the worker.",
    ),
)
