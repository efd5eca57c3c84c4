"""Building the `logging` handlers of the error and access logs from the settings."""

from __future__ import annotations

import configparser
import json
import logging
import logging.config
import logging.handlers
import os
import socket
import sys
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigError

DATE_FORMAT = "[%Y-%m-%d %H:%M:%S %z]"
SYSLOG_FORMAT = "[%(process)d] [%(levelname)s] %(message)s"
ERROR_FORMAT = "%(asctime)s [%(process)d] [%(levelname)s] %(message)s"


def stream_or_file_handler(target: str, stream: Any) -> logging.Handler:
    """A handler writing to `stream` when target is `-`, else appending to the file `target`."""
    if target == "-":
        return logging.StreamHandler(stream)
    try:
        return logging.FileHandler(target, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot open log file '{target}': {exc.strerror}") from None


def syslog_address(addr: str) -> tuple[Any, socket.SocketKind]:
    """(address, socktype) for SysLogHandler from `udp://H:P`, `tcp://H:P` or `unix://PATH#kind`."""
    parts = urlsplit(addr)
    if parts.scheme == "unix":
        path = parts.netloc + parts.path
        kind = socket.SOCK_STREAM if parts.fragment == "stream" else socket.SOCK_DGRAM
        return path, kind
    if parts.scheme in ("udp", "tcp"):
        kind = socket.SOCK_STREAM if parts.scheme == "tcp" else socket.SOCK_DGRAM
        return (parts.hostname or "localhost", parts.port or 514), kind
    raise ConfigError(
        f"invalid value for setting 'syslog_addr' (--log-syslog-to): {addr!r} is not "
        "unix://PATH, udp://HOST:PORT or tcp://HOST:PORT"
    )


def syslog_handler(cfg: Any, name: str) -> logging.Handler:
    """A SysLogHandler for the `syslog_*` settings; lines start with `gcorn.<prefix>`."""
    address, kind = syslog_address(cfg.syslog_addr)
    facility = logging.handlers.SysLogHandler.facility_names[cfg.syslog_facility]
    try:
        handler = logging.handlers.SysLogHandler(address, facility=facility, socktype=kind)
    except OSError as exc:
        raise ConfigError(f"cannot reach syslog at '{cfg.syslog_addr}': {exc.strerror}") from None
    program = f"gcorn.{cfg.syslog_prefix}" if cfg.syslog_prefix else "gcorn"
    handler.setFormatter(logging.Formatter(f"{program}: [{name}] {SYSLOG_FORMAT}"))
    return handler


def apply_logging_config(cfg: Any) -> set[str] | None:
    """Run logconfig_dict, logconfig_json or logconfig (in that order of preference).

    Returns the names of the loggers the config declares, or None when no
    logging config is set.
    """
    if cfg.logconfig_dict:
        data = dict(cfg.logconfig_dict)
        _dict_config(data, "logconfig_dict")
        return set(data.get("loggers", {}))
    if cfg.logconfig_json:
        try:
            with open(cfg.logconfig_json, encoding="utf-8") as stream:
                data = json.load(stream)
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"invalid value for setting 'logconfig_json' (--log-config-json): {exc}"
            ) from None
        _dict_config(data, "logconfig_json")
        return set(data.get("loggers", {}))
    if cfg.logconfig:
        try:
            logging.config.fileConfig(cfg.logconfig, disable_existing_loggers=False)
            parser = configparser.ConfigParser()
            parser.read(cfg.logconfig, encoding="utf-8")
        except Exception as exc:  # fileConfig raises KeyError, RuntimeError...; all mean bad config
            message = " ".join(f"{type(exc).__name__}: {exc}".split())
            raise ConfigError(
                f"invalid value for setting 'logconfig' (--log-config): {message}"
            ) from None
        return {
            parser.get(section, "qualname", fallback=section[len("logger_") :])
            for section in parser.sections()
            if section.startswith("logger_")
        }
    return None


def _dict_config(data: dict[str, Any], name: str) -> None:
    data.setdefault("version", 1)
    data.setdefault("disable_existing_loggers", False)
    try:
        logging.config.dictConfig(data)
    except (ValueError, TypeError, AttributeError, ImportError) as exc:
        message = " ".join(str(exc).split())
        raise ConfigError(f"invalid value for setting '{name}': {message}") from None


def redirect_stdio_to(handler: logging.Handler) -> None:
    """Point fds 1 and 2 (and sys.stdout/stderr) at a file handler's file (`capture_output`)."""
    stream = getattr(handler, "stream", None)
    if stream is None or not hasattr(stream, "fileno"):
        return
    fd = stream.fileno()
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
