"""Hypothesis strategies for HTTP/1.1 request streams, written from RFC 9110/9112 for the
differential tests against gunicorn (tests/test_gunicorn_differential.py in process,
tests/test_e2e_gunicorn_parity.py over TCP); no corpus of gunicorn's is used.

``grammar(scale)`` gives streams (lists of pieces) of one to three pipelined
requests: request lines, methods, targets, header fields, framing headers,
chunked bodies with extensions and trailers; each odd part is `scale` times
rarer than in scale 1. ``mutated_streams()`` sets, inserts or deletes bytes
anywhere in a mostly valid stream; ``compat_settings`` draws gunicorn's parser
settings; ``bounded(n)`` is the deterministic hypothesis profile of these tests.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# Generators. Each part is usually valid and sometimes odd or broken, so that
# most streams hold requests both parsers read, and the odd parts meet the
# rules one at a time.

TCHAR = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
PATH_CHARS = b"abcxyzABC019-._~!$&'()*+,;=:@/%"


def _mostly(usual: st.SearchStrategy[Any], odd: st.SearchStrategy[Any],
            odds: int) -> st.SearchStrategy[Any]:
    """usual, except about one time in `odds`: odd."""
    return st.integers(0, odds - 1).flatmap(lambda roll: odd if roll == 0 else usual)


def one_of_bytes(*values: bytes) -> st.SearchStrategy[bytes]:
    return st.sampled_from(values)


def _chars(alphabet: bytes, max_size: int, min_size: int = 0) -> st.SearchStrategy[bytes]:
    return st.binary(min_size=min_size, max_size=max_size).map(
        lambda raw: bytes(alphabet[b % len(alphabet)] for b in raw))


def grammar(scale: int) -> st.SearchStrategy[list[bytes]]:
    """Streams of requests; each odd part is `scale` times rarer than in scale 1."""

    def mostly(usual: st.SearchStrategy[Any], odd: st.SearchStrategy[Any],
               odds: int = 10) -> st.SearchStrategy[Any]:
        return _mostly(usual, odd, odds * scale)

    TOKENS = _chars(TCHAR, 12, min_size=1)
    methods = mostly(
        one_of_bytes(b"GET", b"POST", b"PUT", b"DELETE", b"HEAD", b"OPTIONS", b"PATCH", b"M-SEARCH",
                     b"PURGE", b"PROPFIND", b"GET", b"POST"),
        st.one_of(one_of_bytes(b"GE#T", b"get", b"Get", b"GO", b"ABCDEFGHIJKLMNOPQRSTU", b"G(T",
                               b"G\xc3\xa9T", b"CONNECT", b"TRACE"), TOKENS),
        odds=8,
    )
    paths = st.builds(lambda p: b"/" + p, _chars(PATH_CHARS, 12))
    queries = mostly(st.just(b""), st.builds(lambda q: b"?" + q, _chars(PATH_CHARS + b"?", 10)), 3)
    fragments = mostly(st.just(b""), st.builds(lambda f: b"#" + f, _chars(PATH_CHARS + b"#?", 6)), 6)
    authorities = mostly(
        one_of_bytes(b"example.com", b"example.com:8080", b"[::1]", b"[::1]:80", b"user@host"),
        st.one_of(one_of_bytes(b"[v1.x]", b"", b"]ufd", b"[ufd", b"[1.2.3.4]", b"[::1", b"a]b",
                               b"[fe80::1%25e]", b"[::1]x"), _chars(b"abc.-:019[]@", 8)),
        odds=3,
    )
    targets = mostly(
        st.builds(lambda p, q, f: p + q + f, paths, queries, fragments),
        st.one_of(
            st.builds(lambda s, a, p, q, f: s + b"://" + a + p + q + f,
                      one_of_bytes(b"http", b"https", b"s", b"ws"), authorities,
                      mostly(paths, st.just(b""), 4), queries, fragments),
            one_of_bytes(b"*", b"example.com:443", b"index.html", b"//double/slash",
                         b"/caf\xc3\xa9", b"/a\x7fb", b"/%zz", b"/a\x01"),
        ),
        odds=4,
    )
    versions = mostly(
        one_of_bytes(b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0"),
        one_of_bytes(b"HTTP/1.2", b"HTTP/1.9", b"HTTP/2.0", b"HTTP/0.9", b"HTTP/1", b"http/1.1",
                     b"HTTP/1.1 "),
        odds=12,
    )
    request_lines = mostly(
        st.builds(lambda m, t, v: m + b" " + t + b" " + v, methods, targets, versions),
        one_of_bytes(b"GET /", b"GET  / HTTP/1.1", b" GET / HTTP/1.1", b"GET / HTTP/1.1\r",
                     b"GET /a b HTTP/1.1", b"CONNECT example.com:443 HTTP/1.1",
                     b"CONNECT [::1]:8080 HTTP/1.1", b"CONNECT /x HTTP/1.1",
                     b"CONNECT example.com HTTP/1.1"),
        odds=30,
    )
    field_names = mostly(
        st.one_of(one_of_bytes(b"Accept", b"User-Agent", b"Cookie", b"X-Custom", b"Accept-Language",
                               b"Referer"), TOKENS),
        one_of_bytes(b"Content-Type", b"Expect", b"Connection", b"Upgrade", b"Trailer", b"TE",
                     b"X_Under", b"Host", b"Bad Name", b"X-Sp ", b"", b"X\x00", b"X\xe9",
                     b"X-Sp\t"),
        odds=15,
    )
    VALUE_CHARS = b"abc XYZ 019,;=/\"\\()\t"
    field_values = mostly(
        _chars(VALUE_CHARS, 16),
        one_of_bytes(b"caf\xe9", b"a\x01b", b"a\x7f", b"100-continue", b"keep-alive", b"close",
                     b"keep-alive, upgrade", b"upgrade", b"websocket", b"h2c", b"  padded  ",
                     b"\tx\t", b"Keep-Alive", b"x\x00"),
        odds=10,
    )
    field_lines = mostly(
        st.builds(lambda n, sep, v: n + sep + v, field_names, one_of_bytes(b": ", b":", b":\t"),
                  field_values),
        one_of_bytes(b" folded continuation", b"\tfolded", b"no colon", b":empty name"),
        odds=40,
    )
    chunk_extensions = mostly(
        st.just(b""),
        one_of_bytes(b";a", b";a=b", b';n="q s"', b" ;x=1", b"; x = 1", b";", b";a=",
                     b'; a="\\"x"', b";a\rb", b";\xe9", b" ", b";a=b c"),
        odds=4,
    )
    trailer_names = mostly(
        one_of_bytes(b"X-Checksum", b"Expires", b"Server-Timing"),
        one_of_bytes(b"Content-Type", b"Connection", b"Content-Length", b"Host", b"Authorization",
                     b"Trailer", b"TE", b"Transfer-Encoding", b"Bad Name", b"X_Under", b"Expect",
                     b"Upgrade"),
        odds=3,
    )


    @st.composite
    def chunked_bodies(draw: Any) -> bytes:
        """A chunked body: chunks (sizes in any hex case, leading zeros, extensions),
        the last chunk, trailers, the final CRLF; sometimes damaged."""
        out = b""
        for _ in range(draw(st.integers(0, 3))):
            data = draw(st.binary(min_size=1, max_size=20))
            size = draw(mostly(one_of_bytes(b"%x", b"%X"), one_of_bytes(b"00%x", b"%x ", b"+%x"),
                               8)) % len(data)
            end = draw(mostly(st.just(b"\r\n"), one_of_bytes(b"\n", b"xx", b"\r\nx"), 15))
            out += size + draw(chunk_extensions) + b"\r\n" + data + end
        out += draw(mostly(st.just(b"0"), st.just(b"000"), 6)) + draw(chunk_extensions) + b"\r\n"
        trailers = draw(mostly(st.just([]), st.lists(mostly(
            st.builds(lambda n, v: n + b": " + v, trailer_names, field_values),
            one_of_bytes(b" folded", b"no colon")), min_size=1, max_size=3), 2))
        out += b"".join(t + b"\r\n" for t in trailers) + b"\r\n"
        return out


    @st.composite
    def framed_bodies(draw: Any) -> tuple[list[bytes], bytes]:
        """Framing header lines and a body to go with them."""
        kind = draw(mostly(st.sampled_from(["none", "length", "chunked", "codings"]),
                           st.sampled_from(["both", "odd-length", "codings"]), 4))
        body = draw(st.binary(max_size=24))
        if kind == "none":
            return [], b""
        if kind == "length":
            return [b"Content-Length: %d" % len(body)], body
        if kind == "odd-length":
            value = draw(one_of_bytes(b"%d, %d", b"+%d", b"00%d", b"-%d", b"%d.0", b"%dx",
                                      b"99999999999999999999", b"%d\xb2", b"%d ", b"1%d"))
            lines = [b"Content-Length: " + value.replace(b"%d", b"%d" % len(body))]
            if draw(st.booleans()):
                lines.append(b"Content-Length: %d" % len(body))
            return lines, body
        chunked = draw(chunked_bodies())
        if kind == "chunked":
            coding = draw(mostly(st.just(b"chunked"), one_of_bytes(b"Chunked", b"CHUNKED",
                                                                   b"chunked "), 4))
            return [b"Transfer-Encoding: " + coding], chunked
        if kind == "both":
            return [b"Transfer-Encoding: chunked", b"Content-Length: %d" % len(chunked)], chunked
        codings = draw(mostly(
            st.builds(lambda first: [*first, b"chunked"],
                      st.lists(one_of_bytes(b"identity", b"gzip", b"deflate", b"Identity"),
                               max_size=2)),
            st.lists(one_of_bytes(b"chunked", b"identity", b"gzip", b"deflate", b"br", b"x-gzip",
                                  b""), min_size=1, max_size=3),
            odds=3,
        ))
        if draw(st.booleans()):  # one field
            lines = [b"Transfer-Encoding: " + b", ".join(codings)]
        else:  # one field per coding
            lines = [b"Transfer-Encoding: " + coding for coding in codings]
        if draw(mostly(st.just(False), st.just(True), 5)):
            lines.append(b"Content-Length: %d" % len(chunked))
        return lines, chunked


    @st.composite
    def requests(draw: Any) -> bytes:
        """One request: line, fields (framing ones shuffled in), body."""
        line = draw(request_lines)
        fields = draw(st.lists(field_lines, max_size=6))
        if draw(mostly(st.just(True), st.just(False), 4)):
            fields.insert(0, b"Host: example.com")
        framing, body = draw(framed_bodies())
        for framing_line in framing:
            fields.insert(draw(st.integers(0, len(fields))), framing_line)
        prefix = draw(mostly(st.just(b""), one_of_bytes(b"\r\n", b"\r\n\r\n", b"\n"), 15))
        return prefix + line + b"\r\n" + b"".join(f + b"\r\n" for f in fields) + b"\r\n" + body


    @st.composite
    def streams(draw: Any) -> list[bytes]:
        """One to three pipelined requests, cut into pieces at random points."""
        data = b"".join(draw(st.lists(requests(), min_size=1, max_size=3)))
        cuts = sorted(set(draw(st.lists(st.integers(1, max(1, len(data) - 1)), max_size=4))))
        bounds = [0, *cuts, len(data)]
        return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if data[a:b]]

    return streams()


def bounded(examples: int) -> settings:
    """Deterministic (CI runs the same examples every time), no deadline, no database."""
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

@st.composite
def mutated_streams(draw: Any) -> list[bytes]:
    """A mostly valid stream with one to three bytes set, inserted or deleted anywhere."""
    data = bytearray(b"".join(draw(grammar(scale=6))))
    for _ in range(draw(st.integers(1, 3))):
        index = draw(st.integers(0, max(0, len(data) - 1)))
        byte = draw(st.integers(0, 255))
        operation = draw(st.sampled_from(["set", "insert", "delete"]))
        if operation == "insert" or not data:
            data.insert(index, byte)
        elif operation == "set":
            data[index] = byte
        else:
            del data[index]
    cut = draw(st.integers(0, len(data)))
    return [piece for piece in (bytes(data[:cut]), bytes(data[cut:])) if piece]

# gunicorn's parser settings, with small limits so that generated requests reach them.
compat_settings = st.fixed_dictionaries({}, optional={
    "permit_obsolete_folding": st.booleans(),
    "strip_header_spaces": st.booleans(),
    "permit_unconventional_http_method": st.booleans(),
    "permit_unconventional_http_version": st.booleans(),
    "casefold_http_method": st.booleans(),
    "limit_request_line": st.sampled_from([0, 12, 24, 40, 4094]),
    "limit_request_fields": st.sampled_from([0, 1, 2, 4, 100]),
    "limit_request_field_size": st.sampled_from([0, 12, 24, 40, 8190]),
})
