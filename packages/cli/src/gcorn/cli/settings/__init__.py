"""Every setting gcorn knows, declared as data, one module per section."""

from __future__ import annotations

from . import (
    asgi,
    config_file,
    control,
    debugging,
    dirty,
    hooks,
    http2,
    http_parsing,
    logs,
    metrics,
    process_naming,
    proxy,
    security,
    server_mechanics,
    server_socket,
    ssl,
    supervision,
    worker_processes,
)
from .base import Setting

_MODULES = (
    config_file,
    server_socket,
    worker_processes,
    security,
    debugging,
    server_mechanics,
    logs,
    metrics,
    process_naming,
    hooks,
    proxy,
    ssl,
    http2,
    http_parsing,
    asgi,
    dirty,
    control,
    supervision,
)

SETTINGS: dict[str, Setting] = {}
for _module in _MODULES:
    for _setting in _module.SETTINGS:
        if _setting.name in SETTINGS:
            raise RuntimeError(f"setting {_setting.name!r} is declared twice")
        SETTINGS[_setting.name] = _setting

__all__ = ["SETTINGS", "Setting"]
