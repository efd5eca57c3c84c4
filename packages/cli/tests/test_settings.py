"""The setting declarations: gunicorn's names, flags and defaults, and their validators."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from gcorn.cli.config import Config
from gcorn.cli.errors import ConfigError
from gcorn.cli.settings import SETTINGS
from gcorn.cli.settings import validators as v

REFERENCE = Path(__file__).resolve().parents[3].parent / "shared/reference/gunicorn-features.md"
GCORN_ONLY = {
    "metrics_bind",
    "boot_failure_limit",
    "boot_failure_window",
    "header_timeout",
    "request_timeout",
    "dirty_queue_size",
    "dirty_max_message_size",
    "dirty_codec",
    "dirty_resources",
    "dirty_boot_timeout",
    "websocket_max_message_size",
    "limit_concurrency",
    "websocket_ping_interval",
    "websocket_ping_timeout",
    "websocket_per_message_deflate",
    "max_worker_memory",
    "max_worker_memory_checks",
    "dirty_max_worker_memory",
    "permit_unconventional_request_target",
    "dirty_stash_backend",
    "dirty_backend",
    "dirty_ray_address",
}


def _reference_rows() -> dict[str, list[str]]:
    rows: dict[str, list[str]] = {}
    for line in REFERENCE.read_text().splitlines():
        match = re.match(r"\| \d+ \| `(\w+)` \| ([^|]*) \|", line)
        if match:
            rows[match.group(1)] = re.findall(r"`(-[-\w]+)`", match.group(2))
    return rows


@pytest.mark.skipif(not REFERENCE.exists(), reason="shared reference not beside the checkout")
def test_every_gunicorn_setting_is_declared_with_its_flags() -> None:
    rows = _reference_rows()
    assert len(rows) == 119
    assert set(rows) <= set(SETTINGS)
    for name, flags in rows.items():
        assert list(SETTINGS[name].flags) == flags, name
    assert set(SETTINGS) - set(rows) == GCORN_ONLY


def test_gunicorn_defaults() -> None:
    cfg = Config()
    assert cfg.backlog == 2048
    assert cfg.timeout == 30
    assert cfg.keepalive == 2
    assert cfg.limit_request_line == 4094
    assert cfg.limit_request_field_size == 8190
    assert cfg.access_log_format == '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'
    assert cfg.errorlog == "-"
    assert cfg.secure_scheme_headers["X-FORWARDED-PROTO"] == "https"
    assert cfg.dirty_timeout == 300 and cfg.dirty_workers == 0
    assert cfg.dirty_max_message_size == 64 * 1024 * 1024
    assert cfg.http_parser == "auto"
    assert cfg.limit_concurrency == 0 and cfg.websocket_per_message_deflate is True
    assert cfg.websocket_ping_interval == 20.0 and cfg.websocket_ping_timeout == 20.0
    assert cfg.suppress_ragged_eofs is True
    assert cfg.chdir == os.getcwd()


def test_env_derived_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "9123")
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.0.0.0/8")
    monkeypatch.setenv("SENDFILE", "0")
    cfg = Config()
    assert cfg.bind == ["0.0.0.0:9123"]
    assert cfg.workers == 3
    assert cfg.forwarded_allow_ips == ["10.0.0.0/8"]
    assert cfg.sendfile is False


@pytest.mark.parametrize(
    ("validator", "raw", "expected"),
    [
        (v.octal_int, "022", 0o22),
        (v.octal_int, "0o22", 0o22),
        (v.octal_int, "0x12", 0x12),
        (v.octal_int, "18", 18),
        (v.boolean, "yes", True),
        (v.boolean, "off", False),
        (v.proxy_protocol, True, "auto"),
        (v.proxy_protocol, "V2", "v2"),
        (v.comma_list, "a, b,,c", ["a", "b", "c"]),
        (v.http_protocols, "h2,h1", ["h2", "h1"]),
        (v.statsd_address, "localhost", "localhost:8125"),
        (v.positive_int, " 12 ", 12),
        (v.positive_int, "0x10", 16),
        (v.positive_int, 30.0, 30),
    ],
)
def test_validators_accept(validator, raw, expected) -> None:  # type: ignore[no-untyped-def]
    assert validator(raw) == expected


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("workers", "many"),
        ("workers", "-1"),
        ("timeout", 2.5),
        ("loglevel", "loud"),
        ("forwarded_allow_ips", "10.0.0.1/8"),
        ("http2_max_frame_size", "100"),
        ("raw_env", ["NOEQUALS"]),
        ("chdir", "/nonexistent/dir"),
        ("user", "no-such-user-gcorn"),
        ("on_starting", "not callable"),
        ("header_map", "maybe"),
    ],
)
def test_bad_values_name_the_setting(name: str, raw: object) -> None:
    cfg = Config()
    with pytest.raises(ConfigError) as info:
        cfg.set(name, raw, "argv")
    message = str(info.value)
    assert f"'{name}'" in message and "\n" not in message


def test_hook_arity_is_checked() -> None:
    cfg = Config()
    with pytest.raises(ConfigError, match="post_fork"):
        cfg.set("post_fork", lambda server: None)
    cfg.set("post_fork", lambda server, worker: None)
    cfg.set("on_starting", "os.path.exists")  # a dotted path taking one argument


def test_post_request_accepts_two_three_or_four_args() -> None:
    cfg = Config()
    seen: list[tuple[object, ...]] = []
    cfg.set("post_request", lambda worker, req: seen.append((worker, req)))
    cfg.post_request(1, 2, 3, 4)
    cfg.set("post_request", lambda worker, req, environ: seen.append((worker, req, environ)))
    cfg.post_request(1, 2, 3, 4)
    assert seen == [(1, 2), (1, 2, 3)]


def test_unknown_setting_suggests_nearest() -> None:
    with pytest.raises(ConfigError, match="did you mean 'workers'"):
        Config().set("wokers", 2, "config file x.py")


def test_derived_attributes() -> None:
    cfg = Config()
    cfg.set("raw_env", ["A=1", "B=x=y"])
    cfg.set("keyfile", "k.pem")
    assert cfg.env == {"A": "1", "B": "x=y"}
    assert cfg.is_ssl and cfg.ssl_options["keyfile"] == "k.pem"
    assert cfg.proc_name == "gcorn"
    cfg.set("proc_name", "web")
    assert cfg.proc_name == "web"
    cfg.set("worker_class", "collections.OrderedDict")
    assert cfg.worker_class.__name__ == "OrderedDict"
    assert cfg.worker_class_str == "collections.OrderedDict"


def _as_argv_text(value: object) -> str | None:
    if isinstance(value, bool) or value is None or isinstance(value, dict):
        return None
    if isinstance(value, list):
        return ",".join(str(item) for item in value) if value else None
    return str(value)


@pytest.mark.parametrize("name", [n for n, s in SETTINGS.items() if s.flags and n != "config"])
def test_every_flag_round_trips_its_default(name: str) -> None:
    from gcorn.cli.sources import build_config

    setting = SETTINGS[name]
    default = Config().values()[name]
    if setting.action in ("store_true", "store_const"):
        cfg = build_config([setting.flags[-1]], {})
        expected = setting.const if setting.action == "store_const" else True
        assert cfg.values()[name] == expected
        return
    text = _as_argv_text(default)
    if text is None or setting.action == "append":
        return
    cfg = build_config([setting.flags[-1], text], {})
    assert cfg.values()[name] == default
    assert cfg.source_of(name) == "argv"


@pytest.mark.parametrize(("argv", "expected"), [
    ([], True),
    (["--permit-unconventional-request-target"], True),
    (["--permit-unconventional-request-target=false"], False),
    (["--permit-unconventional-request-target", "no"], False),
])
def test_permit_unconventional_request_target_is_on_unless_turned_off(argv: list[str],
                                                                       expected: bool) -> None:
    """On by default (gunicorn serves such targets); the flag's optional value turns it off."""
    from gcorn.cli.sources import build_config

    cfg = build_config(argv, {})
    assert cfg.permit_unconventional_request_target is expected


def test_permit_unconventional_request_target_reaches_the_parser() -> None:
    """The setting travels, as the other parser switches, into gcorn.http's ParserOptions."""
    from gcorn.cli.sources import build_config
    from gcorn.workers.parsing import parser_factory

    for argv, expected in (([], True), (["--permit-unconventional-request-target=off"], False)):
        parser = parser_factory(build_config(argv, {}))()
        assert parser.options.permit_unconventional_request_target is expected
