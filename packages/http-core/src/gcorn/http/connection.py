"""Connection: the server's side of one HTTP/1.x connection, as events, in h11's shape.

Bytes go in with ``receive_data()``, request events come out of
``next_event()``; response events go in to ``send()``, which returns the bytes
to write. Nothing here touches a socket. It is a facade over the two halves a
worker uses directly: the request side is a ``RequestParser`` (parser.py), the
response side a ``ResponseWriter`` per response (framing.py), which owns the
framing rules (Content-Length, chunked, HEAD, 1xx/204/304, hop-by-hop fields,
Date, Server, keep-alive); this module adds only the states and their order.

Each side has a state (``ConnectionState``), as in h11:

- theirs (the client's): IDLE -> SEND_BODY (a RequestHead) -> DONE (its
  EndOfMessage); ours: IDLE -> SEND_RESPONSE (their RequestHead) -> SEND_BODY
  (a Response; InformationalResponses before it keep SEND_RESPONSE) -> DONE
  (our EndOfMessage). Both DONE: ``start_next_cycle()`` makes both IDLE.
- once the connection cannot carry another request (``keep_alive`` False: the
  request or the response said ``Connection: close``, an HTTP/1.0 request
  without keep-alive, a body delimited by closing, a bad request...), a side
  that gets to DONE is MUST_CLOSE instead, and stays there.
- a ConnectionClosed makes a side CLOSED; a bad request makes theirs ERROR
  (the ParseError is raised again by every later ``next_event()``), and
  ``send_failed()`` makes ours ERROR.

A send that raises wrote nothing and changed no state: after an
``InvalidResponse`` (a bad status or field) the server may still send a 500.
"""

from __future__ import annotations

import enum
from collections import deque
from typing import Literal

from .errors import IncompleteMessage, LocalProtocolError, ParseError
from .events import (
    Body,
    ConnectionClosed,
    Data,
    EndOfMessage,
    Event,
    InformationalResponse,
    RequestHead,
    Response,
)
from .framing import CONTINUE, Framing, ResponseWriter, informational
from .options import ParserOptions
from .parser import RequestParser

__all__ = [
    "NEED_DATA",
    "PAUSED",
    "Connection",
    "ConnectionState",
    "NoEvent",
    "ReceivedEvent",
    "SentEvent",
]


class ConnectionState(enum.Enum):
    """Where one side of the connection is (h11's names and meanings)."""

    IDLE = "idle"  # between requests
    SEND_RESPONSE = "send_response"  # ours only: a request came, no Response yet
    SEND_BODY = "send_body"  # a head was sent, its body is under way
    DONE = "done"  # this side's message is complete; the connection may carry another
    MUST_CLOSE = "must_close"  # complete, and the connection must close after it
    CLOSED = "closed"  # this side closed
    ERROR = "error"  # this side broke the protocol (or the server gave up, send_failed)


class NoEvent(enum.Enum):
    """What ``next_event()`` returns when it has no event to give."""

    NEED_DATA = "need_data"  # call receive_data() with more bytes (or b"" at EOF)
    PAUSED = "paused"  # a request ended: finish the response, then start_next_cycle()


NEED_DATA: Literal[NoEvent.NEED_DATA] = NoEvent.NEED_DATA
PAUSED: Literal[NoEvent.PAUSED] = NoEvent.PAUSED

ReceivedEvent = RequestHead | Body | EndOfMessage | ConnectionClosed
SentEvent = InformationalResponse | Response | Data | EndOfMessage | ConnectionClosed

_S = ConnectionState
_IDLE, _SEND_RESPONSE, _SEND_BODY = _S.IDLE, _S.SEND_RESPONSE, _S.SEND_BODY
_DONE, _MUST_CLOSE, _CLOSED, _ERROR = _S.DONE, _S.MUST_CLOSE, _S.CLOSED, _S.ERROR


