"""Browser-shaped form posts (issue 9: "a multipart POST with Content-Length and
many headers got no answer"): the parser reads them whole however the bytes
arrive, on both backends, and leaves nothing pending that could make a server
wait for more."""

from __future__ import annotations

import pytest

from gcorn.http import Body, EndOfMessage, RequestHead, RequestParser


def multipart(boundary: bytes) -> bytes:
    """A form with a text field and a text file of a few KB, as browsers encode it."""
    return (
        b"--" + boundary + b'\r\nContent-Disposition: form-data; name="title"\r\n\r\n'
        b"Hello w\xc3\xb6rld\r\n"
        b"--" + boundary + b'\r\nContent-Disposition: form-data; name="file"; '
        b'filename="notes.txt"\r\nContent-Type: text/plain\r\n\r\n'
        + b"a line of text, then CRLF\r\n" * 160 + b"\r\n"
        b"--" + boundary + b"--\r\n"
    )


FIREFOX_BOUNDARY = b"----geckoformboundary9f1c2a7e4b3d55a1"
FIREFOX_HEAD = (
    b"POST /upload HTTP/1.1\r\n"
    b"Host: localhost:8000\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    b"Accept-Language: en-US,en;q=0.5\r\n"
    b"Accept-Encoding: gzip, deflate, br, zstd\r\n"
    b"Content-Type: multipart/form-data; boundary=" + FIREFOX_BOUNDARY + b"\r\n"
    b"Content-Length: %d\r\n"
    b"Origin: http://localhost:8000\r\n"
    b"Connection: keep-alive\r\n"
    b"Referer: http://localhost:8000/form\r\n"
    b"Cookie: session=abc123; csrftoken=Zm9vYmFy\r\n"
    b"Upgrade-Insecure-Requests: 1\r\n"
    b"Sec-Fetch-Dest: document\r\n"
    b"Sec-Fetch-Mode: navigate\r\n"
    b"Sec-Fetch-Site: same-origin\r\n"
    b"Sec-Fetch-User: ?1\r\n"
    b"Priority: u=0, i\r\n"
    b"\r\n"
)
CHROME_BOUNDARY = b"----WebKitFormBoundaryq7MA4YWxkTrZu0gW"
CHROME_HEAD = (
    b"POST /upload?next=%2Fdone HTTP/1.1\r\n"
    b"Host: localhost:8000\r\n"
    b"Connection: keep-alive\r\n"
    b"Content-Length: %d\r\n"
    b"Cache-Control: max-age=0\r\n"
    b'sec-ch-ua: "Chromium";v="126", "Not.A/Brand";v="24", "Google Chrome";v="126"\r\n'
    b"sec-ch-ua-mobile: ?0\r\n"
    b'sec-ch-ua-platform: "Linux"\r\n'
    b"Origin: http://localhost:8000\r\n"
    b"DNT: 1\r\n"
    b"Upgrade-Insecure-Requests: 1\r\n"
    b"Content-Type: multipart/form-data; boundary=" + CHROME_BOUNDARY + b"\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    b"Chrome/126.0.0.0 Safari/537.36\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
    b"image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7\r\n"
    b"Sec-Fetch-Site: same-origin\r\n"
    b"Sec-Fetch-Mode: navigate\r\n"
    b"Sec-Fetch-User: ?1\r\n"
    b"Sec-Fetch-Dest: document\r\n"
    b"Referer: http://localhost:8000/form\r\n"
    b"Accept-Encoding: gzip, deflate, br, zstd\r\n"
    b"Accept-Language: en-GB,en-US;q=0.9,en;q=0.8\r\n"
    b"Cookie: session=abc123; _ga=GA1.1.1234567890.1700000000\r\n"
    b"\r\n"
)
FORMS = {
    "firefox": (FIREFOX_HEAD, multipart(FIREFOX_BOUNDARY)),
    "chrome": (CHROME_HEAD, multipart(CHROME_BOUNDARY)),
}


def form(browser: str) -> tuple[bytes, bytes]:
    """(head, body) of a browser's form post, its Content-Length filled in."""
    head, body = FORMS[browser]
    return head.replace(b"Content-Length: %d", b"Content-Length: %d" % len(body)), body


def read(parser: RequestParser, pieces: list[bytes]) -> tuple[RequestHead, bytes]:
    events = [event for piece in pieces for event in parser.feed(piece)]
    assert isinstance(events[0], RequestHead) and isinstance(events[-1], EndOfMessage)
    assert not parser.in_progress  # nothing left for which a server would wait
    return events[0], b"".join(event.data for event in events if isinstance(event, Body))


@pytest.mark.parametrize("browser", FORMS)
@pytest.mark.parametrize("size", [1, 7, 536, 1448, 4096, 65536])
def test_a_browser_form_post_is_read_whole_in_pieces(backend, browser, size):
    head, body = form(browser)
    data = head + body
    assert len(data) > 4000
    parsed, received = read(RequestParser(backend),
                            [data[i : i + size] for i in range(0, len(data), size)])
    assert received == body and parsed.content_length == len(body) and parsed.keep_alive
    assert len(parsed.headers) == head.count(b"\r\n") - 2


@pytest.mark.parametrize("browser", FORMS)
def test_a_browser_form_post_is_read_whole_wherever_the_head_is_cut(backend, browser):
    head, body = form(browser)
    data = head + body
    for cut in range(1, len(head) + 8):
        _, received = read(RequestParser(backend), [data[:cut], data[cut:]])
        assert received == body, cut


@pytest.mark.parametrize("browser", FORMS)
def test_the_next_request_on_the_connection_follows_a_form_post(backend, browser):
    head, body = form(browser)
    data = head + body + b"GET /done HTTP/1.1\r\nHost: localhost:8000\r\n\r\n"
    parser = RequestParser(backend)
    events = [event for i in range(0, len(data), 1000) for event in parser.feed(data[i : i + 1000])]
    heads = [event for event in events if isinstance(event, RequestHead)]
    assert [h.path for h in heads] == [heads[0].path, b"/done"]
    assert sum(isinstance(event, EndOfMessage) for event in events) == 2
