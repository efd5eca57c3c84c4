"""Resource slots: which devices (GPUs first) each dirty worker may use.

The pool is given tokens per kind (``dirty_resources``, e.g. ``{"gpu": [0, 1, 2, 3]}``
or ``{"gpu": "auto"}``); an app declares what one worker of it needs
(``resources = {"gpu": 1}``, or ``0.5`` to share a device between two workers).
The arbiter gives each seat (a place in the pool, see seats.py) its tokens when
the seat is made, so a replacement worker gets the same ones; the worker exports
them (``CUDA_VISIBLE_DEVICES``, :func:`current_resources`) after fork and before
it imports its apps. Tokens are names only: no device is touched, so tests and
machines without a GPU use virtual ones.
"""

from __future__ import annotations

import json
import os
from typing import Any

from .errors import DirtyConfigError

Alloc = dict[str, list[tuple[str, float]]]  # kind -> [(token, share of it)]

_current: dict[str, list[str]] = {}


def current_resources() -> dict[str, list[str]]:
    """The resource tokens given to this dirty worker, per kind (empty outside one)."""
    return {kind: list(tokens) for kind, tokens in _current.items()}


def detect_gpus() -> list[str]:
    """GPU tokens for ``"auto"``: nvidia-ml-py's device count, else CUDA_VISIBLE_DEVICES, else none."""
    try:
        import pynvml  # optional: nvidia-ml-py

        pynvml.nvmlInit()
        try:
            return [str(i) for i in range(int(pynvml.nvmlDeviceGetCount()))]
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # not installed, no driver, no device: fall back to the environment
        pass
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    return [t.strip() for t in visible.split(",") if t.strip() and t.strip() != "-1"]


def parse_resources(value: Any) -> dict[str, list[str]] | None:
    """Check ``dirty_resources`` (a dict or its JSON text); tokens become strings, "auto" is resolved."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise DirtyConfigError(f"dirty_resources is not valid JSON ({exc}): {value!r}") from None
    if not isinstance(value, dict):
        raise DirtyConfigError(f'dirty_resources must map a kind to its tokens, e.g. {{"gpu": [0, 1]}}, '
                               f"got {value!r}")
    out: dict[str, list[str]] = {}
    for kind, tokens in value.items():
        if not isinstance(kind, str) or not kind:
            raise DirtyConfigError(f"dirty_resources: kind {kind!r} must be a non-empty string")
        if tokens == "auto":
            if kind != "gpu":
                raise DirtyConfigError(f'dirty_resources: "auto" is known for "gpu" only, not {kind!r}')
            tokens = detect_gpus()
        if not isinstance(tokens, list) or not all(
                isinstance(t, (str, int)) and not isinstance(t, bool) for t in tokens):
            raise DirtyConfigError(f"dirty_resources[{kind!r}] must be a list of str or int tokens "
                                   f'or "auto", got {tokens!r}')
        names = [str(t) for t in tokens]
        if len(set(names)) != len(names):
            raise DirtyConfigError(f"dirty_resources[{kind!r}] lists a token twice: {names}")
        out[kind] = names
    return out


def parse_demand(path: str, value: Any) -> dict[str, float]:
    """Check an app's ``resources`` attribute: kind -> a whole number >= 1 or a share in (0, 1)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise DirtyConfigError(f"{path}.resources must be a dict like {{'gpu': 1}}, got {value!r}")
    out: dict[str, float] = {}
    for kind, amount in value.items():
        ok = isinstance(amount, (int, float)) and not isinstance(amount, bool) and (
            0 < amount < 1 or (amount >= 1 and float(amount).is_integer()))
        if not isinstance(kind, str) or not ok:
            raise DirtyConfigError(f"{path}.resources[{kind!r}] must be a whole number >= 1 or a "
                                   f"share between 0 and 1, got {amount!r}")
        out[kind] = float(amount)
    return out


class ResourcePool:
    """The pool's tokens and how much of each is taken (1.0 = a whole token)."""

    def __init__(self, tokens: dict[str, list[str]]) -> None:
        self.used: dict[str, dict[str, float]] = {k: dict.fromkeys(ts, 0.0) for k, ts in tokens.items()}

    def free(self) -> dict[str, dict[str, float]]:
        """What is left of each token, per kind (only tokens not fully taken)."""
        return {k: {t: round(1.0 - u, 6) for t, u in ts.items() if u < 1.0 - 1e-9}
                for k, ts in self.used.items()}

    def allocate(self, apps: dict[str, dict[str, float]]) -> Alloc:
        """Take what a seat loading ``apps`` (path -> demand) needs, or raise DirtyConfigError."""
        need: dict[str, float] = {}
        for demand in apps.values():
            for kind, amount in demand.items():
                need[kind] = need.get(kind, 0.0) + amount
        alloc: Alloc = {}
        try:
            for kind, amount in need.items():
                alloc[kind] = self._take(kind, amount, apps)
        except DirtyConfigError:
            self.release(alloc)
            raise
        return alloc

    def _take(self, kind: str, amount: float, apps: dict[str, dict[str, float]]) -> list[tuple[str, float]]:
        used = self.used.get(kind)
        who = ", ".join(f"{p} needs {d[kind]:g}" for p, d in apps.items() if kind in d)
        if used is None:
            raise DirtyConfigError(f"dirty worker for {who} {kind!r}: dirty_resources has no {kind!r} "
                                   f"(configured: {sorted(self.used) or 'none'})")
        whole = int(amount + 1e-9)
        share = round(amount - whole, 6)
        free_whole = [t for t, u in used.items() if u <= 1e-9]
        fits = None
        if share > 0:
            rest = [t for t in used if t not in free_whole[:whole] and 1.0 - used[t] >= share - 1e-9]
            rest.sort(key=lambda t: 1.0 - used[t])  # best fit: pack shares onto started tokens
            fits = rest[0] if rest else None
        if len(free_whole) < whole or (share > 0 and fits is None):
            raise DirtyConfigError(
                f"no free {kind!r} slot for a dirty worker ({who}): free now {self.free()[kind] or 'none'}"
                f" of {list(used)}")
        taken = [(t, 1.0) for t in free_whole[:whole]]
        if fits is not None:
            taken.append((fits, share))
        for t, s in taken:
            used[t] += s
        return taken

    def release(self, alloc: Alloc) -> None:
        """Give a seat's tokens back."""
        for kind, taken in alloc.items():
            for t, s in taken:
                self.used[kind][t] = max(0.0, self.used[kind][t] - s)


def apply(alloc: Alloc | None, configured: dict[str, list[str]] | None) -> None:
    """In a new worker, before its apps are imported: export its tokens."""
    _current.clear()
    if configured is None:
        return
    for kind in configured:
        _current[kind] = [t for t, _ in (alloc or {}).get(kind, [])]
    if "gpu" in configured:
        # Set even when empty: a worker given no GPU must not see (and grab) them all.
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(_current["gpu"])


def set_current(tokens: dict[str, list[str]]) -> None:
    """Record the tokens a process was given by someone else (a Ray actor's accelerators)."""
    _current.clear()
    _current.update({kind: [str(t) for t in ids] for kind, ids in tokens.items()})
