"""End to end, over TCP: `gcorn` answers as `gunicorn` 27.0.1 does, on the sync and the asgi worker.

Each server runs as a real process with one worker and an app that echoes
what it received (method, path, query, body length). Two runs:

- issue 9's requests (fixed cases), whose whole answers (status and echo)
  must match;
- a bounded, deterministic set of generated streams (the strategies of
  tests/gunicorn_diff_gen.py, shared with the in-process differential test),
  sent to gcorn and gunicorn with the same worker; the answers' statuses must
  match (the status class where both refuse: which rule trips first may
  differ), gcorn never answers 500 and never closes without answering where
  gunicorn answers.

A disagreement must be a row of the one table "Differences from gunicorn" in
packages/http-core/README.md: a parser row (its recogniser in
tests/gunicorn_verdicts.py explains the in-process verdicts of the same bytes)
or, against gunicorn's `-k asgi`, a row whose "when" is gunicorn `-k asgi`:
gunicorn's asgi worker reads requests with a parser of its own that answers
some requests otherwise than its WSGI parser, and gcorn, which has one parser
for every worker, follows the WSGI one. Those rows have their recognisers here
(ASGI_RECOGNISERS), or a fixed case (ASGI_PARSER_SPLITS) that shows them.
"""

from __future__ import annotations

import re
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from gunicorn_diff_gen import bounded, grammar
from gunicorn_verdicts import (
    ASGI_WORKER,
    Verdict,
    declared_differences,
    explain,
    gcorn_verdict,
    gunicorn_verdict,
)
from harness import ExternalServer, Gcorn, free_port, http_probe
from hypothesis import given

BIN = Path(sys.executable).parent
APP = '''
def wsgi(environ, start_response):
    body = environ["wsgi.input"].read()
    out = ("%s %s ?%s %d" % (environ["REQUEST_METHOD"], environ["PATH_INFO"],
                             environ["QUERY_STRING"], len(body))).encode("latin-1")
    start_response("200 OK", [("Content-Length", str(len(out)))])
    return [out]


async def asgi(scope, receive, send):
    if scope["type"] != "http":
        return
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    out = ("%s %s ?%s %d" % (scope["method"], scope["path"],
                             scope["query_string"].decode("latin-1"), size)).encode("latin-1")
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(out)).encode())]})
    await send({"type": "http.response.body", "body": out})
'''

H = b"Host: example.com\r\nConnection: close\r\n"
POST = b"POST /form HTTP/1.1\r\n" + H
CASES = {
    "M-SEARCH origin-form": b"M-SEARCH /upnp HTTP/1.1\r\n" + H + b"\r\n",
    "M-SEARCH *": b"M-SEARCH * HTTP/1.1\r\n" + H + b"\r\n",
    "fragment": b"GET /path?x=1#frag HTTP/1.1\r\n" + H + b"\r\n",
    "UTF-8 target, HTTP/1.0": b"GET /caf\xc3\xa9 HTTP/1.0\r\n\r\n",
    "HTTP/1.2": b"GET / HTTP/1.2\r\n" + H + b"\r\n",
    "identity alone": POST + b"Transfer-Encoding: identity\r\n\r\n",
    "identity and Content-Length": POST + b"Transfer-Encoding: identity\r\nContent-Length: 3"
    b"\r\n\r\nabc",
    "identity, then chunked": POST + b"Transfer-Encoding: identity\r\nTransfer-Encoding: chunked"
    b"\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "identity, chunked": POST + b"Transfer-Encoding: identity, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "trailers": POST + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Sum: 1\r\n"
    b"Content-Type: text/plain\r\n\r\n",
    "broken absolute-form authority": b"PUT s://]ufd/: HTTP/1.1\r\n" + H + b"\r\n",
    "multipart form": POST + b"Content-Type: multipart/form-data; boundary=b\r\n"
    b"Content-Length: 50\r\n\r\n--b\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--b--",
    # permit_unconventional_request_target, on by default: served as gunicorn serves them
    "not a URI": b"GET 1http://example.com/?q HTTP/1.1\r\n" + H + b"\r\n",
    "CONNECT to a path": b"CONNECT /x?q HTTP/1.1\r\n" + H + b"\r\n",
    "CONNECT host:port": b"CONNECT example.com:443 HTTP/1.1\r\n" + H + b"\r\n",
}
# (worker, case) -> the README row: gunicorn's asgi parser answers otherwise than its WSGI parser.
ASGI_PARSER_SPLITS = {
    ("asgi", "fragment"): "asgi-fragment-query",  # its query_string keeps "#frag"
    ("asgi", "HTTP/1.2"): "asgi-minor-version",  # 400
    ("asgi", "broken absolute-form authority"): "asgi-broken-authority",  # 200
    ("asgi", "CONNECT host:port"): "asgi-connect-path",  # its path is the whole target
}
# What gcorn answers there: what gunicorn's WSGI parser decides.
SYNC_ANSWERS = {
    "fragment": "200 GET /path ?x=1 0",
    "HTTP/1.2": "200 GET / ? 0",
    "broken absolute-form authority": "400",
    "CONNECT host:port": "200 CONNECT 443 ? 0",
}


