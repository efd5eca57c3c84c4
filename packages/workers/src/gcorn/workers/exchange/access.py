"""What one request/response was, and the gunicorn access-log atoms derived from it.

Built by the workers (WSGI and ASGI) only when `access_wanted(log)` says the
logger will use it; the logger formats `cfg.access_log_format % info.atoms()`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gcorn.arbiter import ServerLog

__all__ = ["AccessAtoms", "AccessInfo", "access_wanted", "asgi_target"]

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def asgi_target(scope: Mapping[str, Any]) -> str:
    """The request target of an ASGI scope as the client sent it (path and query)."""
    query = scope["query_string"].decode("latin-1")
    target: str = scope["raw_path"].decode("latin-1")
    return target + "?" + query if query else target


def access_wanted(log: ServerLog) -> bool:
    """Whether `log` writes an access line or feeds statsd, i.e. an AccessInfo is worth building."""
    # The logger decided when it read the settings (accesslog, syslog and
    # disable_redirect_access_to_syslog, a logging config, statsd): ask it rather than
    # re-derive that here. A logger with `access()` but no `access_enabled` is a custom
    # logger_class: it gets every request, as in gunicorn.
    if not callable(getattr(log, "access", None)):
        return False
    return bool(getattr(log, "access_enabled", True) or getattr(log, "statsd", None))


class AccessAtoms(dict[str, Any]):
    """The atoms mapping: `{name}i/o/e` keys are case-insensitive, any missing atom is '-'."""

    def __missing__(self, key: str) -> Any:
        if key.startswith("{"):
            lowered = key.lower()
            if lowered != key and dict.__contains__(self, lowered):
                return dict.__getitem__(self, lowered)
        return "-"


def _text(value: str | bytes) -> str:
    # the workers pass the parser's bytes through; decoding waits until a line is written
    return value.decode("latin-1") if isinstance(value, bytes) else value


def _escape(value: Any) -> Any:
    # gunicorn escapes double quotes so that a header cannot break the quoted fields
    return value.replace('"', '\\"') if isinstance(value, str) else value


def _common_log_time(epoch: float) -> str:
    lt = time.localtime(epoch)
    off = lt.tm_gmtoff or 0
    sign = "+" if off >= 0 else "-"
    off = abs(off)
    return (f"[{lt.tm_mday:02d}/{_MONTHS[lt.tm_mon - 1]}/{lt.tm_year}:"
            f"{lt.tm_hour:02d}:{lt.tm_min:02d}:{lt.tm_sec:02d} "
            f"{sign}{off // 3600:02d}{(off % 3600) // 60:02d}]")


def _basic_auth_user(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() != "basic" or not credentials:
        return None
    import base64  # only when a line with %(u)s meets Basic credentials
    import binascii

    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("latin-1")
    except (binascii.Error, ValueError):
        return None
    user, sep, _ = decoded.partition(":")
    return user if sep else None


# the fields of gcorn.http's error_response, as the access log's {name}o atoms see them
_REFUSAL_FIELDS = (("Content-Type", "text/plain; charset=utf-8"), ("Connection", "close"))


@dataclass(frozen=True, slots=True)
class AccessInfo:
    """One served request: what came in, what went out, how long it took."""

    remote_addr: str
    method: str
    raw_uri: str
    path: str
    query: str
    protocol: str
    status: int
    bytes_sent: int | None
    request_time: float
    """Seconds from the request head to the end of the response."""
    request_headers: Iterable[tuple[str, str]] | Iterable[tuple[bytes, bytes]] = ()
    """(name, value) pairs, as str or as the parser's latin-1 bytes."""
    response_headers: Iterable[tuple[str, str]] = ()
    environ: Mapping[str, Any] | None = None
    end_time: float = field(default_factory=time.time)
    pid: int = field(default_factory=os.getpid)

    @classmethod
    def from_scope(cls, scope: Mapping[str, Any], peer: str, status: int, bytes_sent: int,
                   request_time: float, response_headers: Iterable[tuple[bytes, bytes]],
                   protocol: str | None = None) -> AccessInfo:
        """The record of one ASGI exchange (`protocol` defaults to the scope's HTTP version)."""
        return cls(
            remote_addr=peer, method=scope["method"], raw_uri=asgi_target(scope),
            path=scope["path"], query=scope["query_string"].decode("latin-1"),
            protocol=protocol or "HTTP/" + scope["http_version"], status=status,
            bytes_sent=bytes_sent, request_time=request_time,
            request_headers=scope["headers"],
            response_headers=[(k.decode("latin-1"), v.decode("latin-1"))
                              for k, v in response_headers])

    @classmethod
    def from_environ(cls, environ: Mapping[str, Any], status: int, bytes_sent: int | None,
                     request_time: float, request_headers: Any,
                     response_headers: Iterable[tuple[str, str]],
                     protocol: str | None = None) -> AccessInfo:
        """The record of one WSGI call (`protocol` defaults to SERVER_PROTOCOL)."""
        return cls(
            remote_addr=environ.get("REMOTE_ADDR", "-"), method=environ["REQUEST_METHOD"],
            raw_uri=environ["RAW_URI"], path=environ["PATH_INFO"],
            query=environ["QUERY_STRING"], protocol=protocol or environ["SERVER_PROTOCOL"],
            status=status, bytes_sent=bytes_sent, request_time=request_time,
            request_headers=request_headers, response_headers=response_headers,
            environ=environ)

    @classmethod
    def refused(cls, remote_addr: str, status: int, bytes_sent: int, request_time: float,
                head: Any = None) -> AccessInfo:
        """The record of a request the server refused with its own plain-text answer
        (every worker logs those, as gunicorn does): '-' for what was not read.
        `head` is the gcorn.http `RequestHead`, when the refusal came after it."""
        if head is None:
            return cls(remote_addr=remote_addr, method="-", raw_uri="-", path="-", query="",
                       protocol="-", status=status, bytes_sent=bytes_sent,
                       request_time=request_time, response_headers=_REFUSAL_FIELDS)
        major, minor = head.version
        return cls(
            remote_addr=remote_addr, method=head.method.decode("latin-1"),
            raw_uri=head.target.decode("latin-1"), path=head.path.decode("latin-1"),
            query=head.query.decode("latin-1"), protocol=f"HTTP/{major}.{minor}",
            status=status, bytes_sent=bytes_sent, request_time=request_time,
            request_headers=head.headers, response_headers=_REFUSAL_FIELDS)

    def header(self, name: str) -> str | None:
        """The first request header called `name` (case-insensitive), or None."""
        lowered = name.lower()
        for key, value in self.request_headers:
            if _text(key).lower() == lowered:
                return _text(value)
        return None

    def atoms(self) -> AccessAtoms:
        """gunicorn's access-log atoms, ready for `access_log_format % atoms`."""
        elapsed = max(self.request_time, 0.0)
        seconds = int(elapsed)
        micros = int(round((elapsed - seconds) * 1_000_000))
        if micros >= 1_000_000:
            seconds, micros = seconds + 1, micros - 1_000_000
        sent = self.bytes_sent
        atoms = AccessAtoms({
            "h": self.remote_addr or "-",
            "l": "-",
            "u": _basic_auth_user(self.header("authorization")) or "-",
            "t": _common_log_time(self.end_time),
            "r": f"{self.method} {self.raw_uri} {self.protocol}",
            "s": str(self.status),
            "m": self.method,
            "U": self.path,
            "q": self.query,
            "H": self.protocol,
            "b": str(sent) if sent else "-",
            "B": sent,
            "f": self.header("referer") or "-",
            "a": self.header("user-agent") or "-",
            "T": seconds,
            "D": seconds * 1_000_000 + micros,
            "M": seconds * 1000 + micros // 1000,
            "L": f"{seconds}.{micros:06d}",
            "p": f"<{self.pid}>",
        })
        for key, value in self.request_headers:
            atoms["{" + _text(key).lower() + "}i"] = _text(value)
        for key, value in self.response_headers:
            atoms["{" + key.lower() + "}o"] = value
        if self.environ is not None:
            for key, value in self.environ.items():
                atoms["{" + key.lower() + "}e"] = value
        for key, value in atoms.items():
            if isinstance(value, str) and '"' in value:
                atoms[key] = _escape(value)
        return atoms
