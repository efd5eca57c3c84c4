"""The exception family of gcorn.cli: every error maps to the process exit code 1."""

from __future__ import annotations


class CliError(Exception):
    """Base of every gcorn.cli error; `exit_code` is what the `gcorn` command exits with."""

    exit_code = 1


class ConfigError(CliError):
    """A setting is unknown, or its value is invalid, in a file, the environment or argv."""


class AppLoadError(CliError):
    """The application named by the app spec cannot be found, imported or built."""
