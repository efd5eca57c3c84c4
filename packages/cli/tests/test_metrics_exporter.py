"""`metrics_bind`'s validator and the scoreboard collector, in process (no server)."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gcorn.arbiter.scoreboard import Restart, Scoreboard
from gcorn.cli.config import Config
from gcorn.cli.errors import ConfigError
from gcorn.cli.metrics import ScoreboardCollector, metrics_address
from gcorn.cli.settings.validators import metrics_address as validate


@pytest.mark.parametrize("good", ["127.0.0.1:9101", "localhost:9101", ":9101", "[::1]:9101",
                                  "unix:/run/m.sock", "unix:///run/m.sock"])
def test_accepted_addresses(good: str) -> None:
    assert validate(good) == good


@pytest.mark.parametrize("bad", ["9101", "host", "[::1]", "[]:1", "::1:9101", "h:0", "h:x",
                                 "unix:", "fd://3", "tcp://h:1", "h:1/metrics"])
def test_refused_addresses(bad: str) -> None:
    with pytest.raises(ValueError):
        validate(bad)
    with pytest.raises(ConfigError, match="metrics_bind"):
        Config().set("metrics_bind", bad, "the command line")


def test_off_by_default_and_empty_is_off() -> None:
    assert Config().metrics_bind is None
    assert validate("") is None and validate(None) is None


def test_unresolvable_host_names_the_setting() -> None:
    with pytest.raises(ConfigError, match=r"metrics_bind.*'no-such-host\.invalid:1'"):
        metrics_address("no-such-host.invalid:1")


def test_the_worker_class_label_is_the_short_name() -> None:
    cfg = Config()
    assert cfg.worker_class_label == "sync"
    cfg.set("threads", 4)
    assert cfg.worker_class_label == "gthread"
    cfg.set("worker_class", "gcorn.workers.sync.SyncWorker")
    assert cfg.worker_class_label == "gcorn.workers.sync.SyncWorker"


def test_the_collector_turns_the_board_into_families() -> None:
    board = Scoreboard(slots=2)
    slot = board.claim(1, "asgi")
    board.set_pid(slot, 99)
    stats = board.stats_for(slot, detailed=True)
    for status in (200, 200, 503):
        stats.begin()
        stats.end("GET", status, 0.02)
    registry = CollectorRegistry()
    registry.register(ScoreboardCollector(board))
    families = {f.name: f for f in text_string_to_metric_families(
        generate_latest(registry).decode())}
    requests = {(s.labels["method"], s.labels["status"]): s.value
                for s in families["gcorn_http_requests"].samples}
    assert requests == {("GET", "2xx"): 2, ("GET", "5xx"): 1}
    hist = {s.labels.get("le"): s.value for s in families[
        "gcorn_http_request_duration_seconds"].samples if s.name.endswith("_bucket")}
    assert hist["0.01"] == 0 and hist["0.025"] == 3 and hist["+Inf"] == 3
    assert families["gcorn_up"].samples[0].value == 0  # the master has not said ready
    board.set_ready(True, 1)
    board.release(slot, Restart.CRASH)
    families = {f.name: f for f in text_string_to_metric_families(
        generate_latest(registry).decode())}
    assert families["gcorn_up"].samples[0].value == 1
    restarts = {s.labels["reason"]: s.value for s in families["gcorn_worker_restarts"].samples}
    assert restarts["crash"] == 1 and sum(restarts.values()) == 1
    assert sum(s.value for s in families["gcorn_http_requests"].samples) == 3
    assert families["gcorn_worker_heartbeat_age_seconds"].samples == []
    board.close()
