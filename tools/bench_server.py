#!/usr/bin/env python3
"""gcorn's WSGI workers against gunicorn 27.0.1, side by side, as ratios.

Runs the shared harness (../shared/bench/bench.py: wrk, 1 thread, 50
connections, one worker per server, runs interleaved, medians) with the
gunicorn anchors and `gcorn -k sync` / `gcorn -k gthread --threads 4` added,
then prints gcorn / gunicorn ratios per scenario (req/s, p99, RSS).

    python3 tools/bench_server.py                      # hello, big64k, echo1k; 3 reps of 5 s
    python3 tools/bench_server.py --scenarios hello --reps 1 --duration 3
    python3 tools/bench_server.py --summarize /tmp/bench-results/run-X.jsonl
    python3 tools/bench_server.py --green --reps 1 --duration 3   # gevent, eventlet

Targets (issue 3): sync >= 1.3x gunicorn sync; gthread >= 2.5x gunicorn gthread;
p99 no worse; memory no more.

`--green` (issue 10): `gcorn -k gevent` and `gcorn -k eventlet` against gunicorn
27.0.1 `-k gevent` (`--gunicorn-bin`: a venv with gunicorn and gevent), and
`-k eventlet` against gunicorn 25.x, the last with an eventlet worker
(`--gunicorn25-bin`, when given); hello and echo1k at wrk -c50 and -c500, one
worker each. Target: >= 1.5x gunicorn's gevent req/s, p99 no worse.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HARNESS = os.environ.get("GCORN_BENCH_HARNESS",
                         os.path.join(os.path.dirname(ROOT), "shared", "bench", "bench.py"))
PAIRS = [("gcorn-sync", "gunicorn-sync"), ("gcorn-gthread4", "gunicorn-gthread4")]
GREEN_PAIRS = [("gcorn-gevent", "gunicorn-gevent"), ("gcorn-eventlet", "gunicorn25-eventlet"),
               ("gcorn-eventlet", "gunicorn-gevent")]


def gcorn_command() -> str:
    """The `gcorn` executable next to this Python, else on PATH."""
    local = os.path.join(os.path.dirname(sys.executable), "gcorn")
    return local if os.path.exists(local) else (shutil.which("gcorn") or "gcorn")


def extras(gcorn: str) -> list[str]:
    """The --extra lines that add gcorn's workers to the harness."""
    common = "-w 1 -b {host}:{port} --log-level warning apps:{app}"
    return [f"gcorn-sync|wsgi|{gcorn} -k sync {common}",
            f"gcorn-gthread4|wsgi|{gcorn} -k gthread --threads 4 {common}"]


def green_extras(gcorn: str, gunicorn_bin: str, gunicorn25_bin: str | None) -> list[str]:
    """The --extra lines of the gevent/eventlet comparison (1000 connections per worker)."""
    common = "-w 1 --worker-connections 1000 -b {host}:{port} --log-level warning apps:{app}"
    lines = [f"gcorn-gevent|wsgi|{gcorn} -k gevent {common}",
             f"gcorn-eventlet|wsgi|{gcorn} -k eventlet {common}",
             f"gunicorn-gevent|wsgi|{gunicorn_bin}/gunicorn -k gevent {common}"]
    if gunicorn25_bin:
        lines.append(f"gunicorn25-eventlet|wsgi|{gunicorn25_bin}/gunicorn -k eventlet {common}")
    return lines


def load_records(paths: list[str]) -> list[dict]:
    """Every run record of the harness's JSONL result files, in order."""
    records: list[dict] = []
    for path in paths:
        with open(path) as f:
            records += [json.loads(line) for line in f if line.strip()]
    return records


def medians(records: list[dict], config: str, scenario: str) -> dict[str, float] | None:
    """Median req/s, p99 ms and RSS MiB of the clean runs (all runs if none is clean)."""
    ok = [r for r in records if r["config"] == config and r["scenario"] == scenario and r["ok"]]
    clean = [r for r in ok if not r.get("contaminated")] or ok
    if not clean:
        return None
    return {
        "rps": statistics.median(r["rps"] for r in clean),
        "p99": statistics.median(r["lat_p99_us"] / 1000 for r in clean),
        "rss": statistics.median(r["server_rss_mib"] for r in clean),
        "eff": statistics.median(r["rps"] * 100 / max(r["server_cpu_pct"], 1e-9) for r in clean),
        "n": len(clean),
    }


