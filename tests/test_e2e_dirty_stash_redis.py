"""Two real gcorn instances share their stash tables in one real redis-server (issue 14 §2)."""

from __future__ import annotations

import concurrent.futures
import os
import shutil
import signal
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import Gcorn, free_port, wait_until

REDIS_SERVER = shutil.which("redis-server")

DIRTY_APP = '''
import os
from gcorn.dirty import DirtyApp

class Keeper(DirtyApp):
    stashes = ["shared"]
    def whoami(self):
        return [os.getpid(), os.getppid()]
'''

WEB_APP = '''
import json
from urllib.parse import parse_qs
from gcorn.dirty import DirtyError, get_dirty_client, stash

def app(environ, start_response):
    path = environ["PATH_INFO"]
    q = {k: v[0] for k, v in parse_qs(environ["QUERY_STRING"]).items()}
    status = "200 OK"
    try:
        if path == "/incr":
            result = stash.incr("hits", "n")
        elif path == "/put":
            result = stash.put("shared", q["k"], q["v"], ttl=float(q["ttl"]) if "ttl" in q else None)
        elif path == "/get":
            result = stash.get("shared", q["k"], "<missing>")
        elif path == "/tables":
            result = stash.tables()
        elif path == "/whoami":
            result = get_dirty_client().execute("stashapp:Keeper", "whoami")
        else:
            result = "ok"
    except DirtyError as exc:
        status, result = f"{exc.status} Error", {"error": exc.message, "type": type(exc).__name__}
    body = json.dumps(result).encode()
    start_response(status, [("Content-Type", "application/json")])
    return [body]
'''


def redis_ping(port: int) -> Any:
    def probe(_: Any) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False
    return probe


@pytest.fixture
def redis(start_server: Any, tmp_path: Path) -> Any:
    if REDIS_SERVER is None:
        reason = "redis-server is not installed (apt-get install redis-server; tools/env.sh does)"
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    port = free_port()
    (tmp_path / "redis").mkdir()

    def start() -> Any:
        server = start_server([REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1",
                               "--save", "", "--appendonly", "no", "--dir", str(tmp_path / "redis")],
                              ready=redis_ping(port), name="redis-server")
        server.port = port
        server.restart = start
        return server

    return start()


def get_json(server: Gcorn, path: str) -> tuple[int, Any]:
    answer = server.get(path, timeout=10)
    return answer.status_code, answer.json()


def test_two_gcorn_instances_share_a_stash_table_in_redis(
        start_gcorn: Any, redis: Any, tmp_path: Path) -> None:
    (tmp_path / "stashapp.py").write_text(DIRTY_APP)
    (tmp_path / "stashweb.py").write_text(WEB_APP)
    args = ("-k", "sync", "-w", "2", "--dirty-workers", "1", "--dirty-app", "stashapp:Keeper",
            "--dirty-stash-backend", f"redis://127.0.0.1:{redis.port}/0", "stashweb:app")
    env = {"PYTHONPATH": str(tmp_path)}
    a = start_gcorn(*args, env=env, name="gcorn-a")
    b = start_gcorn(*args, env=env, name="gcorn-b")
    assert wait_until(lambda: get_json(a, "/tables")[0] == 200 and get_json(b, "/tables")[0] == 200, 15)
    assert "shared" in get_json(b, "/tables")[1]

    # written by one host, read by the other
    assert get_json(a, "/put?k=greeting&v=hello")[0] == 200
    assert get_json(b, "/get?k=greeting") == (200, "hello")

    # 60 increments from the HTTP workers of both instances: every value handed out once
    with concurrent.futures.ThreadPoolExecutor(8) as workers:
        values = list(workers.map(lambda i: get_json(a if i % 2 else b, "/incr"), range(60)))
    assert sorted(v for _, v in values) == list(range(1, 61)), values

    # a TTL seen from both
    assert get_json(a, "/put?k=brief&v=x&ttl=1.5")[0] == 200
    assert get_json(b, "/get?k=brief") == (200, "x")
    assert wait_until(lambda: get_json(b, "/get?k=brief") == (200, "<missing>"), 5)

    # the dirty arbiter of one instance dies: the master restarts it, the table is still there
    _, arbiter_pid = get_json(a, "/whoami")[1]
    os.kill(arbiter_pid, signal.SIGKILL)
    # (stash calls go through the arbiter: any answer now comes from its successor)
    assert wait_until(lambda: get_json(a, "/get?k=greeting") == (200, "hello"), 15), a.log()
    assert wait_until(lambda: (now := get_json(a, "/whoami"))[0] == 200 and now[1][1] != arbiter_pid, 15)
    assert get_json(a, "/incr") == (200, 61)

    # Redis goes away: a clear 503 naming the backend, from both; then it comes back (empty)
    redis.stop()
    for server in (a, b):
        status, body = get_json(server, "/get?k=greeting")
        assert status == 503 and body["type"] == "DirtyStashError", body
        assert f"127.0.0.1:{redis.port}/0 unreachable" in body["error"], body
    redis.restart()
    assert get_json(a, "/put?k=greeting&v=again")[0] == 200  # no gcorn restart
    assert get_json(b, "/get?k=greeting") == (200, "again")
    for server in (a, b):
        assert server.stop() == 0, server.log()
        assert "Traceback" not in server.log()


def test_a_bad_backend_url_stops_gcorn_before_it_starts(tmp_path: Path) -> None:
    (tmp_path / "stashapp.py").write_text(DIRTY_APP)
    (tmp_path / "stashweb.py").write_text(WEB_APP)
    server = Gcorn(["--dirty-workers", "1", "--dirty-app", "stashapp:Keeper",
                    "--dirty-stash-backend", "redis://127.0.0.1:6379/notadb", "stashweb:app"],
                   cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)}, ready_path=None)
    server.start()
    assert server.wait_exit(20) != 0
    assert ("invalid value for setting 'dirty_stash_backend' (--dirty-stash-backend) in argv: "
            "the db must be a number >= 0, got 'notadb'") in server.log()
    assert "Traceback" not in server.log()
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url, timeout=1)
