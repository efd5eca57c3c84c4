"""The HTTP/2 core shared by the asgi and gthread workers, on the sans-I/O `h2` library.

What lives here is free of any I/O model: the settings read once per worker
(`H2Options`), a server-side `h2.connection.H2Connection` built from them,
the request header block checked with the same field rules as HTTP/1
(names are tokens, values hold no CR/LF/NUL, `limit_request_fields` and
`limit_request_field_size` apply, pseudo-headers and `:authority`/Host are
validated), the response header block, and `AbuseGuard`, the counters that
answer the known HTTP/2 attacks the `h2` library does not (rapid reset,
SETTINGS/PING floods). h2 itself answers the CONTINUATION flood (64 frames
at most per header block), the HPACK bomb (the decoder stops at
`http2_max_header_list_size`) and too many streams (GOAWAY).

Names and values are checked with `gcorn.http.check_header`, the one field
check gcorn.http exports; it is the response-side rule (token name, no
control characters in the value), which for request fields is what the
HTTP/1 parser enforces too.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from gcorn.arbiter import Settings, setting
from gcorn.http import InvalidResponse, check_header, date_line

__all__ = [
    "PREFACE",
    "AbuseGuard",
    "EnhanceYourCalm",
    "H2Options",
    "H2RequestError",
    "RequestFields",
    "alpn_protocols",
    "date_server_fields",
    "goaway_frame",
    "h2_available",
    "new_connection",
    "request_fields",
    "response_fields",
    "trailer_fields",
]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# fields a server must not send on HTTP/2 (RFC 9113 8.2.2), plus the ones gcorn owns
_CONNECTION_SPECIFIC = frozenset((b"connection", b"keep-alive", b"transfer-encoding", b"te",
                                  b"upgrade", b"proxy-connection", b"trailer"))
_SERVER_OWNED = frozenset((b"date", b"server"))
_PSEUDO = frozenset((b":method", b":scheme", b":authority", b":path"))
_CLEARTEXT_MODES = ("off", "prior-knowledge", "upgrade", "both")
# client RST_STREAMs or SETTINGS/PING frames per second before the connection is
# told to calm down (GOAWAY ENHANCE_YOUR_CALM): far above what a browser sends
_RESETS_PER_SECOND_MIN = 100
_CONTROL_PER_SECOND = 100


def h2_available() -> bool:
    """Whether the `h2` library (extra `gcorn-workers[http2]`) is installed."""
    try:
        import h2.connection  # noqa: F401
    except ImportError:
        return False
    return True


class H2RequestError(Exception):
    """A request header block that breaks the field rules: the stream is refused."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class EnhanceYourCalm(Exception):
    """The peer behaves like an attack: the connection ends with GOAWAY ENHANCE_YOUR_CALM."""



@dataclass(frozen=True, slots=True)
class H2Options:
    """The HTTP/2 settings of one worker, read once and checked."""

    protocols: tuple[str, ...] = ("h1",)
    cleartext: str = "off"
    max_concurrent_streams: int = 100
    initial_window_size: int = 65535
    max_frame_size: int = 16384
    max_header_list_size: int = 65536
    limit_request_fields: int = 100
    limit_request_field_size: int = 8190
    # seconds a response may wait for the client to open its flow-control window
    stall_timeout: float = 30.0

    @classmethod
    def from_cfg(cls, cfg: Settings) -> H2Options:
        """Read the HTTP/2 settings (gunicorn's names) and the HTTP/1 field limits."""
        protocols = tuple(str(p).lower() for p in (setting(cfg, "http_protocols", ["h1"])
                                                    or ["h1"]))
        cleartext = str(setting(cfg, "http2_cleartext", "off") or "off")
        if cleartext not in _CLEARTEXT_MODES:
            raise ValueError(f"http2_cleartext must be one of {', '.join(_CLEARTEXT_MODES)}")
        fields = int(setting(cfg, "limit_request_fields", 100))
        size = int(setting(cfg, "limit_request_field_size", 8190))
        timeout = float(setting(cfg, "timeout", 30) or 30)
        return cls(
            protocols=protocols,
            cleartext=cleartext,
            max_concurrent_streams=int(setting(cfg, "http2_max_concurrent_streams", 100)),
            initial_window_size=int(setting(cfg, "http2_initial_window_size", 65535)),
            max_frame_size=int(setting(cfg, "http2_max_frame_size", 16384)),
            max_header_list_size=int(setting(cfg, "http2_max_header_list_size", 65536)),
            limit_request_fields=fields if 0 < fields <= 32768 else 32768,
            limit_request_field_size=size or 8190,
            stall_timeout=timeout,
        )

    @property
    def h2_over_tls(self) -> bool:
        """ALPN offers h2."""
        return "h2" in self.protocols

    @property
    def prior_knowledge(self) -> bool:
        """h2c with prior knowledge is accepted from trusted peers."""
        return self.cleartext in ("prior-knowledge", "both")

    @property
    def upgrade(self) -> bool:
        """`Upgrade: h2c` is honoured for trusted peers."""
        return self.cleartext in ("upgrade", "both")

    @property
    def enabled(self) -> bool:
        """Any form of HTTP/2 is on."""
        return self.h2_over_tls or self.cleartext != "off"


