#!/usr/bin/env python3
"""Request-parsing throughput of gcorn.http next to h11 and raw httptools.

Usage: python tools/bench_parser.py [--seconds 0.3] [--rounds 5] [--cpu N] [--png FILE]

Two messages (the ones the anchors were measured on): a browser-like GET of
about 420 bytes with 10 header fields, and a POST with 10 header fields and a
1 KiB body in four 256-byte chunks. Each parser must produce the method, the
target, the 10 fields and the whole body (checked before timing).

Two modes: "fresh" builds a new parser for every request (one request per
connection; the only mode h11 has), "keepalive" reuses one parser for
successive requests (one recv() each, as on a keep-alive connection).

Each figure is the best of --rounds rounds of back-to-back parses in one
thread, counted in CPU time of that thread (time.thread_time), which is the
least disturbed by other load on the machine; wall-clock rates are shown too.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "packages" / "http-core" / "src"))

from gcorn.http import Body, EndOfMessage, RequestHead, RequestParser

FIELDS_GET = [
    b"Host: shop.example.com",
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    b"Accept: text/html,application/xhtml+xml,*/*;q=0.8",
    b"Accept-Language: en-US,en;q=0.5",
    b"Accept-Encoding: gzip, deflate, br",
    b"Referer: https://shop.example.com/",
    b"Connection: keep-alive",
    b"Cookie: sessionid=8f14e45f; csrftoken=c9f0f895",
    b"Upgrade-Insecure-Requests: 1",
    b"DNT: 1",
]
FIELDS_POST = [
    b"Host: api.example.com",
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    b"Accept: application/json",
    b"Accept-Language: en-US,en;q=0.5",
    b"Accept-Encoding: gzip, deflate, br",
    b"Content-Type: application/json",
    b"Transfer-Encoding: chunked",
    b"Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.sig",
    b"Origin: https://app.example.com",
    b"Connection: keep-alive",
]
PIECE = b"x" * 256


def _message(line: bytes, fields: list[bytes], body: bytes = b"") -> bytes:
    return line + b"\r\n" + b"".join(f + b"\r\n" for f in fields) + b"\r\n" + body


GET = _message(b"GET /search?q=headphones&page=2 HTTP/1.1", FIELDS_GET)
POST = _message(
    b"POST /api/v1/items HTTP/1.1",
    FIELDS_POST,
    b"".join(b"%x\r\n%s\r\n" % (len(PIECE), PIECE) for _ in range(4)) + b"0\r\n\r\n",
)
MESSAGES = {"GET": (GET, b""), "POST": (POST, PIECE * 4)}

# What one parse returns: method, target, number of fields, body, complete.
Parsed = tuple[bytes, bytes, int, bytes, bool]
Parse = Callable[[bytes], Parsed]


# --- gcorn ------------------------------------------------------------------
def _gcorn_events(events: list[object]) -> Parsed:
    head = events[0]
    assert isinstance(head, RequestHead)
    body = b"".join(e.data for e in events if isinstance(e, Body))
    return head.method, head.target, len(head.headers), body, isinstance(events[-1], EndOfMessage)


def gcorn_fresh(backend: str) -> Parse:
    def parse(data: bytes) -> Parsed:
        return _gcorn_events(RequestParser(backend).feed(data))

    return parse


def gcorn_keepalive(backend: str) -> Parse:
    parser = RequestParser(backend)

    def parse(data: bytes) -> Parsed:
        return _gcorn_events(parser.feed(data))

    return parse


# --- raw httptools, callbacks collecting the same things ---------------------
class _Collector:
    __slots__ = ("url", "fields", "body", "complete")

    def __init__(self) -> None:
        self.url = b""
        self.fields: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.complete = False

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.fields.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.complete = True


def httptools_fresh() -> Parse:
    import httptools

    def parse(data: bytes) -> Parsed:
        c = _Collector()
        parser = httptools.HttpRequestParser(c)
        parser.feed_data(data)
        return parser.get_method(), c.url, len(c.fields), b"".join(c.body), c.complete

    return parse


def httptools_keepalive() -> Parse:
    import httptools

    c = _Collector()
    parser = httptools.HttpRequestParser(c)

    def parse(data: bytes) -> Parsed:
        c.fields, c.body, c.complete = [], [], False
        parser.feed_data(data)
        return parser.get_method(), c.url, len(c.fields), b"".join(c.body), c.complete

    return parse


# --- h11 (fresh only: it needs a response before it reads the next request) --
def h11_fresh() -> Parse:
    import h11

    def parse(data: bytes) -> Parsed:
        conn = h11.Connection(h11.SERVER)
        conn.receive_data(data)
        body = []
        request = None
        while True:
            event = conn.next_event()
            if type(event) is h11.Request:
                request = event
            elif type(event) is h11.Data:
                body.append(event.data)
            elif type(event) is h11.EndOfMessage:
                assert request is not None
                return (request.method, request.target, len(request.headers), b"".join(body),
                        True)
            else:
                raise RuntimeError(f"h11 gave {event!r}")

    return parse


def parsers() -> list[tuple[str, str, Parse | None]]:
    """(name, mode, parse function or None when that mode does not exist)."""
    rows: list[tuple[str, str, Parse | None]] = []
    for backend in ("python", "httptools"):
        rows.append((f"gcorn ({backend})", "fresh", gcorn_fresh(backend)))
        rows.append((f"gcorn ({backend})", "keepalive", gcorn_keepalive(backend)))
    rows.append(("h11", "fresh", h11_fresh()))
    rows.append(("h11", "keepalive", None))
    rows.append(("httptools (raw)", "fresh", httptools_fresh()))
    rows.append(("httptools (raw)", "keepalive", httptools_keepalive()))
    return rows


def check(name: str, parse: Parse, data: bytes, body: bytes) -> None:
    for _ in range(3):  # three times: a reused parser must stay usable
        method, target, n_fields, got_body, complete = parse(data)
        if not (complete and n_fields == 10 and got_body == body and target
                and data.startswith(method)):
            raise SystemExit(f"{name}: wrong parse ({method!r} {target!r} {n_fields} fields, "
                             f"{len(got_body)} body bytes, complete={complete})")


def measure(parse: Parse, data: bytes, seconds: float, rounds: int) -> tuple[float, float]:
    """Best (CPU-time rate, wall-clock rate) over the rounds, in requests per second."""
    n = 100
    while True:  # size a round to about `seconds` of CPU time
        start = time.thread_time()
        for _ in range(n):
            parse(data)
        spent = time.thread_time() - start
        if spent > seconds / 4:
            break
        n *= 2
    n = max(200, int(n * seconds / spent))
    best_cpu = best_wall = float("inf")
    gc.collect()
    for _ in range(rounds):
        cpu, wall = time.thread_time(), time.perf_counter()
        for _ in range(n):
            parse(data)
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.thread_time() - cpu)
    return n / best_cpu, n / best_wall


def _version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


def main() -> int:
    """Run the benchmark and print the table (and the target ratios)."""
    args = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    args.add_argument("--seconds", type=float, default=0.3, help="CPU seconds per round")
    args.add_argument("--rounds", type=int, default=5)
    args.add_argument("--cpu", type=int, default=None, help="pin to this CPU (Linux)")
    args.add_argument("--png", default=None, help="also draw a bar chart (needs matplotlib)")
    opts = args.parse_args()
    if opts.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {opts.cpu})
    print(f"Python {platform.python_version()} ({sys.executable}); gcorn-http "
          f"{_version('gcorn-http')}, httptools {_version('httptools')}, h11 {_version('h11')}")
    for label, (data, _) in MESSAGES.items():
        print(f"{label}: {len(data)} bytes")
    rates: dict[tuple[str, str], dict[str, tuple[float, float]]] = {}
    for name, mode, parse in parsers():
        rates[(name, mode)] = {}
        if parse is None:
            continue
        for label, (data, body) in MESSAGES.items():
            check(f"{name}/{mode}/{label}", parse, data, body)
            rates[(name, mode)][label] = measure(parse, data, opts.seconds, opts.rounds)

    def cell(name: str, mode: str, label: str) -> str:
        rate = rates[(name, mode)].get(label)
        if rate is None:
            return "n/a"
        return f"{rate[0]:,.0f} ({1e6 / rate[0]:.2f} µs; wall {rate[1]:,.0f})"

    print("\n| parser | mode | GET req/s (CPU µs/req; wall req/s) | POST req/s (same) |")
    print("|---|---|---|---|")
    for name, mode in rates:
        print(f"| {name} | {mode} | {cell(name, mode, 'GET')} | {cell(name, mode, 'POST')} |")

    def ratio(a: tuple[str, str], b: tuple[str, str], label: str) -> str:
        if label not in rates[a] or label not in rates[b]:
            return "n/a"
        return f"{rates[a][label][0] / rates[b][label][0]:.2f}x"

    print("\n| ratio (CPU time) | GET | POST | target |")
    print("|---|---|---|---|")
    targets = [
        ("gcorn (python) fresh / h11 fresh", ("gcorn (python)", "fresh"), ("h11", "fresh"), ">= 3x"),
        ("gcorn (python) keepalive / h11 fresh", ("gcorn (python)", "keepalive"), ("h11", "fresh"),
         ">= 3x"),
        ("gcorn (httptools) fresh / httptools fresh", ("gcorn (httptools)", "fresh"),
         ("httptools (raw)", "fresh"), ">= 0.5x"),
        ("gcorn (httptools) keepalive / httptools keepalive",
         ("gcorn (httptools)", "keepalive"), ("httptools (raw)", "keepalive"), ">= 0.5x"),
    ]
    for title, a, b, goal in targets:
        print(f"| {title} | {ratio(a, b, 'GET')} | {ratio(a, b, 'POST')} | {goal} |")
    print(f"\nbest of {opts.rounds} rounds of ~{opts.seconds} s CPU each, one thread.")
    if opts.png:
        draw(rates, opts.png)
    return 0


def draw(rates: dict[tuple[str, str], dict[str, tuple[float, float]]], path: str) -> None:
    """A grouped bar chart of the CPU-time rates."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("--png needs matplotlib (pip install matplotlib); no chart written", file=sys.stderr)
        return
    rows = [(f"{n}\n{m}", r) for (n, m), r in rates.items() if r]
    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.4
    for i, label in enumerate(("GET", "POST")):
        ax.bar([x + i * width for x in range(len(rows))], [r[label][0] for _, r in rows], width,
               label=label)
    ax.set_xticks([x + width / 2 for x in range(len(rows))], [name for name, _ in rows],
                  fontsize=7)
    ax.set_ylabel("requests/s (CPU time)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    print(f"chart written to {path}")


if __name__ == "__main__":
    sys.exit(main())
