"""Server hooks for the WSGI worker tests: they record what they see to a JSON-lines file."""

from __future__ import annotations

import json
import os


def _record(entry):
    with open(os.environ["WSGI_TEST_HOOKS_OUT"], "a") as f:
        f.write(json.dumps(entry) + "\n")


def pre_request(worker, req):
    if req.path == "/hook-boom":
        raise RuntimeError("hook failure")
    _record({"hook": "pre_request", "method": req.method, "uri": req.uri, "path": req.path,
             "query": req.query, "version": list(req.version), "headers": req.headers,
             "scheme": req.scheme, "nr": worker.nr, "pid": worker.pid})


def post_request(worker, req, environ, resp):
    _record({"hook": "post_request", "path": req.path, "status": resp.status,
             "status_code": resp.status_code, "headers": resp.headers, "sent": resp.sent,
             "environ_path": environ.get("PATH_INFO")})


def post_worker_init(worker):
    _record({"hook": "post_worker_init", "pid": worker.pid,
             "max_requests": worker.max_requests})
