"""The systemd units, the container and the Kubernetes manifest of docs/deploy.md, run.

No systemd or kubelet runs here: the test plays their part with what they hand gcorn.
For systemd (docs/deploy/gcorn.socket and gcorn.service) that is the listening
socket of `ListenStream` as fd 3 with LISTEN_FDS/LISTEN_PID, and a NOTIFY_SOCKET
datagram socket on which `Type=notify` expects READY=1, RELOADING=1 (ExecReload's
HUP) and STOPPING=1. For Kubernetes (docs/deploy/kubernetes.yaml) it is the
container's args and env, the readiness probe's GET, and the TERM that follows the
preStop hook: requests in flight finish and gcorn exits 0 within graceful_timeout.
"""

from __future__ import annotations

import json
import os
import re
import runpy
import shlex
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import DEPLOY, GCORN, ExternalServer, Gcorn, deploy_config, wait_until

APP = '''
import time

def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/healthz":
        body = b"ok"
    elif path == "/slow":
        time.sleep(1.5)
        body = b"slow done"
    else:
        body = ("hello from " + environ["SERVER_NAME"]).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
'''


def unit_value(text: str, key: str) -> str:
    """The value of `key=` in a systemd unit file (its one occurrence)."""
    values = re.findall(rf"^{key}=(.*)$", text, re.MULTILINE)
    assert len(values) == 1, (key, values)
    return values[0].strip()


def test_systemd_socket_activation_and_notify(start_server: Callable[..., ExternalServer],
                                              tmp_path: Path) -> None:
    (tmp_path / "myapp.py").write_text(APP)
    (tmp_path / "gcorn.conf.py").write_text(deploy_config("gcorn.conf.py"))
    socket_unit = (DEPLOY / "gcorn.socket").read_text()
    service = (DEPLOY / "gcorn.service").read_text()
    assert unit_value(service, "Type") == "notify"
    assert unit_value(socket_unit, "ListenStream") == "127.0.0.1:8000"
    ctl = tmp_path / "gcorn.ctl"
    exec_start = shlex.split(deploy_config("gcorn.service", {
        "/srv/myapp/.venv/bin/gcorn": GCORN,
        "/srv/myapp/gcorn.conf.py": str(tmp_path / "gcorn.conf.py"),
        "/run/gcorn/gcorn.ctl": str(ctl),
    }).split("ExecStart=", 1)[1].split("\n", 1)[0])
    # what systemd does for the socket unit: bind, listen, and pass the socket as fd 3
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(int(unit_value(socket_unit, "Backlog")))
    port = listener.getsockname()[1]
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(15)
    fd = listener.fileno()
    # LISTEN_PID must be the pid of gcorn itself: a stand-in for systemd's exec sets
    # its own, moves the socket to fd 3 and execs gcorn
    wrapper = [sys.executable, "-c", _SYSTEMD_EXEC, str(fd)]
    server = start_server(
        [*wrapper, *exec_start], name="gcorn", pass_fds=(fd,), wait=False,
        env={**_clean_env(), "NOTIFY_SOCKET": str(tmp_path / "notify")})
    try:
        ready = notify.recv(4096).decode()
        assert ready.startswith("READY=1"), ready
        got = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
        assert got.status_code == 200 and got.text == "hello from 127.0.0.1"
        assert "0.0.0.0:8000" not in server.log()  # the config's bind is not used
        assert ctl.exists()
        # ExecReload: kill -s HUP $MAINPID
        server.proc.send_signal(signal.SIGHUP)
        assert notify.recv(4096).decode().startswith("RELOADING=1")
        assert notify.recv(4096).decode() == "READY=1"
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200
        # systemctl stop: TERM to the master (KillMode=mixed)
        server.proc.send_signal(signal.SIGTERM)
        assert notify.recv(4096).decode() == "STOPPING=1"
        assert server.wait_exit(float(unit_value(service, "TimeoutStopSec"))) == 0
        # the socket is systemd's: still listening for the next start, connections queue
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
    finally:
        notify.close()
        listener.close()


