"""docs/deploy.md shows the files of docs/deploy/ that the e2e tests run, unchanged."""

from __future__ import annotations

import subprocess
import sys

from harness import DEPLOY, ROOT


def test_doc_blocks_are_the_tested_files() -> None:
    tool = ROOT / "tools" / "gen_deploy_doc.py"
    done = subprocess.run([sys.executable, str(tool), "--check"], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, done.stderr


def test_every_deploy_file_is_shown() -> None:
    doc = (ROOT / "docs" / "deploy.md").read_text()
    for path in sorted(DEPLOY.iterdir()):
        assert f"<!-- docs/deploy/{path.name} -->" in doc, path.name
