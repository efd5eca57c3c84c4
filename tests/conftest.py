"""Fixtures of the root tests: real servers (tests/harness.py) that print their log on failure."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

# --import-mode=importlib puts no test folder on sys.path: this one makes `import harness` work
sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
from harness import ExternalServer, Gcorn

_LOG_TAIL = 20_000  # characters of each server's log shown under a failure


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark what runs once, on py311 (tox.ini): a test that runs a real external server
    (start_server) is slow; every test of a tests/test_e2e_*.py suite is e2e."""
    for item in items:
        if "start_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
        if item.path.name.startswith("test_e2e_"):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(autouse=True)
def _servers_of_this_test() -> Iterator[None]:
    """Record the servers a test starts; stop any it left running."""
    harness.forget_servers()
    yield
    for server in harness.started_servers():
        if server.alive():
            server.stop(timeout=5)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    """Under a failed test, show the log of every server it started, and of the shared ones."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for server in harness.started_servers() + harness.shared_servers():
            text = server.log()
            if len(text) > _LOG_TAIL:
                text = "[...]\n" + text[-_LOG_TAIL:]
            report.sections.append((f"{server.name} log ({server.log_path})", text))


@pytest.fixture
def start_gcorn(tmp_path: Path) -> Iterator[Callable[..., Gcorn]]:
    """`start_gcorn(*args, cwd=tmp_path, env=None, wait=True, **Gcorn options)`: a running gcorn."""
    servers: list[Gcorn] = []

    def start(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
              wait: bool = True, **options: Any) -> Gcorn:
        # the log stays in the test's tmp_path whatever the cwd (the repository, say)
        options.setdefault("log_path", tmp_path / f"gcorn-{len(servers)}.log")
        server = Gcorn(args, cwd=cwd or tmp_path, env=env, **options)
        servers.append(server)
        return server.start(wait)

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ExternalServer]]:
    """`start_server(command, ready=probe, name=..., **options)`: any real server, running."""
    servers: list[ExternalServer] = []

    def start(command: Sequence[str], *, cwd: Path | None = None, wait: bool = True,
              **options: Any) -> ExternalServer:
        name = options.get("name") or Path(command[0]).name
        options.setdefault("log_path", tmp_path / f"{name}-{len(servers)}.log")
        server = ExternalServer(command, cwd=cwd or tmp_path, **options)
        servers.append(server)
        return server.start(wait)

    yield start
    for server in servers:
        server.stop()
