#!/usr/bin/env python3
"""Coverage-guided fuzzing of gcorn.http with atheris (libFuzzer).

Usage: python tools/fuzz_parser.py [-max_total_time=60] [-runs=N] [corpus_dir ...]

Each input is split in two at a position taken from its first byte and fed to
both parser backends (and to the PROXY and uwsgi readers). It fails on any
exception other than a ParseError, and when the two backends disagree.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "packages" / "http-core" / "src"))

import atheris

from gcorn.http import (
    ParseError,
    RequestParser,
    UwsgiParser,
    httptools_available,
    read_proxy_header,
)

BACKENDS = ("python", "httptools") if httptools_available() else ("python",)
SEEDS = [
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\nX: y\r\n\r\n",
    b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /2 HTTP/1.0\r\n\r\n",
    b"GET /chat HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81",
]


def outcome(backend: str, pieces: tuple[bytes, bytes]) -> object:
    parser = RequestParser(backend)
    events = []
    try:
        for piece in pieces:
            events += parser.feed(piece)
        events += parser.feed_eof()
    except ParseError as exc:
        return type(exc)
    merged: list[object] = []
    for event in events:  # body piece sizes may differ with the split
        if type(event).__name__ == "Body" and merged and type(merged[-1]).__name__ == "Body":
            merged[-1] = type(event)(merged[-1].data + event.data)  # type: ignore[attr-defined]
        else:
            merged.append(event)
    return merged


def test_one_input(data: bytes) -> None:
    if not data:
        return
    cut = data[0] % len(data)
    body = data[1:]
    pieces = (body[:cut], body[cut:])
    results = [outcome(backend, pieces) for backend in BACKENDS]
    whole = outcome("python", (body, b""))
    if any(r != results[0] for r in results) or (not isinstance(whole, type) and whole != results[0]):
        raise AssertionError(f"disagreement on {body!r}: {results} / whole {whole}")
    for mode in ("auto", "v1", "v2"):
        try:
            read_proxy_header(body, mode)
        except ParseError:
            pass
    try:
        UwsgiParser().feed(body)
    except ParseError:
        pass


def main() -> None:
    """Run the fuzzer (arguments are passed on to libFuzzer)."""
    argv = list(sys.argv)
    if not any(a.startswith(("-max_total_time", "-runs")) for a in argv[1:]):
        argv.append("-max_total_time=60")  # always bounded
    if not any(not a.startswith("-") for a in argv[1:]):
        # No corpus folder given: start from a few valid requests, not from nothing.
        seeds = Path(tempfile.mkdtemp(prefix="gcorn-http-fuzz-"))
        for i, seed in enumerate(SEEDS):
            (seeds / f"seed{i}").write_bytes(b"\x07" + seed)
        argv.append(str(seeds))
    for seed in SEEDS:
        test_one_input(b"\x07" + seed)
    atheris.instrument_all()  # every loaded Python function, gcorn.http included
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
