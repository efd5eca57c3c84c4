#!/usr/bin/env python3
"""WebSocket echo: messages/s over 50 connections, gcorn -k asgi against uvicorn --ws websockets.

One worker per server, the same ASGI echo app (`app` below), interleaved
repetitions, medians. The client is a lean asyncio protocol (uvloop when
installed) that keeps one 16-byte masked text message in flight per
connection and counts the echoes, so the server is what gets measured.

    python tools/bench_websocket.py --reps 3 --duration 5
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
GCORN = os.path.join(ROOT, ".venv", "bin", "gcorn")
ANCHOR_BIN = os.environ.get("BENCH_BIN", "/tmp/anchors-venv/bin")
PAYLOAD = b"0123456789abcdef"


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The echo app every server runs."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].replace("lifespan.", "")
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    if scope["type"] != "websocket":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    await receive()
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


def _masked_text_frame(payload: bytes) -> bytes:
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + body


class EchoClient(asyncio.Protocol):
    """Handshake, then one message in flight; counts complete echoes."""

    def __init__(self, port: int, counter: list[int], ready: asyncio.Future[None]) -> None:
        self.port = port
        self.counter = counter
        self.ready = ready
        self.frame = _masked_text_frame(PAYLOAD)
        self.echo_size = 2 + len(PAYLOAD)
        self.buffer = b""
        self.open = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        key = base64.b64encode(os.urandom(16))
        transport.write(  # type: ignore[attr-defined]
            b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
            % (self.port, key))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.open:
            head, sep, rest = self.buffer.partition(b"\r\n\r\n")
            if not sep:
                return
            if not head.startswith(b"HTTP/1.1 101"):
                raise RuntimeError(f"handshake refused: {head[:80]!r}")
            self.open = True
            self.buffer = rest
            if not self.ready.done():
                self.ready.set_result(None)
            self.transport.write(self.frame)  # type: ignore[union-attr]
            return
        done = len(self.buffer) // self.echo_size
        if done:
            self.buffer = self.buffer[done * self.echo_size:]
            self.counter[0] += done
            self.transport.write(self.frame * done)  # type: ignore[union-attr]


def tree_cpu(pid: int) -> float:
    """CPU seconds used so far by a process and its children (the server under test)."""
    import psutil
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


async def drive(port: int, connections: int, duration: float,
                server_pid: int) -> tuple[float, float]:
    """(messages/s, messages per server CPU-second) over `connections` connections."""
    loop = asyncio.get_running_loop()
    counter = [0]
    clients = []
    for _ in range(connections):
        ready = loop.create_future()
        transport, _ = await loop.create_connection(
            lambda ready=ready: EchoClient(port, counter, ready), "127.0.0.1", port)
        clients.append((transport, ready))
    await asyncio.wait_for(asyncio.gather(*(ready for _, ready in clients)), 10)
    await asyncio.sleep(1.0)  # warm-up
    start_count, start, cpu = counter[0], time.monotonic(), tree_cpu(server_pid)
    await asyncio.sleep(duration)
    done = counter[0] - start_count
    rate = done / (time.monotonic() - start)
    per_cpu = done / max(tree_cpu(server_pid) - cpu, 1e-6)
    for transport, _ in clients:
        transport.abort()
    return rate, per_cpu


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(name: str, port: int) -> subprocess.Popen[bytes]:
    """Start one server with one worker on `port`."""
    module = "bench_websocket:app"
    if name == "gcorn":
        cmd = [GCORN, "-w", "1", "-k", "asgi", "-b", f"127.0.0.1:{port}",
               "--log-level", "warning", module]
    else:
        cmd = [f"{ANCHOR_BIN}/uvicorn", "--port", str(port), "--workers", "1",
               "--http", "httptools", "--loop", "uvloop", "--ws", "websockets",
               "--no-access-log", "--log-level", "warning", module]
    proc = subprocess.Popen(cmd, cwd=HERE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{name} did not start")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """TERM the server, KILL it if it lingers."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def main() -> int:
    """Interleaved runs, then the median table and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=50)
    args = parser.parse_args()
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    results: dict[str, list[float]] = {"gcorn": [], "uvicorn": []}
    per_cpu: dict[str, list[float]] = {"gcorn": [], "uvicorn": []}
    for rep in range(args.reps):
        for name in results:
            port = free_port()
            proc = start_server(name, port)
            try:
                rate, efficiency = asyncio.run(
                    drive(port, args.connections, min(args.duration, 10.0), proc.pid))
            finally:
                stop_server(proc)
            results[name].append(rate)
            per_cpu[name].append(efficiency)
            print(f"rep{rep + 1} {name:8s} {rate:10,.0f} msg/s {efficiency:10,.0f} msg per server"
                  " CPU-s", flush=True)
    print(f"\nwebsocket echo, {args.connections} connections, 16-byte text, one worker, "
          f"median of {args.reps}\n")
    print("| server | messages/s (median) | min–max | messages per server CPU-s (median) |")
    print("|---|---|---|---|")
    for name, rates in results.items():
        print(f"| {name} | {statistics.median(rates):,.0f} | {min(rates):,.0f}–{max(rates):,.0f} |"
              f" {statistics.median(per_cpu[name]):,.0f} |")
    ratio = statistics.median(results["gcorn"]) / statistics.median(results["uvicorn"])
    cpu_ratio = statistics.median(per_cpu["gcorn"]) / statistics.median(per_cpu["uvicorn"])
    print(f"\ngcorn / uvicorn (--ws websockets): {ratio:.2f}x messages/s,"
          f" {cpu_ratio:.2f}x messages per server CPU-second")
    return 0


if __name__ == "__main__":
    sys.exit(main())
