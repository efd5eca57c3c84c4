"""The PEP 3333 environ of one request, built from the parsed head.

Strings are "bytes as latin-1" (PEP 3333 native strings). `SCRIPT_NAME`
comes from the process environment or, when a trusted proxy may set it
(`forwarder_headers`), from a `SCRIPT_NAME` request header; `PATH_INFO` is
the percent-decoded path with the script name removed.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from gcorn.arbiter import Settings, setting
from gcorn.workers.errors import ConfigurationProblem
from gcorn.workers.exchange.uwsgi import cgi_environ
from gcorn.workers.wsgi.errors_stream import ErrorStream
from gcorn.workers.wsgi.file_wrapper import FileWrapper

__all__ = ["EnvironBuilder", "server_software"]

_KEY_CACHE_MAX = 512


def _unquote(path: bytes) -> str:
    """Percent-decode a path into a latin-1 str (PEP 3333 "bytes as latin-1")."""
    from urllib.parse import unquote_to_bytes  # rare: most paths have no '%'

    return unquote_to_bytes(path).decode("latin-1")


def server_software() -> str:
    """`gcorn/<version>` of the installed gcorn-workers."""
    try:
        from importlib.metadata import version

        return f"gcorn/{version('gcorn-workers')}"
    except ImportError:  # PackageNotFoundError: metadata missing in a source checkout
        return "gcorn"


def _server_address(listener: Any) -> tuple[str, str]:
    try:
        name = listener.getsockname()
    except (OSError, AttributeError):
        return "", ""
    if isinstance(name, tuple):
        return str(name[0]), str(name[1])
    return "", ""  # Unix socket: filled from Host per request


class EnvironBuilder:
    """Per-worker environ factory: the constant keys are computed once."""

    def __init__(self, cfg: Settings, multithread: bool) -> None:
        self.software = server_software()
        workers = setting(cfg, "workers", 1)
        self.base: dict[str, Any] = {
            "wsgi.version": (1, 0),
            "wsgi.errors": ErrorStream(),
            "wsgi.multithread": multithread,
            "wsgi.multiprocess": bool(workers and workers > 1),
            "wsgi.run_once": False,
            "wsgi.file_wrapper": FileWrapper,
            "wsgi.input_terminated": True,
            "SERVER_SOFTWARE": self.software,
        }
        self.script_name = os.environ.get("SCRIPT_NAME", "")
        self._keys: dict[bytes, str] = {}
        self._servers: dict[int, tuple[str, str]] = {}

    def _key(self, name: bytes) -> str:
        key = self._keys.get(name)
        if key is None:
            key = "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
            if len(self._keys) < _KEY_CACHE_MAX:
                self._keys[name] = key
        return key

    def remember_listener(self, listener: Any) -> None:
        """Cache a listener's address now, before a graceful stop retires its socket."""
        self._server(listener)

    def _server(self, listener: Any) -> tuple[str, str]:
        fd = listener.fileno() if listener is not None else -1
        server = self._servers.get(fd)
        if server is None:
            server = _server_address(listener) if listener is not None else ("", "")
            self._servers[fd] = server
        return server

    def build_uwsgi(self, variables: dict[str, str], peer: Any, listener: Any,
                    sock: socket.socket, body: Any, tls: bool) -> dict[str, Any]:
        """The environ of a uwsgi request: the packet's variables, completed (gcorn.workers.exchange.uwsgi)."""
        environ: dict[str, Any] = cgi_environ(variables, peer, self._server(listener),
                                              self.script_name, tls)
        environ.update(self.base)  # a variable called wsgi.errors, say, must not win
        environ["wsgi.input"] = body
        environ["gunicorn.socket"] = sock
        return environ

    def build(self, method: str, target: str, path: bytes, query: str, protocol: str,
              headers: Any, scheme: str, peer: Any, listener: Any, sock: socket.socket,
              body: Any) -> dict[str, Any]:
        """The environ for one request; raises `ConfigurationProblem` (500) on a bad SCRIPT_NAME."""
        environ = self.base.copy()
        environ["REQUEST_METHOD"] = method
        environ["RAW_URI"] = target
        environ["QUERY_STRING"] = query
        environ["SERVER_PROTOCOL"] = protocol
        environ["wsgi.url_scheme"] = scheme
        environ["wsgi.input"] = body
        environ["gunicorn.socket"] = sock
        script_name = self.script_name
        host = None
        repeated: dict[str, list[str]] | None = None
        for name, raw_value in headers:
            value = raw_value.decode("latin-1")
            if name == b"content-type":
                environ["CONTENT_TYPE"] = value
                continue
            if name == b"content-length":
                environ["CONTENT_LENGTH"] = value
                continue
            if name == b"host":
                host = value
            elif name == b"script_name":
                script_name = value
            key = self._key(name)
            if key in environ:
                if repeated is None:
                    repeated = {}
                repeated.setdefault(key, [environ[key]]).append(value)
            else:
                environ[key] = value
        if repeated:
            for key, values in repeated.items():
                environ[key] = ",".join(values)
        if type(peer) is tuple:
            environ["REMOTE_ADDR"] = peer[0]
            environ["REMOTE_PORT"] = str(peer[1])
        else:
            environ["REMOTE_ADDR"] = peer.decode("latin-1") if isinstance(peer, bytes) else str(peer or "")
        server_name, server_port = self._server(listener)
        if not server_name:
            # a Unix socket has no address for SERVER_*: use the Host header
            if host:
                server_name, _, server_port = host.rpartition(":") if (
                    host.count(":") == 1) else (host, "", "")
                if not server_port:
                    server_port = "443" if scheme == "https" else "80"
        environ["SERVER_NAME"] = server_name
        environ["SERVER_PORT"] = server_port
        path_info = path.decode("latin-1") if b"%" not in path else _unquote(path)
        if script_name:
            if not path_info.startswith(script_name):
                raise ConfigurationProblem(
                    f"Request path {path_info!r} does not start with SCRIPT_NAME {script_name!r}")
            path_info = path_info[len(script_name):]
        environ["PATH_INFO"] = path_info
        environ["SCRIPT_NAME"] = script_name
        return environ
