"""`setting()` and `graceful_timeout()`: the one tolerant read of cfg, shared by the master
and every worker, keeps a falsy value (0 is no grace) and fills only what is missing."""

from __future__ import annotations

from types import SimpleNamespace

from gcorn.arbiter import graceful_timeout, setting


def test_setting_keeps_falsy_values_and_fills_missing_or_none() -> None:
    cfg = SimpleNamespace(zero=0, empty="", off=False, none=None)
    assert setting(cfg, "zero", 5) == 0
    assert setting(cfg, "empty", "x") == ""
    assert setting(cfg, "off", True) is False
    assert setting(cfg, "none", 7) == 7
    assert setting(cfg, "missing", 9) == 9


def test_graceful_timeout_zero_stays_zero() -> None:
    assert graceful_timeout(SimpleNamespace(graceful_timeout=0)) == 0.0
    assert graceful_timeout(SimpleNamespace(graceful_timeout=12)) == 12.0
    assert graceful_timeout(SimpleNamespace()) == 30.0
