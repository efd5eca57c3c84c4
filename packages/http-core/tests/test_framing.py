"""ResponseWriter: the server's response side, rule by rule (RFC 9110, RFC 9112 6.3).

Each response is also read back by h11's client side, a parser written by
others, so a framing mistake (a body read as the next response) shows there.
"""

from __future__ import annotations

import re

import pytest

from gcorn.http import (
    CONTINUE,
    Framing,
    InvalidResponse,
    ResponseWriter,
    date_line,
    error_response,
    http_date,
    informational,
    server_line,
)

h11 = pytest.importorskip("h11")

DATE = re.compile(rb"Date: (Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug"
                  rb"|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT\r\n")


def write(status, headers, *pieces, method=b"GET", version=b"1.1", keep_alive=True,
          body_length=None, close=False, trailers=()):
    """(writer, wire bytes) of a whole response."""
    writer = ResponseWriter(is_head=method == b"HEAD", http11=version == b"1.1",
                            keep_alive=keep_alive)
    writer.start(status, headers)
    out = [writer.head(body_length, close=close)]
    out += [writer.data(piece) for piece in pieces]
    out.append(writer.end(trailers))
    return writer, b"".join(out)


def fields(wire):
    """The head's fields as a list of (lower-cased name, value)."""
    head = wire.split(b"\r\n\r\n", 1)[0]
    return [(n.lower(), v) for n, _, v in (line.partition(b": ")
                                          for line in head.split(b"\r\n")[1:])]


def names(wire):
    return [name for name, _ in fields(wire)]


def read_back(wire, method=b"GET", closed=False):
    """What h11's client reads from the wire: (status, headers, body, trailers, its state).

    h11 sends HTTP/1.1 requests only; how it reads a body does not depend on that.
    """
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method=method, target="/", headers=[("Host", "x")]))
    client.send(h11.EndOfMessage())
    client.receive_data(wire)
    if closed:
        client.receive_data(b"")
    status, headers, body, trailers = None, None, b"", None
    while True:
        event = client.next_event()
        if event is h11.NEED_DATA:
            break
        if isinstance(event, h11.Response):
            status, headers = event.status_code, event.headers
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            trailers = list(event.headers)
            break
        elif isinstance(event, h11.ConnectionClosed):
            break
    return status, headers, body, trailers, client.their_state


# -- the head ------------------------------------------------------------------------


def test_head_has_status_line_server_date_and_the_app_fields_in_order():
    writer, wire = write(200, [("Content-Type", "text/plain"), (b"X-A", b"1")], b"hi",
                         body_length=2)
    head, _, body = wire.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\nServer: gcorn\r\nDate: ")
    assert DATE.search(wire)
    assert names(wire) == [b"server", b"date", b"content-type", b"x-a", b"content-length"]
    assert body == b"hi" and writer.keep_alive and writer.framing is Framing.LENGTH
    assert read_back(wire)[:3] == (200, [(b"server", b"gcorn"), (b"date", DATE.search(
        wire).group(0)[6:-2]), (b"content-type", b"text/plain"), (b"x-a", b"1"),
        (b"content-length", b"2")], b"hi")


def test_reason_phrase_and_server_name():
    writer = ResponseWriter(server=b"other/1.0")
    writer.start(299, [], reason="Fine")
    assert writer.head(0).startswith(b"HTTP/1.1 299 Fine\r\nServer: other/1.0\r\n")


def test_values_lose_surrounding_whitespace():
    _, wire = write(200, [("X-A", " padded\t")], body_length=0)
    assert (b"x-a", b"padded") in fields(wire)


@pytest.mark.parametrize("headers", [
    [("X A", "1")], [("X-A", "a\r\nX-B: injected")], [("X-A", "a\nb")], [("X-A", "\x00")],
    [("", "1")], [("X-A", "snow\u2603")], [(1, "1")], [("X-A",)], ["abc"], [None],
    [("Content-Length", "-1")], [("Content-Length", "1e3")], [("Content-Length", "")],
    [("Content-Length", "3"), ("Content-Length", "4")],
])
def test_bad_fields_are_refused(headers):
    with pytest.raises(InvalidResponse):
        ResponseWriter().start(200, headers)


@pytest.mark.parametrize("status", [99, 1000, "200", 200.0, True, None])
def test_bad_status_is_refused(status):
    with pytest.raises(InvalidResponse):
        ResponseWriter().start(status, [])


def test_bad_reason_is_refused():
    with pytest.raises(InvalidResponse):
        ResponseWriter().start(200, [], reason="OK\r\nX: y")


