"""The Logger: error and access logs, atoms, USR1 reopen, logconfig and statsd datagrams."""

from __future__ import annotations

import json
import logging
import os
import socket
from pathlib import Path

import pytest

from gcorn.cli.config import Config
from gcorn.cli.errors import ConfigError
from gcorn.cli.glogging import Logger
from gcorn.workers.exchange.access import AccessInfo


def info(status: int = 200, seconds: float = 0.25) -> AccessInfo:
    return AccessInfo(
        remote_addr="10.1.2.3",
        method="GET",
        raw_uri="/p?q=1",
        path="/p",
        query="q=1",
        protocol="HTTP/1.1",
        status=status,
        bytes_sent=12,
        request_time=seconds,
        request_headers=[("User-Agent", "ua/1"), ("X-Trace", "abc")],
        response_headers=[("Content-Type", "text/plain")],
    )


@pytest.fixture
def logger_factory():  # type: ignore[no-untyped-def]
    made: list[Logger] = []

    def make(**settings: object) -> Logger:
        cfg = Config()
        for name, value in settings.items():
            cfg.set(name, value)
        made.append(Logger(cfg))
        return made[-1]

    yield make
    for log in made:
        log.close()


def test_access_line_uses_the_format(tmp_path: Path, logger_factory) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "access.log"
    log = logger_factory(
        accesslog=str(target),
        access_log_format='%(h)s "%(r)s" %(s)s %(b)s "%(a)s" %({x-trace}i)s %({content-type}o)s %(M)s',
    )
    log.access(info())
    line = target.read_text().strip()
    assert line == '10.1.2.3 "GET /p?q=1 HTTP/1.1" 200 12 "ua/1" abc text/plain 250'


def test_no_access_log_by_default(tmp_path: Path, logger_factory, capsys) -> None:  # type: ignore[no-untyped-def]
    log = logger_factory()
    log.access(info())
    assert log.access_enabled is False
    assert capsys.readouterr().out == ""


def test_error_log_level_and_file(tmp_path: Path, logger_factory) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "error.log"
    log = logger_factory(errorlog=str(target), loglevel="warning")
    log.info("hidden")
    log.warning("shown %s", 1)
    text = target.read_text()
    assert "shown 1" in text and "hidden" not in text and "[WARNING]" in text


def test_reopen_files_after_rotation(tmp_path: Path, logger_factory) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "error.log"
    log = logger_factory(errorlog=str(target))
    log.info("before")
    os.rename(target, tmp_path / "error.log.1")
    log.reopen_files()
    log.info("after")
    assert "after" in target.read_text()
    assert "after" not in (tmp_path / "error.log.1").read_text()


def test_close_on_exec(tmp_path: Path, logger_factory) -> None:  # type: ignore[no-untyped-def]
    import fcntl

    log = logger_factory(errorlog=str(tmp_path / "e.log"))
    log.close_on_exec()
    handler = next(h for h in log.error_log.handlers if isinstance(h, logging.FileHandler))
    assert fcntl.fcntl(handler.stream.fileno(), fcntl.F_GETFD) & fcntl.FD_CLOEXEC


def test_logconfig_dict_with_gunicorn_logger_names(tmp_path: Path, logger_factory) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "dict.log"
    config = {
        "version": 1,
        "handlers": {"f": {"class": "logging.FileHandler", "filename": str(target)}},
        "loggers": {"gunicorn.error": {"handlers": ["f"], "level": "INFO", "propagate": False}},
    }
    log = logger_factory(logconfig_dict=config)
    log.info("through dictConfig")
    assert "through dictConfig" in target.read_text()


def test_logconfig_json_errors_are_config_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"version": 1, "handlers": {"x": {"class": "no.such.Handler"}}}))
    cfg = Config()
    cfg.set("logconfig_json", str(bad))
    with pytest.raises(ConfigError, match="logconfig_json"):
        Logger(cfg)


def test_statsd_datagrams(logger_factory) -> None:  # type: ignore[no-untyped-def]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        server.settimeout(2)
        port = server.getsockname()[1]
        log = logger_factory(
            statsd_host=f"127.0.0.1:{port}", statsd_prefix="web", dogstatsd_tags="env:test"
        )
        log.access(info(status=404, seconds=0.5))
        log.error("boom")
        log.info("workers", extra={"metric": "gunicorn.workers", "value": 3, "mtype": "gauge"})
        received = [server.recv(1024).decode() for _ in range(5)]
    assert received == [
        "web.gunicorn.requests:1|c|@1.0|#env:test",
        "web.gunicorn.request.duration:500.0|ms|#env:test",
        "web.gunicorn.request.status.404:1|c|@1.0|#env:test",
        "web.gunicorn.log.error:1|c|@1.0|#env:test",
        "web.gunicorn.workers:3|g|#env:test",
    ]


def test_syslog_over_udp(logger_factory) -> None:  # type: ignore[no-untyped-def]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        server.settimeout(2)
        port = server.getsockname()[1]
        log = logger_factory(
            syslog=True, syslog_addr=f"udp://127.0.0.1:{port}", syslog_prefix="app",
            syslog_facility="local3",
        )
        log.warning("to syslog")
        data = server.recv(4096).decode()
    # <priority>: local3 (19) * 8 + warning (4) = 156
    assert data.startswith("<156>gcorn.app: [error]") and "to syslog" in data


def test_logconfig_ini_file(tmp_path: Path, logger_factory) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "ini.log"
    ini = tmp_path / "logging.ini"
    ini.write_text(
        "[loggers]\nkeys=root,gcorn_error\n\n"
        "[handlers]\nkeys=file\n\n"
        "[formatters]\nkeys=plain\n\n"
        "[logger_root]\nlevel=WARNING\nhandlers=\n\n"
        "[logger_gcorn_error]\nlevel=DEBUG\nhandlers=file\nqualname=gcorn.error\npropagate=0\n\n"
        f"[handler_file]\nclass=FileHandler\nformatter=plain\nargs=({str(target)!r},)\n\n"
        "[formatter_plain]\nformat=INI %(levelname)s %(message)s\n"
    )
    log = logger_factory(logconfig=str(ini))
    log.debug("from ini")
    assert target.read_text().strip() == "INI DEBUG from ini"


def test_statsd_over_a_unix_datagram_socket(tmp_path: Path, logger_factory) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "statsd.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        server.settimeout(2)
        log = logger_factory(statsd_host=f"unix:{path}")
        log.critical("down")
        assert server.recv(1024) == b"gunicorn.log.critical:1|c|@1.0"


def test_statsd_send_failure_is_logged_not_raised(tmp_path: Path, logger_factory) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "error.log"
    log = logger_factory(statsd_host=f"unix:{tmp_path}/nobody.sock", errorlog=str(target))
    log.access(info())
    assert "statsd: cannot send" in target.read_text()


def test_logconfig_json_file(tmp_path: Path, logger_factory) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "json.log"
    config = tmp_path / "logging.json"
    config.write_text(json.dumps({
        "version": 1,
        "formatters": {"plain": {"format": "JSON %(message)s"}},
        "handlers": {"f": {"class": "logging.FileHandler", "filename": str(target),
                           "formatter": "plain"}},
        "loggers": {"gcorn.access": {"handlers": ["f"], "level": "INFO", "propagate": False}},
    }))
    log = logger_factory(logconfig_json=str(config))
    log.access(info())
    assert log.access_enabled
    assert target.read_text().startswith('JSON 10.1.2.3 - - [')
