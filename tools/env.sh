# Sourced by the tools: puts pyenv's 3.11, 3.12 and 3.13 on PATH and the
# system tools the tests drive (wrk, curl, nginx-light) on the machine.
for v in 3.11 3.12 3.13; do
    d=$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/$v.* 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -n "$d" ]; then PATH="$d/bin:$PATH"; fi
done
export PATH
# nginx: tests/test_e2e_uwsgi.py puts it in front of gcorn (uwsgi_pass); it lives in /usr/sbin
if ! command -v wrk >/dev/null 2>&1 || ! command -v curl >/dev/null 2>&1 \
        || ! { command -v nginx || [ -x /usr/sbin/nginx ]; } >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq >/dev/null && apt-get install -y -qq wrk curl nginx-light >/dev/null
    else
        echo "tools/env.sh: wrk, curl and nginx are needed by the tests; install them (apt-get install wrk curl nginx-light)" >&2
    fi
fi
