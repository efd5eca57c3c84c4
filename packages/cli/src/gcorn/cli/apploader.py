"""App loading: `module:name` or `module:factory(literal args)`, with chdir and pythonpath.

The loader is what the arbiter and workers call `app`: `load()` returns the
WSGI or ASGI callable. Factory arguments are Python literals read with
`ast.literal_eval`; no other code from the spec is evaluated.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import logging
import os
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

from .config import Config
from .errorapp import asgi_error_app, files_of, wsgi_error_app
from .errors import AppLoadError, AppObjectError, CliError
from .glogging import ERROR_LOGGER

DEFAULT_NAME = "application"


@dataclass(frozen=True)
class AppSpec:
    """A parsed app spec: the module, the attribute path, and a factory call if any."""

    text: str
    module: str
    attr: str
    call_args: tuple[Any, ...] | None = None
    call_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def is_factory(self) -> bool:
        """True when the spec calls a factory (`module:make_app()`)."""
        return self.call_args is not None


def parse_spec(text: str) -> AppSpec:
    """Parse `module`, `module:name`, `module:a.b` or `module:factory(literal, key=literal)`."""
    module, _, expression = text.strip().partition(":")
    if not module or not all(part.isidentifier() for part in module.split(".")):
        raise AppLoadError(f"invalid app spec {text!r}: expected MODULE:NAME")
    expression = expression.strip() or DEFAULT_NAME
    try:
        node = ast.parse(expression, mode="eval").body
    except SyntaxError:
        raise AppLoadError(f"invalid app spec {text!r}: cannot parse {expression!r}") from None
    if isinstance(node, ast.Call):
        attr = _dotted_name(node.func, text)
        try:
            args = tuple(ast.literal_eval(arg) for arg in node.args)
            kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords if kw.arg}
        except ValueError:
            raise AppLoadError(
                f"invalid app spec {text!r}: factory arguments must be literals"
            ) from None
        if any(kw.arg is None for kw in node.keywords) or any(
            isinstance(arg, ast.Starred) for arg in node.args
        ):
            raise AppLoadError(f"invalid app spec {text!r}: no * or ** in factory arguments")
        return AppSpec(text, module, attr, args, kwargs)
    return AppSpec(text, module, _dotted_name(node, text))


def _dotted_name(node: ast.expr, text: str) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted_name(node.value, text)}.{node.attr}"
    raise AppLoadError(f"invalid app spec {text!r}: expected a name or a factory call")


def prepare_paths(cfg: Config) -> None:
    """Change to `chdir` and put it and `pythonpath` at the front of sys.path."""
    os.chdir(cfg.chdir)
    entries = [cfg.chdir]
    if cfg.pythonpath:
        entries = [os.path.abspath(p.strip()) for p in cfg.pythonpath.split(",") if p.strip()] + entries
    for entry in reversed(entries):
        if entry in sys.path:
            sys.path.remove(entry)
        sys.path.insert(0, entry)


class AppLoader:
    """Loads the app named by a spec; `load()` is what a worker calls after fork."""

    def __init__(self, cfg: Config, spec: str) -> None:
        self.cfg = cfg
        self.spec = parse_spec(spec)
        self._app: Any = None
        self._preloaded = False
        self._reloader_pid: int | None = None
        # Files the reloader watches besides loaded modules; it re-reads this list each pass.
        self._watched: list[str] = list(cfg.reload_extra_files)
        self._lock = threading.Lock()

    def check_importable(self) -> None:
        """Fail early, without importing it, when the app's module cannot be found."""
        try:
            # For `pkg.mod` this imports `pkg` (only the parent packages run here).
            found = importlib.util.find_spec(self.spec.module)
        except ModuleNotFoundError as exc:
            raise AppLoadError(self._not_found(exc.name or self.spec.module)) from None
        except (ImportError, ValueError) as exc:
            raise AppLoadError(f"cannot find the app module {self.spec.module!r}: {exc}") from None
        except Exception as exc:
            raise AppLoadError(
                f"error importing the parent package of {self.spec.module!r}: {_one_line(exc)}"
            ) from exc
        if found is None:
            raise AppLoadError(self._not_found(self.spec.module))

    def _not_found(self, module: str) -> str:
        return (
            f"no module named {module!r} (app {self.spec.text!r}; "
            f"cwd {os.getcwd()}; see --chdir and --pythonpath)"
        )

    def preload(self) -> Any:
        """Import the app now (in the master); later `load()` calls return the same object."""
        self._app = self._import()
        self._preloaded = True
        return self._app

    def load(self) -> Any:
        """The app callable: the preloaded one, or imported (and the reloader started) now."""
        with self._lock:
            if self._preloaded:
                return self._app
            if not self.cfg.reload:
                return self._import()
            self._start_reloader()
            try:
                return self._import()
            except AppLoadError as exc:
                return self._serve_error(exc)

    def wsgi(self) -> Any:
        """gunicorn's name for `load()`, for hooks that call `server.app.wsgi()`."""
        return self.load()

    def _serve_error(self, exc: AppLoadError) -> Any:
        # --reload: keep the worker up, watch the broken files, answer 500 until fixed.
        self._watched.extend(files_of(exc))
        logging.getLogger(ERROR_LOGGER).error(
            "%s; serving 500 until a watched file changes", exc, exc_info=exc.__cause__ or exc
        )
        if _serves_asgi(self.cfg):
            return asgi_error_app
        return wsgi_error_app

    def _import(self) -> Any:
        spec = self.spec
        try:
            module = importlib.import_module(spec.module)
        except ImportError as exc:
            if getattr(exc, "name", None) == spec.module:
                raise AppLoadError(f"no module named {spec.module!r} (app {spec.text!r})") from None
            raise AppLoadError(f"cannot import {spec.module!r}: {_one_line(exc)}") from exc
        except Exception as exc:
            raise AppLoadError(f"error importing {spec.module!r}: {_one_line(exc)}") from exc
        obj: Any = module
        for part in spec.attr.split("."):
            try:
                obj = getattr(obj, part)
            except AttributeError:
                raise AppObjectError(
                    f"module {spec.module!r} has no attribute {spec.attr!r} (app {spec.text!r})"
                ) from None
        if spec.is_factory:
            try:
                obj = obj(*(spec.call_args or ()), **spec.call_kwargs)
            except Exception as exc:
                raise AppLoadError(f"app factory {spec.text!r} failed: {_one_line(exc)}") from exc
        if not callable(obj):
            raise AppObjectError(f"app {spec.text!r} is not callable ({type(obj).__name__})")
        return obj

    def _start_reloader(self) -> None:
        # One reloader per process: load() runs in each worker after fork.
        if self._reloader_pid == os.getpid():
            return
        from .reloader import start_reloader

        start_reloader(self.cfg, extra=self._watched)
        self._reloader_pid = os.getpid()


def _serves_asgi(cfg: Config) -> bool:
    try:
        from gcorn.workers.asgi import AsgiWorker
    except ImportError:
        return False
    try:
        return issubclass(cfg.worker_class, AsgiWorker)
    except CliError:
        return False


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())
