"""The README's ten-line example runs as written, over a real socket pair."""

from __future__ import annotations

import re
import socket
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def example(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split(title, 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


def run_example(request: bytes) -> bytes:
    server, client = socket.socketpair()
    with server, client:
        server.settimeout(5)
        client.settimeout(5)
        client.sendall(request)
        received: list[bytes] = []
        exec(example("## Use in ten lines"), {"sock": server, "handle": received.append})
        client.shutdown(socket.SHUT_WR)
        server.close()
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk
    return answer


def test_readme_example_answers_a_request():
    answer = run_example(b"POST /x?y=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi")
    assert answer.startswith(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert answer.endswith(b"5\r\nhello\r\n0\r\n\r\n")


def test_readme_example_answers_a_bad_request_with_its_status():
    answer = run_example(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
    assert answer == b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n"


def test_readme_response_writer_example():
    from gcorn.http import RequestParser

    head = RequestParser().feed(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")[0]
    server, client = socket.socketpair()
    with server, client:
        client.settimeout(5)
        exec(example("## The response side"), {"sock": server, "head": head})
        assert server.fileno() != -1  # kept alive: HTTP/1.1 without close
        server.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 OK\r\nServer: gcorn\r\nDate: ")
    assert answer.endswith(b"Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
                           b"5\r\nhello\r\n0\r\n\r\n")


def serve_with_readme_loop(request: bytes) -> bytes:
    """Run the README's Connection server loop on one end of a socket pair."""
    namespace: dict[str, object] = {}
    exec(example("## Connection: one object per connection"), namespace)
    server, client = socket.socketpair()
    with server, client:
        server.settimeout(5)
        client.settimeout(5)
        client.sendall(request)
        namespace["serve"](server)  # returns when the connection is to close
        server.close()
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk
    return answer


def test_readme_connection_loop_serves_pipelined_requests():
    answer = serve_with_readme_loop(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
                                    b"POST /b HTTP/1.1\r\nContent-Length: 1\r\n\r\nx"
                                    b"GET /c HTTP/1.0\r\n\r\n")
    assert answer.count(b"HTTP/1.1 200 OK\r\n") == 3
    assert b"9\r\nhello /a\n\r\n0\r\n\r\n" in answer and b"hello /b\n" in answer
    assert answer.endswith(b"Connection: close\r\n\r\nhello /c\n")  # 1.0: the close ends it


def test_readme_connection_loop_answers_a_bad_request():
    answer = serve_with_readme_loop(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert answer.endswith(b"Content-Length: 0\r\nConnection: close\r\n\r\n")
