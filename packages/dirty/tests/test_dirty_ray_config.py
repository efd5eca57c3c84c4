"""dirty_backend settings checked without Ray running (these run where Ray is not installed)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from dirty_helpers import HERE

from gcorn.dirty import DirtyConfigError
from gcorn.dirty.config import DirtyConfig
from gcorn.dirty.ray_cluster import check_address
from gcorn.dirty.ray_proxy import actor_options

APP = "dirty_ray_apps:Model"


def test_backend_values_are_checked() -> None:
    with pytest.raises(DirtyConfigError, match=r"dirty_backend must be one of \['local', 'ray'\], got 'grpc'"):
        DirtyConfig(dirty_apps=[APP], dirty_backend="grpc").validate()
    with pytest.raises(DirtyConfigError, match="is set but dirty_backend is 'local'"):
        DirtyConfig(dirty_apps=[APP], dirty_ray_address="10.0.0.1:6379").validate()
    with pytest.raises(DirtyConfigError, match="dirty_ray_address must be a non-empty string"):
        DirtyConfig(dirty_apps=[APP], dirty_backend="ray", dirty_ray_address=" ").validate()
    assert DirtyConfig(dirty_apps=[APP]).validate().dirty_backend == "local"


def test_ray_backend_without_ray_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    with pytest.raises(DirtyConfigError, match=r"needs Ray, which is not installed: pip install 'gcorn-dirty\[ray\]'"):
        DirtyConfig(dirty_apps=[APP], dirty_backend="ray").validate()


def test_the_command_says_which_extra_to_install(tmp_path) -> None:
    code = ("import sys; sys.modules['ray'] = None; from gcorn.dirty.cli import main; "
            f"sys.exit(main(['serve', {APP!r}, '--backend', 'ray', '--socket', sys.argv[1]]))")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "p.sock")], cwd=str(HERE),
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2, proc.stderr
    assert "pip install 'gcorn-dirty[ray]'" in proc.stderr


def test_with_ray_dirty_resources_is_refused(monkeypatch) -> None:
    pytest.importorskip("ray", reason="the check runs once Ray is known installed (gcorn-dirty[ray])")
    with pytest.raises(DirtyConfigError, match="leave dirty_resources unset"):
        DirtyConfig(dirty_apps=[APP], dirty_backend="ray", dirty_resources={"gpu": [0]}).validate()


def test_address_forms() -> None:
    check_address("auto")  # Ray finds the cluster of this node itself
    for bad in ("", "localhost", "http://head:8265", "head:port"):
        with pytest.raises(DirtyConfigError, match="dirty_ray_address"):
            check_address(bad)


def test_resources_map_to_actor_options() -> None:
    assert actor_options({}, 1) == {"max_concurrency": 3, "max_restarts": 0}
    opts = actor_options({"gpu": 1, "cpu": 2, "tpu": 0.5}, 4)
    assert opts == {"max_concurrency": 6, "max_restarts": 0, "num_gpus": 1, "num_cpus": 2,
                    "resources": {"tpu": 0.5}}
