"""`gcorn ctl`: talk to a running master over its control socket (gunicornc's commands).

`gcorn ctl [-s PATH] COMMAND... [--json]`. The master answers the HTTP side;
for `show dirty`, `show all` and `dirty add|remove` this command also asks the
dirty arbiter itself, at the socket the master names, so the master never
waits on the pool.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from typing import Any

from gcorn.arbiter.control import MAX_RESPONSE, decode_frame, encode

from .settings.control import _default_control_socket

TIMEOUT = 10.0
USAGE_COMMANDS = """commands:
  show all | workers | dirty | config | stats | listeners
  worker add [N] | worker remove [N] | worker kill PID
  dirty add [N] | dirty remove [N]
  reload | reopen | shutdown [--graceful | --quick] | help"""


class CtlError(Exception):
    """A failure to report on one line (exit 1)."""


def request(path: str, command: str, args: list[str] | None = None,
            timeout: float = TIMEOUT) -> dict[str, Any]:
    """Send one command to the master at `path`; its `data`, or CtlError with its error."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            _connect(sock, path, timeout)
        except FileNotFoundError:
            raise CtlError(f"no control socket at {path} (is gcorn running? see --control-socket)") \
                from None
        except PermissionError:
            raise CtlError(f"permission denied: {path} belongs to another user") from None
        except OSError as exc:
            raise CtlError(f"cannot connect to {path}: {exc.strerror or exc}") from None
        try:
            sock.sendall(encode({"id": 1, "command": command, "args": args or []}))
        except OSError:
            pass  # a refused peer may close first: its answer is still to be read
        buf = bytearray()
        while True:
            try:
                message, _used = decode_frame(buf, MAX_RESPONSE)
            except ValueError as exc:
                raise CtlError(f"bad answer from the master: {exc}") from None
            if message is not None:
                break
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                raise CtlError(f"the master did not answer within {timeout:g}s") from None
            except OSError as exc:
                raise CtlError(f"connection to {path} failed: {exc.strerror or exc}") from None
            if not chunk:
                raise CtlError("the master closed the connection without an answer")
            buf += chunk
    finally:
        sock.close()
    if message.get("status") != "ok":
        raise CtlError(str(message.get("error") or "the master refused the command"))
    data = message.get("data")
    return data if isinstance(data, dict) else {"result": data}


def _connect(sock: socket.socket, path: str, timeout: float) -> None:
    """connect(), waiting while the master's backlog is full (unix sockets say EAGAIN then)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            sock.connect(path)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"the master at {path} accepts no connection") from None
            time.sleep(0.05)


# -- the dirty pool, asked directly -------------------------------------------------


def _dirty_client(dirty_socket: str | None) -> Any:
    if not dirty_socket:
        raise CtlError("no dirty pool is running (dirty_workers and dirty_apps are not set)")
    try:
        from gcorn.dirty.client import DirtyClient
    except ImportError:
        raise CtlError("gcorn-dirty is not installed (pip install 'gcorn-cli[dirty]')") from None
    return DirtyClient(dirty_socket, timeout=TIMEOUT)


def dirty_status(master: dict[str, Any]) -> dict[str, Any]:
    """`show dirty`: the master's view of the pool, with the pool's own status."""
    out = dict(master)
    if not master.get("enabled"):
        out.update(workers=[], apps=[])
        return out
    client = _dirty_client(master.get("socket"))
    try:
        status = client.status()
    except Exception as exc:  # DirtyError family, OSError: the pool is not answering
        raise CtlError(f"the dirty arbiter at {master.get('socket')} did not answer: {exc}") from None
    finally:
        client.close()
    out["arbiter_pid"] = status.get("arbiter_pid")
    out["apps"] = status.get("apps", [])
    out["workers"] = status.get("workers", [])
    return out


def dirty_manage(path: str, op: str, args: list[str]) -> dict[str, Any]:
    """`dirty add|remove [N]`, sent to the dirty arbiter."""
    try:
        count = int(args[0]) if args else 1
    except ValueError:
        raise CtlError(f"not a number: {args[0]!r}") from None
    master = request(path, "show dirty")
    client = _dirty_client(master.get("socket") if master.get("enabled") else None)
    try:
        result = client.manage(op, count)
    except Exception as exc:  # the pool refuses a bad count with a DirtyError naming it
        raise CtlError(f"dirty {op}: {exc}") from None
    finally:
        client.close()
    return {"success": True, "operation": op, **result}


# -- human output ---------------------------------------------------------------------


def _mib(value: Any) -> str:
    return "-" if not isinstance(value, int) or value <= 0 else f"{value / (1024 * 1024):.1f}M"


def _seconds(value: Any) -> str:
    if not isinstance(value, (int, float)):
        return "-"
    value = float(value)
    if value < 60:
        return f"{value:.1f}s"
    if value < 3600:
        return f"{value / 60:.1f}m"
    return f"{value / 3600:.1f}h"


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [headers] + [["-" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def format_workers(workers: list[dict[str, Any]]) -> str:
    """The `show workers` table."""
    rows = [[w["pid"], w["age"], _seconds(w.get("uptime")), w.get("requests"), w.get("in_flight"),
             _seconds(w.get("last_heartbeat")), _mib(w.get("rss")),
             "retiring" if w.get("retiring") else ("booted" if w.get("booted") else "booting")]
            for w in workers]
    return _table(["PID", "AGE", "UPTIME", "REQUESTS", "CURRENT", "HEARTBEAT", "RSS", "STATE"], rows) \
        + f"\n\n{len(workers)} worker(s)"


def format_dirty(data: dict[str, Any]) -> str:
    """The `show dirty` table."""
    if not data.get("enabled"):
        return "dirty pool: not running"
    lines = [f"dirty arbiter: pid {data.get('arbiter_pid') or data.get('pid')}  "
             f"socket {data.get('socket')}", f"apps: {', '.join(data.get('apps', [])) or '-'}", ""]
    rows = [[w.get("pid"), w.get("age"), w.get("state"), f"{w.get('inflight', 0)}/{w.get('threads', '?')}",
             w.get("calls"), _mib(w.get("rss")), ", ".join(w.get("apps", []))]
            for w in data.get("workers", [])]
    lines.append(_table(["PID", "AGE", "STATE", "BUSY", "CALLS", "RSS", "APPS"], rows))
    return "\n".join(lines)


def format_stats(data: dict[str, Any]) -> str:
    """`show stats` as `name: value` lines."""
    width = max(len(k) for k in data)
    return "\n".join(f"{k:{width}}  {_seconds(v) if k == 'uptime' else ('-' if v is None else v)}"
                     for k, v in data.items())


def format_listeners(data: dict[str, Any]) -> str:
    """The `show listeners` table."""
    return _table(["ADDRESS", "TYPE", "FD"],
                  [[x["address"], x.get("type"), x.get("fd")] for x in data.get("listeners", [])])


def format_all(data: dict[str, Any]) -> str:
    """`show all`: master, workers, side processes, dirty pool."""
    arbiter = data["arbiter"]
    parts = [f"master: pid {arbiter['pid']}  rss {_mib(arbiter.get('rss'))}", "",
             format_workers(data.get("web_workers", []))]
    sides = data.get("side_processes", [])
    if sides:
        parts += ["", _table(["SIDE PROCESS", "PID", "RESTARTS"],
                             [[s["name"], s.get("pid"), s.get("restarts")] for s in sides])]
    parts += ["", format_dirty(data.get("dirty", {}))]
    return "\n".join(parts)


def format_config(data: dict[str, Any]) -> str:
    """`show config` as `name = value` lines."""
    width = max((len(k) for k in data), default=0)
    return "\n".join(f"{k:{width}} = {data[k]!r}" for k in sorted(data))


def format_result(command: str, data: dict[str, Any]) -> str:
    """Human text for one command's answer."""
    if command == "show workers":
        return format_workers(data.get("workers", []))
    if command == "show dirty":
        return format_dirty(data)
    if command == "show stats":
        return format_stats(data)
    if command == "show listeners":
        return format_listeners(data)
    if command == "show all":
        return format_all(data)
    if command == "show config":
        return format_config(data)
    if command == "help":
        cmds = data.get("commands", {})
        width = max(len(k) for k in cmds)
        return "\n".join(f"{k:{width}}  {v}" for k, v in cmds.items())
    return ", ".join(f"{k}: {v}" for k, v in data.items())


