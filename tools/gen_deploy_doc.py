"""Copy the configs of docs/deploy/ into the code blocks of docs/deploy.md.

A block follows a marker line `<!-- docs/deploy/NAME -->` and holds that file as
it is: the tests run the files, so the doc shows what was tested.
Usage: .venv/bin/python tools/gen_deploy_doc.py [--check]
With --check it writes nothing and exits 1 when a block differs from its file.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "docs" / "deploy.md"
# the marker, then a fenced block (```lang ... ```), which is replaced
BLOCK = re.compile(r"(<!-- (docs/deploy/[\w.-]+) -->\n```(\w*)\n)(.*?)(^```$)",
                   re.DOTALL | re.MULTILINE)


def render(text: str) -> str:
    """`text` with every marked block holding its file."""
    def fill(match: re.Match[str]) -> str:
        content = (ROOT / match[2]).read_text(encoding="utf-8")
        return match[1] + content.rstrip("\n") + "\n" + match[5]
    return BLOCK.sub(fill, text)


def main(argv: list[str]) -> int:
    """Regenerate (or with --check, verify) the blocks of docs/deploy.md."""
    current = TARGET.read_text(encoding="utf-8")
    text = render(current)
    if "--check" in argv:
        if current != text:
            sys.stderr.write(f"{TARGET} is stale: run python tools/gen_deploy_doc.py\n")
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
