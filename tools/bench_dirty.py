#!/usr/bin/env python3
"""gcorn-dirty against gunicorn 27's dirty pool, same run, interleaved.

Uses the shared harness in ../shared/bench/dirty (its adapters start each
pool and its drivers measure), so both pools see the same clients and the
same machine. Both pools run at once (idle pools cost nothing); each round
runs every scenario on gunicorn then on gcorn, so background load lands on
both. Needs an interpreter with gunicorn==27.0.1 and gcorn-dirty installed:

    /tmp/anchors-venv/bin/pip install -e packages/dirty
    /tmp/anchors-venv/bin/python tools/bench_dirty.py --reps 3 --duration 2

Prints a Markdown table (median [min..max] per pool, ratio of medians,
target) and writes JSON next to it with --json.
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
    args = ap.parse_args()
    if args.duration > 10:
        ap.error("--duration is capped at 10 s (shared machine)")
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


if __name__ == "__main__":
    sys.exit(main())