def answer(port: int, data: bytes) -> str:
    """The status code and body the server answers, or "closed" for no answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    if not received:
        return "closed"
    head, _, body = received.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1].decode()
    return status + (" " + body.decode("latin-1") if status == "200" else "")


def gunicorn_server(tmp_path: Path, worker: str, app: str, port: int) -> ExternalServer:
    """gunicorn 27.0.1 with one worker of that kind on port, ready when it answers HTTP."""
    return ExternalServer(
        [BIN / "gunicorn", "-k", worker, "-w", "1", "-b", f"127.0.0.1:{port}",
         "--no-control-socket", app],
        cwd=tmp_path, name=f"gunicorn-{worker}", shared=True,
        ready=http_probe(f"http://127.0.0.1:{port}/"))


@pytest.fixture(scope="module", params=["sync", "asgi"])
def servers(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int, int]]:
    """(worker, gcorn's port, gunicorn's port), both serving the echo app with that worker."""
    worker = request.param
    tmp_path = tmp_path_factory.mktemp(worker)
    (tmp_path / "app.py").write_text(APP)
    app = "app:asgi" if worker == "asgi" else "app:wsgi"
    ours = Gcorn(["-k", worker, "-w", "1", "--no-control-socket", app], cwd=tmp_path,
                 name=f"gcorn-{worker}", shared=True)
    port = free_port()
    with ours, gunicorn_server(tmp_path, worker, app, port):
        yield worker, ours.port, port


@pytest.mark.parametrize("case", CASES)
def test_gcorn_answers_as_gunicorn_over_tcp(servers, case):
    worker, ours, theirs = servers
    mine, other = answer(ours, CASES[case]), answer(theirs, CASES[case])
    if (worker, case) in ASGI_PARSER_SPLITS:
        assert mine != other, "gunicorn's asgi parser agrees now: drop the split"
        # gcorn's asgi worker answers what gunicorn's WSGI parser decides.
        assert mine == SYNC_ANSWERS[case]
    else:
        assert mine == other


# ---------------------------------------------------------------------------
# Generated streams over TCP.

Answers = list[int]
READ_TIMEOUT = 1.0  # a server that neither answers nor closes: it waits for bytes never sent


def exchange(port: int, data: bytes | list[bytes], expected: int,
             heads: frozenset[int] = frozenset()) -> Answers:
    """Send the stream (a list: one segment each, 0.2 s apart); the statuses of the first
    `expected` final responses (fewer when the server closes first, or sends nothing more
    for READ_TIMEOUT). The answers whose index is in `heads` answer a HEAD request: they
    have no body, whatever their Content-Length."""
    statuses: Answers = []
    received = b""
    pieces = data if isinstance(data, list) else [data]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        try:
            for number, piece in enumerate(pieces):
                if number:
                    time.sleep(0.2)
                sock.sendall(piece)
        except OSError:  # the server refused early and closed: read what it said
            pass
        sock.settimeout(READ_TIMEOUT)
        closed = False
        while len(statuses) < expected:
            parsed = _response(received, closed, len(statuses) in heads)
            if parsed is not None:
                status, length = parsed
                received = received[length:]
                if status >= 200 or status == 101:  # 100 Continue comes before the answer
                    statuses.append(status)
                    if status == 101:
                        break
                continue
            if closed:
                break
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                chunk = b""
            closed = not chunk
            received += chunk
    return statuses


def _response(buf: bytes, closed: bool, to_head: bool) -> tuple[int, int] | None:
    """(status, bytes it takes) of the whole response at the start of buf, or None."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buf[:end].lower()
    status = int(head.split(b" ", 2)[1])
    if to_head and status >= 200:
        return status, end + 4
    length = re.search(rb"\r\ncontent-length: *(\d+)", head)
    if length is not None:
        total = end + 4 + int(length.group(1))
        return (status, total) if len(buf) >= total else None
    if b"\r\ntransfer-encoding: chunked" in head:
        last = buf.find(b"\r\n0\r\n\r\n", end + 2)
        return (status, last + 7) if last >= 0 else None
    if status < 200 or status in (204, 304):
        return status, end + 4
    return (status, len(buf)) if closed else None  # the body runs to the close


