"""Write docs/settings.md from gcorn's setting declarations.

Usage: .venv/bin/python tools/gen_settings_doc.py [--check]
With --check it writes nothing and exits 1 when the committed file is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

from gcorn.cli.settings_doc import render

TARGET = Path(__file__).resolve().parents[1] / "docs" / "settings.md"


def main(argv: list[str]) -> int:
    """Regenerate (or with --check, verify) docs/settings.md."""
    text = render()
    if "--check" in argv:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != text:
            sys.stderr.write(f"{TARGET} is stale: run python tools/gen_settings_doc.py\n")
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
