"""The real `Config` holds every setting that gcorn.arbiter's `Settings` protocol names,
so the arbiter and the workers may read them by attribute."""

from __future__ import annotations

import inspect

from gcorn.arbiter.contracts import Settings
from gcorn.cli.config import Config


def test_config_has_every_attribute_of_the_settings_protocol() -> None:
    names = [name for name, _ in inspect.getmembers(Settings, lambda m: isinstance(m, property))]
    assert len(names) > 50
    cfg = Config()
    missing = [name for name in names if not hasattr(cfg, name)]
    assert missing == []


def test_config_default_graceful_timeout_zero_is_kept() -> None:
    from gcorn.arbiter import graceful_timeout

    cfg = Config()
    cfg.set("graceful_timeout", 0)
    assert graceful_timeout(cfg) == 0.0