def ratio_table(records: list[dict], pairs: list[tuple[str, str]] = PAIRS) -> str:
    """A markdown table of gcorn vs gunicorn for every scenario and worker pair."""
    lines = ["| scenario | gcorn | gunicorn | req/s gcorn / gunicorn | ratio | "
             "req per CPU-s ratio | p99 ms gcorn / gunicorn | RSS MiB gcorn / gunicorn |",
             "|---|---|---|---|---|---|---|---|"]
    for scenario in dict.fromkeys(r["scenario"] for r in records):
        for ours, theirs in pairs:
            a, b = medians(records, ours, scenario), medians(records, theirs, scenario)
            if not a or not b:
                continue
            lines.append(
                f"| {scenario} | {ours} | {theirs} | {a['rps']:,.0f} / {b['rps']:,.0f} "
                f"| {a['rps'] / b['rps']:.2f}x | {a['eff'] / b['eff']:.2f}x "
                f"| {a['p99']:.2f} / {b['p99']:.2f} | {a['rss']:.1f} / {b['rss']:.1f} |")
    return "\n".join(lines)


def run_harness(a: argparse.Namespace, scenarios: str, out: str, only: list[str],
                extra: list[str], more: list[str]) -> int:
    """One run of the shared harness; its records land in `out`."""
    cmd = [sys.executable, HARNESS, "--scenarios", scenarios, "--reps", str(a.reps),
           "--duration", str(a.duration), "--out", out]
    for name in only:
        cmd += ["--only", name]
    for line in extra:
        cmd += ["--extra", line]
    cmd += more + a.harness_args
    print("$", " ".join(cmd), flush=True)
    return subprocess.call(cmd)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenarios", default=None,
                   help="default: hello,big64k,echo1k (hello,echo1k with --green)")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--duration", type=int, default=5)
    p.add_argument("--green", action="store_true",
                   help="the gevent and eventlet workers, at -c50 and -c500")
    p.add_argument("--gunicorn-bin", default=os.path.dirname(sys.executable),
                   help="bin folder of a venv with gunicorn 27.0.1 and gevent (--green)")
    p.add_argument("--gunicorn25-bin", default=None,
                   help="bin folder of a venv with gunicorn 25.x and eventlet (--green)")
    p.add_argument("--out", default=os.path.join(
        tempfile.gettempdir(), "bench-results", time.strftime("server-%Y%m%d-%H%M%S.jsonl")))
    p.add_argument("--summarize", nargs="+", metavar="JSONL")
    p.add_argument("harness_args", nargs="*", help="passed on to bench.py after --")
    a = p.parse_args()
    if a.green:
        return main_green(a)
    if not a.summarize:
        rc = run_harness(a, a.scenarios or "hello,big64k,echo1k", a.out,
                         ["gunicorn-sync", "gunicorn-gthread4", "gcorn"],
                         extras(gcorn_command()), [])
        if rc != 0:
            return rc
        a.summarize = [a.out]
    records = load_records(a.summarize)
    print("\n## gcorn vs gunicorn (medians)\n")
    print(ratio_table(records))
    return 0


def main_green(a: argparse.Namespace) -> int:
    """gevent and eventlet: one harness run per connection count, one table each."""
    base = os.path.splitext(a.out)[0]
    outs = [(c, f"{base}-c{c}.jsonl") for c in (50, 500)]
    if not a.summarize:
        extra = green_extras(gcorn_command(), a.gunicorn_bin, a.gunicorn25_bin)
        names = [line.split("|", 1)[0] for line in extra]
        for connections, out in outs:
            rc = run_harness(a, a.scenarios or "hello,echo1k", out, names,
                             extra, ["--connections", str(connections)])
            if rc != 0:
                return rc
    else:
        outs = [(0, path) for path in a.summarize]
    for connections, out in outs:
        with open(out) as f:
            records = [json.loads(line) for line in f if line.strip()]
        title = f"wrk -t1 -c{connections}" if connections else out
        print(f"\n## gcorn vs gunicorn, green workers, {title} (medians)\n")
        print(ratio_table(records, GREEN_PAIRS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
