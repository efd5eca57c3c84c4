"""App specs and the loader: module:name, module:factory(literals), chdir and pythonpath."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

from gcorn.cli.apploader import AppLoader, parse_spec, prepare_paths
from gcorn.cli.config import Config
from gcorn.cli.errors import AppLoadError

APP_MODULE = """
calls = []

def application(environ, start_response):
    return [b"default"]

def app(environ, start_response):
    return [b"app"]

def make_app(name, *, size=1):
    calls.append((name, size))
    def inner(environ, start_response):
        return [name.encode() * size]
    return inner

class Holder:
    wsgi = app

not_callable = 42
"""


@pytest.fixture
def appdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    name = f"gcorn_test_app_{abs(hash(tmp_path)) % 10**8}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(APP_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_parse_spec_forms() -> None:
    assert parse_spec("pkg.mod").attr == "application"
    assert parse_spec("pkg.mod:app").attr == "app"
    assert parse_spec("m:Holder.wsgi").attr == "Holder.wsgi"
    spec = parse_spec("m:make(1, 'a', [2], key={'x': None})")
    assert spec.call_args == (1, "a", [2]) and spec.call_kwargs == {"key": {"x": None}}


@pytest.mark.parametrize(
    "text",
    ["", ":app", "m:make(os.system('x'))", "m:make(*a)", "m:1+2", "m:make(**k)", "bad-mod:app"],
)
def test_parse_spec_refuses(text: str) -> None:
    with pytest.raises(AppLoadError):
        parse_spec(text)


def test_load_names_and_factory(appdir: str) -> None:
    cfg = Config()
    assert AppLoader(cfg, appdir).load()(None, None) == [b"default"]
    assert AppLoader(cfg, f"{appdir}:app").load()(None, None) == [b"app"]
    assert AppLoader(cfg, f"{appdir}:Holder.wsgi").load()(None, None) == [b"app"]
    factory = AppLoader(cfg, f"{appdir}:make_app('hi', size=2)").load()
    assert factory(None, None) == [b"hihi"]


@pytest.mark.parametrize(
    ("suffix", "message"),
    [(":missing", "has no attribute"), (":not_callable", "not callable")],
)
def test_load_errors(appdir: str, suffix: str, message: str) -> None:
    with pytest.raises(AppLoadError, match=message):
        AppLoader(Config(), appdir + suffix).load()


def test_missing_module_found_without_import() -> None:
    loader = AppLoader(Config(), "gcorn_no_such_module_xyz:app")
    with pytest.raises(AppLoadError, match="no module named 'gcorn_no_such_module_xyz'"):
        loader.check_importable()


def test_preload_caches(appdir: str) -> None:
    loader = AppLoader(Config(), f"{appdir}:make_app('p')")
    first = loader.preload()
    assert loader.load() is first and loader.wsgi() is first
    assert sys.modules[appdir].calls == [("p", 1)]


def test_chdir_and_pythonpath(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    extra = tmp_path / "extra"
    extra.mkdir()
    cfg = Config()
    cfg.set("chdir", str(tmp_path))
    cfg.set("pythonpath", f"{extra}, {tmp_path}/other")
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir("/")
    prepare_paths(cfg)
    assert os.getcwd() == str(tmp_path)
    assert sys.path[:3] == [str(extra), f"{tmp_path}/other", str(tmp_path)]
