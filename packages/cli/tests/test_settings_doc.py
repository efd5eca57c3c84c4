"""docs/settings.md is generated from the declarations and must not be stale."""

from __future__ import annotations

from pathlib import Path

from gcorn.cli.settings import SETTINGS
from gcorn.cli.settings_doc import render

DOC = Path(__file__).resolve().parents[3] / "docs" / "settings.md"


def test_committed_settings_doc_is_current() -> None:
    assert DOC.read_text(encoding="utf-8") == render(), (
        "docs/settings.md is stale: run .venv/bin/python tools/gen_settings_doc.py"
    )


def test_every_setting_is_documented() -> None:
    text = render()
    for name in SETTINGS:
        assert f"### `{name}`" in text
    assert "`--limit-request-field_size INT`" in text
    assert "`--proxy-protocol [MODE]`" in text
