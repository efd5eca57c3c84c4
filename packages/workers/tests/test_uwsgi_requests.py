"""gcorn.workers.exchange.uwsgi: who may speak uwsgi, and packets turned into heads, environs and scopes.

The end-to-end side (every worker, a real nginx) is tests/test_e2e_uwsgi.py.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from gcorn.http import Body, EndOfMessage, IncompleteMessage, InvalidUwsgiPacket, RequestHead
from gcorn.http import encode_uwsgi_vars as packet
from gcorn.workers.exchange.uwsgi import (
    UnsupportedUwsgiModifier,
    UwsgiAllowList,
    UwsgiForbidden,
    UwsgiReader,
    cgi_environ,
    uwsgi_allow_list,
    uwsgi_scope,
)

LOCAL = UwsgiAllowList("127.0.0.1,::1")
PEER = ("127.0.0.1", 40000)
SERVER = ("127.0.0.1", "8000")


def test_allow_list_is_an_exact_match():
    assert LOCAL.allows(("127.0.0.1", 1)) and LOCAL.allows(("::1", 1, 0, 0))
    assert not LOCAL.allows(("127.0.0.2", 1))
    # no CIDR, as gunicorn: a network is just a string that no address equals
    assert not UwsgiAllowList("127.0.0.0/8").allows(("127.0.0.1", 1))
    assert UwsgiAllowList(["*"]).allows(("203.0.113.1", 1))
    assert LOCAL.allows("/run/gcorn.sock") and LOCAL.allows(b"")  # Unix peers


def test_setting_turns_it_on():
    assert uwsgi_allow_list(SimpleNamespace(protocol="http")) is None
    assert uwsgi_allow_list(SimpleNamespace()) is None
    allow = uwsgi_allow_list(SimpleNamespace(protocol="uwsgi", uwsgi_allow_ips=["10.0.0.1"]))
    assert allow is not None and allow.allows(("10.0.0.1", 1)) and not allow.allows(PEER)


def test_reader_yields_a_request_head_then_the_body():
    variables = {"REQUEST_METHOD": "POST", "REQUEST_URI": "/a%20b?x=1", "PATH_INFO": "/a b",
                 "QUERY_STRING": "x=1", "CONTENT_LENGTH": "3", "CONTENT_TYPE": "text/plain",
                 "HTTP_X_FORWARDED_FOR": "1.2.3.4", "HTTP_HOST": "h"}
    reader = UwsgiReader(LOCAL, PEER)
    events = reader.feed(packet(variables) + b"abc")
    head = events[0]
    assert type(head) is RequestHead
    assert (head.method, head.target, head.path, head.query) == (
        b"POST", b"/a%20b?x=1", b"/a%20b", b"x=1")
    assert (b"x-forwarded-for", b"1.2.3.4") in head.headers
    assert (b"content-type", b"text/plain") in head.headers
    assert head.version == (1, 0) and not head.keep_alive and head.upgrade is None
    assert head.content_length == 3 and not head.chunked
    assert events[1:] == [Body(b"abc"), EndOfMessage([])]
    assert reader.variables == variables


def test_reader_refusals():
    with pytest.raises(UwsgiForbidden) as forbidden:
        UwsgiReader(LOCAL, ("192.0.2.1", 5)).feed(packet({"A": "1"}))
    assert forbidden.value.status == 403
    with pytest.raises(UnsupportedUwsgiModifier) as modifier:
        UwsgiReader(LOCAL, PEER).feed(packet({"A": "1"}, modifier1=9))
    assert modifier.value.status == 501
    with pytest.raises(InvalidUwsgiPacket) as bad:
        UwsgiReader(LOCAL, PEER).feed(b"\x00\x06\x00\x00\x05\x00ABCD")
    assert bad.value.status == 400
    reader = UwsgiReader(LOCAL, PEER)
    assert reader.feed(packet({"A": "1"})[:5]) == []
    with pytest.raises(IncompleteMessage):
        reader.feed_eof()


def test_environ_is_the_variables_completed():
    environ = cgi_environ({"REQUEST_URI": "/app/x%2Fy?q=1", "QUERY_STRING": "q=1",
                           "SCRIPT_NAME": "/app", "CONTENT_LENGTH": "", "CONTENT_TYPE": "",
                           "REQUEST_SCHEME": "https", "DOCUMENT_ROOT": "/srv"},
                          PEER, SERVER, "", tls=False)
    assert environ["REQUEST_METHOD"] == "GET"
    # no PATH_INFO: REQUEST_URI's path, percent-decoded, SCRIPT_NAME cut off
    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == ("/app", "/x/y")
    assert environ["RAW_URI"] == "/app/x%2Fy?q=1"
    # missing addresses come from the socket and the listener
    assert (environ["REMOTE_ADDR"], environ["REMOTE_PORT"]) == ("127.0.0.1", "40000")
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == SERVER
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert "CONTENT_LENGTH" not in environ and "CONTENT_TYPE" not in environ
    assert environ["DOCUMENT_ROOT"] == "/srv"  # every variable reaches the app
    assert environ["wsgi.url_scheme"] == "https"  # REQUEST_SCHEME


@pytest.mark.parametrize(("variables", "tls", "scheme"), [
    ({"HTTPS": "on", "REQUEST_SCHEME": "http"}, False, "https"),
    ({"wsgi.url_scheme": "https"}, False, "https"),
    ({"REQUEST_SCHEME": "ftp"}, False, "http"),
    ({}, True, "https"),
])
def test_scheme(variables, tls, scheme):
    assert cgi_environ(variables, PEER, SERVER, "", tls)["wsgi.url_scheme"] == scheme


def test_given_addresses_and_default_script_name():
    environ = cgi_environ({"REMOTE_ADDR": "198.51.100.2", "SERVER_NAME": "example.org",
                           "PATH_INFO": "/root/p"}, PEER, SERVER, "/root", tls=False)
    assert environ["REMOTE_ADDR"] == "198.51.100.2" and "REMOTE_PORT" not in environ
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("example.org", "8000")
    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == ("/root", "/p")


def test_asgi_scope_from_the_environ():
    environ = cgi_environ({"REQUEST_URI": "/r/caf%C3%A9?a=1", "PATH_INFO": "/r/caf\xc3\xa9",
                           "QUERY_STRING": "a=1", "SCRIPT_NAME": "/r", "REMOTE_ADDR": "192.0.2.5",
                           "REMOTE_PORT": "5555", "SERVER_NAME": "example.org",
                           "SERVER_PORT": "443", "HTTPS": "on", "SERVER_PROTOCOL": "HTTP/1.0"},
                          PEER, SERVER, "", tls=False)
    scope: dict[str, object] = {}
    assert uwsgi_scope(scope, environ) == ("https", "/r/caf\xe9", ("192.0.2.5", 5555))
    assert scope["client"] == ("192.0.2.5", 5555)
    assert scope["server"] == ("example.org", 443)
    assert scope["root_path"] == "/r"
    assert scope["raw_path"] == b"/r/caf%C3%A9"
    assert scope["query_string"] == b"a=1"
    assert scope["http_version"] == "1.0"
