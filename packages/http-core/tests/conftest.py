"""Shared fixtures for the gcorn-http tests: every parser test runs on both backends."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from gcorn.http import Body, EndOfMessage, Event, RequestParser

# Modest example counts: the whole folder must run in well under a minute.
# GCORN_HTTP_HYPOTHESIS=deep runs many more examples (minutes; for a bug hunt).
settings.register_profile(
    "gcorn-http", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "deep", max_examples=5000, deadline=None, suppress_health_check=list(HealthCheck)
)
settings.load_profile(os.environ.get("GCORN_HTTP_HYPOTHESIS", "gcorn-http"))

HAVE_HTTPTOOLS = importlib.util.find_spec("httptools") is not None
BACKENDS = [
    "python",
    pytest.param(
        "httptools",
        marks=pytest.mark.skipif(not HAVE_HTTPTOOLS, reason="httptools is not installed"),
    ),
]


def load_corpus() -> ModuleType:
    """The request corpus module, loaded by path (tests run in importlib mode)."""
    path = Path(__file__).with_name("http_corpus.py")
    spec = importlib.util.spec_from_file_location("gcorn_http_corpus", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def merge_bodies(events: list[Event]) -> list[Event]:
    """Join adjacent Body events: piece sizes depend on how the bytes arrived."""
    merged: list[Event] = []
    for event in events:
        if isinstance(event, Body) and merged and isinstance(merged[-1], Body):
            merged[-1] = Body(merged[-1].data + event.data)
        else:
            merged.append(event)
    return merged


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The name of a parser backend; tests using it run once per backend."""
    return str(request.param)


@pytest.fixture
def parse(backend: str) -> Callable[..., list[Event]]:
    """parse(data, **options): all events of data fed at once, then EOF."""

    def run(data: bytes, **options: Any) -> list[Event]:
        parser = RequestParser(backend, **options)
        events = parser.feed(data)
        events += parser.feed_eof()
        return merge_bodies(events)

    return run


@pytest.fixture
def parse_one(parse: Callable[..., list[Event]]) -> Callable[..., Any]:
    """parse_one(data, **options): (head, body bytes, trailers) of a single request."""

    def run(data: bytes, **options: Any) -> tuple[Any, bytes, list[tuple[bytes, bytes]]]:
        events = parse(data, **options)
        assert isinstance(events[-1], EndOfMessage), events
        body = b"".join(e.data for e in events if isinstance(e, Body))
        return events[0], body, events[-1].trailers

    return run
