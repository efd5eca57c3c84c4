"""The stash in a real Redis (dirty_stash_backend / --stash-backend), and TTLs in both stores."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import pytest
from dirty_helpers import ECHO, wait_for

from gcorn.dirty import DirtyStashError, StashError, StashTableNotFoundError, stash
from gcorn.dirty.config import check_stash_backend
from gcorn.dirty.errors import DirtyConfigError
from gcorn.dirty.stash_url import parse_stash_url

pytest.importorskip("redis", reason="redis-py is missing: pip install 'gcorn-dirty[redis]'")


def redis_pool(make_pool, url: str, workers: int = 1, codec: str = "safe"):
    return make_pool([ECHO], workers=workers, extra=["--stash-backend", url, "--codec", codec])


def raw_redis(server):
    import redis

    return redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=5)


def test_every_operation_lands_in_one_redis_hash_per_table(make_pool, redis_server):
    pool = redis_pool(make_pool, redis_server.url)
    kw = {"client": pool.client()}
    assert "declared" in stash.tables(**kw)  # EchoApp.stashes, registered at start
    assert stash.exists("declared", **kw) and not stash.exists("models", **kw)
    stash.put("models", "bert", {"size": 3, "blob": b"\x00\x01"}, **kw)
    stash.put("models", "gpt", [1, 2], **kw)
    stash.put("models", 7, "int key", **kw)
    stash.put("models", "pi", 3.5, **kw)
    assert stash.get("models", "bert", **kw) == {"size": 3, "blob": b"\x00\x01"}
    assert stash.get("models", 7, **kw) == "int key" and stash.get("models", "pi", **kw) == 3.5
    assert stash.get("models", "nope", "dflt", **kw) == "dflt"
    assert stash.get("no-table", "k", **kw) is None
    assert stash.exists("models", "gpt", **kw) and not stash.exists("models", "x", **kw)
    assert sorted(stash.keys("models", "b*", **kw)) == ["bert"]
    assert sorted(map(str, stash.keys("models", **kw))) == ["7", "bert", "gpt", "pi"]
    assert stash.info("models", **kw) == {"name": "models", "size": 4}
    # the layout: one hash per table under the prefix, str keys as their text
    r = raw_redis(redis_server)
    assert r.type("gcorn:stash:models") == b"hash" and r.hlen("gcorn:stash:models") == 4
    assert r.hget("gcorn:stash:models", "spi") == b"3.5"
    assert stash.delete("models", "gpt", **kw) is True
    assert stash.delete("models", "gpt", **kw) is False
    stash.ensure("empty", **kw)
    assert stash.info("empty", **kw)["size"] == 0 and "empty" in stash.tables(**kw)
    stash.clear("models", **kw)
    assert stash.keys("models", **kw) == [] and stash.exists("models", **kw)
    assert stash.delete_table("models", **kw) is True
    assert "models" not in stash.tables(**kw) and not r.exists("gcorn:stash:models")
    with pytest.raises(StashTableNotFoundError, match="models"):
        stash.info("models", **kw)
    # the dict-like view and the workers go through the same store
    t = stash.table("sessions", **kw)
    t["a"] = 1
    t["b"] = {"x": [1]}
    assert t["a"] == 1 and "a" in t and len(t) == 2
    assert sorted(t.items()) == [("a", 1), ("b", {"x": [1]})]
    assert t.pop("b") == {"x": [1]}
    with pytest.raises(KeyError):
        t["b"]
    assert kw["client"].execute(ECHO, "stash_roundtrip", "k", [1, "v"]) == [1, "v"]
    assert r.hexists("gcorn:stash:fromworker", "sk")


def test_counters_stay_exact_under_increments_from_processes_on_two_pools(make_pool, redis_server):
    # two pools (two arbiters, as on two hosts) share the table; 4 processes x 150 increments
    a = redis_pool(make_pool, redis_server.url)
    b = redis_pool(make_pool, redis_server.url)
    script = ("import sys\nfrom gcorn.dirty import stash, connect\n"
              "c = connect(sys.argv[1], timeout=10)\n"
              "for _ in range(150): stash.incr('counters', 'n', client=c)\n")
    procs = [subprocess.Popen([sys.executable, "-c", script, sock], env=dict(os.environ))
             for sock in (a.socket, b.socket, a.socket, b.socket)]
    assert [p.wait(60) for p in procs] == [0, 0, 0, 0]
    assert stash.get("counters", "n", client=b.client()) == 600  # no update lost
    ca = a.client()
    assert stash.incr("counters", "f", 0.25, client=ca) == 0.25
    assert stash.incr("counters", "f", 1, client=ca) == 1.25
    assert stash.incr("counters", "whole", 1.5, client=ca) == 1.5
    assert stash.incr("counters", "whole", 0.5, client=ca) == 2.0
    assert type(stash.get("counters", "whole", client=ca)) is float  # stays a float
    assert stash.incr("counters", "n", -600, client=ca) == 0
    stash.put("counters", "name", "text", client=ca)
    with pytest.raises(StashError, match="is a str, not a number"):
        stash.incr("counters", "name", client=ca)
    stash.put("counters", "top", 2**63 - 1, client=ca)
    with pytest.raises(StashError, match="overflow"):
        stash.incr("counters", "top", client=ca)


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_entries_put_with_a_ttl_expire(make_pool, make_redis, backend):
    extra = [] if backend == "memory" else ["--stash-backend", make_redis().url]
    pool = make_pool([ECHO], workers=1, extra=extra)
    c = pool.client()
    stash.put("cache", "short", "v", ttl=1.5, client=c)  # long enough for a loaded CI machine
    stash.put("cache", "long", "w", ttl=60, client=c)
    stash.put("cache", "kept", "x", client=c)
    stash.put("cache", "renewed", 1, ttl=1.5, client=c)
    stash.put("cache", "renewed", 2, client=c)  # a put without a ttl makes it permanent
    stash.put("cache", "counter", 1, ttl=1.5, client=c)
    assert stash.incr("cache", "counter", client=c) == 2  # incr keeps the ttl
    assert stash.get("cache", "short", client=c) == "v" and len(stash.keys("cache", client=c)) == 5
    assert wait_for(lambda: not stash.exists("cache", "short", client=c)
                    and not stash.exists("cache", "counter", client=c), 5)
    assert stash.get("cache", "short", "gone", client=c) == "gone"
    assert stash.get("cache", "counter", client=c) is None
    assert sorted(stash.keys("cache", client=c)) == ["kept", "long", "renewed"]
    assert stash.info("cache", client=c)["size"] == 3
    assert stash.exists("cache", client=c)  # the table stays, as in the arbiter's memory
    with pytest.raises(StashError, match="ttl must be a number of seconds > 0"):
        stash.put("cache", "k", 1, ttl=0, client=c)
    with pytest.raises(StashError, match="ttl"):
        stash.put("cache", "k", 1, ttl="1", client=c)
    t = stash.table("cache", client=c)
    t.put("viaTable", 1, ttl=1.0)
    assert "viaTable" in t and wait_for(lambda: "viaTable" not in t, 5)


def test_tables_survive_a_dirty_arbiter_restart(make_pool, redis_server):
    first = redis_pool(make_pool, redis_server.url)
    stash.put("sessions", "u1", {"name": "Ada"}, client=first.client())
    stash.incr("counters", "boots", client=first.client())
    assert first.stop() == 0
    second = redis_pool(make_pool, redis_server.url)
    c = second.client()
    assert stash.get("sessions", "u1", client=c) == {"name": "Ada"}
    assert stash.incr("counters", "boots", client=c) == 2
    assert {"declared", "sessions", "counters"} <= set(stash.tables(client=c))


def test_redis_restarted_mid_run_is_a_clear_error_then_recovers(make_pool, redis_server):
    pool = redis_pool(make_pool, redis_server.url)
    c = pool.client()
    stash.put("t", "k", "before", client=c)
    redis_server.stop()
    started = time.monotonic()
    with pytest.raises(DirtyStashError, match=f"127.0.0.1:{redis_server.port}/0 unreachable") as info:
        stash.get("t", "k", client=c)
    assert time.monotonic() - started < 3
    assert info.value.status == 503 and info.value.details["backend"].endswith(f":{redis_server.port}/0")
    with pytest.raises(DirtyStashError):
        stash.put("t", "k", "during", client=c)
    assert pool.status()["workers"]  # the arbiter itself keeps answering
    redis_server.start()  # same port, empty (nothing is saved)
    assert stash.get("t", "k", "empty", client=c) == "empty"  # no restart of the pool
    stash.put("t", "k", "after", client=c)
    assert stash.get("t", "k", client=c) == "after"
    # a restart between two calls: the kept connection is dead, the call still succeeds
    redis_server.restart()
    assert stash.incr("t", "n", client=c) == 1


def test_a_redis_that_never_answers_is_bounded_by_the_url_timeout(make_pool, tmp_path):
    # a listener that accepts (the kernel's backlog) and never answers: a black hole
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(16)
    try:
        url = f"redis://127.0.0.1:{hole.getsockname()[1]}/0?timeout=0.5"
        pool = redis_pool(make_pool, url)
        c = pool.client()
        started = time.monotonic()
        with pytest.raises(DirtyStashError, match="unreachable"):
            stash.put("t", "k", 1, client=c)
        assert time.monotonic() - started < 3
        assert "the stash calls fail until it answers" in pool.log()
    finally:
        hole.close()


def test_unix_socket_url_with_db_prefix_and_password(make_pool, make_redis):
    server = make_redis("--requirepass", "s3cret")
    url = f"unix://:s3cret@{server.unix_path}?db=2&prefix=app1"
    pool = redis_pool(make_pool, url)
    stash.put("t", "k", "v", client=pool.client())
    import redis

    r = redis.Redis(unix_socket_path=server.unix_path, password="s3cret", db=2, socket_timeout=5)
    assert r.hget("app1:t", "sk") is not None and r.smembers("app1-tables") >= {b"t"}
    assert "s3cret" not in pool.log()
    wrong = redis_pool(make_pool, f"redis://:nope@127.0.0.1:{server.port}/2")
    with pytest.raises(DirtyStashError, match=r"redis://:\*\*\*@127.0.0.1") as info:
        stash.get("t", "k", client=wrong.client())
    assert "nope" not in str(info.value)


def test_a_pickle_pool_stores_any_value_and_a_safe_pool_refuses_to_unpickle(make_pool, redis_server):
    pickle_pool = redis_pool(make_pool, redis_server.url, codec="pickle")
    safe_pool = redis_pool(make_pool, redis_server.url)
    stash.put("mixed", "list", [1, "two"], client=safe_pool.client())
    assert stash.get("mixed", "list", client=pickle_pool.client()) == [1, "two"]
    # a pickle pool's arbiter codes values with pickle; the client channel stays safe
    pickle_pool.client().execute(ECHO, "stash_roundtrip", "p", {"a": 1})
    with pytest.raises(StashError, match="another dirty_codec"):
        stash.get("fromworker", "p", client=safe_pool.client())


BAD_URLS = [
    ("http://127.0.0.1:6379/0", "scheme must be redis://, rediss:// or unix://"),
    ("127.0.0.1:6379", "scheme must be"),
    ("redis://127.0.0.1:99999/0", "port must be a number in 1..65535"),
    ("redis://127.0.0.1:abc/0", "port must be a number"),
    ("redis://127.0.0.1:0/0", "port must be a number"),
    ("redis://127.0.0.1:6379/zero", "db must be a number >= 0, got 'zero'"),
    ("redis://127.0.0.1:6379/-1", "db must be a number"),
    ("redis://127.0.0.1:6379/0?bogus=1", "unknown parameter 'bogus'"),
    ("redis://127.0.0.1:6379/0?timeout=0", "timeout must be a number of seconds > 0"),
    ("unix://relative/redis.sock", "unix:// takes a path, not a host"),
    ("redis://:hunter2@127.0.0.1:x/0", "port must be a number"),
]


@pytest.mark.parametrize(("url", "message"), BAD_URLS, ids=[u for u, _ in BAD_URLS])
def test_a_bad_url_is_a_config_error_naming_the_setting(url, message):
    with pytest.raises(DirtyConfigError, match="dirty_stash_backend") as info:
        parse_stash_url(url)
    assert message in str(info.value) and "--stash-backend" in str(info.value)
    assert "hunter2" not in str(info.value)


def test_good_urls_parse():
    assert parse_stash_url(None) is None and parse_stash_url("") is None
    u = parse_stash_url("rediss://alice:p%40ss@cache.example:6380/3?prefix=shop&timeout=0.25")
    assert (u.scheme, u.host, u.port, u.db, u.username, u.password, u.prefix, u.timeout) == (
        "rediss", "cache.example", 6380, 3, "alice", "p@ss", "shop", 0.25)
    assert u.display == "rediss://alice:***@cache.example:6380/3"
    v = parse_stash_url("unix:///run/redis/redis.sock?db=5")
    assert (v.path, v.db, v.password) == ("/run/redis/redis.sock", 5, None)
    assert parse_stash_url("redis://localhost").port == 6379


def test_the_command_refuses_a_bad_url_before_starting(tmp_path):
    out = subprocess.run([sys.executable, "-m", "gcorn.dirty.cli", "serve", ECHO, "--socket",
                          str(tmp_path / "s.sock"), "--stash-backend", "redis://h:6379/db1"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert "dirty_stash_backend (--stash-backend): the db must be a number >= 0" in out.stderr
    assert not (tmp_path / "s.sock").exists()


def test_a_redis_url_without_redis_py_names_the_extra(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "redis" else real(name, *a))
    with pytest.raises(DirtyConfigError, match=r"dirty_stash_backend .*gcorn-dirty\[redis\]"):
        check_stash_backend("redis://127.0.0.1:6379/0")
    assert check_stash_backend(None) is None  # the default store needs nothing


def test_arbiter_threads_answer_stash_calls_concurrently(make_pool, redis_server):
    # many threads, one pool: every call answered, none mixed up (the replies keep their ids)
    pool = redis_pool(make_pool, redis_server.url)
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        c = pool.client()
        try:
            for j in range(30):
                stash.put("conc", f"{i}-{j}", [i, j], client=c)
                assert stash.get("conc", f"{i}-{j}", client=c) == [i, j]
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert stash.info("conc", client=pool.client())["size"] == 180
