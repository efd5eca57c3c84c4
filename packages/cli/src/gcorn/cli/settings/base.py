"""The `Setting` declaration: one gunicorn-compatible setting, described as data."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Validator = Callable[[Any], Any]


def _identity(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class Setting:
    """One setting: its name, command-line flags, default, validator, section and doc.

    `default` is the raw default value, or `default_factory` computes it at
    config-build time (for defaults read from the environment). The validator
    takes a raw value (a string from argv, or any Python value from a config
    file) and returns the typed value, raising ValueError with a message
    otherwise.
    """

    name: str
    section: str
    doc: str
    default: Any = None
    validator: Validator = _identity
    flags: tuple[str, ...] = ()
    action: str = "store"
    nargs: str | None = None
    const: Any = None
    metavar: str | None = None
    value_type: str = "str"
    default_doc: str | None = None
    default_factory: Callable[[], Any] | None = field(default=None, compare=False)
    arity: tuple[int, ...] = ()

    @property
    def cli(self) -> bool:
        """True when the setting can be given on the command line."""
        return bool(self.flags)

    def initial(self) -> Any:
        """The validated default value of this setting, read at config-build time."""
        raw = self.default_factory() if self.default_factory is not None else self.default
        return self.validator(raw)

    def describe_default(self) -> str:
        """The default as shown in `docs/settings.md`."""
        if self.default_doc is not None:
            return self.default_doc
        if callable(self.default):
            return "no-op"
        return repr(self.default)

    def flag_text(self) -> str:
        """The flags joined for messages, e.g. `-w/--workers`."""
        return "/".join(self.flags)
