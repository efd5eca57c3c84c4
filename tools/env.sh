# Sourced by the tools: puts pyenv's 3.11, 3.12 and 3.13 on PATH and the
# system tools the tests drive (wrk, curl, nginx-light, haproxy, redis-server) on the machine.
for v in 3.11 3.12 3.13; do
    d=$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/$v.* 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -n "$d" ]; then PATH="$d/bin:$PATH"; fi
done
export PATH
# nginx and haproxy stand in front of gcorn in the proxy suites, redis-server holds the
# dirty stash in its suite; the daemons live in /usr/sbin (or /usr/bin)
_missing=""
for tool in wrk curl nginx haproxy redis-server; do
    if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$tool" ]; then
        _missing="$_missing $tool"
    fi
done
if [ -n "$_missing" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk curl nginx-light haproxy redis-server >/dev/null
        # the Debian packages start their own daemons: the tests start theirs on free ports
        for svc in nginx haproxy redis-server; do
            command -v service >/dev/null 2>&1 && service "$svc" stop >/dev/null 2>&1 || true
        done
    else
        echo "tools/env.sh: the tests need$_missing; install them (apt-get install wrk curl nginx-light haproxy redis-server)" >&2
    fi
fi
unset _missing
