"""Settings of the section "SSL": TLS on the listeners."""

from __future__ import annotations

from . import validators as v
from .base import Setting

SECTION = "SSL"

SETTINGS = (
    Setting(
        name="keyfile",
        section=SECTION,
        flags=("--keyfile",),
        metavar="FILE",
        default=None,
        validator=v.string,
        doc="The TLS private key file; TLS is on when `keyfile` or `certfile` is set.",
    ),
    Setting(
        name="certfile",
        section=SECTION,
        flags=("--certfile",),
        metavar="FILE",
        default=None,
        validator=v.string,
        doc="The TLS certificate (chain) file.",
    ),
    Setting(
        name="ssl_version",
        section=SECTION,
        flags=("--ssl-version",),
        default=None,
        default_doc="`None` (ignored)",
        validator=v.any_value,
        doc="Ignored, as in gunicorn since 21.0: use the `ssl_context` hook instead.",
    ),
    Setting(
        name="cert_reqs",
        section=SECTION,
        flags=("--cert-reqs",),
        value_type="int",
        default=0,
        validator=v.int_range(0, 2),
        doc="Whether a client certificate is needed: 0 none, 1 optional, 2 required.",
    ),
    Setting(
        name="ca_certs",
        section=SECTION,
        flags=("--ca-certs",),
        metavar="FILE",
        default=None,
        validator=v.string,
        doc="The CA bundle used to verify client certificates.",
    ),
    Setting(
        name="suppress_ragged_eofs",
        section=SECTION,
        # gunicorn's quirk: a store_true flag whose default is already True.
        flags=("--suppress-ragged-eofs",),
        action="store_true",
        value_type="bool",
        default=True,
        validator=v.boolean,
        doc="Treat an unexpected EOF from a TLS client as a normal close.",
    ),
    Setting(
        name="do_handshake_on_connect",
        section=SECTION,
        flags=("--do-handshake-on-connect",),
        action="store_true",
        value_type="bool",
        default=False,
        validator=v.boolean,
        doc="Do the TLS handshake as the connection is accepted.",
    ),
    Setting(
        name="ciphers",
        section=SECTION,
        flags=("--ciphers",),
        default=None,
        validator=v.string,
        doc="The OpenSSL cipher list (Python's default when unset).",
    ),
)
