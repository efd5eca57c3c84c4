"""Pure parts shared with the ASGI worker: access-log atoms, trust lists, header policy, TLS."""

from __future__ import annotations

import base64
from types import SimpleNamespace

import pytest

from gcorn.workers.errors import HeaderNameRefused, InvalidSchemeHeaders, TLSSetupError
from gcorn.workers.exchange.access import AccessInfo
from gcorn.workers.exchange.forwarded import AllowList, ForwardedPolicy
from gcorn.workers.tls import build_context, is_tls_enabled

FORMAT = ('%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(T)s %(M)s %(D)s %(L)s'
          ' %({X-Req}i)s %({x-resp}O)s %({PATH_INFO}e)s %({nope}i)s %(nope)s')


def info(**kw):
    base = dict(remote_addr="10.0.0.1", method="GET", raw_uri="/a?b=1", path="/a", query="b=1",
                protocol="HTTP/1.1", status=200, bytes_sent=1234, request_time=1.5,
                request_headers=[(b"x-req", b"rq"), (b"user-agent", b'ua "q"'),
                                 (b"authorization",
                                  b"Basic " + base64.b64encode(b"bob:pw"))],
                response_headers=[("X-Resp", "rs")], environ={"PATH_INFO": "/a"})
    base.update(kw)
    return AccessInfo(**base)


def test_atoms_format_like_gunicorn():
    line = FORMAT % info().atoms()
    head, _, rest = line.partition(" [")
    assert head == "10.0.0.1 - bob"
    assert rest.split("] ", 1)[1] == (
        '"GET /a?b=1 HTTP/1.1" 200 1234 "-" "ua \\"q\\"" 1 1500 1500000 1.500000'
        ' rq rs /a - -')


def test_zero_bytes_is_dash_and_atoms_are_frozen_values():
    atoms = info(bytes_sent=0, request_time=0.000123).atoms()
    assert atoms["b"] == "-" and atoms["B"] == 0
    assert atoms["D"] == 123 and atoms["L"] == "0.000123"
    with pytest.raises(AttributeError):
        info().status = 500  # frozen


def test_allow_list():
    allow = AllowList("127.0.0.1, 10.0.0.0/8,::1")
    assert allow.allows(("10.2.3.4", 5))
    assert allow.allows(("::1", 5, 0, 0))
    assert allow.allows(("::ffff:127.0.0.1", 5, 0, 0))
    assert not allow.allows(("11.0.0.1", 5))
    assert not allow.allows(("not-an-ip", 5))
    assert allow.allows("/tmp/unix.sock")  # Unix-socket peers are trusted
    assert AllowList(["*"]).allows(("203.0.113.1", 1))
    with pytest.raises(ValueError):
        AllowList(["300.1.1.1"])


def policy(**kw):
    cfg = dict(forwarded_allow_ips=["127.0.0.1"], header_map="drop")
    cfg.update(kw)
    return ForwardedPolicy(SimpleNamespace(**cfg))


def test_policy_scheme_and_conflicts():
    p = policy()
    peer = ("127.0.0.1", 1)
    assert p.filter_headers([(b"x-forwarded-proto", b"https")], peer, "http")[0] == "https"
    assert p.filter_headers([(b"x-forwarded-ssl", b"on")], peer, "http")[0] == "https"
    assert p.filter_headers([(b"x-forwarded-proto", b"https")], ("8.8.8.8", 1), "http")[0] == "http"
    with pytest.raises(InvalidSchemeHeaders) as exc:
        p.filter_headers([(b"x-forwarded-proto", b"https"), (b"x-forwarded-ssl", b"off")],
                         peer, "http")
    assert exc.value.status == 400


def test_policy_underscores():
    headers = [(b"a", b"1"), (b"x_y", b"2"), (b"script_name", b"/s")]
    assert policy().filter_headers(headers, ("8.8.8.8", 1), "http")[1] == [(b"a", b"1")]
    assert policy().filter_headers(headers, ("127.0.0.1", 1), "http")[1] == [
        (b"a", b"1"), (b"script_name", b"/s")]
    assert policy(header_map="dangerous").filter_headers(
        headers, ("8.8.8.8", 1), "http")[1] == headers
    with pytest.raises(HeaderNameRefused):
        policy(header_map="refuse").filter_headers(headers, ("8.8.8.8", 1), "http")
    same = [(b"a", b"1")]
    assert policy().filter_headers(same, ("8.8.8.8", 1), "http")[1] is same


def test_tls_context_settings(tmp_path):
    assert build_context(SimpleNamespace(certfile=None, keyfile=None)) is None
    assert not is_tls_enabled(SimpleNamespace(certfile=None, keyfile=None))
    cfg = SimpleNamespace(certfile=str(tmp_path / "missing.pem"), keyfile=None, ca_certs=None,
                          cert_reqs=0, ciphers=None, ssl_context=lambda c, f: f())
    with pytest.raises(TLSSetupError) as exc:
        build_context(cfg)
    assert "missing.pem" in str(exc.value) or "No such file" in str(exc.value)
