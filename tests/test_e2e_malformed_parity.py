"""One answer to a malformed request on every worker: a bounded, seeded fuzz over TCP sends
the same mutated requests to sync, gthread and asgi (through the `gcorn` command) and
requires the same status line and body from each, or that all of them close without a
word. The parser's error names the status and the message; a worker must not drop it."""

from __future__ import annotations

import random
import select
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from harness import Gcorn

SEED = 20261203
CASES = 400  # per worker

APP = '''
def wsgi(environ, start_response):
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]

async def asgi(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})
'''

WORKERS = {
    "sync": ["fuzzapp:wsgi"],
    "gthread": ["-k", "gthread", "--threads", "2", "fuzzapp:wsgi"],
    "asgi": ["-k", "asgi", "fuzzapp:asgi"],
}

BASES = [
    b"GET /index.html?q=1&r=%20x HTTP/1.1\r\nHost: example.com\r\nUser-Agent: fuzz/1.0\r\n"
    b"Accept: */*\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n",
    b"POST /form HTTP/1.1\r\nHost: example.com\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 0\r\nConnection: close\r\n\r\n",
    b"GET / HTTP/1.0\r\nHost: a\r\nCookie: a=b; c=d\r\nAccept-Language: en;q=0.5\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: example.com:8080\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"GET /" + b"a" * 4090 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 8180 + b"\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(98)) + b"\r\n",
]
# bodies are mutated too: chunk sizes, extensions, trailers, lengths
BODIES = [
    b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;ext=1\r\nhello\r\n3\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n",
    b"PUT /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3\r\nabc\r\n0\r\n\r\n",
]
ALPHABET = [b"\x00", b"\x01", b"\x7f", b"\x80", b"\xff", b" ", b"\t", b":", b"\r", b"\n", b"/",
            b"%", b"?", b"#", b"a", b"Z", b"0", b"9", b'"', b",", b";", b"(", b"\xc3\xa9", b"-", b"_"]


def mutate_all(rng: random.Random, base: bytes) -> bytes:
    """1-3 byte-level edits anywhere, the body included."""
    data = bytearray(base)
    for _ in range(rng.randint(1, 3)):
        pos = rng.randrange(len(data))
        if rng.random() < 0.6:
            data[pos:pos + 1] = rng.choice(ALPHABET)
        else:
            data[pos:pos] = rng.choice(ALPHABET)
    return bytes(data)


def mutate(rng: random.Random, base: bytes) -> bytes:
    """1-3 byte-level edits of the head; the final CRLF CRLF (and any body) stays."""
    head, sep, rest = base.partition(b"\r\n\r\n")
    data = bytearray(head)
    for _ in range(rng.randint(1, 3)):
        op = rng.random()
        pos = rng.randrange(len(data) + 1)
        if op < 0.4 and pos < len(data):
            data[pos:pos + 1] = rng.choice(ALPHABET)
        elif op < 0.7:
            data[pos:pos] = rng.choice(ALPHABET)
        elif op < 0.85 and pos < len(data):
            del data[pos:pos + rng.randint(1, 4)]
        else:  # repeat a whole line
            lines = bytes(data).split(b"\r\n")
            index = rng.randrange(len(lines))
            lines.insert(index, lines[index])
            data = bytearray(b"\r\n".join(lines))
    return bytes(data) + sep + rest


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    """The ports of three gcorns, one per worker class, on the same app, all running at once."""
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    (tmp / "fuzzapp.py").write_text(APP)
    with ExitStack() as stack:
        running = {name: Gcorn(["--log-level", "warning", *args], cwd=tmp, name=f"gcorn-{name}",
                               shared=True) for name, args in WORKERS.items()}
        for server in running.values():  # all three boot together
            stack.enter_context(server.start(wait=False))
        for server in running.values():
            server.wait_ready()
        yield {name: server.port for name, server in running.items()}
        for name, server in running.items():
            assert "Traceback" not in server.log(), name


def answer(port: int, data: bytes, half_close: bool) -> tuple[str, bytes] | None:
    """(status and reason, body) of the final response, or None when the server closes silently.

    The HTTP version of the status line is left out: the asgi worker answers an HTTP/1.0
    request with HTTP/1.0, the WSGI workers with HTTP/1.1 (both valid, RFC 9110 6.2).

    With `half_close` the client shuts its sending side right after the bytes; otherwise a request the server is still waiting on after 0.5 s (it wants
    more bytes) gets the end of stream then, so every worker is judged on the same input.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        if half_close or not select.select([sock], [], [], 0.5)[0]:
            sock.shutdown(socket.SHUT_WR)
        reply = b""
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            reply += chunk
            head, sep, body = reply.partition(b"\r\n\r\n")
            if sep:
                length = [int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")[1:]
                          if line.lower().startswith(b"content-length:")]
                if length and len(body) >= length[0]:
                    break
    if not reply:
        return None
    head, _, body = reply.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].decode("latin-1").partition(" ")[2]
    if status.startswith("100 "):  # an interim answer: judge the final one
        return answer_rest(reply)
    length = [int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")[1:]
              if line.lower().startswith(b"content-length:")]
    return status, body[:length[0]] if length else body


def answer_rest(reply: bytes) -> tuple[str, bytes]:
    rest = reply.partition(b"\r\n\r\n")[2]
    head, _, body = rest.partition(b"\r\n\r\n")
    return head.split(b"\r\n", 1)[0].decode("latin-1").partition(" ")[2], body


def test_every_worker_gives_the_same_answer_to_malformed_requests(servers: dict[str, int]) -> None:
    rng = random.Random(SEED)
    disagreements = []
    statuses: dict[str, int] = {}
    for n in range(CASES):
        if rng.random() < 0.3:
            data = mutate_all(rng, rng.choice(BODIES))
        else:
            data = mutate(rng, rng.choice(BASES))
        # cut short, then the end of the stream at once (a whole request followed by the
        # end of the stream is not judged: the asgi worker takes that end as the client
        # leaving, http.disconnect, by design)
        half_close = rng.random() < 0.2
        if half_close:
            data = data[:rng.randrange(1, len(data))]
        answers = {name: answer(port, data, half_close) for name, port in servers.items()}
        first = answers["gthread"]
        key = first[0] if first else "closed"
        statuses[key] = statuses.get(key, 0) + 1
        if any(other != first for other in answers.values()):
            disagreements.append((n, data + (b" <EOF>" if half_close else b""), answers))
    report = "\n".join(f"#{n} {data!r}\n    {answers}" for n, data, answers in disagreements[:15])
    assert not disagreements, f"{len(disagreements)} of {CASES} disagree:\n{report}\n{statuses}"
    # the fuzz reaches both sides: requests served and requests refused
    assert statuses.get("200 OK", 0) > CASES // 10, statuses
    assert statuses.get("400 Bad Request", 0) > CASES // 10, statuses
