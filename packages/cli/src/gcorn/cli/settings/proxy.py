"""Settings of the section "Proxy": trusted peers, forwarded headers, PROXY and uwsgi protocols."""

from __future__ import annotations

import os

from . import validators as v
from .base import Setting

SECTION = "Proxy"


def _default_forwarded_allow_ips() -> str:
    return os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")


SETTINGS = (
    Setting(
        name="secure_scheme_headers",
        section=SECTION,
        value_type="dict",
        default={"X-FORWARDED-PROTOCOL": "ssl", "X-FORWARDED-PROTO": "https", "X-FORWARDED-SSL": "on"},
        validator=v.mapping,
        doc="Headers (upper-case) and values that mark a request as https when a trusted "
        "peer sends them.",
    ),
    Setting(
        name="forwarded_allow_ips",
        section=SECTION,
        flags=("--forwarded-allow-ips",),
        metavar="STRING",
        value_type="list[str]",
        default="127.0.0.1,::1",
        default_factory=_default_forwarded_allow_ips,
        default_doc="`'127.0.0.1,::1'`, or `$FORWARDED_ALLOW_IPS` when set",
        validator=v.address_list,
        doc="Peers (IPs, CIDR networks or `*`) trusted to set the scheme and forwarder headers.",
    ),
    Setting(
        name="forwarder_headers",
        section=SECTION,
        flags=("--forwarder-headers",),
        value_type="list[str]",
        default="SCRIPT_NAME,PATH_INFO",
        validator=v.comma_list,
        doc="Headers with `_` that a trusted peer may set into the environ.",
    ),
    Setting(
        name="proxy_protocol",
        section=SECTION,
        # gunicorn's quirk: the flag takes an optional value; alone it means auto.
        flags=("--proxy-protocol",),
        nargs="?",
        const="auto",
        metavar="MODE",
        default="off",
        validator=v.proxy_protocol,
        doc="Read a PROXY protocol header: off, v1, v2 or auto; the bare flag means auto.",
    ),
    Setting(
        name="proxy_allow_ips",
        section=SECTION,
        flags=("--proxy-allow-from",),
        value_type="list[str]",
        default="127.0.0.1,::1",
        validator=v.address_list,
        doc="Peers (IPs, CIDR networks or `*`) allowed to send a PROXY header.",
    ),
    Setting(
        name="protocol",
        section=SECTION,
        flags=("--protocol",),
        metavar="STRING",
        default="http",
        validator=v.choice("http", "uwsgi"),
        doc="The wire protocol of the listeners: http, or uwsgi (behind nginx uwsgi_pass).",
    ),
    Setting(
        name="uwsgi_allow_ips",
        section=SECTION,
        flags=("--uwsgi-allow-from",),
        value_type="list[str]",
        default="127.0.0.1,::1",
        validator=v.comma_list,
        doc="Peers allowed to speak uwsgi (exact addresses, or `*`).",
    ),
    Setting(
        name="root_path",
        section=SECTION,
        flags=("--root-path",),
        metavar="STRING",
        default="",
        validator=v.string,
        doc="The ASGI `root_path`: the prefix under which the app is mounted.",
    ),
)
