"""`Logger`: gcorn's error and access logs, with syslog and statsd, built from a Config.

It has the methods of a `logging.Logger` plus `access(info)`,
`reopen_files()` and `close_on_exec()` (docs/architecture.md).
"""

from __future__ import annotations

import fcntl
import logging
import sys
import threading
from collections.abc import Mapping
from typing import Any

from . import logsetup
from .statsd import StatsdClient

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
ERROR_LOGGER = "gcorn.error"
ACCESS_LOGGER = "gcorn.access"
# The dirty pool (arbiter, workers, and the client in HTTP workers) logs here: its
# records belong in the error log, with the server's own.
DIRTY_LOGGER = "gcorn.dirty"


class Logger:
    """The error log (`errorlog`, `loglevel`) and the access log (`accesslog`, format atoms)."""

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        self.error_log = logging.getLogger(ERROR_LOGGER)
        self.access_log = logging.getLogger(ACCESS_LOGGER)
        self._lock = threading.Lock()
        self._owned: list[logging.Handler] = []
        self.statsd: StatsdClient | None = None
        self.access_enabled = False
        self.setup(cfg)

    # -- setup ---------------------------------------------------------
    def setup(self, cfg: Any) -> None:
        """(Re)build the handlers from the settings; called again on HUP."""
        self.cfg = cfg
        self._drop_owned_handlers()
        self.error_log = logging.getLogger(ERROR_LOGGER)
        self.access_log = logging.getLogger(ACCESS_LOGGER)
        declared = logsetup.apply_logging_config(cfg)
        if declared is not None:
            # The user's logging config owns the handlers; a gunicorn one names
            # its loggers gunicorn.error / gunicorn.access, so follow it there.
            self.error_log = _configured(declared, ERROR_LOGGER, "gunicorn.error")
            self.access_log = _configured(declared, ACCESS_LOGGER, "gunicorn.access")
            self.access_enabled = True
        else:
            self._default_handlers(cfg)
        if self.statsd is not None:
            self.statsd.close()
            self.statsd = None
        if cfg.statsd_host:
            self.statsd = StatsdClient(
                cfg.statsd_host, cfg.statsd_prefix, cfg.dogstatsd_tags, self._statsd_failed
            )

    def _default_handlers(self, cfg: Any) -> None:
        self.error_log.propagate = False
        self.access_log.propagate = False
        self.error_log.setLevel(LEVELS.get(cfg.loglevel, logging.INFO))
        self.access_log.setLevel(logging.INFO)
        error_handler = logsetup.stream_or_file_handler(cfg.errorlog, sys.stderr)
        error_handler.setFormatter(logging.Formatter(logsetup.ERROR_FORMAT, logsetup.DATE_FORMAT))
        self._own(self.error_log, error_handler)
        dirty_log = logging.getLogger(DIRTY_LOGGER)
        dirty_log.propagate = False
        dirty_log.setLevel(self.error_log.level)
        self._own(dirty_log, error_handler)
        if cfg.capture_output and cfg.errorlog != "-":
            logsetup.redirect_stdio_to(error_handler)

        self.access_enabled = False
        if cfg.accesslog is not None:
            access_handler = logsetup.stream_or_file_handler(cfg.accesslog, sys.stdout)
            access_handler.setFormatter(logging.Formatter("%(message)s"))
            self._own(self.access_log, access_handler)
            self.access_enabled = True
        if cfg.syslog:
            syslog_error = logsetup.syslog_handler(cfg, "error")
            self._own(self.error_log, syslog_error)
            self._own(logging.getLogger(DIRTY_LOGGER), syslog_error)
            if not cfg.disable_redirect_access_to_syslog:
                self._own(self.access_log, logsetup.syslog_handler(cfg, "access"))
                self.access_enabled = True

    def _own(self, logger: logging.Logger, handler: logging.Handler) -> None:
        logger.addHandler(handler)
        self._owned.append(handler)

    def _drop_owned_handlers(self) -> None:
        for handler in self._owned:
            for name in (ERROR_LOGGER, ACCESS_LOGGER, DIRTY_LOGGER):
                logging.getLogger(name).removeHandler(handler)
            handler.close()
        self._owned = []

    def _statsd_failed(self, message: str) -> None:
        # Straight to the logging logger: going through self.warning would count
        # a statsd metric for the statsd failure.
        self.error_log.warning(message)

    # -- the logging.Logger methods -------------------------------------
    def debug(self, msg: object, *args: Any, **kwargs: Any) -> None:
        """Log at debug level."""
        self._log(logging.DEBUG, msg, args, kwargs)

    def info(self, msg: object, *args: Any, **kwargs: Any) -> None:
        """Log at info level."""
        self._log(logging.INFO, msg, args, kwargs)

    def warning(self, msg: object, *args: Any, **kwargs: Any) -> None:
        """Log at warning level (counted as gunicorn.log.warning)."""
        self._count("warning")
        self._log(logging.WARNING, msg, args, kwargs)

    warn = warning

    def error(self, msg: object, *args: Any, **kwargs: Any) -> None:
        """Log at error level (counted as gunicorn.log.error)."""
        self._count("error")
        self._log(logging.ERROR, msg, args, kwargs)

    def critical(self, msg: object, *args: Any, **kwargs: Any) -> None:
        """Log at critical level (counted as gunicorn.log.critical)."""
        self._count("critical")
        self._log(logging.CRITICAL, msg, args, kwargs)

    def exception(self, msg: object, *args: Any, **kwargs: Any) -> None:
        """Log at error level with the current traceback (counted as gunicorn.log.exception)."""
        self._count("exception")
        kwargs.setdefault("exc_info", True)
        self._log(logging.ERROR, msg, args, kwargs)

    def log(self, level: int | str, msg: object, *args: Any, **kwargs: Any) -> None:
        """Log at `level` (a number or a level name)."""
        if isinstance(level, str):
            level = LEVELS.get(level.lower(), logging.INFO)
        self._log(level, msg, args, kwargs)

    def isEnabledFor(self, level: int) -> bool:
        """True when a message at `level` would be written."""
        return self.error_log.isEnabledFor(level)

    def _log(self, level: int, msg: object, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        extra = kwargs.get("extra")
        if self.statsd is not None and isinstance(extra, Mapping) and "metric" in extra:
            self._metric_from_extra(extra)
        if self.error_log.isEnabledFor(level):
            self.error_log.log(level, msg, *args, **kwargs)

    def _metric_from_extra(self, extra: Mapping[str, Any]) -> None:
        value = extra.get("value")
        if self.statsd is None or value is None:
            return
        self.statsd.metric(str(extra["metric"]), value, str(extra.get("mtype", "gauge")))

    def _count(self, level: str) -> None:
        if self.statsd is not None:
            self.statsd.increment(f"gunicorn.log.{level}")

    # -- access log ------------------------------------------------------
    def access(self, info: Any, *args: Any) -> None:
        """Write one access-log line for `info` (an AccessInfo) and feed statsd."""
        if self.statsd is not None:
            self._request_metrics(info)
        if not self.access_enabled:
            return
        try:
            line = self.cfg.access_log_format % info.atoms()
        except (TypeError, ValueError, KeyError) as exc:
            self.error_log.error("access_log_format cannot be applied: %s", exc)
            return
        self.access_log.info(line)

    def _request_metrics(self, info: Any) -> None:
        assert self.statsd is not None
        seconds = getattr(info, "request_time", None)
        status = getattr(info, "status", None)
        if seconds is None or status is None:
            atoms = info.atoms()
            seconds = int(atoms.get("D", 0) or 0) / 1_000_000
            status = atoms.get("s", "-")
        self.statsd.increment("gunicorn.requests")
        self.statsd.timing("gunicorn.request.duration", seconds * 1000.0)
        code = str(status).split(None, 1)[0]
        if code.isdigit():
            self.statsd.increment(f"gunicorn.request.status.{code}")

    # -- files -----------------------------------------------------------
    def reopen_files(self) -> None:
        """Reopen every log file (USR1), e.g. after logrotate moved them."""
        with self._lock:
            for logger in (self.error_log, self.access_log):
                for handler in logger.handlers:
                    if isinstance(handler, logging.FileHandler):
                        handler.acquire()
                        try:
                            if handler.stream is not None:
                                handler.stream.close()
                            handler.stream = handler._open()
                        finally:
                            handler.release()
                        if (
                            logger is self.error_log
                            and self.cfg.capture_output
                            and self.cfg.errorlog != "-"
                        ):
                            logsetup.redirect_stdio_to(handler)

    def close_on_exec(self) -> None:
        """Mark the log files close-on-exec, so a USR2 re-exec does not inherit them."""
        for logger in (self.error_log, self.access_log):
            for handler in logger.handlers:
                stream = getattr(handler, "stream", None)
                if isinstance(handler, logging.FileHandler) and stream is not None:
                    fd = stream.fileno()
                    flags = fcntl.fcntl(fd, fcntl.F_GETFD)
                    fcntl.fcntl(fd, fcntl.F_SETFD, flags | fcntl.FD_CLOEXEC)

    def close(self) -> None:
        """Close the handlers and the statsd socket this logger opened."""
        self._drop_owned_handlers()
        if self.statsd is not None:
            self.statsd.close()
            self.statsd = None


def _configured(declared: set[str], name: str, gunicorn_name: str) -> logging.Logger:
    """The gcorn logger, or gunicorn's one when the config declares only that."""
    if gunicorn_name in declared and name not in declared:
        return logging.getLogger(gunicorn_name)
    return logging.getLogger(name)
