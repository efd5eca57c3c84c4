#!/usr/bin/env python3
"""gcorn-dirty against gunicorn 27's dirty pool, same run, interleaved.

Uses the shared harness in ../shared/bench/dirty (its adapters start each
pool and its drivers measure), so both pools see the same clients and the
same machine. Both pools run at once (idle pools cost nothing); each round
runs every scenario on gunicorn then on gcorn, so background load lands on
both. Needs an interpreter with gunicorn==27.0.1 and gcorn-dirty installed:

    /tmp/anchors-venv/bin/pip install -e packages/arbiter -e packages/dirty
    /tmp/anchors-venv/bin/python tools/bench_dirty.py --reps 3 --duration 2

Prints a Markdown table (median [min..max] per pool, ratio of medians,
target) and writes JSON next to it with --json.

``--batching`` runs gcorn-dirty alone (no gunicorn, no shared harness; needs
numpy): a "model" doing one matrix multiply of a 512x512 weight by its inputs,
called by 64 concurrent asyncio clients, as a plain action and as a
``@batched`` one, interleaved in one run (same pool, same worker); prints
calls/s and p99 latency of each and the ratio (target: >= 4x calls/s, p99 no
worse).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

HARNESS = os.environ.get("DIRTYBENCH_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "bench", "dirty")

# scenario id -> (metric, target ratio gcorn / gunicorn)
TARGETS = {
    "noop_c1": ("calls_per_s", 3.0),
    "noop_async_c64": ("calls_per_s", 3.0),
    "noop_shared_c8": ("calls_per_s", 4.0),
    "noop_threads_c8": ("calls_per_s", None),
    "echo_16MiB": ("MB_per_s", 4.0),
    "stream_sync": ("chunks_per_s", 3.0),
    "stream_async": ("chunks_per_s", None),
}


def main() -> int:
    """Run the comparison and print the table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--harness", default=HARNESS, help="path of shared/bench/dirty")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=float, default=2.0, help="seconds per timed run (<= 10)")
    ap.add_argument("--warmup", type=float, default=0.3)
    ap.add_argument("--only", default=",".join(TARGETS), help="comma-separated scenario ids")
    ap.add_argument("--json", help="write raw results here")
    ap.add_argument("--batching", action="store_true", help="the batched-vs-unbatched model scenario only")
    ap.add_argument("--clients", type=int, default=64, help="concurrent async clients (--batching)")
    args = ap.parse_args()
    if args.duration > 10:
        ap.error("--duration is capped at 10 s (shared machine)")
    if args.batching:
        return bench_batching(args)
    harness = os.path.abspath(args.harness)
    sys.path.insert(0, harness)
    import dirtybench  # the shared harness: scenarios, drivers, metrics
    from adapters import load_adapter

    wanted = [s for s in args.only.split(",") if s]
    scs = [s for s in dirtybench.scenarios(args.workers) if s["id"] in wanted]
    impls = {"gunicorn": load_adapter("gunicorn"), "gcorn": load_adapter("gcorn")}
    runs: dict[str, dict[str, list[dict]]] = {k: {s["id"]: [] for s in scs} for k in impls}
    started = []
    try:
        for ad in impls.values():
            ad.start(args.workers, threads=1)
            started.append(ad)
        for rep in range(args.reps):
            for sc in scs:
                for name, ad in impls.items():
                    dirtybench.run_once(ad, sc, args.warmup)
                    m = dirtybench.metrics(sc, dirtybench.run_once(ad, sc, args.duration), args.workers)
                    runs[name][sc["id"]].append(m)
                    metric = TARGETS.get(sc["id"], ("calls_per_s", None))[0]
                    print(f"rep{rep} {sc['id']:16s} {name:8s} {metric}={m.get(metric, float('nan')):,.0f} "
                          f"errors={m['errors']} other_cores={m['other_cores']:.2f}", file=sys.stderr, flush=True)
        versions = {name: ad.versions() for name, ad in impls.items()}
    finally:
        for ad in started:
            ad.stop()
            ad.cleanup()
    print(table(scs, runs, args))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "versions": versions, "runs": runs}, f, indent=1, default=repr)
    return 0


def _cell(vals: list[float]) -> str:
    return f"{statistics.median(vals):,.0f} [{min(vals):,.0f}..{max(vals):,.0f}]"


def table(scs: list[dict], runs: dict, args: argparse.Namespace) -> str:
    """Markdown table: both pools side by side, ratio of medians, target."""
    lines = [f"workers={args.workers} dirty_threads=1 reps={args.reps} duration={args.duration}s "
             f"({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores); cells: median [min..max]", "",
             "| scenario | metric | gunicorn 27.0.1 | gcorn-dirty | ratio | target | errors g/gc |",
             "|---|---|---|---|---|---|---|"]
    for sc in scs:
        metric, target = TARGETS.get(sc["id"], ("calls_per_s", None))
        g = [m[metric] for m in runs["gunicorn"][sc["id"]] if metric in m]
        c = [m[metric] for m in runs["gcorn"][sc["id"]] if metric in m]
        if not g or not c:
            continue
        ratio = statistics.median(c) / statistics.median(g) if statistics.median(g) else float("inf")
        verdict = "" if target is None else (" ok" if ratio >= target else " MISS")
        errs = (sum(m["errors"] for m in runs["gunicorn"][sc["id"]]),
                sum(m["errors"] for m in runs["gcorn"][sc["id"]]))
        lines.append(f"| {sc['label']} | {metric} | {_cell(g)} | {_cell(c)} | {ratio:.2f}x |"
                     f" {'-' if target is None else f'>= {target:g}x'}{verdict} | {errs[0]}/{errs[1]} |")
    return "\n".join(lines)


