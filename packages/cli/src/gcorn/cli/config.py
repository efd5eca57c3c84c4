"""`Config`: the validated settings, read by attribute, plus gunicorn's derived attributes."""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable
from typing import Any

from .errors import ConfigError
from .settings import SETTINGS, Setting
from .settings import validators as v

#: `-k` short names and the classes they stand for.
WORKER_CLASSES = {
    "sync": "gcorn.workers.sync.SyncWorker",
    "gthread": "gcorn.workers.gthread.ThreadWorker",
    "asgi": "gcorn.workers.asgi.AsgiWorker",
    "gevent": "gcorn.workers.ggevent.GeventWorker",
    # gunicorn's gevent flavours: gcorn serves all three with its one parser
    "gevent_wsgi": "gcorn.workers.ggevent.GeventWorker",
    "gevent_pywsgi": "gcorn.workers.ggevent.GeventWorker",
    "eventlet": "gcorn.workers.geventlet.EventletWorker",
}
#: gunicorn worker names gcorn has no equivalent of, and what to use instead.
UNSUPPORTED_WORKERS = {
    "tornado": "asgi",
    "uvicorn.workers.UvicornWorker": "asgi",
    "uvicorn.workers.UvicornH11Worker": "asgi",
    "uvicorn_worker.UvicornWorker": "asgi",
}

SSL_SETTINGS = (
    "keyfile",
    "certfile",
    "ssl_version",
    "cert_reqs",
    "ca_certs",
    "suppress_ragged_eofs",
    "do_handshake_on_connect",
    "ciphers",
)