_SYSTEMD_EXEC = """
import os, sys
fd = int(sys.argv[1])
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS="1")
os.execv(sys.argv[2], sys.argv[2:])
"""


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if k not in ("GCORN_DIRTY_SOCKET", "NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID")
            } | {"GCORN_CMD_ARGS": "", "PYTHONUNBUFFERED": "1"}


def _find(pattern: str, text: str) -> str:
    """The first group of `pattern` in `text` (a failed assertion names a missing one)."""
    found = re.search(pattern, text, re.MULTILINE)
    assert found is not None, f"docs/deploy/kubernetes.yaml no longer matches {pattern!r}"
    return found[1]


def manifest() -> dict[str, Any]:
    """What the test needs of docs/deploy/kubernetes.yaml (read without a YAML library)."""
    text = (DEPLOY / "kubernetes.yaml").read_text()
    readiness = text.split("readinessProbe:", 1)[1]
    return {
        "args": json.loads(_find(r"^\s+args: (\[.*\])$", text)),
        "env": dict(re.findall(r"- name: (\w+).*\n\s+value: \"(.*)\"", text)),
        "grace": int(_find(r"terminationGracePeriodSeconds: (\d+)", text)),
        "pre_stop": json.loads(_find(r"preStop:\s+exec:\s+command: (\[.*\])", text)),
        "readiness_path": _find(r"path: (\S+)", readiness),
        "readiness_port": int(_find(r"port: (\d+)", readiness)),
    }


def test_container_and_kubernetes_graceful_stop(start_gcorn: Callable[..., Gcorn],
                                                tmp_path: Path) -> None:
    pod = manifest()
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    cmd = re.search(r"^CMD (\[.*\])$", dockerfile, re.MULTILINE)
    assert cmd is not None and json.loads(cmd[1]) == pod["args"]  # the same command
    conf = runpy.run_path(str(DEPLOY / "gcorn.conf.py"))
    assert pod["readiness_port"] == int(conf["bind"][0].rsplit(":", 1)[1])
    sleep = int(pod["pre_stop"][-1])
    # the KILL after terminationGracePeriodSeconds must never cut a request short
    assert pod["grace"] > sleep + conf["graceful_timeout"], pod

    (tmp_path / "myapp.py").write_text(APP)
    (tmp_path / "gcorn.conf.py").write_text(deploy_config("gcorn.conf.py"))
    args = [tmp_path / "gcorn.conf.py" if arg == "/srv/myapp/gcorn.conf.py" else arg
            for arg in pod["args"][1:]]
    # the harness puts `-b 127.0.0.1:PORT` first: the command line overrides the config's
    # bind, as gunicorn; two workers rather than the manifest's four on a small machine
    env = pod["env"] | {"GCORN_WORKERS": "2", "FORWARDED_ALLOW_IPS": "127.0.0.1"}
    gcorn = start_gcorn(*map(str, args), env=env, ready_path=pod["readiness_path"])
    probe = gcorn.get(pod["readiness_path"])
    assert (probe.status_code, probe.text) == (200, "ok")

    slow: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: slow.update(
        response=httpx.get(gcorn.url + "/slow", timeout=10)))
    thread.start()
    time.sleep(0.5)  # the request is in flight in a worker
    started = time.monotonic()
    gcorn.proc.send_signal(signal.SIGTERM)  # what the kubelet sends after preStop
    thread.join(10)
    assert slow["response"].status_code == 200 and slow["response"].text == "slow done"
    # gcorn stops listening: the readiness probe fails, new connections are refused
    assert wait_until(lambda: not _connects(gcorn.port), timeout=5)
    assert gcorn.wait_exit(conf["graceful_timeout"]) == 0
    assert time.monotonic() - started < conf["graceful_timeout"]


def _connects(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.mark.parametrize("name", ["gcorn.socket", "gcorn.service"])
def test_units_have_their_install_section(name: str) -> None:
    text = (DEPLOY / name).read_text()
    assert "[Install]" in text and "WantedBy=" in text
