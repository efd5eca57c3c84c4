"""gcorn.http: a sans-I/O HTTP/1.1 request parser and response writer.

Feed the bytes of a connection to a ``RequestParser`` and get ``RequestHead``,
``Body`` and ``EndOfMessage`` events back; every bad input raises a
``ParseError`` that carries the HTTP status to answer. See README.md.
"""

from .errors import (
    DuplicateHeader,
    ExpectationFailed,
    HeaderFieldTooLarge,
    HTTPProtocolError,
    IncompleteMessage,
    InvalidChunk,
    InvalidFraming,
    InvalidHeaderName,
    InvalidHeaderValue,
    InvalidLineEnding,
    InvalidMethod,
    InvalidProxyHeader,
    InvalidRequestLine,
    InvalidResponse,
    InvalidTarget,
    InvalidTrailer,
    InvalidUwsgiPacket,
    ObsoleteFolding,
    ParseError,
    RequestLineTooLong,
    TooManyHeaders,
    UnsupportedTransferCoding,
    UnsupportedVersion,
)
from .events import Body, EndOfMessage, Event, Header, RequestHead
from .options import ParserOptions
from .parser import BACKENDS, RequestParser, httptools_available
from .proxy_protocol import ProxyInfo, read_proxy_header
from .response import (
    check_header,
    encode_chunk,
    encode_last_chunk,
    reason_phrase,
    serialize_headers,
    serialize_response_head,
    status_line,
)
from .uwsgi import UwsgiParser, UwsgiRequest, encode_uwsgi_vars, parse_uwsgi_vars

__all__ = [
    "BACKENDS",
    "Body",
    "DuplicateHeader",
    "EndOfMessage",
    "Event",
    "ExpectationFailed",
    "HTTPProtocolError",
    "Header",
    "HeaderFieldTooLarge",
    "IncompleteMessage",
    "InvalidChunk",
    "InvalidFraming",
    "InvalidHeaderName",
    "InvalidHeaderValue",
    "InvalidLineEnding",
    "InvalidMethod",
    "InvalidProxyHeader",
    "InvalidRequestLine",
    "InvalidResponse",
    "InvalidTarget",
    "InvalidTrailer",
    "InvalidUwsgiPacket",
    "ObsoleteFolding",
    "ParseError",
    "ParserOptions",
    "ProxyInfo",
    "RequestHead",
    "RequestLineTooLong",
    "RequestParser",
    "TooManyHeaders",
    "UnsupportedTransferCoding",
    "UnsupportedVersion",
    "UwsgiParser",
    "UwsgiRequest",
    "check_header",
    "encode_chunk",
    "encode_last_chunk",
    "encode_uwsgi_vars",
    "httptools_available",
    "parse_uwsgi_vars",
    "read_proxy_header",
    "reason_phrase",
    "serialize_headers",
    "serialize_response_head",
    "status_line",
]