class Connection:
    """One HTTP/1.x connection, server role: ``receive_data``/``next_event`` in, ``send`` out.

    `backend` and `options` are the RequestParser's (parser backend name, a
    ``ParserOptions`` with the limits and leniency switches); `server` is the
    value of the Server field of every response.
    """

    __slots__ = ("server", "_eof", "_eof_fed", "_error", "_events", "_head", "_keep_alive",
                 "_our", "_parser", "_pending", "_their", "_waiting_100", "_writer")

    def __init__(self, backend: str = "auto", *, options: ParserOptions | None = None,
                 server: bytes = b"gcorn") -> None:
        self.server = server
        self._parser = RequestParser(backend, options=options)
        self._events: deque[Event] = deque()
        self._pending: list[bytes] = []  # received, not yet fed: parsed when asked for
        self._error: ParseError | None = None  # to raise once the events before it are out
        self._eof = False
        self._eof_fed = False
        self._head: RequestHead | None = None
        self._writer: ResponseWriter | None = None
        self._our = _IDLE
        self._their = _IDLE
        self._keep_alive = True
        self._waiting_100 = False

    # -- what the caller reads ---------------------------------------------------------

    @property
    def our_state(self) -> ConnectionState:
        """The server side's state."""
        return self._our

    @property
    def their_state(self) -> ConnectionState:
        """The client side's state."""
        return self._their

    @property
    def keep_alive(self) -> bool:
        """Whether the connection may carry another request after this one."""
        return self._keep_alive

    @property
    def request(self) -> RequestHead | None:
        """The head of the request being answered (None between requests)."""
        return self._head

    @property
    def they_are_waiting_for_100_continue(self) -> bool:
        """The client asked ``Expect: 100-continue`` and waits: no response, no body yet.

        h11's rule: the Connection never sends ``100 Continue`` by itself. A
        server that wants the body sends ``InformationalResponse(100)`` (at the
        latest when ``next_event()`` gives NEED_DATA while this is True); one
        that does not sends its final Response, and the connection then closes
        after it, since the body may or may not follow (RFC 9110 10.1.1).
        """
        return self._waiting_100

    # -- the request side ----------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Take bytes received from the client; ``b""`` means it closed its side (EOF)."""
        if not data:
            self._eof = True
        elif self._eof:
            raise LocalProtocolError("receive_data() after the end of the data (b\"\")")
        elif self._their is not _MUST_CLOSE and self._their is not _ERROR:
            self._pending.append(bytes(data))
        # else: nothing more is read from this connection, so nothing is kept

    def next_event(self) -> ReceivedEvent | NoEvent:
        """The next request event, NEED_DATA or PAUSED; raises the request's ParseError.

        PAUSED: a request ended and more bytes wait (pipelining); they are read
        after ``start_next_cycle()``. A ConnectionClosed comes when the client
        closed between requests; a close in the middle of one raises
        ``IncompleteMessage``.
        """
        their = self._their
        if their is _SEND_BODY or their is _IDLE:
            try:
                event = self._next_parsed()
            except ParseError:
                self._their = _ERROR
                self._keep_alive = False
                self._waiting_100 = False
                self._settle()
                raise
            if event is None:
                if not self._eof:
                    return NEED_DATA
                self._their = _CLOSED
                self._keep_alive = False
                self._settle()
                return ConnectionClosed()
            cls = type(event)
            if cls is RequestHead:
                head: RequestHead = event  # type: ignore[assignment]
                self._head = head
                self._their = _SEND_BODY
                if self._our is _IDLE:
                    self._our = _SEND_RESPONSE
                if not head.keep_alive:
                    self._keep_alive = False
                self._waiting_100 = head.expects_continue
            elif cls is EndOfMessage:
                self._waiting_100 = False
                self._their = _DONE
                self._settle()
            else:
                self._waiting_100 = False
            return event
        if their is _ERROR:
            assert self._error is not None
            raise self._error
        if their is _CLOSED:
            return ConnectionClosed()
        # DONE or MUST_CLOSE: a later request waits for start_next_cycle(); after a
        # request that closes, whatever else arrives is not read
        if their is _DONE and (self._events or self._pending or self._error is not None
                               or self._parser.paused):
            return PAUSED  # (a paused parser holds what came after an Upgrade or CONNECT)
        if self._eof:
            self._their = _CLOSED
            self._keep_alive = False
            self._settle()
            return ConnectionClosed()
        return NEED_DATA

    def _next_parsed(self) -> Event | None:
        """The next parsed event: fed from the held bytes when none is queued; None: none yet."""
        events = self._events
        if not events and self._error is None:
            parser = self._parser
            try:
                if self._pending:
                    data = b"".join(self._pending)
                    self._pending.clear()
                    events.extend(parser.feed(data))
                if not events and self._eof and not self._eof_fed:
                    self._eof_fed = True
                    events.extend(parser.feed_eof())
            except ParseError as exc:
                self._hold_error(exc)
        if events:
            return events.popleft()
        if self._error is not None:
            raise self._error
        if self._eof and self._their is _SEND_BODY:  # the parser said nothing: still cut short
            self._error = IncompleteMessage()
            raise self._error
        return None

    def _hold_error(self, exc: ParseError) -> None:
        """Queue the whole requests read before a bad one; raise its error after them."""
        self._events.extend(exc.events)
        exc.events = ()
        self._error = exc

    # -- the response side ---------------------------------------------------------------

    def send(self, event: SentEvent) -> bytes:
        """The bytes that carry a response event; raises LocalProtocolError when out of order."""
        cls = type(event)
        if cls is Data:
            return self._send_data(event)  # type: ignore[arg-type]
        if cls is EndOfMessage:
            return self._send_end(event)  # type: ignore[arg-type]
        if cls is Response:
            return self._send_response(event)  # type: ignore[arg-type]
        if cls is InformationalResponse:
            return self._send_informational(event)  # type: ignore[arg-type]
        if cls is ConnectionClosed:
            if self._our not in (_IDLE, _DONE, _MUST_CLOSE, _CLOSED, _ERROR):
                raise LocalProtocolError(
                    f"ConnectionClosed in the middle of a response (state {self._our.name}):"
                    " call send_failed() to give it up")
            self._our = _CLOSED
            self._keep_alive = False
            self._settle()
            return b""
        raise LocalProtocolError(f"a Connection cannot send a {cls.__name__}")

    def _send_informational(self, event: InformationalResponse) -> bytes:
        if self._our is not _SEND_RESPONSE:
            raise LocalProtocolError(
                "an InformationalResponse goes after a request's head and before the Response"
                f" (state {self._our.name})")
        status, headers = event.status_code, event.headers
        if status == 100 and not headers:
            out = CONTINUE
        else:
            out = informational(status, headers)  # checks: 1xx but 101, valid fields
        self._waiting_100 = False
        head = self._head
        if head is not None and head.version < (1, 1):
            return b""  # RFC 9110 15.2: no 1xx to an HTTP/1.0 client
        return out

    def _send_response(self, event: Response) -> bytes:
        our = self._our
        if our is not _SEND_RESPONSE and our is not _IDLE:
            raise LocalProtocolError(
                f"a Response goes once per request, before its body (state {our.name})")
        status = event.status_code
        if type(status) is int and status < 200:
            raise LocalProtocolError(
                "a 1xx status is an InformationalResponse (protocol switches, 101, are not"
                " supported)")
        # IDLE: no request head was read (a bad request line, a timeout): answer and close
        head = self._head if our is _SEND_RESPONSE else None
        if head is not None and head.method == b"CONNECT" and 200 <= status < 300:
            raise LocalProtocolError("a Connection opens no tunnels: answer CONNECT with"
                                     " a status outside 2xx")
        writer = ResponseWriter(
            is_head=head is not None and head.method == b"HEAD",
            http11=head is None or head.version >= (1, 1),
            keep_alive=self._keep_alive and head is not None,
            server=self.server,
        )
        writer.start(status, event.headers, event.reason)  # raises InvalidResponse
        # the body of a request still waiting for 100 Continue may never come
        close = self._their is _ERROR or (self._waiting_100 and self._their is _SEND_BODY)
        out = writer.head(None, close)
        self._writer = writer
        self._waiting_100 = False
        self._our = _SEND_BODY
        if not writer.keep_alive:
            self._keep_alive = False
            self._settle()
        return out

    def _send_data(self, event: Data) -> bytes:
        writer = self._writer
        if self._our is not _SEND_BODY or writer is None:
            raise LocalProtocolError(
                f"Data goes after a Response and before its EndOfMessage (state {self._our.name})")
        data = event.data
        length = writer.content_length
        if writer.framing is Framing.LENGTH and length is not None \
                and writer.sent + len(data) > length:
            raise LocalProtocolError(
                f"more body than the Content-Length of {length} (sent {writer.sent},"
                f" then {len(data)})")
        return writer.data(data)

    def _send_end(self, event: EndOfMessage) -> bytes:
        writer = self._writer
        if self._our is not _SEND_BODY or writer is None:
            raise LocalProtocolError(
                f"EndOfMessage goes after a Response (state {self._our.name})")
        length = writer.content_length
        if writer.framing is Framing.LENGTH and length is not None and writer.sent < length:
            raise LocalProtocolError(
                f"the body ends short of its Content-Length of {length} (sent {writer.sent}):"
                " send the rest, or send_failed() and close")
        out = writer.end(event.trailers or ())
        self._our = _DONE
        if not writer.keep_alive:
            self._keep_alive = False
        self._settle()
        return out

    def send_failed(self) -> None:
        """The server gives up on its side (a send failed, a response cannot be finished)."""
        self._our = _ERROR
        self._keep_alive = False
        self._settle()

    # -- between requests ----------------------------------------------------------------

    def start_next_cycle(self) -> None:
        """After a whole request and its whole response (both DONE): get ready for the next."""
        if self._our is not _DONE or self._their is not _DONE:
            raise LocalProtocolError(
                "start_next_cycle() needs both sides DONE"
                f" (ours is {self._our.name}, theirs {self._their.name})")
        self._our = self._their = _IDLE
        self._head = None
        self._writer = None
        self._waiting_100 = False
        parser = self._parser
        if parser.paused:  # an Upgrade or CONNECT request that was answered as plain HTTP
            try:
                self._events.extend(parser.resume())
            except ParseError as exc:
                self._hold_error(exc)

    def _settle(self) -> None:
        """Once the connection cannot carry another request, a finished side must close."""
        if self._keep_alive:
            return
        if self._our is _DONE or (self._our is _IDLE and self._their is _CLOSED):
            self._our = _MUST_CLOSE
        if self._their is _DONE:
            self._their = _MUST_CLOSE
        elif self._their is _IDLE and self._our is not _IDLE:
            self._their = _MUST_CLOSE  # an answer sent without a request, or a close: read no more
        if self._their is _MUST_CLOSE:
            self._events.clear()
            self._pending.clear()

    def __repr__(self) -> str:
        return (f"<Connection ours={self._our.name} theirs={self._their.name}"
                f" keep_alive={self._keep_alive}>")