# -- the command ----------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The `gcorn ctl` argument parser."""
    p = argparse.ArgumentParser(
        prog="gcorn ctl", description="Control a running gcorn master over its control socket.",
        epilog=USAGE_COMMANDS, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-s", "--socket", default=None, metavar="PATH",
                   help="the control socket (default: $XDG_RUNTIME_DIR/gcorn.ctl, "
                   "else ~/.gcorn/gcorn.ctl)")
    p.add_argument("-j", "--json", action="store_true", help="print the answer as JSON")
    p.add_argument("command", nargs="+", metavar="COMMAND", help="e.g. show workers")
    return p


def run_command(path: str, words: list[str]) -> tuple[str, dict[str, Any]]:
    """Run one command; returns (its canonical name, the answer's data)."""
    head = [w.lower() for w in words[:2]]
    if head == ["dirty", "add"] or head == ["dirty", "remove"]:
        return " ".join(head), dirty_manage(path, head[1], words[2:])
    if head[:1] == ["shutdown"]:
        return "shutdown", request(path, "shutdown", [w.lstrip("-") for w in words[1:]])
    name = " ".join(head) if head[0] in ("show", "worker") else head[0]
    args = words[2:] if head[0] in ("show", "worker") else words[1:]
    data = request(path, name, args)
    if name == "show dirty":
        data = dirty_status(data)
    elif name == "show all" and data.get("dirty", {}).get("enabled"):
        try:
            data["dirty"] = dirty_status(data["dirty"])
            data["dirty_workers"] = data["dirty"].get("workers", [])
        except CtlError as exc:
            data["dirty"]["error"] = str(exc)
    return name, data


def main(argv: list[str]) -> int:
    """Entry point of `gcorn ctl`; returns the exit code."""
    # --json may come after the command words (`gcorn ctl show workers --json`)
    want_json = any(a in ("--json", "-j") for a in argv)
    argv = [a for a in argv if a not in ("--json", "-j")]
    # `shutdown --graceful`/`--quick` are command words, not options of ctl
    argv = [a.lstrip("-") if a in ("--graceful", "--quick") else a for a in argv]
    parser = build_parser()
    args = parser.parse_args(argv)
    path = args.socket or _default_control_socket()
    try:
        name, data = run_command(path, args.command)
    except CtlError as exc:
        sys.stderr.write(f"gcorn ctl: error: {exc}\n")
        return 1
    if want_json or args.json:
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    else:
        sys.stdout.write(format_result(name, data) + "\n")
    return 0