def test_start_again_replaces_the_fields_until_the_head_is_sent():
    writer = ResponseWriter()
    writer.start(200, [("X-First", "1"), ("Content-Length", "5")])
    writer.start(500, [("X-Second", "2")])
    wire = writer.head(0)
    assert wire.startswith(b"HTTP/1.1 500 ")
    assert b"X-First" not in wire and b"X-Second: 2" in wire
    assert b"Content-Length: 0" in wire
    with pytest.raises(InvalidResponse):
        writer.start(200, [])
    with pytest.raises(InvalidResponse):
        writer.head()


def test_order_of_calls_is_enforced():
    writer = ResponseWriter()
    with pytest.raises(InvalidResponse):
        writer.head()
    with pytest.raises(InvalidResponse):
        writer.data(b"x")
    with pytest.raises(InvalidResponse):
        writer.end()


# -- hop-by-hop and server-owned fields (RFC 9110 7.6.1) --------------------------------


@pytest.mark.parametrize("name", ["Connection", "Keep-Alive", "Proxy-Connection", "TE",
                                  "Transfer-Encoding", "Upgrade", "Trailer", "Date", "Server",
                                  "transfer-encoding", "DATE"])
def test_hop_by_hop_and_server_fields_of_the_app_are_dropped(name):
    _, wire = write(200, [(name, "chunked" if "ransfer" in name else "x"), ("X-Kept", "1")],
                    body_length=0)
    lname = name.lower().encode()
    assert names(wire).count(lname) == (1 if lname in (b"date", b"server") else 0)
    assert (b"x-kept", b"1") in fields(wire)
    assert b": x\r\n" not in wire and b"Transfer-Encoding" not in wire


@pytest.mark.parametrize("version", [b"1.1", b"1.0"])
@pytest.mark.parametrize("keep_alive", [True, False])
def test_426_keeps_the_apps_upgrade_and_names_it_in_connection(version, keep_alive):
    # RFC 9110 15.5.22: a 426 MUST send Upgrade; 7.8: then Connection has "upgrade"
    writer, wire = write(426, [("Upgrade", "h2c"), ("Connection", "Upgrade"),
                               ("Content-Type", "text/plain")], b"upgrade",
                         version=version, keep_alive=keep_alive, body_length=7)
    got = fields(wire)
    assert (b"upgrade", b"h2c") in got
    connection = dict(got)[b"connection"].split(b", ")
    assert connection[0] == b"upgrade" and names(wire).count(b"connection") == 1
    assert (b"close" in connection) is not writer.keep_alive
    assert writer.keep_alive is (keep_alive and version == b"1.1"
                                 or keep_alive and b"keep-alive" in connection)
    status, headers, body, _, _ = read_back(wire, closed=not writer.keep_alive)
    assert status == 426 and body == b"upgrade" and (b"upgrade", b"h2c") in headers


def test_upgrade_of_other_statuses_is_still_dropped():
    _, wire = write(200, [("Upgrade", "h2c"), ("Connection", "upgrade")], body_length=0)
    assert b"upgrade" not in wire.lower()


def test_fields_named_by_connection_are_dropped():
    _, wire = write(200, [("X-Before", "1"), ("Connection", "X-Before, x-after"),
                          ("X-After", "2"), ("X-Other", "3")], body_length=0)
    assert names(wire) == [b"server", b"date", b"x-other", b"content-length"]


def test_app_connection_close_closes():
    writer, wire = write(200, [("Connection", "Close")], b"ok", body_length=2)
    assert not writer.keep_alive
    assert fields(wire)[-1] == (b"connection", b"close")
    assert names(wire).count(b"connection") == 1


def test_app_connection_keep_alive_does_not_reopen_a_closing_connection():
    writer, wire = write(200, [("Connection", "keep-alive")], body_length=0, keep_alive=False)
    assert not writer.keep_alive and (b"connection", b"close") in fields(wire)


def test_app_transfer_encoding_does_not_choose_the_framing():
    writer, wire = write(200, [("Transfer-Encoding", "chunked")], b"abc", body_length=3)
    assert writer.framing is Framing.LENGTH and b"Content-Length: 3" in wire
    assert b"chunked" not in wire


# -- body framing (RFC 9112 6.3) ---------------------------------------------------------


def test_app_content_length_frames_the_body():
    writer, wire = write(200, [("Content-Length", "5")], b"ab", b"cde")
    assert writer.framing is Framing.LENGTH and writer.content_length == 5
    assert wire.endswith(b"\r\n\r\nabcde") and writer.keep_alive and not writer.overrun
    assert read_back(wire)[2:4] == (b"abcde", [])


