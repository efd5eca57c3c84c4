"""One server SSLContext per worker, built from the SSL settings through `cfg.ssl_context`.

gunicorn's sync and gthread workers rebuild the context (reading the
certificate from disk) for every accepted connection; gcorn builds it once
when the worker boots and reuses it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gcorn.arbiter import Settings, setting
from gcorn.workers.errors import TLSSetupError

if TYPE_CHECKING:
    import socket
    import ssl

__all__ = ["build_context", "is_tls_enabled", "wrap_connection"]


def is_tls_enabled(cfg: Settings) -> bool:
    """Whether the settings ask for TLS (`certfile` or `keyfile` set)."""
    is_ssl = setting(cfg, "is_ssl", None)
    if is_ssl is not None:
        return bool(is_ssl)
    return bool(setting(cfg, "certfile", None) or setting(cfg, "keyfile", None))


def _default_factory(cfg: Settings) -> ssl.SSLContext:
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH,
                                         cafile=setting(cfg, "ca_certs", None))
    certfile = cfg.certfile
    if not certfile:
        raise ValueError("keyfile is set but certfile is not")
    context.load_cert_chain(certfile=certfile, keyfile=setting(cfg, "keyfile", None))
    context.verify_mode = ssl.VerifyMode(int(setting(cfg, "cert_reqs", ssl.CERT_NONE)))
    ciphers = setting(cfg, "ciphers", None)
    if ciphers:
        context.set_ciphers(ciphers)
    return context


def build_context(cfg: Settings, alpn: list[str] | None = None) -> ssl.SSLContext | None:
    """The worker's server context, or None when TLS is off; raises `TLSSetupError`."""
    if not is_tls_enabled(cfg):
        return None
    # imported here, not at module level: ssl costs megabytes in every plain-HTTP worker
    import ssl

    def factory() -> ssl.SSLContext:
        """gunicorn's default: cert chain, CA bundle, cert_reqs and ciphers from cfg."""
        return _default_factory(cfg)

    hook = setting(cfg, "ssl_context", None)
    try:
        context = hook(cfg, factory) if callable(hook) else factory()
        if alpn:
            context.set_alpn_protocols(alpn)
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise TLSSetupError(f"cannot build the TLS context: {exc}") from exc
    if not isinstance(context, ssl.SSLContext):
        raise TLSSetupError("the ssl_context hook did not return an ssl.SSLContext")
    return context


def wrap_connection(context: ssl.SSLContext, sock: socket.socket, cfg: Settings) -> ssl.SSLSocket:
    """Wrap an accepted connection; the caller runs the handshake (`do_handshake`)."""
    return context.wrap_socket(
        sock, server_side=True,
        do_handshake_on_connect=False,
        suppress_ragged_eofs=bool(setting(cfg, "suppress_ragged_eofs", True)),
    )
