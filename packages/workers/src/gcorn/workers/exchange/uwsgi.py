"""The uwsgi protocol on every worker (`protocol = uwsgi`: nginx's `uwsgi_pass` in front).

A connection carries one request: a uwsgi packet of CGI variables, then
CONTENT_LENGTH bytes of body (gcorn.http's `UwsgiParser` reads both). The
answer is a plain HTTP/1.x response, which nginx's uwsgi module reads.

This module is the one place where the WSGI and the ASGI workers turn a packet
into a request: `UwsgiReader` stands in for the HTTP parser of a connection
(the peer checked against `uwsgi_allow_ips` first, 403 otherwise; modifier1
other than 0 is a 501, as gunicorn's UnsupportedModifier; a malformed packet
a 400), and yields a gcorn.http `RequestHead`, so that the workers' request
paths stay the same; `cgi_environ` gives the environ strings and
`uwsgi_scope` the ASGI scope pieces.

Unlike gunicorn, which takes REMOTE_ADDR and SERVER_NAME/PORT from the socket
and ignores those variables, the variables nginx sends are the environ (as the
uWSGI server does): REMOTE_ADDR is the client's address, not nginx's. The peer
is in `uwsgi_allow_ips`, so what it says is trusted.
"""

from __future__ import annotations

from typing import Any

from gcorn.arbiter import Settings, setting
from gcorn.http import ParseError, RequestHead, UwsgiParser, UwsgiRequest
from gcorn.workers.exchange.forwarded import split_list

__all__ = ["UnsupportedUwsgiModifier", "UwsgiAllowList", "UwsgiForbidden", "UwsgiReader",
           "cgi_environ", "uwsgi_allow_list", "uwsgi_scope"]

_TRUE = ("on", "1", "true", "yes")
_SCHEMES = ("http", "https")


class UwsgiForbidden(ParseError):
    """A uwsgi request from a peer not in `uwsgi_allow_ips` (403)."""

    status = 403
    default_message = "uwsgi request from a peer not in uwsgi_allow_ips"


class UnsupportedUwsgiModifier(ParseError):
    """A uwsgi packet whose modifier1 is not 0, the WSGI request (501, as gunicorn's)."""

    status = 501
    default_message = "unsupported uwsgi modifier1 (only 0, a WSGI request, is served)"


class UwsgiAllowList:
    """`uwsgi_allow_ips`: exact address strings or `*` (no CIDR, as gunicorn); Unix peers pass."""

    __slots__ = ("_any", "_ips")

    def __init__(self, entries: Any) -> None:
        items = split_list(entries)
        self._any = "*" in items
        self._ips = frozenset(items)

    def allows(self, peer: Any) -> bool:
        """Whether a socket peer (TCP tuple, or a Unix socket's str/bytes) may speak uwsgi."""
        if not isinstance(peer, tuple):
            return True  # a Unix-socket peer has no address: local, trusted
        return self._any or str(peer[0]) in self._ips


def uwsgi_allow_list(cfg: Settings) -> UwsgiAllowList | None:
    """The allow list when the settings ask for the uwsgi protocol, else None (HTTP)."""
    protocol = str(setting(cfg, "protocol", "http") or "http").strip().lower()
    if protocol != "uwsgi":
        return None
    return UwsgiAllowList(setting(cfg, "uwsgi_allow_ips", "127.0.0.1,::1"))


class UwsgiReader:
    """A connection's parser under `protocol = uwsgi`: RequestHead, Body, EndOfMessage events.

    It has the methods of gcorn.http's RequestParser that the workers call
    (`feed`, `feed_eof`, `paused`); `variables` holds the packet's variables
    once its head event was returned. `peer` must be set before the first feed.
    """

    __slots__ = ("_allow", "_parser", "_started", "paused", "peer", "variables")

    def __init__(self, allow: UwsgiAllowList, peer: Any = None) -> None:
        self._allow = allow
        self._parser = UwsgiParser()
        self._started = False
        self.paused = False  # never: uwsgi has no protocol switch
        self.peer = peer
        self.variables: dict[str, str] = {}

    def feed(self, data: bytes) -> list[Any]:
        """Take received bytes; return the events they complete (the head as a RequestHead)."""
        if not self._started and data:
            self._started = True
            # refused before a byte of the packet is believed, as gunicorn does
            if not self._allow.allows(self.peer):
                raise UwsgiForbidden()
            if data[0] != 0:
                raise UnsupportedUwsgiModifier()
        events: list[Any] = self._parser.feed(data)
        if events and type(events[0]) is UwsgiRequest:
            request = events[0]
            self.variables = request.vars
            events[0] = _head(request)
        return events

    def feed_eof(self) -> list[Any]:
        """The peer closed: IncompleteMessage (400) if the packet or its body was cut short."""
        events: list[Any] = self._parser.feed_eof()
        return events


