"""Building a `Config` from its sources, in gunicorn's order.

defaults (some from the environment) -> config file -> $GCORN_CMD_ARGS -> argv.
"""

from __future__ import annotations

import difflib
import importlib
import os
import shlex
import traceback
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from . import cmdline
from .config import Config, nearest
from .errors import ConfigError
from .settings import SETTINGS

ENV_ARGS = "GCORN_CMD_ARGS"
#: Read when GCORN_CMD_ARGS is not set at all, so a gunicorn deployment's environment still applies.
GUNICORN_ENV_ARGS = "GUNICORN_CMD_ARGS"
DEFAULT_CONFIG = "./gcorn.conf.py"
#: Read when DEFAULT_CONFIG is absent, so a gunicorn deployment relying on it keeps working.
GUNICORN_DEFAULT_CONFIG = "./gunicorn.conf.py"
#: Settings that only mean something on the command line.
CLI_ONLY = frozenset({"config"})


def build_config(argv: list[str], environ: Mapping[str, str] | None = None) -> Config:
    """The Config from defaults, the config file, $GCORN_CMD_ARGS and `argv` (without argv[0]).

    `environ` is where GCORN_CMD_ARGS (or, if unset, GUNICORN_CMD_ARGS) is
    looked up; the env-derived defaults
    (PORT, WEB_CONCURRENCY, ...) always come from os.environ.
    """
    environ = os.environ if environ is None else environ
    cli_values = cmdline.parse(list(argv), "argv")
    env_name = ENV_ARGS
    if ENV_ARGS not in environ and GUNICORN_ENV_ARGS in environ:
        env_name = GUNICORN_ENV_ARGS
    env_where = f"${env_name}"
    env_values = cmdline.parse(_split_env_args(environ.get(env_name, ""), env_where), env_where)

    cfg = Config()
    source = cli_values.get("config") or env_values.get("config")
    if source is not None:
        apply_config_file(cfg, source, required=True)
    else:
        for default in (DEFAULT_CONFIG, GUNICORN_DEFAULT_CONFIG):
            if os.path.exists(default):
                apply_config_file(cfg, default, required=False)
                break

    for values, where in ((env_values, env_where), (cli_values, "argv")):
        for name, value in values.items():
            if name == "args":
                if value:
                    cfg.app_uri = _single_app(value, where)
                continue
            cfg.set(name, value, where)
    if cfg.print_config:
        cfg.set("check_config", True, "argv")
    return cfg


def _split_env_args(text: str, where: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise ConfigError(f"cannot split {where} like a command line: {exc}") from None


def _single_app(args: list[str], where: str) -> str:
    if len(args) != 1:
        joined = " ".join(args)
        raise ConfigError(f"expected one app (MODULE:NAME) in {where}, got {joined!r}")
    return str(args[0])


def apply_config_file(cfg: Config, source: str, required: bool = True) -> None:
    """Apply every module-level name of a config file (PATH, file:PATH or python:MODULE)."""
    if source.startswith("python:"):
        namespace = _module_namespace(source[len("python:") :])
        where = f"config module {source[len('python:'):]}"
    else:
        path = source[len("file:") :] if source.startswith("file:") else source
        if not os.path.exists(path):
            if not required:
                return
            raise ConfigError(f"config file '{path}' not found (setting 'config', -c/--config)")
        namespace = _file_namespace(path)
        where = f"config file {path}"
    apply_namespace(cfg, namespace, where)


def apply_namespace(cfg: Config, namespace: Mapping[str, Any], where: str) -> None:
    """Set every name of `namespace` that is a setting; a misspelt one is an error.

    As in gunicorn, other module-level names (imports, helpers) are ignored,
    so that a gunicorn config file works unchanged; but a plain value whose
    name is close to a setting's is almost surely a typo, and says so.
    """
    for name, value in namespace.items():
        if name in CLI_ONLY:
            continue
        if name in SETTINGS:
            cfg.set(name, value, where)
            continue
        if name.startswith("_") or isinstance(value, ModuleType | type) or name != name.lower():
            continue
        hint = nearest(name, list(SETTINGS))
        if hint is not None and _close(name, hint):
            raise ConfigError(f"unknown setting '{name}' in {where} (did you mean '{hint}'?)")


def _close(name: str, hint: str) -> bool:
    return difflib.SequenceMatcher(None, name, hint).ratio() >= 0.8


def _file_namespace(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as stream:
            code = compile(stream.read(), path, "exec")
    except SyntaxError as exc:
        raise ConfigError(f"syntax error in config file {path}, line {exc.lineno}: {exc.msg}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    namespace: dict[str, Any] = {"__file__": os.path.abspath(path), "__name__": "__config__"}
    try:
        exec(code, namespace)  # the config file is Python by design, as in gunicorn
    except Exception as exc:
        raise ConfigError(f"error in config file {path}{_line_of(exc, path)}: {_describe(exc)}") from None
    return namespace


def _module_namespace(name: str) -> dict[str, Any]:
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        raise ConfigError(f"cannot import config module '{name}': {exc}") from None
    except Exception as exc:
        raise ConfigError(f"error in config module {name}: {_describe(exc)}") from None
    return dict(vars(module))


def _line_of(exc: BaseException, path: str) -> str:
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename == path:
            return f", line {frame.lineno}"
    return ""


def _describe(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())


__all__ = ["DEFAULT_CONFIG", "ENV_ARGS", "apply_config_file", "build_config", "nearest"]
