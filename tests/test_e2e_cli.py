"""The `gcorn` command end to end: config files with hooks, GCORN_CMD_ARGS, python: configs,
the access log format, USR1 log reopening, statsd datagrams and --reload, with real
processes, real sockets and real HTTP clients."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from harness import EXAMPLES, GCORN, Gcorn, wait_until


@pytest.fixture
def serve(start_gcorn: Callable[..., Gcorn], tmp_path: Path) -> Callable[..., Gcorn]:
    """`serve(args, env=None, ready=True)`: gcorn in tmp_path, with the example apps there."""
    shutil.copy(EXAMPLES / "hello.py", tmp_path / "hello.py")
    shutil.copy(EXAMPLES / "hello_asgi.py", tmp_path / "hello_asgi.py")

    def start(args: list[str], env: dict[str, str] | None = None, ready: bool = True) -> Gcorn:
        return start_gcorn(*args, env=env, wait=ready)

    return start


HOOKS_CONFIG = '''
# A gunicorn.conf.py, as gunicorn users write it.
import os

workers = 1
worker_class = "sync"
timeout = 20
graceful_timeout = 5
loglevel = "info"
HOOK_LOG = os.path.join(os.path.dirname(__file__), "hooks.log")


def _note(text):
    with open(HOOK_LOG, "a") as stream:
        stream.write(text + "\\n")


def on_starting(server):
    _note("on_starting")


def when_ready(server):
    _note("when_ready")


def post_fork(server, worker):
    _note("post_fork %d" % worker.pid)


def pre_request(worker, req):
    _note("pre_request %s %s" % (req.method, req.path))


def post_request(worker, req, environ, resp):
    _note("post_request %s %s" % (req.path, resp.status_code))


def worker_exit(server, worker):
    _note("worker_exit")


def on_exit(server):
    _note("on_exit")
'''


def test_gunicorn_config_with_hooks_runs_unchanged(serve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "gunicorn.conf.py").write_text(HOOKS_CONFIG)
    server = serve(["-c", "gunicorn.conf.py", "hello:app"])
    assert server.get("/greet").text == "Hello, World!\n"
    assert server.stop() == 0
    notes = (tmp_path / "hooks.log").read_text().splitlines()
    kinds = [line.split()[0] for line in notes]
    for hook in ("on_starting", "when_ready", "post_fork", "pre_request", "post_request",
                 "worker_exit", "on_exit"):
        assert hook in kinds, notes
    assert kinds.index("on_starting") < kinds.index("when_ready") < kinds.index("on_exit")
    assert "pre_request GET /greet" in notes and "post_request /greet 200" in notes


def test_default_config_file_and_env_args(serve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "gcorn.conf.py").write_text("wsgi_app = 'hello:app'\naccesslog = 'access.log'\n")
    server = serve([], env={"GCORN_CMD_ARGS": "--access-logformat 'env %(s)s %(U)s'"})
    server.get("/from-env")
    server.stop()
    assert (tmp_path / "access.log").read_text().splitlines()[-1] == "env 200 /from-env"


def test_python_module_config(serve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "site_gcorn_conf.py").write_text("wsgi_app = 'hello:app'\nworkers = 2\n")
    server = serve(["-c", "python:site_gcorn_conf"], env={"PYTHONPATH": str(tmp_path)})
    assert server.get().status_code == 200
    assert wait_until(lambda: server.log().count("Booting worker") >= 2 or
                    len(_children(server.proc.pid)) >= 2)


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def test_access_log_format_atoms(serve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    log_format = '%(h)s %(l)s "%(r)s" %(s)s %(b)s "%(a)s" %(m)s %(U)s %(q)s %(H)s %({x-req}i)s %({content-type}o)s %(p)s'
    server = serve(["--access-logfile", "a.log", "--access-logformat", log_format, "hello:app"])
    server.get("/path?x=1", headers={"User-Agent": "tester/1", "X-Req": "rid-7"})
    pid = _children(server.proc.pid)[0]
    server.stop()
    line = (tmp_path / "a.log").read_text().splitlines()[-1]
    assert line == (
        f'127.0.0.1 - "GET /path?x=1 HTTP/1.1" 200 14 "tester/1" GET /path x=1 HTTP/1.1 rid-7 '
        f"text/plain; charset=utf-8 <{pid}>"
    )


def test_default_access_log_to_stdout(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(["--access-logfile", "-", "hello:app"])
    server.get("/std", headers={"Referer": "http://ref/"})
    assert wait_until(lambda: '"GET /std HTTP/1.1" 200 14 "http://ref/"' in server.log())


def test_usr1_reopens_log_files(serve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server = serve([
        "--access-logfile", "a.log", "--access-logformat", "%(U)s", "--error-logfile", "e.log",
        "hello:app",
    ])
    server.get("/one")
    os.rename(tmp_path / "a.log", tmp_path / "a.log.1")
    os.rename(tmp_path / "e.log", tmp_path / "e.log.1")
    server.proc.send_signal(signal.SIGUSR1)
    assert wait_until(lambda: (tmp_path / "a.log").exists(), timeout=10)
    assert wait_until(lambda: (tmp_path / "e.log").exists(), timeout=10)
    # Workers reopen on the USR1 the master forwards; retry until the line lands.
    assert wait_until(
        lambda: server.get("/two") and "/two" in (tmp_path / "a.log").read_text(), timeout=10
    )
    # Requests served before a worker handled USR1 may land in the old file too.
    assert "/one" in (tmp_path / "a.log.1").read_text().splitlines()


def test_statsd_metrics(serve) -> None:  # type: ignore[no-untyped-def]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(0.5)
        port = receiver.getsockname()[1]
        server = serve(["--statsd-host", f"127.0.0.1:{port}", "--statsd-prefix", "app", "hello:app"])
        server.get("/")
        seen: set[str] = set()
        deadline = time.monotonic() + 5
        wanted = {"requests", "status", "duration", "workers"}
        while time.monotonic() < deadline and not wanted <= seen:
            try:
                data = receiver.recv(4096).decode()
            except TimeoutError:
                continue
            if data.startswith("app.gunicorn.requests:1|c"):
                seen.add("requests")
            if data.startswith("app.gunicorn.request.status.200:1|c"):
                seen.add("status")
            if data.startswith("app.gunicorn.request.duration:"):
                seen.add("duration")
            if data.startswith("app.gunicorn.workers:1|g"):
                seen.add("workers")
    assert wanted <= seen


WSGI_LIVE = (
    "def app(environ, start_response):\n"
    "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
    "    return [b'one']\n"
)
ASGI_LIVE = (
    "async def app(scope, receive, send):\n"
    "    if scope['type'] != 'http':\n"
    "        return\n"
    "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
    "    await send({'type': 'http.response.body', 'body': b'one'})\n"
)


@pytest.mark.parametrize(
    ("args", "source"),
    [([], WSGI_LIVE), (["-k", "gthread", "--reload-engine", "poll"], WSGI_LIVE),
     (["-k", "asgi", "--asgi-lifespan", "off"], ASGI_LIVE)],
)
def test_reload_restarts_worker_on_change(serve, tmp_path: Path, args: list[str], source: str) -> None:  # type: ignore[no-untyped-def]
    app_file = tmp_path / "live.py"
    app_file.write_text(source)
    server = serve(["--reload", *args, "live:app"])
    assert server.get().text == "one"
    time.sleep(1.2)  # the reloader's first pass records the files
    app_file.write_text(app_file.read_text().replace("b'one'", "b'two'"))

    def serves_two() -> bool:
        try:
            return server.get().text == "two"
        except httpx.HTTPError:
            return False

    assert wait_until(serves_two, timeout=8)


def test_hup_rereads_the_config_file(serve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    conf = tmp_path / "live.conf.py"
    conf.write_text("accesslog = 'a.log'\naccess_log_format = 'one %(U)s'\n")
    server = serve(["-c", "live.conf.py", "hello:app"])
    server.get("/before")
    conf.write_text("accesslog = 'a.log'\naccess_log_format = 'two %(U)s'\n")
    server.proc.send_signal(signal.SIGHUP)

    def new_format_used() -> bool:
        server.get("/after")
        return "two /after" in (tmp_path / "a.log").read_text()

    assert wait_until(new_format_used, timeout=8)
    assert "one /before" in (tmp_path / "a.log").read_text()


def test_hup_with_a_broken_config_keeps_serving(serve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    conf = tmp_path / "live.conf.py"
    conf.write_text("workers = 1\n")
    server = serve(["-c", "live.conf.py", "hello:app"])
    conf.write_text("wokers = 2\n")
    server.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: "reload failed" in server.log(), timeout=8)
    assert "did you mean 'workers'" in server.log()
    assert server.get().status_code == 200
    assert server.proc.poll() is None


def test_capture_output_sends_prints_to_the_error_log(serve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "noisy.py").write_text(
        "import sys\n"
        "def app(environ, start_response):\n"
        "    print('printed by the app', flush=True)\n"
        "    sys.stderr.write('stderr of the app\\n'); sys.stderr.flush()\n"
        "    start_response('200 OK', [('Content-Length', '2')])\n"
        "    return [b'ok']\n"
    )
    server = serve(["--capture-output", "--error-logfile", "err.log", "noisy:app"])
    assert server.get().text == "ok"
    text = (tmp_path / "err.log").read_text()
    assert "printed by the app" in text and "stderr of the app" in text
    assert "printed by the app" not in server.log()


def test_preload_imports_the_app_once_in_the_master(serve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "counted.py").write_text(
        "import os\n"
        "with open(os.path.join(os.path.dirname(__file__), 'imports.log'), 'a') as f:\n"
        "    f.write(str(os.getpid()) + '\\n')\n"
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Length', '2')])\n"
        "    return [b'ok']\n"
    )
    server = serve(["--preload", "-w", "2", "counted:app"])
    assert server.get().text == "ok"
    assert (tmp_path / "imports.log").read_text().split() == [str(server.proc.pid)]


def test_app_that_raises_on_import(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("raise RuntimeError('db not configured')\n")
    env = dict(os.environ, GCORN_CMD_ARGS="--bind 127.0.0.1:0")
    preload = subprocess.run(
        [GCORN, "--preload", "broken:app"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=20,
    )
    assert preload.returncode == 1
    lines = preload.stderr.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[-1] == "gcorn: error: error importing 'broken': RuntimeError: db not configured"
    # Without --preload the workers fail to load it: the crash-loop guard stops the master.
    started = time.monotonic()
    workers = subprocess.run(
        [GCORN, "--boot-failure-limit", "2", "broken:app"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=30,
    )
    assert workers.returncode == 3  # gunicorn's code: an import that raises is a boot failure
    assert "db not configured" in workers.stderr
    assert workers.stderr.rstrip().endswith("Reason: Worker failed to boot.")
    assert time.monotonic() - started < 15


@pytest.mark.parametrize(
    ("args", "app"),
    [([], "hello:app"), (["-k", "gthread", "--threads", "2"], "hello:app"),
     (["--threads", "2"], "hello:app"), (["-k", "asgi"], "hello_asgi:app")],
)
def test_example_apps_on_every_worker_class(serve, args: list[str], app: str) -> None:  # type: ignore[no-untyped-def]
    server = serve([*args, app])
    response = server.get("/")
    assert response.status_code == 200 and response.text == "Hello, World!\n"


def test_reload_serves_500_while_the_app_is_broken_then_recovers(serve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app_file = tmp_path / "editing.py"
    app_file.write_text("def app(environ, start_response:\n")  # a syntax error mid-edit
    server = serve(["--reload", "--error-logfile", "err.log", "editing:app"], ready=False)
    assert wait_until(lambda: _status(server) == 500, timeout=10), server.log()
    response = server.get()
    assert b"Traceback" not in response.content and b"SyntaxError" not in response.content
    assert "SyntaxError" in (tmp_path / "err.log").read_text()
    time.sleep(1.2)  # the reloader's first pass records the broken file
    app_file.write_text(
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Length', '5')])\n"
        "    return [b'fixed']\n"
    )
    assert wait_until(lambda: _status(server) == 200, timeout=8)
    assert server.get().text == "fixed"


def _status(server: Gcorn) -> int | None:
    try:
        return server.get().status_code
    except httpx.HTTPError:
        return None


@pytest.mark.parametrize(
    "args",
    [["--chdir", "site", "deep:app"], ["--pythonpath", "lib,other", "deep:app"],
     ["--chdir", "site", "deep:make('factory made')"]],
)
def test_chdir_pythonpath_and_factories(serve, tmp_path: Path, args: list[str]) -> None:  # type: ignore[no-untyped-def]
    source = (
        "def make(text='deep'):\n"
        "    def app(environ, start_response):\n"
        "        start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "        return [text.encode()]\n"
        "    return app\n"
        "app = make()\n"
    )
    for folder in ("site", "lib"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "deep.py").write_text(source)
    server = serve(args)
    expected = "factory made" if "make(" in args[-1] else "deep"
    assert server.get().text == expected


def test_example_config_file_serves_the_hello_app(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(["-c", str(EXAMPLES / "gcorn.conf.py")])
    assert server.get("/").text == "Hello, World!\n"
    assert wait_until(lambda: "gcorn is ready" in server.log())