def head_answers(verdict: Verdict) -> frozenset[int]:
    """The indexes of the answers to HEAD requests (no body) in a verdict."""
    return frozenset(index for index, entry in enumerate(verdict)
                     if entry[0] == "request" and entry[1] == b"HEAD")


def expected_answers(verdict: Verdict) -> list[int | str]:
    """What a server answers on a parser's verdict: 200 per request read (the echo app),
    then the refusal's class; nothing for bytes that end inside a request."""
    out: list[int | str] = []
    for entry in verdict:
        if entry[0] == "request":
            out.append(200)
        elif entry[1] != "incomplete":
            out.append(entry[1])
    return out


def _classes(statuses: Answers) -> list[int | str]:
    return [status if status < 300 else f"{status // 100}xx" for status in statuses]


_MINOR_VERSION = re.compile(rb" HTTP/1\.[2-9]\r\n")
_BRACKET_AUTHORITY = re.compile(rb"[ ][A-Za-z][A-Za-z0-9+.-]*+://[^/?# ]*[\[\]]")


def _first_split(ours: list[int | str], theirs: list[int | str]) -> tuple[object, object]:
    for index in range(max(len(ours), len(theirs))):
        mine = ours[index] if index < len(ours) else None
        other = theirs[index] if index < len(theirs) else None
        if mine != other:
            return mine, other
    return None, None


def _asgi_minor_version(data: bytes, ours: list[int | str], theirs: list[int | str]) -> bool:
    mine, other = _first_split(ours, theirs)
    return mine == 200 and other == "4xx" and _MINOR_VERSION.search(data) is not None


def _asgi_broken_authority(data: bytes, ours: list[int | str], theirs: list[int | str]) -> bool:
    mine, other = _first_split(ours, theirs)
    return mine == "4xx" and other == 200 and _BRACKET_AUTHORITY.search(data) is not None


# The README rows "when: gunicorn `-k asgi`" that show in the statuses; "asgi-parser"
# (gcorn answers what gunicorn's WSGI parser decides, gunicorn's asgi parser otherwise)
# is checked last, in check_over_tcp, as it needs the in-process verdict.
ASGI_RECOGNISERS: dict[str, Callable[[bytes, list[int | str], list[int | str]], bool]] = {
    "asgi-minor-version": _asgi_minor_version,
    "asgi-broken-authority": _asgi_broken_authority,
}
ASGI_PARSER = "asgi-parser"


def test_every_asgi_row_has_a_recogniser_or_a_case():
    rows = {key for key, when in declared_differences().items() if when == ASGI_WORKER}
    assert rows == set(ASGI_RECOGNISERS) | set(ASGI_PARSER_SPLITS.values()) | {ASGI_PARSER}


