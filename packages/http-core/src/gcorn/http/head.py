"""From a request line and its fields to a RequestHead: the RFC 9112 rules on
methods, targets, versions, framing (no smuggling), keep-alive, Expect and Upgrade.

Both parser backends end here, so they accept and reject the same heads.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from .errors import (
    DuplicateHeader,
    ExpectationFailed,
    InvalidFraming,
    InvalidLineEnding,
    InvalidMethod,
    InvalidRequestLine,
    InvalidTarget,
    RequestLineTooLong,
    UnsupportedTransferCoding,
    UnsupportedVersion,
)
from .events import Header, RequestHead
from .grammar import (
    ABSOLUTE_FORM,
    AUTHORITY_FORM,
    HTTP_VERSION,
    IPV_FUTURE,
    REQUEST_LINE,
    TOKEN,
)
from .options import ParserOptions

# Methods that pass every method rule, to skip the checks in the common case.
_USUAL_METHODS = frozenset(
    (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"TRACE", b"CONNECT")
)
_VERSIONS = {b"1.1": (1, 1), b"1.0": (1, 0)}
# Transfer codings a server may meet before "chunked"; the body is passed on
# still coded, and the connection closes after it (as gunicorn does).
# (x-gzip and x-compress are answered 501, as gunicorn does.)
_CONTENT_CODINGS = frozenset((b"gzip", b"deflate", b"compress"))
# "identity" (dropped from the registry by RFC 9112) changes nothing: before
# "chunked" it is skipped, as gunicorn does; chunked still frames the body, so
# every recipient that reads chunked last agrees on where the body ends.
_IDENTITY = b"identity"
# Fields that change how the message is framed or handled.
_SPECIAL = frozenset(
    (b"content-length", b"transfer-encoding", b"host", b"connection", b"expect", b"upgrade",
     b"content-type")
)
# Fields that may not appear in a trailer section (they would change framing,
# routing or authentication after the head was acted on): gunicorn's list
# (RFC 9110 6.5.1). Other fields are handed over as trailers, never merged
# into the head, so a Content-Type or Connection there changes nothing.
FORBIDDEN_TRAILERS = frozenset(
    (b"content-length", b"transfer-encoding", b"host", b"trailer", b"te", b"authorization")
)
_MAX_LENGTH_DIGITS = 18  # below 2**63: a longer Content-Length is surely an attack


def parse_request_line(
    buf: bytes, start: int, end: int, options: ParserOptions
) -> tuple[bytes, bytes, tuple[int, int]]:
    """Split and check the request line buf[start:end] (without its CRLF)."""
    if end - start > options.request_line_limit:
        raise RequestLineTooLong()
    match = REQUEST_LINE.fullmatch(buf, start, end)
    if match is None:
        _diagnose_request_line(buf[start:end])
    method, target, version_text = match.groups()  # type: ignore[union-attr]
    version = _VERSIONS.get(version_text)
    if version is None:
        version = (version_text[0] - 48, version_text[2] - 48)
        # RFC 9112 2.3: a 1.x minor version above ours is read as 1.1 (as gunicorn).
        if version[0] != 1 and not options.permit_unconventional_http_version:
            raise UnsupportedVersion()
    return method, target, version


def _diagnose_request_line(line: bytes) -> None:
    """Raise the error that says what is wrong with a request line that did not match."""
    if b"\n" in line or b"\r" in line:
        raise InvalidLineEnding()
    parts = line.split(b" ")
    if len(parts) != 3:
        raise InvalidRequestLine()
    method, target, version = parts
    if TOKEN.fullmatch(method) is None:
        raise InvalidMethod()
    if not target or any(c < 0x21 or c > 0x7E for c in target):
        raise InvalidTarget()
    if HTTP_VERSION.fullmatch(version) is None:
        raise InvalidRequestLine("invalid HTTP version")
    raise InvalidRequestLine()


def check_method(method: bytes, options: ParserOptions) -> bytes:
    """Apply the method rules (token, and gunicorn's conventional-method rule)."""
    if method in _USUAL_METHODS:
        return method
    if TOKEN.fullmatch(method) is None:
        raise InvalidMethod()
    if not options.permit_unconventional_http_method and (
        not 3 <= len(method) <= 20 or method.upper() != method or b"#" in method
    ):
        raise InvalidMethod("unconventional request method")
    # As gunicorn: upper-cased only after the rules, so a lower-case method
    # still needs permit_unconventional_http_method.
    return method.upper() if options.casefold_http_method else method


def split_target(method: bytes, target: bytes, unconventional: bool = False) -> tuple[bytes, bytes]:
    """Check the form of the request target for this method; return (path, query).

    A fragment (which a client should not send) is accepted and left out of
    path and query, as gunicorn does; the target itself keeps it (RAW_URI).
    With `unconventional` (the setting permit_unconventional_request_target),
    a CONNECT target of any form, and a target holding ``://`` that is no
    absolute URI, are served as gunicorn serves them (see _split_as_gunicorn).
    """
    first = target[:1]
    if method == b"CONNECT":
        if unconventional:
            if target == b"*":
                raise InvalidTarget("asterisk-form is only for OPTIONS")
            return _split_as_gunicorn(target)
        if first == b"/" or AUTHORITY_FORM.fullmatch(target) is None:
            raise InvalidTarget("CONNECT needs an authority-form target")
        return b"", b""
    reference = target.partition(b"#")[0]
    if first == b"/":
        path, _, query = reference.partition(b"?")
        return path, query
    if target == b"*":
        if method != b"OPTIONS":
            raise InvalidTarget("asterisk-form is only for OPTIONS")
        return b"*", b""
    absolute = ABSOLUTE_FORM.fullmatch(reference)
    if absolute is None:
        if unconventional and b"://" in target:
            return _split_as_gunicorn(target)
        raise InvalidTarget()
    _check_authority(absolute.group(2))
    path, _, query = absolute.group(3).partition(b"?")
    return path or b"/", query


def _split_as_gunicorn(target: bytes) -> tuple[bytes, bytes]:
    """(path, query) of a target that fits none of the four forms, as gunicorn finds them.

    gunicorn splits every target with urllib.parse.urlsplit (one starting with
    ``//`` as a path): ``1http://h/?a`` is the path ``1http://h/``,
    ``example.com:443`` the scheme ``example.com`` and the path ``443``. The
    same function gives the same parts on the same Python, and refuses
    (ValueError) the same broken IP literals.
    """
    if target[:1] == b"/":
        path, _, query = target.partition(b"#")[0].partition(b"?")
        return path, query
    try:
        parts = urlsplit(target.decode("ascii"))  # the request line holds printable ASCII only
    except ValueError:
        raise InvalidTarget("invalid IP literal in the target") from None
    return parts.path.encode("ascii"), parts.query.encode("ascii")


def _check_authority(authority: bytes) -> None:
    """Refuse an absolute-form authority whose host is a broken IP literal.

    RFC 3986 3.2.2: "[" and "]" appear in an authority only around an IPv6
    address or an IPvFuture literal. A target such as ``s://]ufd/:`` cannot be
    the URI the client meant. The rule is the one gunicorn applies (through
    urllib.parse.urlsplit), so both refuse the same targets.
    """
    opened = b"[" in authority
    if opened != (b"]" in authority):
        raise InvalidTarget("unbalanced brackets in the target's authority")
    if not opened:
        return
    literal = authority.partition(b"[")[2].partition(b"]")[0]
    if literal[:1] == b"v":
        if IPV_FUTURE.fullmatch(literal) is None:
            raise InvalidTarget("invalid IPvFuture literal in the target's authority")
        return
    try:
        ipaddress.IPv6Address(literal.decode("ascii"))
    except ValueError:
        raise InvalidTarget("invalid IPv6 address in the target's authority") from None


def build_head(
    method: bytes,
    target: bytes,
    version: tuple[int, int],
    headers: list[Header],
    options: ParserOptions,
) -> RequestHead:
    """Apply the RFC 9112 message rules to a parsed head and return the RequestHead."""
    if method not in _USUAL_METHODS:
        method = check_method(method, options)
    if target[:1] == b"/" and method != b"CONNECT" and b"#" not in target:
        path, _, query = target.partition(b"?")  # origin-form, the common case
    else:
        path, query = split_target(method, target, options.permit_unconventional_request_target)
    content_length: int | None = None
    framing: list[Header] | None = None
    connection: list[bytes] = []
    upgrade: bytes | None = None
    expect = host = content_type = False
    # Errors come in gunicorn's order, so both answer the same status when a
    # request breaks two rules: field by field (Host, Content-Type, Expect),
    # then the framing fields, in the order they came.
    for name, value in headers:
        if name not in _SPECIAL:
            continue
        # Most frequent first: Host, then Connection.
        if name == b"host":
            if host:
                raise DuplicateHeader("more than one Host")
            host = True
        elif name == b"connection":
            lowered = value.lower()
            if lowered == b"keep-alive" or lowered == b"close":
                connection.append(lowered)
            else:
                connection.extend(part.strip(b" \t") for part in lowered.split(b","))
        elif name == b"content-length" or name == b"transfer-encoding":
            if framing is None:
                if name == b"content-length" and value.isdigit() and (
                    len(value) <= _MAX_LENGTH_DIGITS
                ):
                    content_length = int(value)  # the usual case: one plain Content-Length
                    framing = []
                    continue
                framing = []
            framing.append((name, value))
        elif name == b"content-type":
            if content_type:
                raise DuplicateHeader("more than one Content-Type")
            content_type = True
        elif name == b"upgrade":
            upgrade = value.lower() if upgrade is None else upgrade + b", " + value.lower()
        else:  # expect: each field on its own (RFC 9110 10.1.1), on any version (as gunicorn)
            if value.lower() != b"100-continue":
                raise ExpectationFailed()
            expect = True
    http11 = version >= (1, 1)
    if not connection:
        keep_alive = http11
    elif http11:
        keep_alive = b"close" not in connection
    else:
        keep_alive = b"keep-alive" in connection and b"close" not in connection
    chunked = False
    if framing:
        if content_length is not None:  # a Content-Length came first
            framing.insert(0, (b"content-length", b"%d" % content_length))
        content_length, chunked, closes = _check_framing(framing, http11)
        keep_alive = keep_alive and not closes
    # RFC 9110 10.1.1: a 100-continue expectation in HTTP/1.0 is ignored.
    expects_continue = expect and http11
    # RFC 9110 7.8: an Upgrade sent without "Connection: upgrade", or in HTTP/1.0, is ignored.
    if upgrade is not None and not (http11 and b"upgrade" in connection):
        upgrade = None
    return RequestHead(
        method, target, path, query, version, headers, keep_alive, expects_continue, upgrade,
        content_length, chunked,
    )


def _check_framing(framing: list[Header], http11: bool) -> tuple[int | None, bool, bool]:
    """Check the Content-Length and Transfer-Encoding fields, in the order received;
    return (content_length, chunked, whether the connection closes after the body)."""
    length: bytes | None = None
    coded = chunked = closes = False
    for name, value in framing:
        if name == b"content-length":
            if length is not None:
                raise DuplicateHeader("more than one Content-Length")
            length = value
            continue
        coded = True
        for part in value.split(b","):
            coding = part.strip(b" \t").lower()
            if coding == b"chunked":
                if chunked:
                    raise InvalidFraming("chunked must be the final transfer coding, once")
                chunked = True
            elif coding in _CONTENT_CODINGS or coding == _IDENTITY:
                if chunked:
                    raise InvalidFraming("chunked must be the final transfer coding, once")
                # A content coding is passed on still coded; then the connection closes.
                closes = closes or coding != _IDENTITY
            else:  # an empty element too: nothing to gain from reading it leniently
                raise UnsupportedTransferCoding()
    if coded:
        if not chunked:
            # RFC 9112 6.1: without chunked last, the length cannot be known: 400.
            raise InvalidFraming("a Transfer-Encoding must end with chunked")
        if not http11:
            raise InvalidFraming("Transfer-Encoding in an HTTP/1.0 request")
        if length is not None:
            raise InvalidFraming("both Content-Length and Transfer-Encoding")
        return None, True, closes
    assert length is not None
    if not length.isdigit() or len(length) > _MAX_LENGTH_DIGITS:
        raise InvalidFraming("invalid Content-Length")
    return int(length), False, False

