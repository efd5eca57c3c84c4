"""@batched dirty actions end to end through `gcorn`: a numpy "model" called by 64
concurrent HTTP requests over 4 HTTP worker processes, each answer its own; an exception
returned for one caller fails that request only; a request whose timeout passes while its
call waits for a batch is answered 504 at its timeout.
"""

from __future__ import annotations

import concurrent.futures
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from harness import Gcorn, wait_until

np = pytest.importorskip("numpy")

MODEL_APP = '''
import time

import numpy as np
from gcorn.dirty import DirtyApp, batched


def vector(seed):
    return np.random.default_rng(seed).standard_normal(512)


class Model(DirtyApp):
    def init(self):
        self.weight = np.random.default_rng(0).standard_normal((512, 512))

    @batched(max_size=32, max_wait_ms=20)
    def predict(self, calls):
        seeds = [seed for (seed,) in calls]
        out = np.stack([vector(s) for s in seeds]) @ self.weight  # one pass for the batch
        return [ValueError(f"seed {s} is cursed") if s % 13 == 0 else [float(row.sum()), len(calls)]
                for s, row in zip(seeds, out)]

    @batched(max_size=4, max_wait_ms=5)
    def slow(self, calls):
        time.sleep(1.5)
        return [x for (x,) in calls]
'''

WEB_APP = '''
import json

from gcorn.dirty import DirtyError, get_dirty_client


def app(environ, start_response):
    action, _, arg = environ["PATH_INFO"].strip("/").partition("/")
    timeout = float(environ.get("QUERY_STRING") or 0) or None
    try:
        value = get_dirty_client().execute("model:Model", action, int(arg), _timeout=timeout)
        status, body = "200 OK", json.dumps(value).encode()
    except DirtyError as exc:
        status, body = f"{exc.status} Dirty", type(exc).__name__.encode()
    start_response(status, [("Content-Length", str(len(body)))])
    return [body]
'''


def _expected(seed: int) -> float:
    weight = np.random.default_rng(0).standard_normal((512, 512))
    return float((np.random.default_rng(seed).standard_normal(512) @ weight).sum())


@pytest.fixture
def server(start_gcorn: Callable[..., Gcorn], tmp_path: Path) -> Gcorn:
    (tmp_path / "model.py").write_text(textwrap.dedent(MODEL_APP))
    (tmp_path / "web.py").write_text(textwrap.dedent(WEB_APP))
    srv = start_gcorn("-k", "gthread", "-w", "4", "--threads", "16", "--dirty-app", "model:Model",
                      "--dirty-workers", "1", "--dirty-threads", "2", "web:app",
                      env={"PYTHONPATH": str(tmp_path)})
    assert wait_until(lambda: srv.get("/predict/1", timeout=10).status_code == 200, 15, 0.2), srv.log()
    return srv


def _get_all(url: str, paths: list[str]) -> list[httpx.Response]:
    with concurrent.futures.ThreadPoolExecutor(len(paths)) as ex:
        return list(ex.map(lambda p: httpx.get(url + p, timeout=15), paths))


def test_sixty_four_concurrent_requests_are_batched_and_each_gets_its_own_answer(server: Gcorn) -> None:
    seeds = list(range(1, 65))
    responses = _get_all(server.url, [f"/predict/{s}" for s in seeds])
    sizes = []
    for seed, r in zip(seeds, responses, strict=True):
        if seed % 13 == 0:  # the model returned an exception for this caller alone
            assert (r.status_code, r.text) == (500, "DirtyAppError"), (seed, r.text)
            continue
        assert r.status_code == 200, (seed, r.text)
        total, size = r.json()
        assert total == pytest.approx(_expected(seed), rel=1e-7, abs=1e-7)
        sizes.append(size)
    assert max(sizes) > 1, sizes  # gathered across the 4 HTTP workers' connections
    assert max(sizes) <= 32
    assert server.stop(timeout=15) == 0


@pytest.mark.slow
def test_a_request_whose_deadline_passes_while_queued_answers_504_at_its_timeout(server: Gcorn) -> None:
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        first = [ex.submit(httpx.get, server.url + f"/slow/{i}", timeout=15) for i in range(4)]
        time.sleep(0.3)  # the full batch runs (1.5 s) on one slot; fill the other too
        second = [ex.submit(httpx.get, server.url + f"/slow/{i}", timeout=15) for i in range(4, 8)]
        time.sleep(0.3)
        started = time.monotonic()
        late = httpx.get(server.url + "/slow/99?0.4", timeout=15)
        elapsed = time.monotonic() - started
        assert (late.status_code, late.text) == (504, "DirtyTimeoutError")
        assert elapsed < 1.0, elapsed
        assert [f.result().json() for f in first + second] == list(range(8))
