"""The WSGI workers' own suites, run again against the gevent and eventlet workers.

The green workers reuse the sync/gthread request path (wsgi/handler.py,
wsgi/connection.py, the gcorn.http parser), so the same tests must pass on
them: responses and file_wrapper (sendfile), wsgi.input and 100-continue, the
environ, bad requests, forwarded headers, TLS, the PROXY protocol, hooks and
the access log, keep-alive, pipelining, max_requests, graceful and quick
stops, worker_connections. The tests are imported from their modules; the
fixtures here give them a green server instead (a fixture of this module
overrides the one of the same name the test was written against).
"""

from __future__ import annotations

import os
import socket
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from green_support import GREEN_WORKERS
from test_wsgi_bad_requests import (  # noqa: F401 - collected here against the green workers
    test_bad_request_status_and_close,
    test_client_closing_mid_request_is_harmless,
)
from test_wsgi_environ import (  # noqa: F401
    test_headers_mapping,
    test_http10_protocol,
    test_path_info_is_percent_decoded_latin1,
    test_required_keys_and_types,
)
from test_wsgi_environ import test_unix_socket_server_name_from_host as _unix_server_name
from test_wsgi_hooks_access import test_a_failing_hook_costs_one_request_not_the_worker as _hook
from test_wsgi_hooks_access import test_hooks_and_access_log as _hooks_access
from test_wsgi_input import (  # noqa: F401
    test_chunked_request_body,
    test_chunked_request_readline,
    test_curl_expect_continue_upload,
    test_expect_100_continue_answered_when_the_app_reads,
    test_expect_100_continue_not_sent_when_the_app_ignores_the_body,
    test_read_all_with_content_length_and_nothing_past_the_end,
    test_slow_body_is_waited_for,
    test_stream_methods,
)
from test_wsgi_proxy_tls import (  # noqa: F401
    cert,
    test_conflicting_scheme_headers_are_400,
    test_forwarder_headers_from_trusted_peer,
    test_scheme_from_trusted_proxy,
    test_x_forwarded_for_is_passed_not_trusted_for_remote_addr,
)
from test_wsgi_proxy_tls import test_proxy_protocol as _proxy_protocol
from test_wsgi_proxy_tls import test_tls as _tls
from test_wsgi_response import (  # noqa: F401
    test_app_connection_close_closes,
    test_app_exception_gives_500_without_traceback,
    test_app_protocol_errors_are_500,
    test_big_chunked_response,
    test_big_response,
    test_chunked_when_length_unknown_on_http11,
    test_close_always_called,
    test_close_delimited_on_http10,
    test_content_length_short_closes,
    test_content_length_too_long_truncated,
    test_date_and_server_headers,
    test_early_hints,
    test_exc_info_replaces_the_status,
    test_exception_after_headers_closes_the_connection,
    test_file_wrapper,
    test_head_has_no_body_but_keeps_length,
    test_hop_by_hop_headers_never_sent,
    test_no_body_statuses,
    test_write_callable,
)
from test_wsgi_workers import test_graceful_stop_finishes_the_request_in_flight as _graceful
from test_wsgi_workers import (  # noqa: F401
    test_gthread_http10_keep_alive,
    test_gthread_idle_connection_closed_after_keepalive,
    test_gthread_keep_alive_under_concurrency,
    test_gthread_keeps_the_connection,
    test_gthread_pipelined_requests_answered_in_order,
    test_gthread_threads_serve_in_parallel,
    test_gthread_unread_partial_body_closes_without_waiting,
    test_many_connections,
)
from test_wsgi_workers import test_max_requests_recycles_the_worker as _max_requests
from test_wsgi_workers import test_quick_stop_does_not_wait_for_requests_in_flight as _quick
from wsgi_support import Server, read_until_close


@pytest.fixture(scope="module", params=GREEN_WORKERS)
def server(request, tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("green"), worker=request.param).start()
    yield srv
    assert srv.stop() == 0


