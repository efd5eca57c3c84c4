# Sourced by the tools: puts pyenv's 3.11, 3.12 and 3.13 on PATH and the
# system tools the tests drive (wrk, curl) on the machine.
for v in 3.11 3.12 3.13; do
    d=$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/$v.* 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -n "$d" ]; then PATH="$d/bin:$PATH"; fi
done
export PATH
if ! command -v wrk >/dev/null 2>&1 || ! command -v curl >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq >/dev/null && apt-get install -y -qq wrk curl >/dev/null
    else
        echo "tools/env.sh: wrk and curl are needed by the tests; install them (apt-get install wrk curl)" >&2
    fi
fi
