"""The gcorn.workers exception family: every error maps to the HTTP status it is answered with."""

from __future__ import annotations


class WorkerError(Exception):
    """Base of every gcorn.workers error; `status` is the HTTP status to answer."""

    status: int = 500
    reason: str = "Internal Server Error"

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.reason)

    @property
    def client_message(self) -> str:
        """A message that is safe to send to the client."""
        return str(self.args[0]) if self.args else self.reason


class BadRequest(WorkerError):
    """The client sent something the worker refuses (400)."""

    status = 400
    reason = "Bad Request"


class InvalidSchemeHeaders(BadRequest):
    """Two `secure_scheme_headers` of a trusted peer disagree on the scheme (400)."""

    def __init__(self) -> None:
        super().__init__("Contradictory scheme headers")


class HeaderNameRefused(BadRequest):
    """A header name with an underscore under `header_map = refuse` (400)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"Invalid header name {name!r}")


class RequestHeadTimeout(WorkerError):
    """The client did not send a whole request head within `header_timeout` (408)."""

    status = 408
    reason = "Request Timeout"


class ForbiddenPeer(WorkerError):
    """A peer outside `proxy_allow_ips` sent a PROXY protocol header (403)."""

    status = 403
    reason = "Forbidden"


class ConfigurationProblem(WorkerError):
    """The server is misconfigured for this request, e.g. PATH outside SCRIPT_NAME (500)."""

    status = 500
    reason = "Internal Server Error"


class AppResponseError(WorkerError):
    """The application broke the WSGI response rules (500, logged, never shown)."""

    status = 500
    reason = "Internal Server Error"


class TLSSetupError(WorkerError):
    """The TLS context cannot be built from the settings (worker boot fails)."""

    status = 500
    reason = "Internal Server Error"


class ClientDisconnected(WorkerError, ConnectionError):
    """The peer closed, reset or stopped talking mid-request; nothing more can be sent."""

    status = 400
    reason = "Bad Request"
