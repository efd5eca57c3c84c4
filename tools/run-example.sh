#!/bin/sh
# Quick start: install gcorn's five packages into a virtual environment and serve the
# example WSGI app (examples/hello.py) with a dirty pool (examples/dirty_app.py) in the
# foreground. Ctrl-C stops it. Needs only Python 3.11+ (and gcc for the C extensions).
#
#   sh tools/run-example.sh
#   GCORN_BIND=127.0.0.1:9000 sh tools/run-example.sh        # another address
#   GCORN_EXAMPLE_VENV=/tmp/gcorn-venv sh tools/run-example.sh  # another venv (default .venv-example)
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/tools/env.sh"

VENV=${GCORN_EXAMPLE_VENV:-$ROOT/.venv-example}
BIND=${GCORN_BIND:-127.0.0.1:8000}
STAMP=$VENV/.gcorn-example-installed

say() { echo "run-example.sh: $*" >&2; }

pick_python() {
    for candidate in python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 \
            && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

# (Re)install when the venv is new or a package changed since the last install.
needs_install() {
    if [ ! -x "$VENV/bin/gcorn" ] || [ ! -f "$STAMP" ]; then return 0; fi
    changed=$(find "$ROOT/packages" -path '*/tests' -prune -o -newer "$STAMP" \
        \( -name '*.py' -o -name pyproject.toml \) -print | head -n 1)
    [ -n "$changed" ]
}

if needs_install; then
    if [ ! -x "$VENV/bin/python" ]; then
        PYTHON=$(pick_python) || { say "Python 3.11 or newer is needed (python3.11 or python3 on PATH)"; exit 1; }
        say "creating $VENV with $PYTHON"
        "$PYTHON" -m venv "$VENV" || { say "could not create a venv with $PYTHON (on Debian: apt-get install python3-venv)"; exit 1; }
    fi
    say "installing gcorn's packages into $VENV (about a minute the first time)"
    # the extras are those of the meta-package: httptools, uvloop, websockets, h2, setproctitle
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "$ROOT/packages/http-core[fast]" \
        "$ROOT/packages/arbiter[setproctitle]" \
        "$ROOT/packages/workers[uvloop,websockets,httptools,http2]" \
        "$ROOT/packages/dirty" \
        "$ROOT/packages/cli[dirty]"
    touch "$STAMP"
fi

cat <<EOM
gcorn serves examples/hello.py on $BIND with a dirty pool of 2 workers (examples/dirty_app.py).
Try:
    curl http://$BIND/
    curl 'http://$BIND/dirty?text=the+cat+and+the+hat+and+the+cat'
Press Ctrl-C to stop.
EOM

# run from the repository root, so that no ./gcorn.conf.py of the caller's directory applies
cd "$ROOT"
exec "$VENV/bin/gcorn" --chdir "$ROOT/examples" -b "$BIND" -w 2 -k gthread --threads 4 \
    --access-logfile - --dirty-app dirty_app:WordCount --dirty-workers 2 hello:app