def _head(request: UwsgiRequest) -> RequestHead:
    variables = request.vars
    query = variables.get("QUERY_STRING", "")
    target = variables.get("REQUEST_URI") or _join(variables.get("PATH_INFO") or "/", query)
    headers: list[tuple[bytes, bytes]] = []
    for key, value in variables.items():
        if key.startswith("HTTP_") and len(key) > 5:
            name = key[5:].lower().replace("_", "-")
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            name = key.lower().replace("_", "-")
        else:
            continue
        headers.append((name.encode("latin-1"), value.encode("latin-1")))
    raw_target = target.encode("latin-1")
    return RequestHead(
        method=(variables.get("REQUEST_METHOD") or "GET").encode("latin-1"),
        target=raw_target,
        path=raw_target.partition(b"?")[0],
        query=query.encode("latin-1"),
        # HTTP/1.0 for the response writers: a body of unknown size is then delimited
        # by closing, never chunked (nginx's uwsgi module would pass chunk markers on
        # as body bytes); SERVER_PROTOCOL and the scope's http_version say the truth
        version=(1, 0),
        headers=headers,
        keep_alive=False,  # one request per connection
        expects_continue=False,  # nginx has answered any Expect itself
        upgrade=None,  # no WebSocket over uwsgi, as gunicorn
        content_length=request.content_length,
        chunked=False,
    )


def _join(path: str, query: str) -> str:
    return f"{path}?{query}" if query else path


def cgi_environ(variables: dict[str, str], peer: Any, server: tuple[str, str],
                script_name: str, tls: bool) -> dict[str, str]:
    """The CGI part of the environ of a uwsgi request: its variables, completed.

    Missing variables come from the socket (`peer`, `server`) and the settings
    (`script_name`); PATH_INFO loses a SCRIPT_NAME prefix; `wsgi.url_scheme`
    is https when HTTPS is on (else the packet's wsgi.url_scheme or
    REQUEST_SCHEME, else the listener's). Empty CONTENT_* variables (what
    nginx sends for a request without a body) are left out.
    """
    environ = dict(variables)
    for key in ("CONTENT_LENGTH", "CONTENT_TYPE"):
        if not environ.get(key, "x"):
            del environ[key]
    query = variables.get("QUERY_STRING", "")
    environ["QUERY_STRING"] = query
    environ["REQUEST_METHOD"] = variables.get("REQUEST_METHOD") or "GET"
    path_info = variables.get("PATH_INFO")
    if path_info is None:
        from urllib.parse import unquote_to_bytes  # rare: nginx sends PATH_INFO

        raw = variables.get("REQUEST_URI", "/").partition("?")[0] or "/"
        path_info = unquote_to_bytes(raw.encode("latin-1")).decode("latin-1")
    script = variables.get("SCRIPT_NAME", script_name)
    if script and path_info.startswith(script):
        path_info = path_info[len(script):]
    environ["SCRIPT_NAME"] = script
    environ["PATH_INFO"] = path_info
    environ["RAW_URI"] = variables.get("REQUEST_URI") or _join(script + path_info, query)
    environ["SERVER_PROTOCOL"] = variables.get("SERVER_PROTOCOL") or "HTTP/1.1"
    if not variables.get("REMOTE_ADDR"):
        if isinstance(peer, tuple):
            environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = str(peer[0]), str(peer[1])
        else:
            environ["REMOTE_ADDR"] = peer.decode("latin-1") if isinstance(peer, bytes) else str(
                peer or "")
    if not variables.get("SERVER_NAME"):
        environ["SERVER_NAME"], environ["SERVER_PORT"] = server
    elif not variables.get("SERVER_PORT"):
        environ["SERVER_PORT"] = server[1]
    if variables.get("HTTPS", "").lower() in _TRUE:
        scheme = "https"
    elif variables.get("wsgi.url_scheme") in _SCHEMES:
        scheme = variables["wsgi.url_scheme"]
    elif variables.get("REQUEST_SCHEME") in _SCHEMES:
        scheme = variables["REQUEST_SCHEME"]
    else:
        scheme = "https" if tls else "http"
    environ["wsgi.url_scheme"] = scheme
    return environ


def _port(text: str) -> int:
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 5 else 0


def _utf8(text: str) -> str:
    """A latin-1 'bytes as str' CGI value as the UTF-8 text ASGI wants."""
    return text.encode("latin-1").decode("utf-8", "replace")


def uwsgi_scope(scope: dict[str, Any], environ: dict[str, str],
                ) -> tuple[str, str, tuple[str, int]]:
    """Fill an ASGI http scope from `cgi_environ`'s result; returns its scheme, path and client."""
    scope["server"] = (environ["SERVER_NAME"], _port(environ["SERVER_PORT"]))
    client = (environ["REMOTE_ADDR"], _port(environ.get("REMOTE_PORT", "")))
    scope["client"] = client
    scope["scheme"] = environ["wsgi.url_scheme"]
    root_path = _utf8(environ["SCRIPT_NAME"])
    scope["root_path"] = root_path
    # ASGI's path includes root_path (the HTTP path of this worker does the same)
    scope["path"] = root_path + _utf8(environ["PATH_INFO"])
    scope["raw_path"] = environ["RAW_URI"].partition("?")[0].encode("latin-1")
    scope["query_string"] = environ["QUERY_STRING"].encode("latin-1")
    protocol = environ["SERVER_PROTOCOL"]
    scope["http_version"] = protocol[5:] if protocol in ("HTTP/1.0", "HTTP/1.1") else "1.1"
    return scope["scheme"], scope["path"], client
