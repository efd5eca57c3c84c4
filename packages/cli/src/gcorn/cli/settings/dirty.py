"""Settings of the section "Dirty Arbiters": the dirty process pool."""

from __future__ import annotations

from . import validators as v
from .base import Setting

SECTION = "Dirty Arbiters"


# --- stash backend (issue 14) ---------------------------------------------------------
def stash_backend_url(value: object) -> str | None:
    """None (the dirty arbiter's memory) or a redis://, rediss:// or unix:// URL."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a URL")
    import importlib.util

    try:
        from gcorn.dirty.errors import DirtyConfigError
        from gcorn.dirty.stash_url import parse_stash_url
    except ImportError:  # no gcorn-dirty: dirty_side_process says what to install
        return value.strip()
    try:
        backend = parse_stash_url(value)
    except DirtyConfigError as exc:
        raise ValueError(exc.details.get("reason", str(exc))) from None
    if backend is not None and importlib.util.find_spec("redis") is None:
        raise ValueError(f"{backend.display} needs redis-py, which is not installed: "
                         "pip install 'gcorn-dirty[redis]'")
    return value.strip()

SETTINGS = (
    Setting(
        name="dirty_apps",
        section=SECTION,
        flags=("--dirty-app",),
        action="append",
        metavar="STRING",
        value_type="list[str]",
        default=[],
        validator=v.string_list,
        doc="A DirtyApp to load in the dirty workers, `module:Class` or `module:Class:N` "
        "(on N workers only), repeatable.",
    ),
    Setting(
        name="dirty_workers",
        section=SECTION,
        flags=("--dirty-workers",),
        metavar="INT",
        value_type="int",
        default=0,
        validator=v.positive_int,
        doc="The number of dirty workers; 0 disables the dirty pool.",
    ),
    Setting(
        name="dirty_timeout",
        section=SECTION,
        flags=("--dirty-timeout",),
        metavar="INT",
        value_type="int",
        default=300,
        validator=v.positive_int,
        doc="Seconds a dirty call may run, and a dirty worker may stay silent; 0 disables. "
        "A longer client or call timeout is cut to it: the pool's limit wins.",
    ),
    Setting(
        name="dirty_threads",
        section=SECTION,
        flags=("--dirty-threads",),
        metavar="INT",
        value_type="int",
        default=1,
        validator=v.int_range(1, 2**16),
        doc="Calls one dirty worker runs at once (its threads).",
    ),
    Setting(
        name="dirty_graceful_timeout",
        section=SECTION,
        flags=("--dirty-graceful-timeout",),
        metavar="INT",
        value_type="int",
        default=30,
        validator=v.positive_int,
        doc="Seconds dirty workers get to finish on a graceful stop, before SIGKILL.",
    ),
    Setting(
        name="dirty_queue_size",
        section=SECTION,
        flags=("--dirty-queue-size",),
        metavar="INT",
        value_type="int",
        default=1024,
        validator=v.positive_int,
        doc="Calls that may wait for a free dirty worker slot, per app and per client "
        "process (calls wait in the caller's process, and go to the least busy worker "
        "once a slot frees); past it a call fails at once with DirtyBusyError.",
    ),
    Setting(
        name="dirty_max_message_size",
        section=SECTION,
        flags=("--dirty-max-message-size",),
        metavar="INT",
        value_type="int",
        default=64 * 1024 * 1024,
        validator=v.int_range(1024, 2**32 - 1),
        doc="The most data one dirty call, reply or stash value carries, in bytes (the "
        "bytes of its strings, bytes and arrays; the encoding's envelope comes on top); "
        "a larger one is refused with DirtyMessageTooLargeError before it is sent.",
    ),
    Setting(
        name="dirty_max_worker_memory",
        section=SECTION,
        flags=("--dirty-max-worker-memory",),
        metavar="INT",
        value_type="int",
        default=0,
        validator=v.positive_int,
        doc="Replace a dirty worker whose RSS stays above this many MiB for "
        "`max_worker_memory_checks` checks in a row: the replacement loads its apps first, "
        "then the old one finishes its calls and stops. 0 disables the cap.",
    ),
    Setting(
        name="dirty_codec",
        section=SECTION,
        flags=("--dirty-codec",),
        metavar="STRING",
        default="safe",
        validator=v.choice("safe", "pickle"),
        doc="How dirty call values are encoded: `safe` (never runs peer code) or "
        "`pickle` (trusted deployments only).",
    ),
    Setting(
        name="dirty_resources",
        section=SECTION,
        flags=("--dirty-resources",),
        metavar="JSON",
        default=None,
        validator=v.json_mapping,
        doc='Resource tokens the dirty workers share, per kind, as JSON or a dict: '
        '`{"gpu": [0, 1, 2, 3]}`, or `{"gpu": "auto"}` (counted with nvidia-ml-py, else '
        "CUDA_VISIBLE_DEVICES). An app declaring `resources = {\"gpu\": 1}` (or 0.5) gets "
        "its tokens in each worker that loads it (`CUDA_VISIBLE_DEVICES`, "
        "`gcorn.dirty.current_resources()`), set before the app is imported.",
    ),
    Setting(
        name="dirty_boot_timeout",
        section=SECTION,
        flags=("--dirty-boot-timeout",),
        metavar="INT",
        value_type="int",
        default=120,
        validator=v.positive_int,
        doc="Seconds a dirty worker may take to import and init() its apps before it is "
        "killed (an error names them); 0 disables. The master reports ready (when_ready, "
        "READY=1) and starts its HTTP workers once every dirty app has a ready worker.",
    ),
    # --- stash backend (issue 14)
    Setting(
        name="dirty_stash_backend",
        section=SECTION,
        flags=("--dirty-stash-backend",),
        metavar="URL",
        default=None,
        validator=stash_backend_url,
        doc="Where the stash tables live: unset, in the dirty arbiter's memory; "
        "`redis://[:password@]host:port/db` (or `rediss://`, or "
        "`unix:///path/redis.sock?db=N`): one Redis hash per table, shared by every "
        "gcorn pointed at it and kept across dirty arbiter restarts, with atomic `incr` "
        "and per-key TTLs (`?prefix=NAME` names the keys, default `gcorn:stash`; "
        "`?timeout=S` bounds each Redis call, default 2). Needs `gcorn-dirty[redis]`.",
    ),
    # -- where the dirty apps run: local worker processes or Ray actors (docs/dirty-ray.md)
    Setting(
        name="dirty_backend",
        section=SECTION,
        flags=("--dirty-backend",),
        metavar="STRING",
        default="local",
        validator=v.choice("local", "ray"),
        doc="Where the dirty apps run: `local` (in the dirty workers) or `ray` (each app of "
        "each dirty worker in a Ray actor, placed by its `resources`, `gpu` as `num_gpus`; "
        "needs `pip install 'gcorn-dirty[ray]'`). Clients, routing and errors do not change.",
    ),
    Setting(
        name="dirty_ray_address",
        section=SECTION,
        flags=("--dirty-ray-address",),
        metavar="STRING",
        default=None,
        validator=v.string,
        doc="The Ray cluster of `dirty_backend = \"ray\"`: `host:port` (a cluster this machine "
        "is a node of), `ray://host:port` (Ray Client) or `auto`. Unset: the dirty pool "
        "starts a one-node Ray of its own and stops it with the pool.",
    ),
)
