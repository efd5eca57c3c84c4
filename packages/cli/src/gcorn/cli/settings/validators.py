"""Validators: each turns a raw value (argv string or config-file object) into a typed one.

A validator raises ValueError with a short message that says what was
expected; the config layer adds the setting's name to it.
"""

from __future__ import annotations

import grp
import importlib
import inspect
import ipaddress
import json
import os
import pwd
import re
from collections.abc import Callable
from typing import Any

_TRUE = {"true", "yes", "on", "1", "y", "t"}
_FALSE = {"false", "no", "off", "0", "n", "f", ""}


def boolean(value: Any) -> bool:
    """A bool, or a string such as true/false, yes/no, on/off, 1/0."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise ValueError(f"{value!r} is not a boolean")


def optional_boolean(value: Any) -> bool | None:
    """None (not set) or a boolean."""
    return None if value is None else boolean(value)


def positive_int(value: Any) -> int:
    """A non-negative integer: an int, a whole float, or a string (decimal, 0x.., 0o..)."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not an integer")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            # base 0 reads 0x/0o/0b as gunicorn does; "010" is not valid there, so decimal.
            value = int(text, 0) if text[1:2].isalpha() else int(text, 10)
        except ValueError:
            raise ValueError(f"{value!r} is not an integer") from None
    if not isinstance(value, int):
        raise ValueError(f"{value!r} is not an integer")
    if value < 0:
        raise ValueError(f"{value} is negative")
    return value


def positive_number(value: Any) -> float:
    """A non-negative int or float (strings are parsed)."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ValueError(f"{value!r} is not a number") from None
    if not isinstance(value, int | float):
        raise ValueError(f"{value!r} is not a number")
    if value < 0:
        raise ValueError(f"{value} is negative")
    return value


def octal_int(value: Any) -> int:
    """An integer given as 0o22, 0x12, 022 (gunicorn reads a leading 0 as octal) or 18."""
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"0[0-7]+", text):
            text = "0o" + text[1:]
        try:
            value = int(text, 0)
        except ValueError:
            raise ValueError(f"{value!r} is not an integer") from None
    return positive_int(value)


def int_range(low: int, high: int) -> Callable[[Any], int]:
    """A validator for an integer in [low, high]."""

    def check(value: Any) -> int:
        """An int within the range."""
        number = positive_int(value)
        if not low <= number <= high:
            raise ValueError(f"{number} is outside {low}..{high}")
        return number

    return check


def string(value: Any) -> str | None:
    """A string (stripped) or None."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a string")
    return value.strip()


def string_list(value: Any) -> list[str]:
    """A list of strings; a single string becomes a one-item list."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list | tuple):
        raise ValueError(f"{value!r} is not a list of strings")
    items = [string(item) for item in value]
    return [item for item in items if item is not None]


def comma_list(value: Any) -> list[str]:
    """A comma-separated string, or a list, of non-empty strings."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return [item for item in string_list(value) if item]


def address_list(value: Any) -> list[str]:
    """A comma list of IP addresses or CIDR networks (host bits refused), or `*`."""
    items = comma_list(value)
    for item in items:
        if item == "*":
            continue
        try:
            ipaddress.ip_network(item, strict=True)
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or network") from None
    return items


def mapping(value: Any) -> dict[Any, Any]:
    """A dict."""
    if not isinstance(value, dict):
        raise ValueError(f"{value!r} is not a dict")
    return dict(value)


