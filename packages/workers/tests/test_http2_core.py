"""The HTTP/2 core: header blocks follow HTTP/1's field rules, settings, abuse counters."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from gcorn.workers.http2 import (
    AbuseGuard,
    EnhanceYourCalm,
    H2Options,
    H2RequestError,
    alpn_protocols,
    goaway_frame,
    request_fields,
    response_fields,
)

pytest.importorskip("h2")

BASE = [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"example.com"),
        (b":path", b"/a/b?x=1")]
OPTIONS = H2Options()


def test_a_good_request_block() -> None:
    fields = request_fields(BASE + [(b"accept", b"*/*"), (b"cookie", b"a=1"),
                                    (b"cookie", b"b=2")], OPTIONS)
    assert (fields.method, fields.scheme, fields.path, fields.query) == (
        "GET", "https", b"/a/b", b"x=1")
    # :authority becomes Host for HTTP/1-shaped apps; cookie crumbs are joined (RFC 9113 8.2.3)
    assert fields.headers[0] == (b"host", b"example.com")
    assert (b"cookie", b"a=1; b=2") in fields.headers


@pytest.mark.parametrize(("extra", "status"), [
    ([(b"bad name", b"x")], 400),
    ([(b"x-a", b"evil\r\nx: y")], 400),
    ([(b"x-a", b"nul\x00")], 400),
    ([(b"X-Upper", b"x")], 400),
    ([(b"connection", b"keep-alive")], 400),
    ([(b"transfer-encoding", b"chunked")], 400),
    ([(b"te", b"gzip")], 400),
    ([(b"host", b"other.example")], 400),
    ([(b"content-length", b"abc")], 400),
    ([(b"x-big", b"v" * 9000)], 431),
])
def test_bad_fields_are_refused_as_on_http1(extra: list[tuple[bytes, bytes]],
                                             status: int) -> None:
    with pytest.raises(H2RequestError) as caught:
        request_fields(BASE + extra, OPTIONS)
    assert caught.value.status == status


def test_limit_request_fields_counts_h2_fields_too() -> None:
    options = H2Options(limit_request_fields=3)
    request_fields(BASE + [(b"a", b"1"), (b"b", b"2"), (b"c", b"3")], options)
    with pytest.raises(H2RequestError) as caught:
        request_fields(BASE + [(b"a", b"1"), (b"b", b"2"), (b"c", b"3"), (b"d", b"4")], options)
    assert caught.value.status == 431


@pytest.mark.parametrize("block", [
    [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"x")],  # no :path
    [(b":method", b"GET"), (b":path", b"/"), (b":scheme", b"http")],  # no authority nor host
    BASE + [(b":path", b"/again")],  # a pseudo-header twice
    [(b"accept", b"*/*")] + BASE,  # a pseudo-header after a regular field
    BASE[:3] + [(b":path", b"relative")],
    BASE[:3] + [(b":path", b"/a#frag")],
    [(b":method", b"CONNECT"), (b":authority", b"x:443")],
    BASE + [(b":protocol", b"websocket")],
])
def test_bad_pseudo_headers_are_refused(block: list[tuple[bytes, bytes]]) -> None:
    with pytest.raises(H2RequestError):
        request_fields(block, OPTIONS)


def test_host_without_authority_is_accepted() -> None:
    block = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"), (b"host", b"h")]
    assert request_fields(block, OPTIONS).authority == b"h"


def test_response_fields_drop_connection_headers_and_check_values() -> None:
    out = response_fields(200, [(b"Content-Type", b"text/plain"), (b"Connection", b"close"),
                                (b"Transfer-Encoding", b"chunked"), (b"Server", b"app")],
                          [(b"date", b"D"), (b"server", b"gcorn")], 5)
    assert out == [(b":status", b"200"), (b"content-type", b"text/plain"),
                   (b"content-length", b"5"), (b"date", b"D"), (b"server", b"gcorn")]
    with pytest.raises(ValueError):
        response_fields(200, [(b"x", b"a\r\nb")], [])
    with pytest.raises(ValueError):
        response_fields(1000, [], [])
    # 204 and 304 never get a content-length from the server
    assert (b"content-length", b"0") not in response_fields(204, [], [], 0)


def test_options_from_settings_and_alpn_order() -> None:
    cfg = SimpleNamespace(http_protocols=["h2", "h1"], http2_cleartext="both",
                          http2_max_concurrent_streams=7, http2_initial_window_size=1000,
                          http2_max_frame_size=16384, http2_max_header_list_size=4096,
                          limit_request_fields=0, limit_request_field_size=0, timeout=5)
    options = H2Options.from_cfg(cfg)
    assert options.prior_knowledge and options.upgrade and options.h2_over_tls
    assert options.max_concurrent_streams == 7 and options.limit_request_fields == 32768
    assert alpn_protocols(options) == ["h2", "http/1.1"]
    assert alpn_protocols(H2Options(protocols=("h1",))) is None
    with pytest.raises(ValueError):
        H2Options.from_cfg(SimpleNamespace(http2_cleartext="sometimes"))


def test_abuse_guard_counts_resets_and_control_frames_per_second() -> None:
    guard = AbuseGuard(H2Options(max_concurrent_streams=10))
    for _ in range(guard.reset_limit):
        guard.stream_reset()
    with pytest.raises(EnhanceYourCalm):
        guard.stream_reset()
    for _ in range(100):
        guard.control_frame()
    with pytest.raises(EnhanceYourCalm):
        guard.control_frame()


def test_goaway_frame_bytes() -> None:
    frame = goaway_frame(5, 0xB)
    assert frame[3] == 7 and frame[5:9] == b"\0\0\0\0"  # type GOAWAY on stream 0
    assert frame[9:13] == (5).to_bytes(4, "big") and frame[13:17] == (0xB).to_bytes(4, "big")
