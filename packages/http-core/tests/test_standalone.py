"""gcorn.http stands alone: only the standard library (and httptools, optional)."""

from __future__ import annotations

import json
import subprocess
import sys

import gcorn.http

PROBE = """
import json, sys
before = set(sys.modules)
import gcorn.http
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def test_import_pulls_only_the_standard_library_and_httptools():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         timeout=30, check=True).stdout
    modules = json.loads(out)
    assert "gcorn.http" in modules
    foreign = [
        name for name in modules
        if name.split(".")[0] not in sys.stdlib_module_names
        and name != "gcorn" and not name.startswith("gcorn.http")
        and name.split(".")[0] != "httptools"
    ]
    assert foreign == []
    assert not [name for name in modules if name.startswith("gcorn.") and
                not name.startswith("gcorn.http")]


def test_public_names_are_exported():
    for name in gcorn.http.__all__:
        assert getattr(gcorn.http, name) is not None
        obj = getattr(gcorn.http, name)
        if callable(obj):
            assert obj.__doc__, f"{name} has no docstring"


def test_no_gcorn_init_file():
    import gcorn

    assert getattr(gcorn, "__file__", None) is None  # a PEP 420 namespace package