def alpn_protocols(options: H2Options) -> list[str] | None:
    """ALPN names in preference order from `http_protocols`, or None when h2 is off."""
    if not options.h2_over_tls or not h2_available():
        return None
    names = {"h1": "http/1.1", "h2": "h2"}
    out = [names[p] for p in options.protocols if p in names]
    return out or None


def new_connection(options: H2Options) -> Any:
    """A server-side `H2Connection` announcing the configured SETTINGS (not yet initiated)."""
    from h2.config import H2Configuration
    from h2.connection import H2Connection
    from h2.settings import SettingCodes, Settings

    # header blocks are checked by `request_fields` (HTTP/1's field rules, pseudo-headers,
    # connection-specific fields) and `response_fields`: h2 need not check them again
    config = H2Configuration(client_side=False, header_encoding=None,
                             validate_inbound_headers=False, normalize_inbound_headers=False,
                             validate_outbound_headers=False, normalize_outbound_headers=False)
    conn = H2Connection(config=config)
    values = {
        SettingCodes.MAX_CONCURRENT_STREAMS: options.max_concurrent_streams,
        SettingCodes.INITIAL_WINDOW_SIZE: options.initial_window_size,
        SettingCodes.MAX_FRAME_SIZE: options.max_frame_size,
        SettingCodes.ENABLE_PUSH: 0,
    }
    if options.max_header_list_size:
        values[SettingCodes.MAX_HEADER_LIST_SIZE] = options.max_header_list_size
    # the values are in force from the first frame on: h2 would otherwise apply
    # them only once the client ACKs, and a hostile client never does
    conn.local_settings = Settings(client=False, initial_values=values)
    conn.max_inbound_frame_size = options.max_frame_size
    conn.decoder.max_header_list_size = options.max_header_list_size or 2**31
    return conn


def goaway_frame(last_stream_id: int, error_code: int = 0) -> bytes:
    """A GOAWAY frame, serialized outside h2's state machine.

    h2 treats its own GOAWAY as the end of the connection and refuses every
    frame after it; a graceful stop must still read the DATA and WINDOW_UPDATE
    frames of the streams it lets finish.
    """
    from hyperframe.frame import GoAwayFrame

    frame = GoAwayFrame(stream_id=0, last_stream_id=last_stream_id, error_code=error_code)
    return bytes(frame.serialize())


@dataclass(slots=True)
class RequestFields:
    """A checked request header block."""

    method: str
    scheme: str
    authority: bytes
    path: bytes
    query: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]
    content_length: int | None


# fields already checked: clients send the same ones on every request
_CHECKED: set[tuple[bytes, bytes]] = set()
_CHECKED_MAX = 4096


def _check_new(name: bytes, value: bytes) -> None:
    """`check_header` for a field not in _CHECKED, remembered once it passes."""
    check_header(name, value)
    if len(_CHECKED) >= _CHECKED_MAX:
        _CHECKED.clear()
    _CHECKED.add((bytes(name), bytes(value)))


def _check_field(name: bytes, value: bytes) -> None:
    if (name, value) in _CHECKED:
        return
    try:
        _check_new(name, value)
    except InvalidResponse as exc:
        raise H2RequestError(f"invalid header field {name!r}: {exc}") from None


def request_fields(raw: Iterable[tuple[bytes, bytes]], options: H2Options) -> RequestFields:
    """Check a request header block as gcorn.http checks an HTTP/1 head; raises H2RequestError."""
    pseudo: dict[bytes, bytes] = {}
    headers: list[tuple[bytes, bytes]] = []
    host: bytes | None = None
    content_length: int | None = None
    cookies: list[bytes] = []
    count = 0
    size_limit = options.limit_request_field_size
    for name, value in raw:
        name = bytes(name)
        value = bytes(value)
        if name.startswith(b":"):
            if headers or name not in _PSEUDO or name in pseudo:
                raise H2RequestError(f"bad pseudo-header {name!r}")
            pseudo[name] = value
            continue
        count += 1
        if count > options.limit_request_fields:
            raise H2RequestError("too many header fields", 431)
        if len(name) + len(value) + 4 > size_limit:
            raise H2RequestError("header field too large", 431)
        if name != name.lower():
            raise H2RequestError(f"upper-case header name {name!r}")
        _check_field(name, value)
        if name in _CONNECTION_SPECIFIC and not (name == b"te" and value == b"trailers"):
            raise H2RequestError(f"connection-specific header {name!r} on HTTP/2")
        if name == b"host":
            if host is not None:
                raise H2RequestError("more than one Host")
            host = value
        elif name == b"content-length":
            if not value.isdigit() or (content_length is not None
                                       and int(value) != content_length):
                raise H2RequestError("invalid content-length")
            content_length = int(value)
        elif name == b"cookie":
            # RFC 9113 8.2.3: split crumbs are joined again for HTTP/1-shaped apps
            cookies.append(value)
            continue
        headers.append((name, value))
    if cookies:
        headers.append((b"cookie", b"; ".join(cookies)))
    method = pseudo.get(b":method")
    if not method:
        raise H2RequestError("missing :method")
    _check_field(b"method", method)
    method_text = method.decode("ascii")
    authority = pseudo.get(b":authority", b"")
    if method_text == "CONNECT":
        raise H2RequestError("CONNECT is not served", 405)
    path = pseudo.get(b":path")
    scheme = pseudo.get(b":scheme")
    if not path or not scheme:
        raise H2RequestError("missing :path or :scheme")
    if not (path.startswith(b"/") or (path == b"*" and method_text == "OPTIONS")):
        raise H2RequestError("invalid :path")
    _check_field(b"path", path)
    if authority:
        _check_field(b"authority", authority)
        if host is not None and host != authority:
            raise H2RequestError(":authority and Host disagree")
        if host is None:
            headers.insert(0, (b"host", authority))
    elif host is None:
        raise H2RequestError("neither :authority nor Host")
    else:
        authority = host
    if b"#" in path:
        raise H2RequestError("fragment in :path")
    raw_path, _, query = path.partition(b"?")
    return RequestFields(method=method_text, scheme=scheme.decode("latin-1"),
                         authority=authority, path=raw_path, query=query, target=path,
                         headers=headers, content_length=content_length)


