"""What a worker process gets: privileges, cwd, env, heartbeat file, title, max_requests."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import tempfile
import time

import pytest

try:
    import setproctitle  # noqa: F401

    HAVE_SETPROCTITLE = True
except ImportError:
    HAVE_SETPROCTITLE = False


@pytest.fixture
def open_dir():
    """A short directory any user may use (for a worker that drops privileges)."""
    path = tempfile.mkdtemp(prefix="gca-")
    os.chmod(path, 0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")
def test_workers_drop_to_user_and_group_and_the_socket_is_theirs(server_factory, open_dir):
    nobody = pwd.getpwnam("nobody")
    events = os.path.join(open_dir, "events")
    open(events, "w").close()
    os.chmod(events, 0o666)
    path = os.path.join(open_dir, "s.sock")
    cfg = {
        "uid": nobody.pw_uid,
        "gid": nobody.pw_gid,
        "initgroups": True,
        "timeout": 1,
        "bind": [f"unix:{path}"],
        "umask": 0o077,
        "worker_tmp_dir": open_dir,
    }
    server = server_factory(events=events, cfg=cfg).start()
    info = json.loads(server.request("info", path))
    assert (info["uid"], info["gid"]) == (nobody.pw_uid, nobody.pw_gid)
    assert info["groups"] == sorted(os.getgrouplist("nobody", nobody.pw_gid))
    st = os.stat(path)
    assert (st.st_uid, st.st_gid) == (nobody.pw_uid, nobody.pw_gid)
    assert st.st_mode & 0o777 == 0o700
    assert info["heartbeat"].startswith(os.path.join(open_dir, "wgcorn-"))
    # the unprivileged worker can still beat: it outlives several timeouts
    time.sleep(2.5)
    assert int(server.request("pid", path)) == info["pid"]
    assert not server.events("worker_abort")


def test_chdir_env_tmp_dir_and_max_requests_jitter(server_factory, open_dir):
    cfg = {
        "chdir": open_dir,
        "worker_tmp_dir": open_dir,
        "env": {"GCORN_TEST_VALUE": "forty-two"},
        "max_requests": 100,
        "max_requests_jitter": 50,
    }
    server = server_factory(cfg=cfg).start()
    info = json.loads(server.request("info"))
    assert os.path.samefile(info["cwd"], open_dir)
    assert info["heartbeat"].startswith(os.path.join(open_dir, "wgcorn-"))
    assert info["heartbeat"].endswith("(deleted)")  # unlinked at once: nothing to clean up
    assert 100 <= info["max_requests"] <= 150
    assert server.request("env GCORN_TEST_VALUE") == "forty-two"


def test_no_max_requests_means_unlimited(server_factory):
    server = server_factory().start()
    assert json.loads(server.request("info"))["max_requests"] > 2**31


@pytest.mark.skipif(not HAVE_SETPROCTITLE or not os.path.exists("/proc/self/cmdline"),
                    reason="needs setproctitle and /proc")
def test_process_titles(server_factory):
    server = server_factory(cfg={"proc_name": "myapp"}).start()
    worker = int(server.request("pid"))

    def title(pid):
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode().strip()

    assert title(server.master_pid) == "gcorn: master [myapp]"
    assert title(worker) == "gcorn: worker [myapp]"
    server.kill(signal.SIGTERM)
    assert server.wait_exit() == 0


def test_a_signal_after_the_queue_is_closed_is_ignored() -> None:
    # a TERM landing while the master finishes its shutdown must not raise EBADF
    from gcorn.arbiter.signals import SignalQueue

    queue = SignalQueue()
    queue.close()
    queue.record(15)
    assert queue.pop() == 15
