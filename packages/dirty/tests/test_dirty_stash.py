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