@pytest.fixture(scope="module", params=GREEN_WORKERS)
def trusted(request, tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("trusted"), worker=request.param,
                 settings={"forwarded_allow_ips": ["127.0.0.0/8"]}).start()
    yield srv
    assert srv.stop() == 0


@pytest.fixture(scope="module", params=GREEN_WORKERS)
def gthread(request, tmp_path_factory):
    """The keep-alive tests were written for gthread; these workers keep connections too."""
    srv = Server(tmp_path_factory.mktemp("keepalive"), worker=request.param,
                 settings={"keepalive": 2}).start()
    yield srv
    assert srv.stop() == 0


@pytest.mark.parametrize("worker", GREEN_WORKERS)
def test_tls(tmp_path, cert, worker):  # noqa: F811 - the green run of the same test
    _tls(tmp_path, cert, worker)


@pytest.mark.parametrize("worker", GREEN_WORKERS)
def test_proxy_protocol(tmp_path, worker):
    _proxy_protocol(tmp_path, worker)


@pytest.mark.parametrize("worker", GREEN_WORKERS)
def test_unix_socket_server_name_from_host(tmp_path, worker):
    _unix_server_name(tmp_path, worker)


@pytest.mark.parametrize("worker", GREEN_WORKERS)
def test_hooks_and_access_log(tmp_path, worker):
    _hooks_access(tmp_path, worker)


@pytest.mark.parametrize("worker", GREEN_WORKERS)
def test_a_failing_hook_costs_one_request_not_the_worker(tmp_path, worker):
    _hook(tmp_path, worker)


@pytest.mark.parametrize("worker", GREEN_WORKERS)
def test_max_requests_recycles_the_worker(tmp_path, worker):
    _max_requests(tmp_path, worker)


@pytest.mark.parametrize("worker", GREEN_WORKERS)
def test_quick_stop_does_not_wait_for_requests_in_flight(tmp_path, worker):
    _quick(tmp_path, worker)


@pytest.mark.parametrize("worker", GREEN_WORKERS)
def test_graceful_stop_finishes_the_request_in_flight(tmp_path, worker):
    """TERM: the request in flight ends with its answer (written for sync and gthread)."""
    _graceful(tmp_path, worker)


@pytest.mark.parametrize("worker", GREEN_WORKERS)
def test_idle_keep_alive_connection_closed_after_the_drain_grace_on_term(tmp_path, worker):
    srv = Server(tmp_path, worker=worker, settings={"keepalive": 30,
                                                    "graceful_timeout": 10}).start()
    try:
        with socket.create_connection((srv.host, srv.port), timeout=5) as idle:
            idle.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert idle.recv(4096).startswith(b"HTTP/1.1 200")
            started = time.monotonic()
            srv.proc.send_signal(15)
            # closed after the 1 s drain grace, not after the 30 s keepalive
            assert read_until_close(idle, timeout=5) == b""
            assert time.monotonic() - started < 3.0
        assert srv.proc.wait(10) == 0
    finally:
        srv.stop()


@pytest.mark.parametrize("worker", GREEN_WORKERS)
def test_worker_connections_limit_leaves_the_rest_in_the_backlog(tmp_path, worker):
    srv = Server(tmp_path, worker=worker,
                 settings={"worker_connections": 2, "keepalive": 5}).start()
    try:
        held = [socket.create_connection((srv.host, srv.port), timeout=5) for _ in range(2)]
        for s in held:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(4096).startswith(b"HTTP/1.1 200")
        third = socket.create_connection((srv.host, srv.port), timeout=5)
        third.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        third.settimeout(0.5)
        with pytest.raises(TimeoutError):
            third.recv(4096)  # waits in the backlog: not refused, not answered
        held[0].close()
        third.settimeout(5)
        assert read_until_close(third).startswith(b"HTTP/1.1 200")
        third.close()
        held[1].close()
    finally:
        assert srv.stop() == 0