def json_mapping(value: Any) -> dict[Any, Any] | None:
    """A dict, or its JSON text (None and "" stay unset)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not valid JSON: {exc}") from None
    return mapping(value)


def choice(*choices: str) -> Callable[[Any], str]:
    """A validator for one of the given strings (case-insensitive)."""

    def check(value: Any) -> str:
        """One of the choices, lower-cased."""
        if not isinstance(value, str) or value.strip().lower() not in choices:
            raise ValueError(f"{value!r} is not one of {', '.join(choices)}")
        return value.strip().lower()

    return check


def class_spec(value: Any) -> Any:
    """A worker or logger class: a short name, a dotted path string, or the class itself."""
    if isinstance(value, type):
        return value
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{value!r} is not a class name or dotted path")
    return value.strip()


def user(value: Any) -> int:
    """A user name or numeric uid; the result is the uid."""
    if value is None:
        return os.geteuid()
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    try:
        return pwd.getpwnam(str(value).strip()).pw_uid
    except KeyError:
        raise ValueError(f"no such user {value!r}") from None


def group(value: Any) -> int:
    """A group name or numeric gid; the result is the gid."""
    if value is None:
        return os.getegid()
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    try:
        return grp.getgrnam(str(value).strip()).gr_gid
    except KeyError:
        raise ValueError(f"no such group {value!r}") from None


def directory(value: Any) -> str:
    """An existing directory; the result is its absolute path."""
    text = string(value)
    if not text:
        raise ValueError("an empty path is not a directory")
    path = os.path.abspath(text)
    if not os.path.isdir(path):
        raise ValueError(f"{text!r} is not an existing directory")
    return path


def statsd_address(value: Any) -> str | None:
    """`HOST:PORT` (UDP) or `unix:PATH` / `unix://PATH`; a bare host gets port 8125."""
    text = string(value)
    if not text:
        return None
    if text.startswith("unix:"):
        if not text[5:].lstrip("/"):
            raise ValueError(f"{value!r} has no socket path")
        return text
    host, _, port = text.rpartition(":")
    if not host:
        return f"{text}:8125"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r} needs a port number after ':'")
    return text


def metrics_address(value: Any) -> str | None:
    """`HOST:PORT`, `[V6]:PORT` or `unix:PATH` for the metrics listener; None/empty is off.

    Only the form is checked here (no name lookup): binding it at start tells the rest.
    """
    if value is None:
        return None
    text = string(value) or ""
    if not text:
        return None
    if text.startswith("unix:"):
        path = text[5:]
        if path.startswith("//"):
            path = path[2:]
        if not path:
            raise ValueError(f"{value!r} has no socket path after 'unix:'")
        return text
    if text.startswith(("fd://", "tcp://")) or "/" in text:
        raise ValueError(f"{value!r} is not HOST:PORT, [V6]:PORT or unix:PATH")
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not host:
            raise ValueError(f"{value!r}: an IPv6 address goes in brackets, as [::1]:9101")
        if not rest.startswith(":"):
            raise ValueError(f"{value!r} needs ':PORT' after the ']'")
        port = rest[1:]
    else:
        host, sep, port = text.rpartition(":")
        if not sep:
            raise ValueError(f"{value!r} needs a port: HOST:PORT, as 127.0.0.1:9101")
        if ":" in host:
            raise ValueError(f"{value!r}: an IPv6 address goes in brackets, as [::1]:9101")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r} needs a port number 1-65535 after ':'")
    return text


def proxy_protocol(value: Any) -> str:
    """off, v1, v2 or auto; True means auto and False off (gunicorn's bare flag)."""
    if value is True:
        return "auto"
    if value is False or value is None:
        return "off"
    return choice("off", "v1", "v2", "auto")(value)


def http_protocols(value: Any) -> list[str]:
    """A comma list of h1, h2, h3 in preference order."""
    items = [item.lower() for item in comma_list(value)]
    if not items:
        raise ValueError("at least one protocol is needed")
    for item in items:
        if item not in ("h1", "h2", "h3"):
            raise ValueError(f"{item!r} is not one of h1, h2, h3")
    return items


def import_dotted(path: str) -> Any:
    """Import `pkg.mod.name` or `pkg.mod:name` and return the named object."""
    if ":" in path:
        module_name, _, attr = path.partition(":")
    else:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ValueError(f"{path!r} is not a dotted path")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import {module_name!r} ({exc})") from None
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(f"{module_name!r} has no attribute {attr!r}") from None
    return obj


def _accepts(func: Callable[..., Any], count: int) -> bool:
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return True  # builtins without a signature: trust them
    try:
        signature.bind(*range(count))
    except TypeError:
        return False
    return True


def hook(*arities: int) -> Callable[[Any], Callable[..., Any]]:
    """A validator for a hook callable taking one of `arities` positional args."""

    def check(value: Any) -> Callable[..., Any]:
        """The callable (imported if given as a dotted path), arity checked."""
        if isinstance(value, str):
            value = import_dotted(value.strip())
        if not callable(value):
            raise ValueError(f"{value!r} is not callable")
        if not any(_accepts(value, count) for count in arities):
            wanted = " or ".join(str(count) for count in arities)
            raise ValueError(f"{_name(value)} must take {wanted} positional arguments")
        func: Callable[..., Any] = value
        return func

    return check


def _name(func: Any) -> str:
    return getattr(func, "__qualname__", None) or repr(func)


def post_request_hook(value: Any) -> Callable[..., Any]:
    """post_request: a 2-, 3- or 4-argument callable, adapted to (worker, req, environ, resp)."""
    func = hook(4, 3, 2)(value)
    if _accepts(func, 4):
        return func
    if _accepts(func, 3):
        return _Adapted(func, 3)
    return _Adapted(func, 2)


class _Adapted:
    """Calls a hook with only its first `count` arguments (gunicorn accepts short post_request)."""

    def __init__(self, func: Callable[..., Any], count: int) -> None:
        self.func = func
        self.count = count
        self.__qualname__ = _name(func)

    def __call__(self, *args: Any) -> Any:
        return self.func(*args[: self.count])

    def __repr__(self) -> str:
        return repr(self.func)


def files_or_patterns(value: Any) -> list[str]:
    """A list of file paths or glob patterns."""
    return string_list(value)


def env_list(value: Any) -> list[str]:
    """A list of `KEY=VALUE` strings."""
    items = string_list(value)
    for item in items:
        if "=" not in item:
            raise ValueError(f"{item!r} is not KEY=VALUE")
    return items


def any_value(value: Any) -> Any:
    """Any value, kept as given (used for deprecated, ignored settings)."""
    return value
