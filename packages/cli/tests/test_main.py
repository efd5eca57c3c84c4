"""The pieces of the gcorn command: prepare(), the HUP reload callback and the logger swap."""

from __future__ import annotations

from pathlib import Path

import pytest

from gcorn.cli import main
from gcorn.cli.config import Config
from gcorn.cli.errors import ConfigError
from gcorn.cli.glogging import Logger

APP = "def app(environ, start_response):\n    return [b'x']\n"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "cliapp_for_main.py").write_text(APP)
    (tmp_path / "conf.py").write_text("timeout = 5\nerrorlog = 'err.log'\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # also restores sys.path after prepare_paths
    return tmp_path


def test_prepare_names_processes_after_the_app(project: Path) -> None:
    cfg, log, app = main.prepare(["-c", "conf.py", "cliapp_for_main:app"])
    try:
        assert cfg.timeout == 5 and cfg.proc_name == "cliapp_for_main:app"
        assert app.load()(None, None) == [b"x"]
    finally:
        log.close()


def test_reload_reads_the_new_config_and_keeps_the_old_on_error(project: Path) -> None:
    argv = ["-c", "conf.py", "cliapp_for_main:app"]
    cfg, log, app = main.prepare(argv)
    try:
        reload = main.make_reloader(argv, str(project), cfg, log, app)
        (project / "conf.py").write_text("timeout = 9\nerrorlog = 'err.log'\n")
        new_cfg, new_log, new_app = reload()
        assert new_cfg.timeout == 9 and new_log is log and new_app.cfg is new_cfg
        (project / "conf.py").write_text("timeout = 'never'\n")
        assert reload() == (new_cfg, new_log, new_app)
        assert "reload failed" in (project / "err.log").read_text()
    finally:
        log.close()


def test_a_broken_log_setting_on_reload_restores_the_old_logger(tmp_path: Path) -> None:
    old = Config()
    old.set("errorlog", str(tmp_path / "old.log"))
    new = Config()
    new.set("errorlog", str(tmp_path / "no-such-dir" / "new.log"))
    log = Logger(old)
    try:
        with pytest.raises(ConfigError, match="cannot open log file"):
            main._reconfigured_logger(log, old, new)
        log.error("still here")
        assert "still here" in (tmp_path / "old.log").read_text()
    finally:
        log.close()
