"""WSGI apps the worker tests run (one router, dispatched on PATH_INFO)."""

from __future__ import annotations

import json
import os
import sys
import time
from urllib.parse import parse_qs

HELLO = b"Hello, World!"


def _qs(environ):
    return {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}


def _json(start_response, data, status="200 OK"):
    body = json.dumps(data).encode()
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(body)))])
    return [body]


def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
    return [HELLO]


def env(environ, start_response):
    out = {}
    for key, value in environ.items():
        if isinstance(value, (str, bool, int)):
            out[key] = value
        elif isinstance(value, tuple):
            out[key] = list(value)
        else:
            out[key] = f"<{type(value).__name__}>"
    out["has_read"] = all(hasattr(environ["wsgi.input"], m)
                          for m in ("read", "readline", "readlines", "__iter__"))
    out["has_errors"] = all(hasattr(environ["wsgi.errors"], m)
                            for m in ("write", "writelines", "flush"))
    environ["wsgi.errors"].write("env app wrote to wsgi.errors\n")
    return _json(start_response, out)


def echo(environ, start_response):
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH")
    body = stream.read(int(length)) if length else stream.read()
    extra = stream.read()  # past the end of the body: must be empty
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(len(body))), ("X-Extra", str(len(extra)))])
    return [body]


def lines(environ, start_response):
    stream = environ["wsgi.input"]
    mode = _qs(environ).get("mode", "readline")
    if mode == "readline":
        out = []
        while True:
            line = stream.readline()
            if not line:
                break
            out.append(line.decode("latin-1"))
    elif mode == "readline-limit":
        out = [stream.readline(3).decode("latin-1") for _ in range(4)]
    elif mode == "readlines":
        out = [x.decode("latin-1") for x in stream.readlines()]
    elif mode == "iter":
        out = [x.decode("latin-1") for x in stream]
    else:
        size = int(mode)
        out = []
        while True:
            chunk = stream.read(size)
            if not chunk:
                break
            out.append(chunk.decode("latin-1"))
    return _json(start_response, out)


def chunked(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])

    def gen():
        for i in range(5):
            yield b"part%d;" % i
            yield b""  # empty items must not end a chunked body
    return gen()


def status(environ, start_response):
    code = environ["PATH_INFO"].rsplit("/", 1)[-1]
    start_response(f"{code} Whatever", [("Content-Type", "text/plain"),
                                        ("Content-Length", "4")])
    return [b"body"]


def write_callable(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"from-write;")
    return [b"from-iter"]


def error(environ, start_response):
    raise RuntimeError("secret-traceback-marker")


def error_after(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"first"
    raise RuntimeError("late failure")


def exc_info(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        raise ValueError("handled")
    except ValueError:
        start_response("500 Oops", [("Content-Type", "text/plain"), ("Content-Length", "4")],
                       sys.exc_info())
    return [b"oops"]


def twice(environ, start_response):
    start_response("200 OK", [])
    start_response("200 OK", [])
    return [b"never"]


def bad_header(environ, start_response):
    start_response("200 OK", [("X-Bad", "a\r\nInjected: yes")])
    return [b"x"]


def hop(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "3"),
                              ("Keep-Alive", "timeout=99"), ("Transfer-Encoding", "gzip"),
                              ("Upgrade", "h2c"), ("Server", "app"), ("X-Kept", "1")])
    return [b"hop"]


def conn_close(environ, start_response):
    start_response("200 OK", [("Content-Length", "2"), ("Connection", "close")])
    return [b"ok"]


class Closing:
    """An iterable whose close() leaves a marker file (PEP 3333: close() always called)."""

    def __init__(self, path, fail):
        self.path = path
        self.fail = fail

    def __iter__(self):
        yield b"a"
        if self.fail:
            raise RuntimeError("iteration failed")
        yield b"b"

    def close(self):
        with open(self.path, "a") as f:
            f.write("closed\n")


def closing(environ, start_response):
    q = _qs(environ)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Closing(q["path"], q.get("fail") == "1")


def file(environ, start_response):
    q = _qs(environ)
    f = open(q["path"], "rb")
    if "offset" in q:
        f.seek(int(q["offset"]))
    headers = [("Content-Type", "application/octet-stream")]
    if "length" in q:
        headers.append(("Content-Length", q["length"]))
    start_response("200 OK", headers)
    return environ["wsgi.file_wrapper"](f, 4096)


def slow(environ, start_response):
    time.sleep(float(_qs(environ).get("t", "1")))
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "4")])
    return [b"slow"]


def pid(environ, start_response):
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


def noread(environ, start_response):
    start_response("200 OK", [("Content-Length", "6")])
    return [b"noread"]


def big(environ, start_response):
    body = b"x" * (1 << 20)
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


def short(environ, start_response):
    start_response("200 OK", [("Content-Length", "10")])
    return [b"abc"]


def long(environ, start_response):
    start_response("200 OK", [("Content-Length", "3")])
    return [b"abcdef"]


def hints(environ, start_response):
    environ["wsgi.early_hints"]([("Link", "</style.css>; rel=preload; as=style")])
    start_response("200 OK", [("Content-Length", "5")])
    return [b"hints"]


def bigchunks(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return (bytes([65 + i]) * 300_000 for i in range(5))


ROUTES = {
    "/hints": hints, "/bigchunks": bigchunks,
    "/": hello, "/env": env, "/echo": echo, "/lines": lines, "/chunked": chunked,
    "/write": write_callable, "/error": error, "/error-after": error_after,
    "/exc-info": exc_info, "/twice": twice, "/bad-header": bad_header, "/hop": hop,
    "/conn-close": conn_close, "/closing": closing, "/file": file, "/slow": slow,
    "/pid": pid, "/noread": noread, "/big": big, "/short": short, "/long": long,
}


def router(environ, start_response):
    path = environ["PATH_INFO"]
    if path.startswith("/status/"):
        return status(environ, start_response)
    app = ROUTES.get(path)
    if app is None:
        return _json(start_response, {"path": path}, "404 Not Found")
    return app(environ, start_response)
