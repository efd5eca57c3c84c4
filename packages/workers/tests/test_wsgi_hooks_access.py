"""pre_request/post_request hooks with gunicorn-shaped objects, and the access log."""

from __future__ import annotations

import base64
import json
import os
import re
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from workers_helpers import wait_until
from wsgi_support import Server


@pytest.mark.parametrize("worker", ["sync", "gthread"])
def test_hooks_and_access_log(tmp_path, worker):
    out = tmp_path / "hooks.jsonl"
    srv = Server(tmp_path, worker=worker, hooks="wsgi_hooks", access_log=True,
                 env={"WSGI_TEST_HOOKS_OUT": str(out)},
                 settings={"max_requests": 1000, "access_log_format":
                           '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" '
                           '%(m)s %(U)s %(q)s %(H)s %(B)s %({x-test}i)s %({content-type}o)s '
                           '%({wsgi.url_scheme}e)s %(p)s %(D)s %(L)s %(missing)s'}).start()
    try:
        auth = base64.b64encode(b"alice:secret").decode()
        status, _, body = srv.request(
            "POST", "/echo?k=v", body=b"hello",
            headers={"X-Test": "yes", "Referer": "http://ref/", "User-Agent": "ua/1",
                     "Authorization": f"Basic {auth}", "Content-Type": "text/plain"})
        assert status == 200 and body == b"hello"
        def recorded():
            entries = [json.loads(x) for x in out.read_text().splitlines()]
            done = any(e["hook"] == "post_request" and e["path"] == "/echo" for e in entries)
            return entries if done else None

        entries = wait_until(recorded)
        init = [e for e in entries if e["hook"] == "post_worker_init"]
        assert init and init[0]["max_requests"] == 1000
        pre = [e for e in entries if e["hook"] == "pre_request" and e["path"] == "/echo"][0]
        assert pre["method"] == "POST"
        assert pre["uri"] == "/echo?k=v"
        assert pre["query"] == "k=v"
        assert pre["version"] == [1, 1]
        assert pre["scheme"] == "http"
        assert ["X-TEST", "yes"] in pre["headers"]
        post = [e for e in entries if e["hook"] == "post_request" and e["path"] == "/echo"][0]
        assert post["status"] == "200 OK"
        assert post["status_code"] == 200
        assert post["sent"] == 5
        assert post["environ_path"] == "/echo"
        assert ["Content-Length", "5"] in post["headers"]
        line = wait_until(lambda: [x for x in srv.access_lines() if "/echo" in x])[0]
        pattern = (r'127\.0\.0\.1 - alice \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] '
                   r'"POST /echo\?k=v HTTP/1\.1" 200 5 "http://ref/" "ua/1" '
                   r'POST /echo k=v HTTP/1\.1 5 yes application/octet-stream http '
                   r'<\d+> \d+ \d+\.\d{6} -$')
        assert re.match(pattern, line), line
    finally:
        assert srv.stop() == 0


@pytest.mark.parametrize("worker", ["sync", "gthread"])
def test_a_failing_hook_costs_one_request_not_the_worker(tmp_path, worker):
    out = tmp_path / "hooks.jsonl"
    srv = Server(tmp_path, worker=worker, hooks="wsgi_hooks",
                 env={"WSGI_TEST_HOOKS_OUT": str(out)}).start()
    try:
        pid = srv.request("GET", "/pid")[2]
        status, _, body = srv.request("GET", "/hook-boom")
        assert status == 500 and b"hook failure" not in body
        assert srv.request("GET", "/pid")[2] == pid
        assert "hook failure" in srv.log()
    finally:
        assert srv.stop() == 0


def test_rejected_requests_are_in_the_access_log(tmp_path):
    srv = Server(tmp_path, worker="gthread", access_log=True,
                 settings={"header_map": "refuse"}).start()
    try:
        assert srv.raw(b"GARBAGE\r\n\r\n").startswith(b"HTTP/1.1 400")
        assert srv.raw(b"GET /x?y HTTP/1.1\r\nA_B: 1\r\n\r\n").startswith(b"HTTP/1.1 400")
        lines = wait_until(lambda: [x for x in srv.access_lines() if '" 400 ' in x]
                         if len([x for x in srv.access_lines() if '" 400 ' in x]) >= 2 else None)
        assert any('"- - -" 400' in x for x in lines), lines
        assert any('"GET /x?y HTTP/1.1" 400' in x for x in lines), lines
    finally:
        assert srv.stop() == 0