def test_repeated_equal_content_length_is_sent_once():
    _, wire = write(200, [("Content-Length", "2"), ("content-length", "2")], b"ab")
    assert names(wire).count(b"content-length") == 1


def test_bytes_past_content_length_are_cut():
    writer, wire = write(200, [("Content-Length", "3")], b"ab", b"cdef", b"gh")
    assert wire.endswith(b"\r\n\r\nabc") and writer.overrun and writer.sent == 3
    assert writer.keep_alive  # the framing is still right
    assert read_back(wire)[2] == b"abc"


def test_a_body_short_of_content_length_closes():
    writer, wire = write(200, [("Content-Length", "10")], b"abc")
    assert writer.incomplete and not writer.keep_alive
    assert read_back(wire)[2:4] == (b"abc", None)  # the client is still waiting


def test_known_body_size_gets_content_length():
    writer, wire = write(200, [], b"hello", body_length=5)
    assert writer.framing is Framing.LENGTH and b"Content-Length: 5\r\n" in wire
    assert read_back(wire)[2] == b"hello"


def test_unknown_size_on_http11_is_chunked():
    writer, wire = write(200, [], b"ab", b"", b"cde")
    assert writer.framing is Framing.CHUNKED and writer.keep_alive
    assert b"Transfer-Encoding: chunked\r\n" in wire
    assert wire.endswith(b"\r\n\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n")  # no empty chunk
    assert read_back(wire)[2:5] == (b"abcde", [], h11.DONE)
    assert writer.sent == 5


def test_chunked_trailers():
    _, wire = write(200, [], b"ab", trailers=[("X-Checksum", "abc")])
    assert wire.endswith(b"0\r\nX-Checksum: abc\r\n\r\n")
    assert read_back(wire)[3] == [(b"x-checksum", b"abc")]
    writer = ResponseWriter()
    writer.start(200, [])
    writer.head()
    with pytest.raises(InvalidResponse):
        writer.end([("X-Bad", "a\r\nb")])


def test_unknown_size_on_http10_is_close_delimited():
    writer, wire = write(200, [], b"ab", b"cd", version=b"1.0")
    assert writer.framing is Framing.CLOSE and not writer.keep_alive
    assert b"chunked" not in wire and (b"connection", b"close") in fields(wire)
    assert wire.endswith(b"\r\n\r\nabcd")
    assert read_back(wire, closed=True)[2] == b"abcd"


def test_http10_keep_alive_is_announced():
    writer, wire = write(200, [], b"ab", body_length=2, version=b"1.0")
    assert writer.keep_alive and (b"connection", b"keep-alive") in fields(wire)
    assert wire.startswith(b"HTTP/1.1 200 OK\r\n")  # RFC 9110 2.5: our highest 1.x


def test_http10_without_keep_alive_closes():
    writer, wire = write(200, [], b"ab", body_length=2, version=b"1.0", keep_alive=False)
    assert not writer.keep_alive and (b"connection", b"close") in fields(wire)


def test_http11_keep_alive_says_nothing():
    _, wire = write(200, [], body_length=0)
    assert b"connection" not in names(wire)


def test_server_asked_close():
    writer, wire = write(200, [], b"ab", body_length=2, close=True)
    assert not writer.keep_alive and (b"connection", b"close") in fields(wire)


@pytest.mark.parametrize("status", [204, 100, 102, 103])
def test_no_body_and_no_content_length(status):
    writer, wire = write(status, [("Content-Length", "5")], b"ignored", body_length=7)
    assert writer.framing is Framing.NONE and writer.content_length is None
    assert wire.endswith(b"\r\n\r\n") and b"ignored" not in wire
    assert b"content-length" not in names(wire) and b"transfer-encoding" not in names(wire)
    assert writer.keep_alive and writer.sent == 0
    if status == 204:
        assert read_back(wire)[:3] == (204, read_back(wire)[1], b"")


@pytest.mark.parametrize("method,status", [(b"HEAD", 200), (b"GET", 304), (b"HEAD", 304)])
def test_no_body_but_the_apps_content_length(method, status):
    writer, wire = write(status, [("Content-Length", "5")], b"hello", method=method)
    assert writer.framing is Framing.NONE and wire.endswith(b"\r\n\r\n")
    assert (b"content-length", b"5") in fields(wire) and writer.keep_alive
    assert read_back(wire, method=method)[2:5] == (b"", [], h11.DONE)


