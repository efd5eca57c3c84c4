"""Settings of the section "Logging": access and error logs, syslog and statsd."""

from __future__ import annotations

import sys

from . import validators as v
from .base import Setting

SECTION = "Logging"

DEFAULT_ACCESS_LOG_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'
SYSLOG_FACILITIES = (
    "auth", "authpriv", "cron", "daemon", "ftp", "kern", "lpr", "mail", "news",
    "security", "syslog", "user", "uucp",
    "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
)


def _default_syslog_addr() -> str:
    if sys.platform == "darwin":
        return "unix:///var/run/syslog"
    if sys.platform.startswith("freebsd"):
        return "unix:///var/run/log"
    return "udp://localhost:514"


SETTINGS = (
    Setting(
        name="accesslog",
        section=SECTION,
        flags=("--access-logfile",),
        metavar="FILE",
        default=None,
        validator=v.string,
        doc="Write the access log to this file; `-` means stdout; unset means no access log.",
    ),
    Setting(
        name="disable_redirect_access_to_syslog",
        section=SECTION,
        flags=("--disable-redirect-access-to-syslog",),
        action="store_true",
        value_type="bool",
        default=False,
        validator=v.boolean,
        doc="Keep access-log lines out of syslog when `syslog` is on.",
    ),
    Setting(
        name="access_log_format",
        section=SECTION,
        flags=("--access-logformat",),
        metavar="STRING",
        default=DEFAULT_ACCESS_LOG_FORMAT,
        validator=v.string,
        doc="The %-style format of an access-log line, over gunicorn's atoms "
        "(h l u t r m U q H s B b f a T M D L p, {header}i, {header}o, {key}e).",
    ),
    Setting(
        name="errorlog",
        section=SECTION,
        flags=("--error-logfile", "--log-file"),
        metavar="FILE",
        default="-",
        validator=v.string,
        doc="Write the error log to this file; `-` means stderr.",
    ),
    Setting(
        name="loglevel",
        section=SECTION,
        flags=("--log-level",),
        metavar="LEVEL",
        default="info",
        validator=v.choice("debug", "info", "warning", "error", "critical"),
        doc="The error log's level: debug, info, warning, error or critical.",
    ),
    Setting(
        name="capture_output",
        section=SECTION,
        flags=("--capture-output",),
        action="store_true",
        value_type="bool",
        default=False,
        validator=v.boolean,
        doc="Send the app's stdout and stderr to the error log file.",
    ),
    Setting(
        name="logger_class",
        section=SECTION,
        flags=("--logger-class",),
        metavar="STRING",
        default="gcorn.cli.glogging.Logger",
        validator=v.class_spec,
        doc="The logger class (dotted path); `simple` is the default one.",
    ),
    Setting(
        name="logconfig",
        section=SECTION,
        flags=("--log-config",),
        metavar="FILE",
        default=None,
        validator=v.string,
        doc="Configure logging from this ini file (logging.config.fileConfig).",
    ),
    Setting(
        name="logconfig_dict",
        section=SECTION,
        value_type="dict",
        default={},
        validator=v.mapping,
        doc="Configure logging from this dict (logging.config.dictConfig); wins over "
        "`logconfig` and `logconfig_json`.",
    ),
    Setting(
        name="logconfig_json",
        section=SECTION,
        flags=("--log-config-json",),
        metavar="FILE",
        default=None,
        validator=v.string,
        doc="Configure logging from this JSON file (logging.config.dictConfig).",
    ),
    Setting(
        name="syslog_addr",
        section=SECTION,
        flags=("--log-syslog-to",),
        metavar="SYSLOG_ADDR",
        default="udp://localhost:514",
        default_factory=_default_syslog_addr,
        default_doc="`'udp://localhost:514'` on Linux",
        validator=v.string,
        doc="Where syslog lines go: `unix://PATH#dgram`, `unix://PATH#stream`, "
        "`udp://HOST:PORT` or `tcp://HOST:PORT`.",
    ),
    Setting(
        name="syslog",
        section=SECTION,
        flags=("--log-syslog",),
        action="store_true",
        value_type="bool",
        default=False,
        validator=v.boolean,
        doc="Also send the logs to syslog.",
    ),
    Setting(
        name="syslog_prefix",
        section=SECTION,
        flags=("--log-syslog-prefix",),
        metavar="SYSLOG_PREFIX",
        default=None,
        validator=v.string,
        doc="The program name in syslog lines is `gcorn.<prefix>`.",
    ),
    Setting(
        name="syslog_facility",
        section=SECTION,
        flags=("--log-syslog-facility",),
        metavar="SYSLOG_FACILITY",
        default="user",
        validator=v.choice(*SYSLOG_FACILITIES),
        doc="The syslog facility name.",
    ),
    Setting(
        name="enable_stdio_inheritance",
        section=SECTION,
        flags=("-R", "--enable-stdio-inheritance"),
        action="store_true",
        value_type="bool",
        default=False,
        validator=v.boolean,
        doc="Keep stdin, stdout and stderr open in daemon mode.",
    ),
    Setting(
        name="statsd_host",
        section=SECTION,
        flags=("--statsd-host",),
        metavar="STATSD_ADDR",
        default=None,
        validator=v.statsd_address,
        doc="Send metrics to this StatsD server: `HOST:PORT` (UDP) or `unix:PATH`.",
    ),
    Setting(
        name="dogstatsd_tags",
        section=SECTION,
        flags=("--dogstatsd-tags",),
        metavar="DOGSTATSD_TAGS",
        default="",
        validator=v.string,
        doc="Comma-separated `key:value` tags added to every metric (DogStatsD).",
    ),
    Setting(
        name="statsd_prefix",
        section=SECTION,
        flags=("--statsd-prefix",),
        metavar="STATSD_PREFIX",
        default="",
        validator=v.string,
        doc="A prefix for every metric name (a trailing `.` is added).",
    ),
    Setting(
        name="enable_backlog_metric",
        section=SECTION,
        flags=("--enable-backlog-metric",),
        action="store_true",
        value_type="bool",
        default=False,
        validator=v.boolean,
        doc="Send the listen-queue length as the `gunicorn.backlog` metric (Linux).",
    ),
)
