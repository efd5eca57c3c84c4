"""Reaching Ray for ``dirty_backend = "ray"``: import it, check an address, run a local head.

Nothing here imports Ray at module import: the extra (``gcorn-dirty[ray]``) is
optional, and the dirty arbiter never imports Ray itself (it forks the workers,
and a forked copy of a connected Ray driver would be broken). Each dirty worker
is its own Ray driver (:func:`connect`). With no ``dirty_ray_address`` the
arbiter starts a :class:`LocalHead`: a child process that runs ``ray.init()``
(a one-node cluster it owns), prints its address, and shuts it down when its
stdin closes, which happens when the arbiter stops or dies.

Run as ``python -m gcorn.dirty.ray_cluster [--num-cpus N] [--num-gpus N]`` it is
that head process (the tests start one per module this way).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import logging
import os
import secrets
import socket
import subprocess
import sys
import time
from typing import IO, Any

from .errors import DirtyConfigError

log = logging.getLogger("gcorn.dirty.ray")

EXTRA_HINT = "pip install 'gcorn-dirty[ray]'"
# The namespace the pool's named actors live in (`ray list actors` shows them there).
NAMESPACE = "gcorn-dirty"
# How long a local head may take to come up, and a TCP check of an address.
HEAD_START_TIMEOUT = 60.0
ADDRESS_CHECK_TIMEOUT = 5.0


def require_ray() -> None:
    """Raise DirtyConfigError naming the extra when Ray is not installed."""
    if importlib.util.find_spec("ray") is None:
        raise DirtyConfigError(f"dirty_backend='ray' needs Ray, which is not installed: {EXTRA_HINT}")


def _host_port(address: str) -> tuple[str, int] | None:
    """The TCP endpoint of ``host:port`` or ``ray://host:port`` (None for ``auto`` and the like)."""
    text = address.strip()
    if text.startswith("ray://"):
        text = text[len("ray://"):]
    elif "://" in text:
        return None
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def check_address(address: str, timeout: float = ADDRESS_CHECK_TIMEOUT) -> None:
    """Fail at once, naming the address, when a Ray cluster's port does not answer within ``timeout``."""
    if not isinstance(address, str) or not address.strip():
        raise DirtyConfigError(f"dirty_ray_address must be a non-empty string, got {address!r}")
    endpoint = _host_port(address)
    if endpoint is None:
        if address.strip() != "auto":
            raise DirtyConfigError(
                f"dirty_ray_address {address!r} is not 'host:port', 'ray://host:port' or 'auto'")
        return  # "auto": Ray finds the cluster this node belongs to; ray.init() says when none
    try:
        with socket.create_connection(endpoint, timeout=timeout):
            pass
    except OSError as exc:
        raise DirtyConfigError(
            f"dirty_ray_address {address!r}: cannot reach a Ray cluster at {endpoint[0]}:{endpoint[1]} "
            f"within {timeout:g} s: {exc}") from None


def connect(address: str) -> Any:
    """Make this process a Ray driver of the cluster at ``address`` (once); returns the ray module."""
    import ray

    if ray.is_initialized():
        return ray
    # When the address answers TCP but no GCS does (or refuses the token), ray.init() gives up
    # after its own retries (about 20 s); dirty_boot_timeout bounds the worker's boot anyway.
    try:
        ray.init(address=address, namespace=NAMESPACE, logging_level=logging.WARNING,
                 configure_logging=False)
    except Exception as exc:  # ConnectionError, AuthenticationError, RuntimeError: all say the same
        raise DirtyConfigError(
            f"cannot connect to the Ray cluster at {address!r} (dirty_ray_address): "
            f"{type(exc).__name__}: {exc}") from None
    return ray


class LocalHead:
    """A one-node Ray cluster in a child process; stops when :meth:`stop` runs or its parent dies."""

    def __init__(self, proc: subprocess.Popen[str], address: str) -> None:
        self.proc = proc
        self.address = address

    @classmethod
    def start(cls, num_cpus: int | None = None, num_gpus: int | None = None,
              timeout: float = HEAD_START_TIMEOUT) -> LocalHead:
        """Start the head and wait for its address (a DirtyConfigError past ``timeout``)."""
        require_ray()
        secure_environment()
        cmd = [sys.executable, "-m", "gcorn.dirty.ray_cluster"]
        if num_cpus is not None:
            cmd += ["--num-cpus", str(num_cpus)]
        if num_gpus is not None:
            cmd += ["--num-gpus", str(num_gpus)]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                start_new_session=True)
        assert proc.stdout is not None
        line = _read_line(proc.stdout, timeout)
        try:
            address = str(json.loads(line)["address"])
        except (ValueError, KeyError, TypeError):
            _end(proc)
            raise DirtyConfigError(
                f"could not start a local Ray head within {timeout:g} s "
                f"(exit status {proc.poll()}); set dirty_ray_address to use a running cluster") from None
        log.info("dirty pool: started a local Ray head at %s (pid %s)", address, proc.pid)
        return cls(proc, address)

    def fds(self) -> list[int]:
        """Descriptors a forked child must close, so that only this process holds the head's stdin."""
        return [f.fileno() for f in (self.proc.stdin, self.proc.stdout) if f is not None]

    def stop(self, timeout: float = 20.0) -> None:
        """Shut the cluster down (the head runs ray.shutdown() when its stdin closes)."""
        _end(self.proc, timeout)


def _read_line(stream: IO[str], timeout: float) -> str:
    import selectors

    with selectors.DefaultSelector() as sel:
        sel.register(stream, selectors.EVENT_READ)
        if not sel.select(timeout):
            return ""
    return stream.readline()


def _end(proc: subprocess.Popen[str], timeout: float = 20.0) -> None:
    for f in (proc.stdin, proc.stdout):
        if f is not None:
            with contextlib.suppress(OSError):
                f.close()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        log.warning("local Ray head %s did not stop in %g s: SIGKILL", proc.pid, timeout)
        proc.kill()
        proc.wait(5)


def secure_environment() -> None:
    """Token authentication for a head this process starts, unless RAY_AUTH_MODE says otherwise.

    The head listens on the node's address; the token (inherited by the dirty
    workers, which connect with it) keeps other users of the network out.
    """
    if "RAY_AUTH_MODE" in os.environ:
        return
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))


def _serve_head(num_cpus: int | None, num_gpus: int | None) -> int:
    """Body of the head process: start the cluster, print its address, wait for stdin to close."""
    import ray

    ray.init(num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False,
             namespace=NAMESPACE, logging_level=logging.WARNING)
    address = ray.get_runtime_context().gcs_address
    sys.stdout.write(json.dumps({"address": address}) + "\n")
    sys.stdout.flush()
    started = time.monotonic()
    try:
        while sys.stdin.read(4096):
            pass  # nothing is ever sent: EOF (the parent closed it, or died) is the stop signal
    except KeyboardInterrupt:
        pass
    log.debug("local Ray head up for %.1f s: shutting down", time.monotonic() - started)
    ray.shutdown()
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m gcorn.dirty.ray_cluster``: a local Ray head for a dirty pool (or a test)."""
    p = argparse.ArgumentParser(prog="python -m gcorn.dirty.ray_cluster")
    p.add_argument("--num-cpus", type=int, default=None)
    p.add_argument("--num-gpus", type=int, default=None,
                   help="GPUs to declare (Ray trusts the number: virtual ones work for tests)")
    args = p.parse_args(argv)
    return _serve_head(args.num_cpus, args.num_gpus)


if __name__ == "__main__":
    sys.exit(main())
