"""The ``dirty_stash_backend`` URL: where the stash tables live, checked before anything starts.

``redis://[[user]:password@]host[:port][/db]``, ``rediss://...`` (TLS) and
``unix://[[user]:password@]/path/to/redis.sock[?db=N]``; every form also takes
``?prefix=NAME`` (the keys' prefix, default ``gcorn:stash``) and
``?timeout=SECONDS`` (each Redis call's bound, default 2). Anything else (an
unknown scheme, a port that is not 1..65535, a db that is not a number, an
unknown query parameter) is a DirtyConfigError naming the setting, so a typo
stops the start instead of the first stash call.
"""

from __future__ import annotations

import dataclasses
import math
from urllib.parse import parse_qs, quote, unquote, urlsplit

from .errors import DirtyConfigError

SETTING = "dirty_stash_backend (--stash-backend)"
SCHEMES = ("redis", "rediss", "unix")
DEFAULT_PREFIX = "gcorn:stash"
DEFAULT_TIMEOUT = 2.0
_QUERY = ("db", "prefix", "timeout")


@dataclasses.dataclass(frozen=True)
class StashBackendURL:
    """A parsed, checked stash backend URL (the password is kept out of ``display``)."""

    scheme: str
    host: str = "localhost"
    port: int = 6379
    path: str = ""  # the Unix socket, for unix://
    db: int = 0
    username: str | None = None
    password: str | None = None
    prefix: str = DEFAULT_PREFIX
    timeout: float = DEFAULT_TIMEOUT

    @property
    def display(self) -> str:
        """The URL as logs and errors show it: the password replaced by ``***``."""
        auth = ""
        if self.username or self.password is not None:
            auth = quote(self.username or "", safe="") + (":***" if self.password is not None else "") + "@"
        if self.scheme == "unix":
            return f"unix://{auth}{self.path}?db={self.db}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{auth}{host}:{self.port}/{self.db}"


def _bad(url: str, why: str) -> DirtyConfigError:
    # The URL may carry a password: show it redacted.
    reason = f"{why} in {_redact(url)!r}"
    return DirtyConfigError(f"{SETTING}: {reason}", {"reason": reason})


def _redact(url: str) -> str:
    head, sep, rest = url.partition("://")
    netloc, slash, tail = rest.partition("/")
    auth, at, host = netloc.rpartition("@")
    if not sep or not at or ":" not in auth:
        return url
    return f"{head}{sep}{auth.split(':', 1)[0]}:***@{host}{slash}{tail}"


def parse_stash_url(url: object) -> StashBackendURL | None:
    """Check a ``dirty_stash_backend`` value; None (or "") means the arbiter's own store."""
    if url is None or url == "":
        return None
    if not isinstance(url, str):
        reason = f"a URL string is needed, got {type(url).__name__}"
        raise DirtyConfigError(f"{SETTING}: {reason}", {"reason": reason})
    text = url.strip()
    scheme = text.partition("://")[0].lower() if "://" in text else ""
    if scheme not in SCHEMES:
        raise _bad(text, "the scheme must be redis://, rediss:// or unix://")
    try:
        parts = urlsplit(text)
    except ValueError as exc:
        raise _bad(text, f"it is not a valid URL ({exc})") from None
    if parts.fragment:
        raise _bad(text, "a URL fragment (#...) means nothing here")
    try:
        query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise _bad(text, "the query string is malformed") from None
    unknown = sorted(set(query) - set(_QUERY))
    if unknown:
        raise _bad(text, f"unknown parameter {unknown[0]!r} (known: {', '.join(_QUERY)})")
    if any(len(v) > 1 for v in query.values()):
        raise _bad(text, "a parameter is given twice")
    q = {k: v[0] for k, v in query.items()}
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    db_text = q.get("db")
    fields: dict[str, object] = {"scheme": scheme, "username": username, "password": password}
    if scheme == "unix":
        path = unquote(parts.path)
        if parts.hostname and not path:
            raise _bad(text, "unix:// needs an absolute socket path (unix:///run/redis.sock)")
        if parts.hostname:
            raise _bad(text, f"unix:// takes a path, not a host ({parts.hostname!r}): "
                             "write unix:///path/to/redis.sock")
        if not path.startswith("/"):
            raise _bad(text, "unix:// needs an absolute socket path (unix:///run/redis.sock)")
        fields["path"] = path
    else:
        try:
            port = parts.port
        except ValueError:
            raise _bad(text, "the port must be a number in 1..65535") from None
        if port is not None and not 1 <= port <= 65535:
            raise _bad(text, "the port must be a number in 1..65535")
        if ":" in parts.netloc.rpartition("@")[2] and port is None \
                and not parts.netloc.rpartition("@")[2].endswith("]"):
            raise _bad(text, "the port must be a number in 1..65535")
        fields["host"] = parts.hostname or "localhost"
        fields["port"] = port or 6379
        path = parts.path.strip("/")
        if path and db_text is not None:
            raise _bad(text, "the db is given twice (path and ?db=)")
        if path:
            db_text = path
    if db_text is not None:
        if not db_text.isdigit() or not db_text.isascii():
            raise _bad(text, f"the db must be a number >= 0, got {db_text!r}")
        fields["db"] = int(db_text)
    if "prefix" in q:
        if not q["prefix"]:
            raise _bad(text, "prefix must not be empty")
        fields["prefix"] = q["prefix"]
    if "timeout" in q:
        try:
            timeout = float(q["timeout"])
        except ValueError:
            raise _bad(text, f"timeout must be a number of seconds, got {q['timeout']!r}") from None
        if not math.isfinite(timeout) or timeout <= 0:
            raise _bad(text, f"timeout must be a number of seconds > 0, got {q['timeout']!r}")
        fields["timeout"] = timeout
    return StashBackendURL(**fields)  # type: ignore[arg-type]