def response_fields(status: int, headers: Iterable[Sequence[Any]], date_server: Sequence[
        tuple[bytes, bytes]], content_length: int | None = None) -> list[tuple[bytes, bytes]]:
    """The response header block: `:status`, the app's fields checked and lower-cased,
    connection-specific ones dropped, `date`/`server` from the server; raises ValueError."""
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 999:
        raise ValueError(f"invalid response status {status!r}")
    out: list[tuple[bytes, bytes]] = [(b":status", b"%d" % status)]
    have_length = False
    for pair in headers:
        name, value = pair[0], pair[1]
        if isinstance(name, str):
            name = name.encode("latin-1")
        if isinstance(value, str):
            value = value.encode("latin-1")
        if (name, value) not in _CHECKED:
            try:
                _check_new(name, value)
            except InvalidResponse as exc:
                raise ValueError(f"invalid response header {name!r}: {exc}") from None
        lowered = bytes(name).lower()
        if lowered in _CONNECTION_SPECIFIC or lowered in _SERVER_OWNED:
            continue
        if lowered == b"content-length":
            have_length = True
        out.append((lowered, bytes(value)))
    if content_length is not None and not have_length and status >= 200 and status not in (
            204, 304):
        out.append((b"content-length", b"%d" % content_length))
    out.extend(date_server)
    return out


_DATE_SERVER: list[Any] = [b"", []]


def date_server_fields() -> list[tuple[bytes, bytes]]:
    """The `date` and `server` fields of a response, rebuilt when date_line's second changes."""
    line = date_line()
    if line is not _DATE_SERVER[0]:
        _DATE_SERVER[1] = [(b"date", line.split(b":", 1)[1].strip()), (b"server", b"gcorn")]
        _DATE_SERVER[0] = line
    return _DATE_SERVER[1]  # type: ignore[no-any-return]


def trailer_fields(headers: Iterable[Sequence[Any]]) -> list[tuple[bytes, bytes]]:
    """Response trailers, checked and lower-cased; raises ValueError."""
    out: list[tuple[bytes, bytes]] = []
    for pair in headers:
        name, value = bytes(pair[0]), bytes(pair[1])
        try:
            check_header(name, value)
        except InvalidResponse as exc:
            raise ValueError(f"invalid trailer {name!r}: {exc}") from None
        lowered = name.lower()
        if lowered in _CONNECTION_SPECIFIC:
            continue
        out.append((lowered, value))
    return out


class AbuseGuard:
    """Per-connection counters for the attacks h2 does not stop by itself."""

    __slots__ = ("_control", "_resets", "_second", "reset_limit")

    def __init__(self, options: H2Options) -> None:
        # rapid reset (CVE-2023-44487): streams opened and reset at once cost
        # the server a task each; twice the stream limit per second is generous
        self.reset_limit = max(_RESETS_PER_SECOND_MIN, 2 * options.max_concurrent_streams)
        self._second = 0
        self._resets = 0
        self._control = 0

    def _tick(self) -> None:
        now = int(time.monotonic())
        if now != self._second:
            self._second = now
            self._resets = 0
            self._control = 0

    def stream_reset(self) -> None:
        """The client reset a stream; raises EnhanceYourCalm past the rate."""
        self._tick()
        self._resets += 1
        if self._resets > self.reset_limit:
            raise EnhanceYourCalm("too many RST_STREAM frames (rapid reset)")

    def control_frame(self) -> None:
        """The client sent SETTINGS or PING; raises EnhanceYourCalm past the rate."""
        self._tick()
        self._control += 1
        if self._control > _CONTROL_PER_SECOND:
            raise EnhanceYourCalm("too many SETTINGS/PING frames")
