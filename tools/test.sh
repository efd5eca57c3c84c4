#!/bin/sh
# Set up and run every test: the whole suite on Python 3.11, the fast suite
# (pytest -m "not slow and not e2e") on 3.12 and 3.13, lint, types, import contracts and the
# stand-alone package checks (tox.ini says which env runs what).
# Usage: sh tools/test.sh [tox args], e.g. sh tools/test.sh -e py311 -- -m slow
set -eu
cd "$(dirname "$0")/.."
. tools/env.sh
python3.11 -m venv .venv-tox
.venv-tox/bin/pip install -q --disable-pip-version-check "tox>=4.20" "tox-uv>=1.11"
# One environment at a time: the end-to-end tests time real processes on 2 cores.
exec .venv-tox/bin/tox run "$@"