@pytest.mark.parametrize("version", [b"1.1", b"1.0"])
def test_head_without_length_gets_no_framing_field_and_stays_open(version):
    # a Content-Length made from what the app sent for HEAD could differ from GET's
    writer, wire = write(200, [], b"hello", method=b"HEAD", body_length=5, version=version)
    assert names(wire)[:2] == [b"server", b"date"]
    assert b"content-length" not in names(wire) and b"transfer-encoding" not in names(wire)
    assert writer.keep_alive and wire.endswith(b"\r\n\r\n")


def test_304_gets_no_length_from_the_body():
    _, wire = write(304, [], body_length=0)
    assert b"content-length" not in names(wire)


# -- without copies, and sendfile ------------------------------------------------------


def test_data_parts_frame_without_joining():
    writer = ResponseWriter()
    writer.start(200, [])
    writer.head()
    assert writer.data_parts(b"abc") == (b"3\r\n", b"abc", b"\r\n")
    assert writer.data_parts(b"") == (b"", b"", b"")
    length = ResponseWriter()
    length.start(200, [("Content-Length", "4")])
    length.head()
    assert length.data_parts(b"abcdef") == (b"", b"abcd", b"") and length.overrun


def test_reserve_for_sendfile():
    writer = ResponseWriter()
    writer.start(200, [("Content-Length", "10")])
    writer.head()
    assert writer.reserve(6) == (b"", 6, b"")
    assert writer.reserve(6) == (b"", 4, b"")  # cut to the Content-Length
    assert writer.reserve(6) == (b"", 0, b"") and writer.sent == 10
    chunked = ResponseWriter()
    chunked.start(200, [])
    chunked.head()
    assert chunked.reserve(16) == (b"10\r\n", 16, b"\r\n")
    head = ResponseWriter(is_head=True)
    head.start(200, [])
    head.head(16)
    assert head.reserve(16) == (b"", 0, b"")


# -- interim and whole responses -----------------------------------------------------------


def test_interim_responses():
    assert CONTINUE == b"HTTP/1.1 100 Continue\r\n\r\n" == informational(100)
    hints = informational(103, [("Link", "</s.css>; rel=preload")])
    assert hints == b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
    for status in (101, 200, 99):
        with pytest.raises(InvalidResponse):
            informational(status)
    with pytest.raises(InvalidResponse):
        informational(103, [("Link", "a\r\nb")])


def test_interim_then_final_read_back():
    _, final = write(200, [], b"ok", body_length=2)
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    client.send(h11.EndOfMessage())
    client.receive_data(informational(103, [("Link", "</a>")]) + final)
    assert isinstance(client.next_event(), h11.InformationalResponse)
    assert client.next_event().status_code == 200


def test_error_response():
    wire = error_response(503, "Service Unavailable")
    assert wire.startswith(b"HTTP/1.1 503 Service Unavailable\r\nServer: gcorn\r\nDate: ")
    assert wire.endswith(b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: 20\r\n"
                         b"Connection: close\r\n\r\nService Unavailable\n")
    assert read_back(wire, closed=True)[2] == b"Service Unavailable\n"


def test_dates():
    assert http_date(784111777) == b"Sun, 06 Nov 1994 08:49:37 GMT"  # RFC 9110 5.6.7
    assert DATE.fullmatch(date_line())
    assert date_line() is date_line() or DATE.fullmatch(date_line())
    assert server_line(b"gcorn") == b"Server: gcorn\r\n"
    with pytest.raises(InvalidResponse):
        server_line(b"bad\r\nname")


@pytest.mark.parametrize("status,headers,method,data", [
    (200, [], b"GET", b"hello"),
    (200, [("Content-Length", "5")], b"GET", b"hello"),
    (200, [("Content-Length", "3")], b"GET", b"hello"),
    (200, [("Content-Length", "9")], b"GET", b"hello"),
    (200, [], b"HEAD", b"hello"),
    (204, [], b"GET", b""),
    (304, [("Content-Length", "5")], b"GET", b""),
    (200, [("Connection", "close")], b"GET", b""),
])
def test_whole_is_head_data_end(status, headers, method, data):
    one = ResponseWriter(is_head=method == b"HEAD")
    one.start(status, headers)
    fused = one.whole(data)
    writer, wire = write(status, headers, data, method=method, body_length=len(data))
    assert DATE.sub(b"", fused) == DATE.sub(b"", wire)
    for name in ("framing", "content_length", "keep_alive", "sent", "overrun", "incomplete"):
        assert getattr(one, name) == getattr(writer, name), name