MODEL_APP = '''
import numpy as np
from gcorn.dirty import DirtyApp, batched

class Model(DirtyApp):
    def init(self):
        self.weight = np.random.default_rng(0).standard_normal((512, 512))  # float64, numpy's default

    def predict_one(self, x):
        return (np.frombuffer(x) @ self.weight).tobytes()

    @batched(max_size=64, max_wait_ms=2)
    def predict(self, calls):
        out = np.stack([np.frombuffer(x) for (x,) in calls]) @ self.weight
        return [row.tobytes() for row in out]
'''


def bench_batching(args: argparse.Namespace) -> int:
    """Batched vs unbatched calls of a numpy model from concurrent async clients, one run."""
    import asyncio
    import subprocess
    import tempfile

    import numpy as np

    from gcorn.dirty import connect

    tmp = tempfile.mkdtemp(prefix="bench-batching-")
    with open(os.path.join(tmp, "benchmodel.py"), "w") as f:
        f.write(MODEL_APP)
    sock = os.path.join(tmp, "pool.sock")
    # One BLAS thread per process: the machine is shared, and the comparison is per worker.
    env = dict(os.environ, PYTHONPATH=tmp, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               MKL_NUM_THREADS="1")
    pool = subprocess.Popen([sys.executable, "-m", "gcorn.dirty.cli", "serve", "benchmodel:Model",
                             "--workers", str(args.workers), "--threads", "1", "--socket", sock,
                             "--log-level", "warning"], cwd=tmp, env=env)
    x = np.random.default_rng(1).standard_normal(512).tobytes()

    async def drive(action: str, seconds: float) -> dict[str, float]:
        client = connect(sock, timeout=30)
        lat: list[float] = []
        errors = 0
        stop = time.monotonic() + seconds

        async def one() -> None:
            nonlocal errors
            while time.monotonic() < stop:
                t = time.perf_counter()
                try:
                    await client.execute_async("benchmodel:Model", action, x)
                except Exception:
                    errors += 1
                    continue
                lat.append(time.perf_counter() - t)
        started = time.monotonic()
        await asyncio.gather(*(one() for _ in range(args.clients)))
        elapsed = time.monotonic() - started
        await client.close_async()
        lat.sort()
        p99 = lat[int(0.99 * (len(lat) - 1))] if lat else float("nan")
        return {"calls_per_s": len(lat) / elapsed, "p99_ms": 1000 * p99, "errors": errors}

    runs: dict[str, list[dict[str, float]]] = {"predict_one": [], "predict": []}
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(sock):
            if time.monotonic() > deadline or pool.poll() is not None:
                raise SystemExit("the pool did not start")
            time.sleep(0.05)
        for rep in range(args.reps):
            for action in runs:  # interleaved: background load lands on both
                asyncio.run(drive(action, args.warmup))
                m = asyncio.run(drive(action, args.duration))
                runs[action].append(m)
                print(f"rep{rep} {action:12s} calls/s={m['calls_per_s']:,.0f} p99={m['p99_ms']:.2f} ms "
                      f"errors={m['errors']}", file=sys.stderr, flush=True)
    finally:
        pool.terminate()
        pool.wait(30)
    plain, batch = runs["predict_one"], runs["predict"]
    med = statistics.median
    ratio = med(m["calls_per_s"] for m in batch) / med(m["calls_per_s"] for m in plain)
    p99_ok = med(m["p99_ms"] for m in batch) <= med(m["p99_ms"] for m in plain)
    print(f"numpy 512x512 matmul model, {args.clients} async clients, workers={args.workers} "
          f"dirty_threads=1, reps={args.reps} duration={args.duration}s "
          f"({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores); cells: median [min..max]\n")
    print("| calls | calls/s | p99 ms | errors |\n|---|---|---|---|")
    for name, ms in (("unbatched (plain action)", plain), ("@batched(max_size=64, max_wait_ms=2)", batch)):
        p99s = [m["p99_ms"] for m in ms]
        print(f"| {name} | {_cell([m['calls_per_s'] for m in ms])} | {med(p99s):.2f} "
              f"[{min(p99s):.2f}..{max(p99s):.2f}] | {sum(int(m['errors']) for m in ms)} |")
    print(f"\nbatched / unbatched calls/s: {ratio:.2f}x (target >= 4x: {'ok' if ratio >= 4 else 'MISS'}); "
          f"p99 no worse: {'ok' if p99_ok else 'MISS'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
