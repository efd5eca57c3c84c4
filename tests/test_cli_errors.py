"""Every bad-config case through the real `gcorn` command: one line on stderr, exit 1, no fork."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from harness import EXAMPLES, GCORN


def run_gcorn(args: list[str], cwd: Path, env_args: str = "") -> subprocess.CompletedProcess[str]:
    # Port 0: should a case wrongly start serving, it never takes a fixed port.
    env = dict(os.environ, GCORN_CMD_ARGS=f"--bind 127.0.0.1:0 {env_args}")
    return subprocess.run(
        [GCORN, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=15
    )


BAD_FILES = {
    "unknown": "wokers = 2\n",
    "badvalue": "timeout = 'soon'\n",
    "arity": "def post_fork(server):\n    pass\n",
    "raises": "import no_such_module_in_config\n",
}

CASES = [
    (["--wokers", "2", "hello:app"], "", "unknown option '--wokers' in argv (did you mean '--workers'?)"),
    (["-w", "many", "hello:app"], "", "invalid value for setting 'workers' (-w/--workers) in argv"),
    (["--log-level", "loud", "hello:app"], "", "invalid value for setting 'loglevel'"),
    (["hello:app"], "--max-requests 3x", "invalid value for setting 'max_requests'"),
    (["hello:app"], "--graceful-timeuot 1", "unknown option '--graceful-timeuot' in $GCORN_CMD_ARGS"),
    (["-c", "unknown.py", "hello:app"], "", "unknown setting 'wokers' in config file unknown.py (did you mean 'workers'?)"),
    (["-c", "badvalue.py", "hello:app"], "", "invalid value for setting 'timeout' (-t/--timeout) in config file badvalue.py"),
    (["-c", "arity.py", "hello:app"], "", "invalid value for setting 'post_fork'"),
    (["-c", "raises.py", "hello:app"], "", "error in config file raises.py, line 1: ModuleNotFoundError"),
    (["-c", "missing.py", "hello:app"], "", "config file 'missing.py' not found"),
    ([], "", "no application given"),
    (["no_such_module_xyz:app"], "", "no module named 'no_such_module_xyz'"),
    (["-k", "no.such.Worker", "hello:app"], "", "invalid value for setting 'worker_class'"),
    (["-k", "tornado", "hello:app"], "", "gcorn has no 'tornado' worker; use -k asgi"),
    (["-k", "uvicorn.workers.UvicornWorker", "hello:app"], "", "use -k asgi"),
    (["-k", "collections.OrderedDict", "hello:app"], "", "is not a gcorn worker"),
    (["--check-config", "hello:nothing_here"], "", "has no attribute 'nothing_here'"),
    (["hello:app(os.system('x'))"], "", "factory arguments must be literals"),
    (["--dirty-workers", "1", "--dirty-app", "nosuchdirty:App", "hello:app"], "",
     "invalid value for setting 'dirty_apps' (--dirty-app): no module named 'nosuchdirty'"),
    (["--dirty-codec", "json", "hello:app"], "", "invalid value for setting 'dirty_codec'"),
    (["nopkg_here.sub:app"], "", "no module named 'nopkg_here' (app 'nopkg_here.sub:app'"),
    (["-b", "127.0.0.1:99999", "hello:app"], "", "invalid value for setting 'bind' (-b/--bind) in argv"),
]


@pytest.mark.parametrize(("args", "env_args", "expected"), CASES)
def test_bad_config_is_one_line_and_exit_1(
    tmp_path: Path, args: list[str], env_args: str, expected: str
) -> None:
    shutil.copy(EXAMPLES / "hello.py", tmp_path / "hello.py")
    for name, text in BAD_FILES.items():
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(text))
    result = run_gcorn(args, tmp_path, env_args)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("gcorn: error: ")
    assert expected in lines[0]
    assert result.stdout == ""


def test_check_config_ok(tmp_path: Path) -> None:
    shutil.copy(EXAMPLES / "hello.py", tmp_path / "hello.py")
    result = run_gcorn(["--check-config", "hello:app"], tmp_path)
    assert result.returncode == 0 and result.stderr == ""


def test_print_config_lists_every_setting_sorted(tmp_path: Path) -> None:
    shutil.copy(EXAMPLES / "hello.py", tmp_path / "hello.py")
    result = run_gcorn(["--print-config", "-w", "3", "hello:app"], tmp_path)
    assert result.returncode == 0, result.stderr
    names = [line.split(" = ")[0].strip() for line in result.stdout.splitlines()]
    assert names == sorted(names) and len(names) >= 119
    assert any(line.split() == ["workers", "=", "3"] for line in result.stdout.splitlines())


@pytest.mark.parametrize("module", ["gcorn", "gcorn.cli"])
def test_version_and_module_entry_point(module: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", module, "--version"], capture_output=True, text=True, timeout=20
    )
    assert result.returncode == 0 and result.stdout.startswith("gcorn (version ")


def test_example_config_checks(tmp_path: Path) -> None:
    result = run_gcorn(["-c", str(EXAMPLES / "gcorn.conf.py"), "--check-config"], tmp_path)
    assert result.returncode == 0, result.stderr


def test_http2_settings_warn_only_where_http2_is_not_served(tmp_path: Path) -> None:
    # the asgi and gthread workers speak h2: no warning; sync does not and must say so
    shutil.copy(EXAMPLES / "hello.py", tmp_path / "hello.py")
    for worker in ("asgi", "gthread"):
        done = run_gcorn(["-k", worker, "--http-protocols", "h2,h1", "--check-config",
                          "hello:app"], tmp_path)
        assert done.returncode == 0, done.stderr
        assert "HTTP/1.1 only" not in done.stderr, done.stderr
    done = run_gcorn(["-k", "sync", "--http-protocols", "h2,h1", "--check-config", "hello:app"],
                     tmp_path)
    assert done.returncode == 0, done.stderr
    assert "this worker class speaks HTTP/1.1 only" in done.stderr
    plain = run_gcorn(["--check-config", "hello:app"], tmp_path)
    assert "HTTP/1.1 only" not in plain.stderr