def nearest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to `name` (difflib), or None when nothing is close."""
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def unknown_setting_error(name: str, where: str) -> ConfigError:
    """The one-line error for a setting name that gcorn does not know."""
    hint = nearest(name, SETTINGS)
    suggestion = f" (did you mean '{hint}'?)" if hint else ""
    return ConfigError(f"unknown setting '{name}' in {where}{suggestion}")


class Config:
    """Every setting's validated value, by attribute, under gunicorn's names.

    Other packages only read it. Values are set through `set()`, which runs
    the setting's validator and names the setting and the source in errors.
    """

    def __init__(self) -> None:
        values: dict[str, Any] = {}
        for name, setting in SETTINGS.items():
            try:
                values[name] = setting.initial()
            except ValueError as exc:
                raise _invalid(setting, "the default (environment)", exc) from None
        object.__setattr__(self, "_values", values)
        object.__setattr__(self, "_sources", {})
        #: The positional app spec from the command line, if any.
        object.__setattr__(self, "app_uri", None)

    # -- reading -------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        values = self.__dict__.get("_values")
        if values is not None and name in values:
            return values[name]
        raise AttributeError(f"'Config' has no setting '{name}'")

    def __setattr__(self, name: str, value: Any) -> None:
        if name in SETTINGS:
            self.set(name, value)
        else:
            object.__setattr__(self, name, value)

    @property
    def settings(self) -> dict[str, Setting]:
        """The setting declarations, by name."""
        return SETTINGS

    def values(self) -> dict[str, Any]:
        """A copy of every setting's current value, by name."""
        return dict(self._values)

    def source_of(self, name: str) -> str:
        """Where the current value of `name` came from (`default` if not set)."""
        return str(self._sources.get(name, "default"))

    # -- writing -------------------------------------------------------
    def set(self, name: str, value: Any, source: str = "code") -> None:
        """Validate `value` for setting `name` and store it; ConfigError on a bad name or value."""
        setting = SETTINGS.get(name)
        if setting is None:
            raise unknown_setting_error(name, source)
        try:
            self._values[name] = setting.validator(value)
        except ValueError as exc:
            raise _invalid(setting, source, exc) from None
        self._sources[name] = source

    # -- derived attributes (docs/architecture.md) ---------------------
    @property
    def worker_class_str(self) -> str:
        """The worker class as given: a short name or a dotted path."""
        value = self._values["worker_class"]
        if isinstance(value, type):
            return f"{value.__module__}.{value.__qualname__}"
        return str(value)

    @property
    def worker_class_label(self) -> str:
        """The worker class as metrics label it: the `-k` short name (`gthread` for sync
        with threads > 1), else the dotted path."""
        value = self._values["worker_class"]
        if isinstance(value, str) and value in WORKER_CLASSES:
            return "gthread" if value == "sync" and self._values["threads"] > 1 else value
        return self.worker_class_str

    @property
    def worker_class(self) -> type:
        """The worker class object (`sync` with threads > 1 becomes gthread)."""
        value = self._values["worker_class"]
        if isinstance(value, type):
            return value
        name = str(value)
        if name == "sync" and self._values["threads"] > 1:
            name = "gthread"
        if name in UNSUPPORTED_WORKERS:
            raise ConfigError(
                f"invalid value for setting 'worker_class' (-k/--worker-class): gcorn has no "
                f"{name!r} worker; use -k {UNSUPPORTED_WORKERS[name]}"
            )
        path = WORKER_CLASSES.get(name, name)
        try:
            cls = v.import_dotted(path)
        except ValueError as exc:
            raise _invalid(SETTINGS["worker_class"], self.source_of("worker_class"), exc) from None
        if not isinstance(cls, type):
            raise ConfigError(f"invalid value for setting 'worker_class': {path!r} is not a class")
        return cls

    @property
    def uid(self) -> int:
        """The numeric uid the workers run as."""
        return int(self._values["user"])

    @property
    def gid(self) -> int:
        """The numeric gid the workers run as."""
        return int(self._values["group"])

    @property
    def proc_name(self) -> str:
        """`proc_name`, or else `default_proc_name`."""
        return str(self._values["proc_name"] or self._values["default_proc_name"])

    @property
    def env(self) -> dict[str, str]:
        """The environment variables of `raw_env` (`-e KEY=VALUE`)."""
        pairs = (item.split("=", 1) for item in self._values["raw_env"])
        return {key.strip(): value for key, value in pairs}

    @property
    def sendfile(self) -> bool:
        """Whether os.sendfile may be used: `--no-sendfile`, else $SENDFILE, else True."""
        value = self._values["sendfile"]
        if value is not None:
            return bool(value)
        raw = os.environ.get("SENDFILE")
        if raw is None:
            return True
        try:
            return v.boolean(raw)
        except ValueError:
            return True

    @property
    def is_ssl(self) -> bool:
        """True when `certfile` or `keyfile` is set."""
        return bool(self._values["certfile"] or self._values["keyfile"])

    @property
    def ssl_options(self) -> dict[str, Any]:
        """The SSL settings, by name."""
        return {name: self._values[name] for name in SSL_SETTINGS}

    @property
    def logger_class(self) -> type:
        """The logger class object (`simple` and the default name give gcorn's Logger)."""
        value = self._values["logger_class"]
        if isinstance(value, type):
            return value
        path = str(value)
        if path in ("simple", "gunicorn.glogging.Logger"):
            path = "gcorn.cli.glogging.Logger"
        try:
            cls = v.import_dotted(path)
        except ValueError as exc:
            raise _invalid(SETTINGS["logger_class"], self.source_of("logger_class"), exc) from None
        if not isinstance(cls, type):
            raise ConfigError(f"invalid value for setting 'logger_class': {path!r} is not a class")
        return cls

    def __repr__(self) -> str:
        return f"<Config {len(self._values)} settings>"


def _invalid(setting: Setting, source: str, exc: ValueError) -> ConfigError:
    flags = f" ({setting.flag_text()})" if setting.flags else ""
    message = " ".join(str(exc).split())
    return ConfigError(f"invalid value for setting '{setting.name}'{flags} in {source}: {message}")
