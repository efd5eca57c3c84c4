"""The stand-in apps served under --reload while the real app cannot load."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from gcorn.cli.errorapp import BODY, asgi_error_app, files_of, wsgi_error_app


def test_files_of_names_the_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("def f(:\n")
    with pytest.raises(SyntaxError) as info:
        compile(broken.read_text(), str(broken), "exec")
    assert str(broken) in files_of(info.value)


def test_wsgi_error_app_answers_500_without_details() -> None:
    seen: list[Any] = []
    body = b"".join(wsgi_error_app({}, lambda status, headers: seen.append((status, headers))))
    assert seen[0][0] == "500 Internal Server Error" and body == BODY


def test_asgi_error_app_answers_500_and_accepts_lifespan() -> None:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def run() -> None:
        messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

        async def receive() -> dict[str, Any]:
            return next(messages)

        await asgi_error_app({"type": "lifespan"}, receive, send)
        await asgi_error_app({"type": "http"}, receive, send)

    asyncio.run(run())
    assert [m["type"] for m in sent] == [
        "lifespan.startup.complete", "lifespan.shutdown.complete",
        "http.response.start", "http.response.body",
    ]
    assert sent[2]["status"] == 500 and sent[3]["body"] == BODY
