"""Differential tests against h11 on the request corpus.

Where gcorn's verdict differs from h11's on purpose, the corpus case names the
gcorn rule responsible, and the test checks that the difference is real (so a
stale annotation fails too).
"""

from __future__ import annotations

import pytest

from gcorn.http import Body, EndOfMessage, ParseError, RequestHead, RequestParser

from .conftest import load_corpus

h11 = pytest.importorskip("h11")
CORPUS = load_corpus()


def h11_first_request(data: bytes) -> tuple[str, object]:
    """("ok", (method, target, version, headers, body, trailers)) or ("error", status)."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    conn.receive_data(b"")
    head, body, trailers = None, [], None
    try:
        while trailers is None:
            event = conn.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return "incomplete", None
            if isinstance(event, h11.Request):
                head = event
            elif isinstance(event, h11.Data):
                body.append(event.data)
            elif isinstance(event, h11.EndOfMessage):
                trailers = list(event.headers)
    except h11.RemoteProtocolError as exc:
        return "error", exc.error_status_hint
    assert head is not None
    return "ok", (head.method, head.target, head.http_version, list(head.headers),
                  b"".join(body), trailers)


def gcorn_first_request(backend: str, data: bytes) -> tuple[str, object]:
    parser = RequestParser(backend)
    try:
        events = parser.feed(data)
        events += parser.feed_eof()
    except ParseError as exc:
        return "error", exc.status
    head = events[0]
    assert isinstance(head, RequestHead)
    end = next(i for i, e in enumerate(events) if isinstance(e, EndOfMessage))
    body = b"".join(e.data for e in events[1:end] if isinstance(e, Body))
    version = b"%d.%d" % head.version
    # h11 lower-cases the value of Transfer-Encoding; gcorn keeps values as received.
    headers = [(n, v.lower() if n == b"transfer-encoding" else v) for n, v in head.headers]
    return "ok", (head.method, head.target, version, headers, body, events[end].trailers)


@pytest.mark.parametrize("case", CORPUS.VALID, ids=lambda c: c.name)
def test_valid_requests_against_h11(backend, case):
    ours = gcorn_first_request(backend, case.data)
    theirs = h11_first_request(case.data)
    assert ours[0] == "ok"
    if case.differs is None:
        assert theirs == ours
    else:
        assert theirs[0] != "ok", f"h11 now accepts it: drop the rule note {case.differs!r}"


@pytest.mark.parametrize("case", CORPUS.INVALID, ids=lambda c: c.name)
def test_invalid_requests_against_h11(backend, case):
    ours = gcorn_first_request(backend, case.data)
    theirs = h11_first_request(case.data)
    assert ours[0] == "error"
    if case.differs is None:
        assert theirs[0] == "error", f"h11 accepts it too: {theirs}"
    else:
        assert theirs[0] != "error", f"h11 refuses it too: drop the rule note {case.differs!r}"


def test_corpus_size_and_coverage():
    assert len(CORPUS.VALID) >= 60 and len(CORPUS.INVALID) >= 60
    errors = {case.error for case in CORPUS.INVALID}
    from gcorn import http

    parse_errors = {
        getattr(http, name) for name in http.__all__
        if isinstance(getattr(http, name), type) and issubclass(getattr(http, name), ParseError)
    }
    # Every rule of the request parser has at least one case (the others are
    # end-of-input, PROXY and uwsgi errors, tested on their own).
    untested = {cls.__name__ for cls in parse_errors - errors}
    assert untested <= {"ParseError", "IncompleteMessage", "InvalidProxyHeader",
                        "InvalidUwsgiPacket"}
