"""The exception family of gcorn.cli: every error maps to the process exit code 1."""

from __future__ import annotations

from gcorn.arbiter import AppImportError


class CliError(Exception):
    """Base of every gcorn.cli error; `exit_code` is what the `gcorn` command exits with."""

    exit_code = 1


class ConfigError(CliError):
    """A setting is unknown, or its value is invalid, in a file, the environment or argv."""


class AppLoadError(CliError):
    """The application named by the app spec cannot be found, imported or built."""


class AppObjectError(AppLoadError, AppImportError):
    """The app module imported but has no such app object, or it is not callable.

    A worker that hits it exits with APP_LOAD_ERROR (4), gunicorn's code for its
    AppImportError; a module that fails to import is a boot failure (3).
    """
