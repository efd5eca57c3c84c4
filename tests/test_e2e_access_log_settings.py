"""The access-log settings reach every worker class the same way, through the real `gcorn`.

gunicorn's meaning: a logging config (`logconfig_json`, `logconfig_dict`, `logconfig`)
owns the access logger, so access lines go wherever it sends them even with no
`--access-logfile`; `--log-syslog` sends access lines to syslog too unless
`--disable-redirect-access-to-syslog` keeps them out. The workers ask the logger
(gcorn.workers.exchange.access.access_wanted) instead of guessing from the settings.
"""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from harness import EXAMPLES, Gcorn, wait_until

WORKERS = {
    "sync": ["-k", "sync", "hello:app"],
    "gthread": ["-k", "gthread", "--threads", "2", "hello:app"],
    "asgi": ["-k", "asgi", "hello_asgi:app"],
}


@pytest.fixture
def site(tmp_path: Path) -> Path:
    shutil.copy(EXAMPLES / "hello.py", tmp_path / "hello.py")
    shutil.copy(EXAMPLES / "hello_asgi.py", tmp_path / "hello_asgi.py")
    return tmp_path


@pytest.fixture
def syslog() -> Iterator[socket.socket]:
    """A UDP syslog receiver on 127.0.0.1 (SysLogHandler sends one datagram per line)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        yield receiver


def _received(receiver: socket.socket) -> list[str]:
    # called once the server has exited: every datagram it sent is in the buffer already
    receiver.setblocking(False)
    lines = []
    while True:
        try:
            lines.append(receiver.recv(65536).decode("utf-8", "replace"))
        except BlockingIOError:
            return lines


@pytest.mark.parametrize("worker", list(WORKERS))
def test_logconfig_json_gets_access_lines_without_an_access_logfile(
        start_gcorn: Callable[..., Gcorn], site: Path, worker: str) -> None:
    access = site / "json-access.log"
    (site / "logging.json").write_text(json.dumps({
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "json-config %(message)s"}},
        "handlers": {"access": {"class": "logging.FileHandler", "filename": str(access),
                                "formatter": "plain"}},
        # a gunicorn logging config names gunicorn's logger; gcorn follows it there
        "loggers": {"gunicorn.access": {"handlers": ["access"], "level": "INFO",
                                        "propagate": False}},
    }))
    server = start_gcorn("--log-config-json", "logging.json", "--access-logformat",
                         "%(m)s %(U)s %(s)s", *WORKERS[worker], cwd=site)
    assert server.get("/json-logged").status_code == 200
    assert wait_until(lambda: access.exists() and "json-config GET /json-logged 200"
                      in access.read_text(), timeout=5)


@pytest.mark.parametrize("worker", list(WORKERS))
@pytest.mark.parametrize("disabled", [False, True], ids=["redirected", "disabled"])
def test_syslog_gets_access_lines_unless_redirect_is_disabled(
        start_gcorn: Callable[..., Gcorn], site: Path, syslog: socket.socket, worker: str,
        disabled: bool) -> None:
    address = f"udp://127.0.0.1:{syslog.getsockname()[1]}"
    flags = ["--disable-redirect-access-to-syslog"] if disabled else []
    server = start_gcorn("--log-syslog", "--log-syslog-to", address, *flags,
                         "--access-logformat", "access-line %(U)s", *WORKERS[worker], cwd=site)
    assert server.get("/via-syslog").status_code == 200
    assert server.stop() == 0
    lines = _received(syslog)
    # the error log goes to syslog either way: the receiver did get the server's lines
    assert any("[error]" in line and "Booting worker" in line for line in lines), lines
    access = [line for line in lines if "access-line /via-syslog" in line]
    if disabled:
        assert access == [], lines
    else:
        assert len(access) == 1 and "[access]" in access[0], lines
