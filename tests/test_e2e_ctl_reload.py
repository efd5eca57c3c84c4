"""HUP applies the control socket settings of the edited config file, through `gcorn`.

A new `control_socket` path: the new socket is served (and logged), the old one
closed and its file removed; a new `control_socket_mode`: the socket's bits
change in place; `control_socket_disable`: no socket at all; and re-enabling
it brings one back. A path that cannot be served keeps the running socket.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

from harness import GCORN, Gcorn, wait_until

APP = '''
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok\\n"]
'''

Start = Callable[..., Gcorn]


def _ctl_works(path: Path) -> bool:
    proc = subprocess.run([GCORN, "ctl", "-s", str(path), "show", "stats", "--json"],
                          capture_output=True, text=True, timeout=20)
    return proc.returncode == 0 and '"reloads"' in proc.stdout


def _write_conf(conf: Path, **settings: object) -> None:
    conf.write_text("".join(f"{name} = {value!r}\n" for name, value in settings.items()))


def _hup(server: Gcorn, reloads: int) -> None:
    """HUP the master and wait until it has handled that many reloads."""
    os.kill(server.pid, signal.SIGHUP)
    assert wait_until(lambda: server.log().count("Handling signal: hup") >= reloads, 10)


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_hup_moves_rechmods_disables_and_reenables_the_control_socket(
        start_gcorn: Start, tmp_path: Path) -> None:
    (tmp_path / "ctlapp.py").write_text(APP)
    first, second = tmp_path / "first.ctl", tmp_path / "second.ctl"
    conf = tmp_path / "gcorn.conf.py"
    _write_conf(conf, control_socket=str(first))
    server = start_gcorn("-c", str(conf), "ctlapp:app")
    assert wait_until(lambda: f"Control socket listening at {first}" in server.log(), 5)
    assert _ctl_works(first) and _mode(first) == 0o600

    # a new path: served and logged; the old socket is closed and its file removed
    _write_conf(conf, control_socket=str(second))
    _hup(server, 1)
    assert wait_until(lambda: f"Control socket listening at {second}" in server.log(), 5)
    assert wait_until(lambda: not first.exists(), 5), server.log()
    assert _ctl_works(second)
    assert f"Control socket {first} closed" in server.log()

    # a new mode on the same path: the bits change, the socket stays
    inode = os.stat(second).st_ino
    _write_conf(conf, control_socket=str(second), control_socket_mode=0o660)
    _hup(server, 2)
    assert wait_until(lambda: _mode(second) == 0o660, 5), server.log()
    assert os.stat(second).st_ino == inode
    assert _ctl_works(second)

    # disabled: no socket at all
    _write_conf(conf, control_socket=str(second), control_socket_disable=True)
    _hup(server, 3)
    assert wait_until(lambda: not second.exists(), 5), server.log()
    assert not first.exists()
    assert server.get().status_code == 200  # the server itself goes on

    # enabled again
    _write_conf(conf, control_socket=str(first))
    _hup(server, 4)
    assert wait_until(lambda: server.log().count(f"Control socket listening at {first}") == 2,
                      5), server.log()
    assert _ctl_works(first)
    assert server.stop() == 0
    assert not first.exists() and not second.exists()


def test_a_new_path_that_cannot_be_served_keeps_the_running_socket(
        start_gcorn: Start, tmp_path: Path) -> None:
    (tmp_path / "ctlapp.py").write_text(APP)
    sock = tmp_path / "gcorn.ctl"
    blocker = tmp_path / "not-a-socket"
    blocker.write_text("a regular file where the new socket would go\n")
    conf = tmp_path / "gcorn.conf.py"
    _write_conf(conf, control_socket=str(sock))
    server = start_gcorn("-c", str(conf), "ctlapp:app")
    assert wait_until(lambda: f"Control socket listening at {sock}" in server.log(), 5)
    _write_conf(conf, control_socket=str(blocker))
    _hup(server, 1)
    assert wait_until(lambda: f"Control socket stays at {sock}" in server.log(), 5), server.log()
    assert f"Control socket {blocker} not served" in server.log()
    assert "is not a socket" in server.log()
    assert _ctl_works(sock)
    assert blocker.read_text().startswith("a regular file")
