#!/usr/bin/env python3
"""HTTP/2 speed: h2load against gcorn, hypercorn and gunicorn 27 on the same hello apps.

Every server runs 1 worker over TLS (h2 by ALPN, a throw-away self-signed
certificate). Two measures:

- throughput: `h2load -c 10 -m 10 -n N` on a hello app (gcorn asgi vs hypercorn
  and gunicorn asgi; gcorn gthread vs gunicorn gthread);
- concurrency: 100 concurrent streams of a 100 ms view on ONE connection
  (`h2load -c 1 -m 100 -n 100`), gcorn asgi and gthread vs gunicorn gthread.

Keep counts small on a shared machine (the defaults are):

    python tools/bench_http2.py --requests 5000 --reps 3
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, ".venv", "bin")

ASGI_APP = '''
import asyncio

async def app(scope, receive, send):
    if scope["type"] != "http":
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].split(".")[1]
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        return
    if scope["path"] == "/sleep":
        await asyncio.sleep(0.1)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"Hello, World!"})
'''

WSGI_APP = '''
import time

def app(environ, start_response):
    if environ["PATH_INFO"] == "/sleep":
        time.sleep(0.1)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"Hello, World!"]
'''


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def commands(cert: str, key: str) -> dict[str, list[str]]:
    """name -> argv with {port}; TLS with h2 by ALPN everywhere."""
    tls = ["--certfile", cert, "--keyfile", key]
    gcorn = [os.path.join(BIN, "gcorn"), "-w", "1", "--log-level", "warning",
             "--http-protocols", "h2,h1", *tls, "-b", "127.0.0.1:{port}"]
    gunicorn = [os.path.join(BIN, "gunicorn"), "-w", "1", "--log-level", "warning",
                "--http-protocols", "h2,h1", *tls, "-b", "127.0.0.1:{port}"]
    return {
        "gcorn-asgi": [*gcorn, "-k", "asgi", "asgiapp:app"],
        "hypercorn": [os.path.join(BIN, "hypercorn"), "-w", "1", *tls, "-b",
                      "127.0.0.1:{port}", "--log-level", "warning", "asgiapp:app"],
        "gunicorn-asgi": [*gunicorn, "-k", "asgi", "asgiapp:app"],
        "gcorn-gthread": [*gcorn, "-k", "gthread", "--threads", "100", "wsgiapp:app"],
        "gunicorn-gthread": [*gunicorn, "-k", "gthread", "--threads", "100", "wsgiapp:app"],
    }


def wait_port(port: int, timeout: float = 15.0) -> bool:
    """Whether something accepts on the port within `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def h2load(url: str, requests: int, clients: int, streams: int) -> tuple[float, float, int]:
    """(req/s, seconds, succeeded) of one h2load run."""
    out = subprocess.run(["h2load", "-n", str(requests), "-c", str(clients), "-m", str(streams),
                          url], capture_output=True, text=True, timeout=120).stdout
    finished = re.search(r"finished in ([\d.]+)(ms|s), ([\d.]+) req/s", out)
    done = re.search(r"(\d+) succeeded", out)
    if not finished or not done:
        return 0.0, 0.0, 0
    seconds = float(finished.group(1)) / (1000 if finished.group(2) == "ms" else 1)
    return float(finished.group(3)), seconds, int(done.group(1))


def run_server(name: str, argv: list[str], folder: str,
               fn: Callable[[int], tuple[float, float, int]]) -> tuple[float, float, int] | None:
    """Start a server, call fn(port) once it listens (plus warm-up), stop it."""
    port = free_port()
    argv = [a.replace("{port}", str(port)) for a in argv]
    with open(os.path.join(folder, f"{name}.log"), "wb") as log:
        proc = subprocess.Popen(argv, cwd=folder, stdout=log, stderr=subprocess.STDOUT)
        try:
            if not wait_port(port):
                return None
            time.sleep(1.0)  # the worker boots after the listener exists
            h2load(f"https://127.0.0.1:{port}/", 200, 2, 10)  # warm-up
            return fn(port)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def main() -> int:
    """Run both measures and print markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=5000, help="requests per h2load run")
    parser.add_argument("--reps", type=int, default=3, help="runs per server (median)")
    args = parser.parse_args()
    if shutil.which("h2load") is None:
        print("h2load not found (Debian: apt-get install nghttp2-client)", file=sys.stderr)
        return 2
    folder = tempfile.mkdtemp(prefix="bench-h2-")
    cert, key = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    with open(os.path.join(folder, "asgiapp.py"), "w") as fh:
        fh.write(ASGI_APP)
    with open(os.path.join(folder, "wsgiapp.py"), "w") as fh:
        fh.write(WSGI_APP)
    servers = commands(cert, key)
    rates: dict[str, list[float]] = {name: [] for name in servers}
    for _ in range(args.reps):  # interleaved: a disturbance hits every server alike
        for name, argv in servers.items():
            result = run_server(name, argv, folder, lambda port: h2load(
                f"https://127.0.0.1:{port}/", args.requests, 10, 10))
            if result and result[2] == args.requests:
                rates[name].append(result[0])
    med = {name: statistics.median(r) for name, r in rates.items() if r}
    print(f"\nh2load -c 10 -m 10 -n {args.requests}, 1 worker, TLS, {args.reps} reps (median)\n")
    print("| server | req/s | runs ok |\n|---|---|---|")
    for name in servers:
        value = f"{med[name]:,.0f}" if name in med else "failed"
        print(f"| {name} | {value} | {len(rates[name])}/{args.reps} |")
    print("\n| ratio | value | target |\n|---|---|---|")
    for mine, other, target in (("gcorn-asgi", "hypercorn", 2.0),
                                ("gcorn-asgi", "gunicorn-asgi", 1.5),
                                ("gcorn-gthread", "gunicorn-gthread", 1.5)):
        if mine in med and other in med:
            print(f"| {mine} / {other} | {med[mine] / med[other]:.2f}x | >= {target}x |")
    print("\n100 concurrent streams of a 100 ms view on one connection (h2load -c 1 -m 100)\n")
    print("| server | seconds | succeeded |\n|---|---|---|")
    for name in ("gcorn-asgi", "gcorn-gthread", "gunicorn-gthread"):
        result = run_server(name, servers[name], folder, lambda port: h2load(
            f"https://127.0.0.1:{port}/sleep", 100, 1, 100))
        if result:
            print(f"| {name} | {result[1]:.2f} | {result[2]}/100 |")
        else:
            print(f"| {name} | failed | - |")
    print(f"\nlogs: {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
