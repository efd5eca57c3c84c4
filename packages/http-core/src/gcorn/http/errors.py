"""The gcorn.http exception family: every error names the HTTP status it maps to.

Messages are fixed, short and never echo the bytes that were received, so a
server can send ``str(error)`` to the client as the body of its answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class HTTPProtocolError(Exception):
    """Base of every gcorn.http error; ``status`` is the HTTP status it maps to."""

    status: int = 400
    default_message: str = "Bad Request"

    def __init__(self, message: str | None = None) -> None:
        self.message = message if message is not None else self.default_message
        super().__init__(self.message)


class ParseError(HTTPProtocolError):
    """The peer sent bytes that are not an acceptable HTTP/1.x request (its fault).

    ``events`` holds the events of the whole requests that the failing ``feed()``
    completed before the bad one (pipelined requests sent in the same bytes):
    a server serves them first, then answers the error. It is empty when the
    parser raises the error again.
    """

    events: Sequence[Any] = ()  # gcorn.http.events values (errors sits below that module)


class InvalidRequestLine(ParseError):
    """The request line is not ``method SP target SP HTTP-version CRLF``."""

    default_message = "invalid request line"


class InvalidMethod(ParseError):
    """The method is not a token, or breaks the conventional-method rule."""

    default_message = "invalid request method"


class InvalidTarget(ParseError):
    """The request target is in no form allowed for this method."""

    default_message = "invalid request target"


class UnsupportedVersion(ParseError):
    """A well-formed HTTP version other than 1.0 and 1.1."""

    status = 505
    default_message = "HTTP version not supported"


class InvalidHeaderName(ParseError):
    """A field name that is not a token, or whitespace before the colon."""

    default_message = "invalid header field name"


class InvalidHeaderValue(ParseError):
    """A field value holding a control character, or a line with no colon."""

    default_message = "invalid header field value"


class ObsoleteFolding(ParseError):
    """A header continuation line (obs-fold) while folding is not permitted."""

    default_message = "obsolete line folding is not accepted"


class InvalidLineEnding(ParseError):
    """A bare CR or bare LF where CRLF is required."""

    default_message = "lines must end with CRLF"


class DuplicateHeader(ParseError):
    """A field that may appear only once (Host, Content-Length) appeared again."""

    default_message = "duplicate header field"


class InvalidFraming(ParseError):
    """Content-Length / Transfer-Encoding that do not give one clear body length."""

    default_message = "invalid message framing"


class UnsupportedTransferCoding(ParseError):
    """A transfer coding this server does not implement."""

    status = 501
    default_message = "transfer coding not implemented"


class InvalidChunk(ParseError):
    """A malformed chunk-size line, chunk extension or chunk terminator."""

    default_message = "invalid chunked encoding"


class InvalidTrailer(ParseError):
    """A trailer field that is malformed or not allowed in a trailer section."""

    default_message = "invalid trailer field"


class ExpectationFailed(ParseError):
    """An ``Expect`` value other than ``100-continue``."""

    status = 417
    default_message = "expectation not supported"


class RequestLineTooLong(ParseError):
    """The request line is longer than ``limit_request_line``."""

    status = 414
    default_message = "request line too long"


class TooManyHeaders(ParseError):
    """More header (or trailer) fields than ``limit_request_fields``."""

    status = 431
    default_message = "too many header fields"


class HeaderFieldTooLarge(ParseError):
    """A header line longer than ``limit_request_field_size`` or a head too large."""

    status = 431
    default_message = "header field too large"


class IncompleteMessage(ParseError):
    """The connection ended in the middle of a request."""

    default_message = "incomplete request"


class InvalidProxyHeader(ParseError):
    """A malformed PROXY protocol (v1 or v2) header."""

    default_message = "invalid PROXY protocol header"


class InvalidUwsgiPacket(ParseError):
    """A malformed uwsgi-protocol request packet."""

    default_message = "invalid uwsgi packet"


class InvalidResponse(HTTPProtocolError, ValueError):
    """The application asked to send a response head that would break HTTP (our fault)."""

    status = 500
    default_message = "invalid response"


class LocalProtocolError(InvalidResponse):
    """This side sent an event its Connection cannot send now (out of order; our fault)."""

    default_message = "event sent out of order"
