"""The reloader notices a changed source file with either engine."""

from __future__ import annotations

import os
import threading
import time
import types
from pathlib import Path

import pytest

from gcorn.cli import reloader
from gcorn.cli.reloader import inotify_available, start_reloader


@pytest.mark.parametrize("engine", ["poll", "inotify"])
def test_change_is_noticed(tmp_path: Path, engine: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if engine == "inotify" and not inotify_available():
        pytest.skip("no inotify on this platform")
    # Watch only the test's file: an edit to any loaded module (this checkout is
    # shared and edited while tests run) would otherwise count as the change.
    monkeypatch.setattr(reloader, "module_files", set)
    watched = tmp_path / "settings.ini"
    watched.write_text("a")
    changed = threading.Event()
    seen: list[str] = []
    cfg = types.SimpleNamespace(reload_engine=engine, reload_extra_files=[str(tmp_path / "*.ini")])
    start_reloader(cfg, lambda path: (seen.append(path), changed.set()))
    time.sleep(1.2)  # let the first pass record the files
    watched.write_text("b")
    later = time.time() + 5
    os.utime(watched, (later, later))
    assert changed.wait(5)
    assert seen == [str(watched)]


def test_loaded_modules_are_watched() -> None:
    assert reloader.__file__ in reloader.module_files()
