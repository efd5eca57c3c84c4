"""The stash: tables held by the dirty arbiter."""

from __future__ import annotations

import pytest
from dirty_helpers import ECHO

from gcorn.dirty import StashTableNotFoundError, stash


def test_every_stash_operation(pool):
    c = pool.client()
    kw = {"client": c}
    assert "declared" in stash.tables(**kw)  # EchoApp.stashes
    assert stash.exists("declared", **kw) and not stash.exists("models", **kw)
    stash.put("models", "bert", {"size": 3, "blob": b"\x00\x01"}, **kw)
    stash.put("models", "gpt", [1, 2], **kw)
    stash.put("models", 7, "int key", **kw)
    assert stash.get("models", "bert", **kw) == {"size": 3, "blob": b"\x00\x01"}
    assert stash.get("models", "nope", "dflt", **kw) == "dflt"
    assert stash.get("no-table", "k", **kw) is None
    assert stash.exists("models", "gpt", **kw) and not stash.exists("models", "x", **kw)
    assert sorted(stash.keys("models", "b*", **kw)) == ["bert"]
    assert len(stash.keys("models", **kw)) == 3
    assert stash.info("models", **kw)["size"] == 3
    assert stash.delete("models", "gpt", **kw) is True
    assert stash.delete("models", "gpt", **kw) is False
    stash.ensure("empty", **kw)
    assert stash.info("empty", **kw)["size"] == 0
    stash.clear("models", **kw)
    assert stash.keys("models", **kw) == []
    assert stash.delete_table("models", **kw) is True
    assert "models" not in stash.tables(**kw)
    with pytest.raises(StashTableNotFoundError, match="models"):
        stash.info("models", **kw)


def test_table_is_dict_like(pool):
    t = stash.table("sessions", client=pool.client())
    t["a"] = 1
    t["b"] = {"x": [1]}
    assert t["a"] == 1 and t.get("zz", 5) == 5
    assert "a" in t and "zz" not in t
    assert len(t) == 2 and sorted(t) == ["a", "b"]
    assert sorted(t.items()) == [("a", 1), ("b", {"x": [1]})]
    assert sorted(t.values(), key=repr) == [1, {"x": [1]}]
    del t["a"]
    with pytest.raises(KeyError):
        t["a"]
    with pytest.raises(KeyError):
        del t["a"]
    assert t.pop("b") == {"x": [1]} and t.pop("b", None) is None
    t.clear()
    assert len(t) == 0


def test_workers_reach_the_stash_too(pool):
    c = pool.client()
    assert c.execute(ECHO, "stash_roundtrip", "k", [1, "v"]) == [1, "v"]
    assert stash.get("fromworker", "k", client=c) == [1, "v"]


def test_incr_is_atomic_across_threads_and_processes(pool):
    import os
    import subprocess
    import sys
    import threading

    from gcorn.dirty import StashError

    c = pool.client()
    assert stash.incr("counters", "hits", client=c) == 1  # missing: starts at 0
    assert stash.incr("counters", "hits", 4, client=c) == 5
    assert stash.incr("counters", "ratio", 0.5, client=c) == 0.5
    script = (f"from gcorn.dirty import stash, connect\n"
              f"c = connect({pool.socket!r}, timeout=10)\n"
              f"for _ in range(300): stash.incr('counters', 'n', client=c)\n")
    other = subprocess.Popen([sys.executable, "-c", script], env={**os.environ})

    def bump() -> None:
        mine = pool.client()
        for _ in range(100):
            stash.incr("counters", "n", client=mine)

    threads = [threading.Thread(target=bump) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert other.wait(30) == 0
    assert stash.get("counters", "n", client=c) == 900  # no update lost
    stash.put("counters", "name", "text", client=c)
    with pytest.raises(StashError, match="is a str, not a number"):
        stash.incr("counters", "name", client=c)
    with pytest.raises(StashError, match="int or float"):
        stash.incr("counters", "n", "1", client=c)


def test_gunicorn_names_stash_client_and_socket_path(pool, monkeypatch):
    from gcorn.dirty import StashClient, StashError, StashTable
    from gcorn.dirty.stash import get_stash_socket_path, set_stash_socket_path

    monkeypatch.delenv("GCORN_DIRTY_SOCKET", raising=False)
    with pytest.raises(StashError, match="set_stash_socket_path"):
        get_stash_socket_path()
    with pytest.raises(StashError):
        stash.put("t", "k", 1)
    set_stash_socket_path(pool.socket)
    try:
        assert get_stash_socket_path() == pool.socket
        stash.put("gu", "k", [1, 2])  # the module functions follow the path
        assert stash.get("gu", "k") == [1, 2]
        with StashClient(pool.socket, timeout=5) as sc:
            assert sc.get("gu", "k") == [1, 2] and sc.exists("gu", "k")
            sc.put("gu", "j", "v")
            assert sorted(sc.keys("gu")) == ["j", "k"] and sc.incr("gu", "c", 2) == 2
            t = sc.table("gu")
            assert isinstance(t, StashTable) and t["j"] == "v" and len(t) == 3
            assert StashTable(sc, "gu")["j"] == "v"  # gunicorn's argument order
            assert sc.info("gu")["size"] == 3 and "gu" in sc.tables()
            assert sc.delete("gu", "j") and sc.delete_table("gu")
    finally:
        set_stash_socket_path(None)
    monkeypatch.setenv("GCORN_DIRTY_SOCKET", pool.socket)
    assert get_stash_socket_path() == pool.socket