def check_over_tcp(worker: str, ours: int, theirs: int, pieces: list[bytes]) -> None:
    """Fail unless both servers answer the stream alike, or a declared row says why not."""
    data = b"".join(pieces)
    verdict_ours, verdict_theirs = gcorn_verdict(pieces, "python"), gunicorn_verdict(pieces)
    expected = expected_answers(verdict_ours)
    mine = exchange(ours, data, len(expected), head_answers(verdict_ours))
    other = exchange(theirs, data, len(expected_answers(verdict_theirs)),
                     head_answers(verdict_theirs))
    report = (f"-k {worker}\nbytes:    {data!r}\ngcorn:    {mine}\ngunicorn: {other}\n"
              f"gcorn's parser:    {verdict_ours}\ngunicorn's parser: {verdict_theirs}")
    # A 5xx from gcorn only where its parser refuses with one (501, 505): never a crash.
    for index, status in enumerate(mine):
        assert status < 500 or (index < len(expected) and expected[index] == "5xx"), report
    mine_classes, other_classes = _classes(mine), _classes(other)
    if mine_classes == other_classes:
        return
    declared = declared_differences()
    if verdict_ours != verdict_theirs:
        key = explain(data, verdict_ours, verdict_theirs, {})
        if key in declared:
            return
    if worker == "asgi":
        for key, recognise in ASGI_RECOGNISERS.items():
            if recognise(data, mine_classes, other_classes) and key in declared:
                return
        wsgi = expected_answers(verdict_theirs)
        if verdict_ours == verdict_theirs and mine_classes == wsgi[: len(mine_classes)] and (
                len(mine_classes) == len(wsgi)):
            assert ASGI_PARSER in declared
            return  # gcorn gives what gunicorn's WSGI parser decides; its asgi parser differs
    raise AssertionError("undeclared disagreement with gunicorn over TCP\n" + report)


@pytest.mark.slow
@bounded(200)
@given(pieces=grammar(scale=6))
def test_generated_streams_get_gunicorns_answers_over_tcp(servers, pieces):
    """Mostly valid streams (pipelined requests, bodies, trailers) and their odd parts."""
    worker, ours, theirs = servers
    check_over_tcp(worker, ours, theirs, pieces)


@pytest.mark.slow
@bounded(100)
@given(pieces=grammar(scale=1))
def test_odd_streams_get_gunicorns_answers_over_tcp(servers, pieces):
    """Odd parts often: every refusal reaches the client with gunicorn's status class."""
    worker, ours, theirs = servers
    check_over_tcp(worker, ours, theirs, pieces)


def test_exchange_reads_each_answer_and_stops_on_silence(servers):
    """The reader the generated run relies on: whole answers, then a bounded wait."""
    _, ours, theirs = servers
    for port in (ours, theirs):
        start = time.monotonic()
        assert exchange(port, b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", 1) == [200]
        assert exchange(port, b"GET / HTTP/1.1\r\nHost: example.com\r\n", 1) == []
        assert exchange(port, b"GET /a\x01 HTTP/1.1\r\n\r\n", 1) == [400]
        assert time.monotonic() - start < 3 * READ_TIMEOUT


def test_a_request_before_a_bad_pipelined_one_is_served(servers):
    """Sent in one segment: the good request gets its 200 (then, with keep-alive on asgi, the
    bad one its 400), as from gunicorn; gcorn used to answer only the 400."""
    worker, ours, theirs = servers
    data = (b"GET /a HTTP/1.1\r\nHost: example.com\r\n\r\n"
            b"POST /b HTTP/1.1\r\nContent-Length: 2\r\n\r\nhiGET /\r\n\r\n")
    expected = [200] if worker == "sync" else [200, 200, 400]  # sync answers one, then closes
    assert exchange(ours, data, 3) == exchange(theirs, data, 3) == expected


def test_a_body_that_ends_in_front_of_a_bad_request_is_served(servers):
    """The end of a body comes in the segment of a bad request: that request is answered
    (its app must get the end of its body), then the 400, as from gunicorn."""
    worker, ours, theirs = servers
    data = [b"POST /b HTTP/1.1\r\nHost: example.com\r\nContent-Length: 4\r\n\r\nhi",
            b"yaGET /\r\n\r\n"]
    expected = [200] if worker == "sync" else [200, 400]
    assert exchange(ours, data, 2) == exchange(theirs, data, 2) == expected


@pytest.mark.parametrize("worker", ["gthread", "gevent"])
def test_keep_alive_wsgi_workers_serve_a_request_before_a_bad_pipelined_one(start_gcorn, tmp_path,
                                                                            worker):
    """The WSGI workers that keep connections open answer each whole request, then the 400."""
    if worker == "gevent":
        pytest.importorskip("gevent")
    (tmp_path / "app.py").write_text(APP)
    server = start_gcorn("-k", worker, "-w", "1", "--no-control-socket", "app:wsgi")
    data = (b"GET /a HTTP/1.1\r\nHost: example.com\r\n\r\n"
            b"POST /b HTTP/1.1\r\nContent-Length: 2\r\n\r\nhiGET /\r\n\r\n")
    assert exchange(server.port, data, 3) == [200, 200, 400]
