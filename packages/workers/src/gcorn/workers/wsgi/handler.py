"""Serve one WSGI request on a connection: environ, hooks, app call, response, access log.

Shared by the sync and gthread workers. `RequestHandler.serve` returns
whether the connection may carry another request.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from gcorn.http import ParseError, error_response, reason_phrase
from gcorn.workers import deadline
from gcorn.workers.errors import ClientDisconnected, WorkerError
from gcorn.workers.exchange.access import AccessInfo, access_wanted
from gcorn.workers.exchange.forwarded import ForwardedPolicy
from gcorn.workers.exchange.hooks import HookRequest, RequestHooks
from gcorn.workers.exchange.uwsgi import uwsgi_allow_list
from gcorn.workers.wsgi.environ import EnvironBuilder
from gcorn.workers.wsgi.file_wrapper import FileWrapper
from gcorn.workers.wsgi.input import InputStream
from gcorn.workers.wsgi.response import Response, close_iterable

__all__ = ["RequestHandler"]

# an unread request body is discarded up to this size to keep the connection
_DRAIN_LIMIT = 1 << 20
_PROTOCOLS = {(1, 1): "HTTP/1.1", (1, 0): "HTTP/1.0"}


def _reason(status: int) -> str:
    return reason_phrase(status).decode("ascii") or "Error"


class RequestHandler:
    """Per-worker request server: everything computed once is kept here."""

    def __init__(self, worker: Any, multithread: bool) -> None:
        cfg = worker.cfg
        self.worker = worker
        self.cfg = cfg
        self.log = worker.log
        self.app = worker.wsgi
        self.environ = EnvironBuilder(cfg, multithread)
        self.server = b"gcorn"  # the Server field's value
        self.policy = ForwardedPolicy(cfg)
        self.uwsgi = uwsgi_allow_list(cfg) is not None
        self.tls = False
        self.sendfile = bool(getattr(cfg, "sendfile", True) is not False)
        self.hooks = RequestHooks(worker, getattr(cfg, "pre_request", None),
                                  getattr(cfg, "post_request", None), self.log)
        self._nr_lock = threading.Lock() if multithread else None
        access = getattr(worker.log, "access", None)
        self.access = access if callable(access) else None
        # request_timeout: the worker sets a guard whose arm() starts the limit of one
        # app call and returns what stops it (gcorn.workers.deadline)
        self.request_timeout = deadline.request_timeout(cfg)
        self.guard: Any = None

    # -- errors before the app ran --------------------------------------------

    def send_error(self, conn: Any, status: int, message: str, final: bool = False) -> int:
        """Answer a request the worker refuses (the caller closes); returns the body size.

        `final`: the request_timeout answer, which has claimed the response already
        (`Connection.claim_for_timeout`); otherwise nothing is sent once it has.
        """
        if not final and not conn.claim_response():
            self.log.debug("the %d answer not sent: request_timeout answered first", status)
            return 0
        data = error_response(status, message, self.server)
        try:
            (conn.send_final if final else conn.sendall)(data)
        except (ClientDisconnected, OSError) as exc:
            self.log.debug("could not send the %d answer: %s", status, exc)
            return 0
        return len(data) - data.index(b"\r\n\r\n") - 4  # the body's size

    def refuse(self, conn: Any, exc: Exception, head: Any = None) -> None:
        """Log and answer a bad request (parser or policy error), access log included."""
        started = time.monotonic()
        status = getattr(exc, "status", 400)
        peer = conn.peer
        ip = peer[0] if isinstance(peer, tuple) else (peer or "")
        self.log.debug("Invalid request from ip=%s: %s", ip, exc)
        message = getattr(exc, "message", None) or str(exc) or _reason(status)
        sent = self.send_error(conn, status, message)
        if self.access is None or not access_wanted(self.log):
            return
        # as gunicorn: rejected requests are in the access log too ('-' where unknown)
        try:
            self.access(AccessInfo.refused(str(ip), status, sent, time.monotonic() - started,
                                           head))
        except Exception:
            self.log.exception("writing the access log failed")

    # -- one request ---------------------------------------------------------

    def serve(self, conn: Any, head: Any, closing: bool) -> bool:
        """Run the app for `head`; True when the connection can be kept open."""
        started = time.monotonic()
        peer = conn.peer
        # protocol = uwsgi: the head came from a packet (gcorn.workers.exchange.uwsgi), whose
        # variables are the environ; the header policy is for HTTP clients
        variables = conn.parser.variables if self.uwsgi else None
        if variables is not None:
            scheme, headers = "http", head.headers
        else:
            try:
                scheme, headers = self.policy.filter_headers(
                    head.headers, peer, "https" if conn.is_tls else "http")
            except WorkerError as exc:
                self.refuse(conn, exc, head)
                return False
        method = head.method.decode("latin-1")
        target = head.target.decode("latin-1")
        query = head.query.decode("latin-1")
        version = head.version
        http11 = version >= (1, 1)
        protocol = _PROTOCOLS.get(version) or f"HTTP/{version[0]}.{version[1]}"
        # the parser always ends a request with EndOfMessage, even with no body:
        # the stream consumes it, so the next event is the next request's head
        body = InputStream(conn, False, head.expects_continue)
        try:
            if variables is None:
                environ = self.environ.build(method, target, head.path, query, protocol,
                                             headers, scheme, peer, conn.listener, conn.sock,
                                             body)
            else:
                environ = self.environ.build_uwsgi(variables, peer, conn.listener, conn.sock,
                                                   body, conn.is_tls)
                scheme = environ["wsgi.url_scheme"]
        except WorkerError as exc:
            self.log.error("%s", exc)
            self.send_error(conn, exc.status, _reason(exc.status))
            return False
        if conn.proxy_info:
            environ.update(conn.proxy_info)
        # an Upgrade or CONNECT request that the app answered as plain HTTP: close after
        closing = closing or head.upgrade is not None or method == "CONNECT"
        resp = Response(conn, method == "HEAD", http11, head.keep_alive and not closing,
                        self.server, self.log, body, self.worker)
        environ["wsgi.early_hints"] = resp.early_hints
        hooks = self.hooks
        req = HookRequest(method, target, environ["PATH_INFO"], query, version, headers,
                          scheme, peer, body) if hooks.wanted else None
        worker = self.worker
        stats = worker.stats  # the worker's scoreboard slot (requests, in flight, metrics)
        lock = self._nr_lock
        if lock is None:
            worker.nr += 1
            stats.begin()
        else:
            with lock:  # gthread: += on an attribute is not atomic across threads
                worker.nr += 1
                stats.begin()
        keep = False
        try:
            keep = self._run_app(conn, environ, resp, body, headers, req)
        finally:
            status = resp.status_code or 0
            if lock is None:
                stats.end(method, status, time.monotonic() - started)
            else:
                with lock:
                    stats.end(method, status, time.monotonic() - started)
            if req is not None:
                hooks.run_post(req, environ, resp)
            if (self.access is not None and resp.status is not None and not conn.timed_out
                    and access_wanted(self.log)):
                # timed_out: the gthread watchdog has written this request's line already
                self._log_access(environ, resp, headers, time.monotonic() - started)
        if not keep or not resp.keep_alive or resp.must_close:
            conn.unread_body = not body.settle()
            return False
        if not body.done:
            try:
                drained = body.drain(_DRAIN_LIMIT)
            except (ParseError, ClientDisconnected):
                return False
            conn.unread_body = not drained
            return drained
        return True

    def _run_app(self, conn: Any, environ: dict[str, Any], resp: Response,
                 body: InputStream, headers: Any, req: HookRequest | None) -> bool:
        result: Any = None
        guard = self.guard
        disarm = None
        conn.begin_request()
        try:
            if guard is not None:
                disarm = guard.arm(conn, resp, environ, headers)
            if req is not None:
                self.hooks.run_pre(req)  # its failure is the request's: 500, as gunicorn
            result = self.app(environ, resp.start_response)
            rtype = type(result)
            if rtype is list or rtype is tuple:
                resp.write_all(result)
            elif rtype is FileWrapper and (fd := self._sendfile_fd(conn, result)) is not None:
                resp.send_file(result, fd)
            else:
                for chunk in result:
                    resp.write(chunk)
            resp.finish()
        except deadline.RequestTimeout as exc:
            if disarm is not None:
                disarm()
                disarm = None
            self._request_timed_out(conn, resp, environ, exc)
            return False
        except ClientDisconnected as exc:
            self.log.debug("client went away: %s", exc)
            return False
        except ParseError as exc:
            # raised by wsgi.input: the body itself was malformed
            if not resp.headers_sent:
                self.refuse(conn, exc)
            return False
        except Exception as exc:
            self._app_failed(conn, resp, body, exc)
            return False
        except SystemExit as exc:
            # the master's SIGABRT (the request ran past `timeout`) raises this in the
            # app's frame: as gunicorn, answer 500 and log where the app was stuck,
            # then let the worker exit
            if getattr(self.worker, "aborted", False):
                self._timed_out(conn, resp, environ, exc)
            raise
        finally:
            if disarm is not None:
                disarm()
            close_iterable(result, self.log)
        return True

    def _sendfile_fd(self, conn: Any, wrapper: FileWrapper) -> int | None:
        if not self.sendfile or conn.is_tls:
            return None
        return wrapper.fileno()

    def _app_failed(self, conn: Any, resp: Response, body: InputStream, exc: Exception) -> None:
        if body.error is not None and not resp.headers_sent:
            self.refuse(conn, body.error)
            return
        self.log.exception("Error handling request %s", resp.status or "")
        if not resp.headers_sent:
            resp.status, resp.status_code = "500 Internal Server Error", 500
            self.send_error(conn, 500, "Internal Server Error")
            resp.headers = [("Content-Type", "text/plain; charset=utf-8")]
            resp.must_close = True

    def _timed_out(self, conn: Any, resp: Response, environ: dict[str, Any],
                   exc: SystemExit) -> None:
        self.log.error("Error handling request %s %s: the worker timed out (timeout=%ss)",
                       environ["REQUEST_METHOD"], environ["RAW_URI"],
                       getattr(self.cfg, "timeout", "?"), exc_info=exc)
        if resp.headers_sent:
            return  # a 500 written now would land inside the body already sent
        resp.status, resp.status_code = "500 Internal Server Error", 500
        self.send_error(conn, 500, "Internal Server Error")
        resp.headers = [("Content-Type", "text/plain; charset=utf-8")]
        resp.must_close = True

    def _request_timed_out(self, conn: Any, resp: Response, environ: dict[str, Any],
                           exc: deadline.RequestTimeout) -> None:
        if conn.timed_out:
            # gthread: the watchdog logged the frame and answered; this is its interruption
            self.log.debug("the timed-out request %s %s was interrupted",
                           environ["REQUEST_METHOD"], environ["RAW_URI"])
            return
        deadline.count_timeout(self.worker)
        answered = self._answer_timeout(conn, resp)
        deadline.log_timeout(self.log, environ["REQUEST_METHOD"], environ["RAW_URI"],
                             self.request_timeout, deadline.stack_of_traceback(exc.__traceback__),
                             answered)

    def _answer_timeout(self, conn: Any, resp: Response, final: bool = False) -> str:
        """504 if the response has not started, else the connection is cut; says which.

        `final` (gthread's watchdog, another thread than the request's): the 504 is
        written only if it claims the response before the serving thread does.
        """
        resp.must_close = True
        started = not conn.claim_for_timeout() if final else conn.response_started()
        if started or resp.headers_sent:
            return "response already started: connection closed"
        resp.status, resp.status_code = f"{deadline.STATUS} {deadline.REASON}", deadline.STATUS
        resp.sent = self.send_error(conn, deadline.STATUS, deadline.MESSAGE, final)
        resp.headers = [("Content-Type", "text/plain; charset=utf-8"), ("Connection", "close")]
        return f"answered {deadline.STATUS}"

    def answer_from_watchdog(self, conn: Any, resp: Response, environ: dict[str, Any],
                             headers: Any, started: float) -> str:
        """gthread: answer a stuck request from the watchdog thread, and log its access line.

        The connection is marked first, so that the stuck thread's later writes fail
        (and it is not kept alive); then 504 or, if the response had started, a cut.
        """
        deadline.count_timeout(self.worker)
        answered = self._answer_timeout(conn, resp, final=True)
        conn.cut()
        if self.access is not None and access_wanted(self.log):
            self._log_access(environ, resp, headers, time.monotonic() - started)
        return answered

    def _log_access(self, environ: dict[str, Any], resp: Response, headers: Any,
                    elapsed: float) -> None:
        try:
            info = AccessInfo.from_environ(environ, resp.status_code, resp.sent, elapsed,
                                           headers, resp.headers)
            self.access(info)  # type: ignore[misc]
        except Exception:
            self.log.exception("writing the access log failed")
