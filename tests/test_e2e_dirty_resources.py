"""Resource slots end to end through `gcorn --dirty-resources`: 4 virtual GPUs shared by
an app of 1 GPU on 2 workers and an app of 0.5 on 4, each worker's CUDA_VISIBLE_DEVICES
set before it imported its apps."""

from __future__ import annotations

import collections
import json
import textwrap
from collections.abc import Callable
from pathlib import Path

from harness import Gcorn, wait_until

GPU_APPS = '''
import os
from gcorn.dirty import DirtyApp, current_resources

AT_IMPORT = os.environ.get("CUDA_VISIBLE_DEVICES")


class Whole(DirtyApp):
    resources = {"gpu": 1}

    def seen(self):
        return [os.getpid(), AT_IMPORT, current_resources()]


class Half(DirtyApp):
    resources = {"gpu": 0.5}

    def seen(self):
        return [os.getpid(), AT_IMPORT, current_resources()]
'''

WEB_APP = '''
import json
from gcorn.dirty import get_dirty_client


def app(environ, start_response):
    body = json.dumps(get_dirty_client().execute("gpuapps:" + environ["PATH_INFO"][1:], "seen")).encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
'''


def test_four_virtual_gpus_for_apps_of_one_and_a_half(start_gcorn: Callable[..., Gcorn],
                                                      tmp_path: Path) -> None:
    (tmp_path / "gpuapps.py").write_text(textwrap.dedent(GPU_APPS))
    (tmp_path / "web.py").write_text(textwrap.dedent(WEB_APP))
    server = start_gcorn("-w", "1", "--dirty-workers", "4", "--dirty-app", "gpuapps:Whole:2",
                         "--dirty-app", "gpuapps:Half:4", "--dirty-resources",
                         json.dumps({"gpu": [0, 1, 2, 3]}), "web:app",
                         env={"PYTHONPATH": str(tmp_path)})

    def views(app: str, n: int) -> dict[int, list]:
        out: dict[int, list] = {}
        assert wait_until(lambda: out.update({(v := server.get("/" + app, timeout=10).json())[0]: v})
                          or len(out) == n, 15, 0.01), (out, server.log())
        return out

    half = views("Half", 4)
    whole = views("Whole", 2)
    share = collections.Counter()
    for pid, at_import, current in half.values():
        devices = at_import.split(",")
        assert current == {"gpu": devices}
        if pid in whole:  # a worker of both apps: its whole GPU and half of another
            assert len(devices) == 2 and whole[pid][1] == at_import
            share[devices[0]] += 2
            share[devices[1]] += 1
        else:
            assert len(devices) == 1
            share[devices[0]] += 1
    assert share == {"0": 2, "1": 2, "2": 2, "3": 2}, half  # 4 GPUs, every one exactly full
    assert server.stop(timeout=15) == 0
