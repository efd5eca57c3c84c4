"""The command-line parser, built from the setting declarations.

Every option defaults to "not given" (argparse.SUPPRESS), so the result
holds only what the user typed; the config layer applies it over the
config file. Parse errors raise ConfigError instead of printing usage.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from .config import nearest
from .errors import ConfigError
from .settings import SETTINGS

USAGE = "%(prog)s [OPTIONS] [APP_MODULE]"


def version() -> str:
    """The installed gcorn-cli version."""
    from importlib import metadata  # slow to import; only -v needs it

    try:
        return metadata.version("gcorn-cli")
    except metadata.PackageNotFoundError:
        return "0+unknown"


class _VersionAction(argparse.Action):
    """`-v/--version`: print `gcorn (version X)` and exit 0, reading the version only then."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(
            option_strings,
            argparse.SUPPRESS,
            nargs=0,
            default=argparse.SUPPRESS,
            help="show gcorn's version and exit",
        )

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        sys.stdout.write(f"{parser.prog} (version {version()})\n")
        parser.exit(0)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises ConfigError rather than exiting with usage."""

    def __init__(self, where: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.where = where

    def error(self, message: str) -> NoReturn:
        """Raise ConfigError with argparse's message instead of printing usage and exiting 2."""
        raise ConfigError(f"{' '.join(message.split())} (in {self.where})")


def build_parser(where: str = "argv", prog: str = "gcorn") -> argparse.ArgumentParser:
    """An argparse parser with one option per setting that has flags, plus APP and -v."""
    parser = _Parser(
        where,
        prog=prog,
        usage=USAGE,
        description="gcorn: a pre-fork HTTP server for WSGI and ASGI apps.",
        argument_default=argparse.SUPPRESS,
    )
    parser.add_argument("-v", "--version", action=_VersionAction)
    parser.add_argument(
        "args", nargs="*", metavar="APP_MODULE", help="the app: MODULE:NAME or MODULE:FACTORY(ARGS)"
    )
    for setting in SETTINGS.values():
        if not setting.flags:
            continue
        options: dict[str, Any] = {"dest": setting.name, "help": setting.doc.replace("%", "%%")}
        if setting.action in ("store_true", "store_false"):
            options["action"] = setting.action
        elif setting.action == "store_const":
            options["action"] = "store_const"
            options["const"] = setting.const
        else:
            options["action"] = setting.action
            if setting.nargs is not None:
                options["nargs"] = setting.nargs
                options["const"] = setting.const
            if setting.metavar:
                options["metavar"] = setting.metavar
        parser.add_argument(*setting.flags, **options)
    return parser


def all_flags() -> list[str]:
    """Every long and short flag gcorn knows."""
    flags = ["-v", "--version", "-h", "--help"]
    for setting in SETTINGS.values():
        flags.extend(setting.flags)
    return flags


def parse(args: list[str], where: str = "argv") -> dict[str, Any]:
    """Parse `args` into {setting name: raw value} plus "args" (positionals) when given."""
    parser = build_parser(where)
    namespace, extras = parser.parse_known_args(args)
    for extra in extras:
        if extra.startswith("-"):
            flag = extra.split("=", 1)[0]
            hint = nearest(flag, all_flags())
            suggestion = f" (did you mean '{hint}'?)" if hint else ""
            raise ConfigError(f"unknown option '{flag}' in {where}{suggestion}")
    values = vars(namespace)
    if extras:
        values["args"] = list(values.get("args", [])) + extras
    return values
