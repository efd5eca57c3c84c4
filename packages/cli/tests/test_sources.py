"""Config sources in gunicorn's order: defaults, config file, GCORN_CMD_ARGS, argv."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from gcorn.cli.errors import ConfigError
from gcorn.cli.sources import build_config


def write(path: Path, text: str) -> str:
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_priority_file_then_env_then_argv(tmp_path: Path) -> None:
    conf = write(tmp_path / "c.py", "workers = 2\nthreads = 3\nbacklog = 10\n")
    env = {"GCORN_CMD_ARGS": "--threads 4 --backlog 20"}
    cfg = build_config(["-c", conf, "--backlog", "30", "app:x"], env)
    assert (cfg.workers, cfg.threads, cfg.backlog) == (2, 4, 30)
    assert cfg.app_uri == "app:x"
    assert cfg.source_of("backlog") == "argv"
    assert cfg.source_of("threads") == "$GCORN_CMD_ARGS"


def test_gunicorn_config_file_works_unchanged(tmp_path: Path) -> None:
    conf = write(
        tmp_path / "gunicorn.conf.py",
        """
        import multiprocessing
        bind = "127.0.0.1:9000"
        workers = multiprocessing.cpu_count() * 0 + 2
        worker_class = "gthread"
        raw_env = ["A=1"]
        helper_value = 42
        def post_fork(server, worker):
            server.log.info("forked %s", worker.pid)
        def post_request(worker, req):
            pass
        """,
    )
    cfg = build_config(["-c", conf], {})
    assert cfg.bind == ["127.0.0.1:9000"] and cfg.workers == 2
    assert cfg.post_fork.__name__ == "post_fork"
    cfg.post_request(1, 2, 3, 4)  # a two-argument hook is adapted


def test_env_args_config_file_and_app(tmp_path: Path) -> None:
    conf = write(tmp_path / "c.py", "timeout = 7\nwsgi_app = 'mod:app'\n")
    cfg = build_config([], {"GCORN_CMD_ARGS": f"-c {conf}"})
    assert cfg.timeout == 7 and cfg.wsgi_app == "mod:app"


def test_gunicorn_cmd_args_apply_only_without_gcorn_cmd_args() -> None:
    assert build_config([], {"GUNICORN_CMD_ARGS": "-w 3"}).workers == 3
    both = {"GUNICORN_CMD_ARGS": "-w 3", "GCORN_CMD_ARGS": "--threads 2"}
    cfg = build_config([], both)
    assert (cfg.workers, cfg.threads) == (1, 2)
    assert build_config([], {"GUNICORN_CMD_ARGS": "-w 3", "GCORN_CMD_ARGS": ""}).workers == 1


def test_argv_config_beats_env_config(tmp_path: Path) -> None:
    one = write(tmp_path / "one.py", "timeout = 1\n")
    two = write(tmp_path / "two.py", "timeout = 2\n")
    cfg = build_config(["-c", two], {"GCORN_CMD_ARGS": f"-c {one}"})
    assert cfg.timeout == 2


def test_file_prefix_and_python_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "my_gcorn_settings.py", "keepalive = 9\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert build_config(["-c", "python:my_gcorn_settings"], {}).keepalive == 9
    assert build_config(["-c", f"file:{tmp_path}/my_gcorn_settings.py"], {}).keepalive == 9
    sys.modules.pop("my_gcorn_settings", None)


def test_default_config_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "gunicorn.conf.py", "max_requests = 12\n")
    assert build_config([], {}).max_requests == 12  # gunicorn's default name, as a fallback
    write(tmp_path / "gcorn.conf.py", "max_requests = 11\n")
    assert build_config([], {}).max_requests == 11


@pytest.mark.parametrize(
    ("argv", "env", "conf", "expected"),
    [
        (["--wokers", "2"], {}, None, "unknown option '--wokers' in argv (did you mean '--workers'?)"),
        ([], {"GCORN_CMD_ARGS": "--time-out 3"}, None, "did you mean '--timeout'?"),
        ([], {"GCORN_CMD_ARGS": "--name 'unclosed"}, None, "cannot split $GCORN_CMD_ARGS"),
        (["-w", "lots"], {}, None, "invalid value for setting 'workers' (-w/--workers) in argv"),
        ([], {}, "wokers = 3\n", "unknown setting 'wokers' in config file"),
        ([], {}, "workers = 'x'\n", "invalid value for setting 'workers'"),
        ([], {}, "workers = (\n", "syntax error in config file"),
        ([], {}, "import no_such_module_here\n", "ModuleNotFoundError"),
        (["-c", "/no/such/file.py"], {}, None, "config file '/no/such/file.py' not found"),
        (["-c", "python:no_such_gcorn_conf"], {}, None, "cannot import config module"),
        (["a:b", "c:d"], {}, None, "expected one app"),
    ],
)
def test_errors_are_one_line(tmp_path: Path, argv, env, conf, expected) -> None:  # type: ignore[no-untyped-def]
    if conf is not None:
        argv = ["-c", write(tmp_path / "bad.py", conf), *argv]
    with pytest.raises(ConfigError) as info:
        build_config(argv, env)
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_cli_quirks() -> None:
    cfg = build_config(["--limit-request-field_size", "100", "--no-sendfile", "--proxy-protocol"], {})
    assert cfg.limit_request_field_size == 100
    assert cfg.sendfile is False
    assert cfg.proxy_protocol == "auto"
    cfg = build_config(["--proxy-protocol", "v2", "--paster", "x.ini", "--log-file", "/tmp/e"], {})
    assert (cfg.proxy_protocol, cfg.paste, cfg.errorlog) == ("v2", "x.ini", "/tmp/e")
    cfg = build_config(["-m", "022", "-b", "127.0.0.1:1", "-b", "unix:/tmp/s", "-e", "A=b"], {})
    assert cfg.umask == 0o22 and cfg.bind == ["127.0.0.1:1", "unix:/tmp/s"] and cfg.env == {"A": "b"}


def test_print_config_implies_check_config() -> None:
    cfg = build_config(["--print-config"], {})
    assert cfg.check_config is True
