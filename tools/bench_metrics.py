#!/usr/bin/env python3
"""What `--metrics-bind` costs the request path: the same gcorn with and without it.

Runs the shared harness (../shared/bench/bench.py: wrk, 1 thread, 50
connections, one worker, runs interleaved A B C D A B C D, medians) on the
`hello` app with `gcorn -k sync` and `gcorn -k asgi`, each once plain and once
with `--metrics-bind`, while a scraper reads /metrics every second (a far
busier Prometheus than the usual 15 s), then prints the with / without ratios.

    python3 tools/bench_metrics.py                          # sync and asgi, 3 reps of 5 s
    python3 tools/bench_metrics.py --workers sync,gthread,asgi --reps 1 --duration 3
    python3 tools/bench_metrics.py --scrape-every 15                  # Prometheus' usual pace
    python3 tools/bench_metrics.py --summarize /tmp/bench-results/metrics-X.jsonl

Target (issue 12): with metrics, req/s (and requests per server CPU-second,
the steadier number on a shared machine) within 3 % of without.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from bench_server import HARNESS, gcorn_command, load_records, medians  # noqa: E402

WORKER_ARGS = {"sync": "-k sync", "gthread": "-k gthread --threads 4", "asgi": "-k asgi"}


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def extras(gcorn: str, workers: list[str], metrics_port: int) -> list[str]:
    """The --extra lines: each worker class plain, then with the exporter on."""
    common = "-w 1 -b {host}:{port} --log-level warning apps:{app}"
    lines = []
    for worker in workers:
        iface = "asgi" if worker == "asgi" else "wsgi"
        base = f"{gcorn} {WORKER_ARGS[worker]} {common}"
        lines.append(f"gcorn-{worker}|{iface}|{base}")
        lines.append(f"gcorn-{worker}-metrics|{iface}|{base} --metrics-bind 127.0.0.1:{metrics_port}")
    return lines


def scrape_forever(port: int, stop: threading.Event, counts: list[int], every: float) -> None:
    """GET /metrics every `every` seconds while the runs go on (a run's server may be down)."""
    url = f"http://127.0.0.1:{port}/metrics"
    while not stop.wait(every):
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                response.read()
            counts[0] += 1
        except OSError:
            pass  # between runs, or a run without metrics


def ratio_table(records: list[dict], workers: list[str]) -> str:
    """A markdown table of with / without metrics, per worker class."""
    lines = ["| worker | req/s without / with | ratio | req per CPU-s ratio | "
             "p99 ms without / with | RSS MiB without / with | runs |",
             "|---|---|---|---|---|---|---|"]
    for worker in workers:
        off = medians(records, f"gcorn-{worker}", "hello")
        on = medians(records, f"gcorn-{worker}-metrics", "hello")
        if not off or not on:
            lines.append(f"| {worker} | (no clean runs) | | | | | |")
            continue
        lines.append(
            f"| {worker} | {off['rps']:,.0f} / {on['rps']:,.0f} | {on['rps'] / off['rps']:.3f} "
            f"| {on['eff'] / off['eff']:.3f} | {off['p99']:.2f} / {on['p99']:.2f} "
            f"| {off['rss']:.1f} / {on['rss']:.1f} | {off['n']} + {on['n']} |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", default="sync,asgi", help="comma list of sync, gthread, asgi")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--duration", type=int, default=5)
    p.add_argument("--out", default=os.path.join(
        tempfile.gettempdir(), "bench-results", time.strftime("metrics-%Y%m%d-%H%M%S.jsonl")))
    p.add_argument("--summarize", nargs="+", metavar="JSONL")
    p.add_argument("--scrape-every", type=float, default=1.0, metavar="SECONDS",
                   help="scrape interval (default 1; Prometheus' usual is 15 to 60)")
    p.add_argument("harness_args", nargs="*", help="passed on to bench.py after --")
    a = p.parse_args()
    workers = [w.strip() for w in a.workers.split(",") if w.strip()]
    unknown = set(workers) - set(WORKER_ARGS)
    if unknown:
        p.error(f"unknown worker classes: {sorted(unknown)}")
    if not a.summarize:
        port = free_port()
        stop, scrapes = threading.Event(), [0]
        scraper = threading.Thread(target=scrape_forever, args=(port, stop, scrapes, a.scrape_every),
                                   daemon=True)
        scraper.start()
        lines = extras(gcorn_command(), workers, port)
        cmd = [sys.executable, HARNESS, "--scenarios", "hello", "--reps", str(a.reps),
               "--duration", str(a.duration), "--out", a.out]
        for line in lines:
            cmd += ["--only", line.split("|", 1)[0], "--extra", line]
        cmd += a.harness_args
        print("$", " ".join(cmd), flush=True)
        try:
            rc = subprocess.call(cmd)
        finally:
            stop.set()
            scraper.join(3)
        print(f"\n{scrapes[0]} scrapes of /metrics answered during the runs")
        if rc != 0:
            return rc
        a.summarize = [a.out]
    records = load_records(a.summarize)
    print("\n## gcorn with --metrics-bind / without (hello, medians)\n")
    print(ratio_table(records, workers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
