"""Fixtures of the root tests: real servers (tests/harness.py) that print their log on failure."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

# --import-mode=importlib puts no test folder on sys.path: this one makes `import harness` work
sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
from harness import ExternalServer, Gcorn, tcp_probe

_LOG_TAIL = 20_000  # characters of each server's log shown under a failure


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark what runs once, on py311 (tox.ini): a test that runs a real external server
    (start_server) is slow; every test of a tests/test_e2e_*.py suite is e2e."""
    for item in items:
        if "start_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
        if item.path.name.startswith("test_e2e_"):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(autouse=True)
def _servers_of_this_test() -> Iterator[None]:
    """Record the servers a test starts; stop any it left running."""
    harness.forget_servers()
    yield
    for server in harness.started_servers():
        if server.alive():
            server.stop(timeout=5)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    """Under a failed test, show the log of every server it started, and of the shared ones."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for server in harness.started_servers() + harness.shared_servers():
            text = server.log()
            if len(text) > _LOG_TAIL:
                text = "[...]\n" + text[-_LOG_TAIL:]
            report.sections.append((f"{server.name} log ({server.log_path})", text))


@pytest.fixture
def start_gcorn(tmp_path: Path) -> Iterator[Callable[..., Gcorn]]:
    """`start_gcorn(*args, cwd=tmp_path, env=None, wait=True, **Gcorn options)`: a running gcorn."""
    servers: list[Gcorn] = []

    def start(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
              wait: bool = True, **options: Any) -> Gcorn:
        # the log stays in the test's tmp_path whatever the cwd (the repository, say)
        options.setdefault("log_path", tmp_path / f"gcorn-{len(servers)}.log")
        server = Gcorn(args, cwd=cwd or tmp_path, env=env, **options)
        servers.append(server)
        return server.start(wait)

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ExternalServer]]:
    """`start_server(command, ready=probe, name=..., **options)`: any real server, running."""
    servers: list[ExternalServer] = []

    def start(command: Sequence[str], *, cwd: Path | None = None, wait: bool = True,
              **options: Any) -> ExternalServer:
        name = options.get("name") or Path(command[0]).name
        options.setdefault("log_path", tmp_path / f"{name}-{len(servers)}.log")
        server = ExternalServer(command, cwd=cwd or tmp_path, **options)
        servers.append(server)
        return server.start(wait)

    yield start
    for server in servers:
        server.stop()


# -- real proxies in front of gcorn (docs/deploy/*.conf, run by the tests) -----------------

NGINX = shutil.which("nginx", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin"]))
HAPROXY = shutil.which("haproxy", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin"]))

# the main context around a site config: everything nginx writes stays in the test's tmp path
_NGINX_MAIN = """\
{user}worker_processes 1;
pid {tmp}/nginx.pid;
error_log stderr info;  # into the log file the harness prints
events {{ worker_connections 128; }}
http {{
    access_log {tmp}/nginx-access.log;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {site};
}}
"""


@pytest.fixture
def start_nginx(start_server: Callable[..., ExternalServer], tmp_path: Path,
                ) -> Callable[..., ExternalServer]:
    """`start_nginx(site, port)`: a real nginx (`daemon off`) serving the server blocks `site`.

    `site` is the text of an http-context config (a docs/deploy file with the test's
    ports in it) whose server listens on 127.0.0.1:`port`; the pid, logs and temp
    files are under tmp_path, and its error log (stderr) is printed under a failure.
    """
    if NGINX is None:
        pytest.skip("nginx is not installed (tools/env.sh installs nginx-light)")
    count = 0

    def start(site: str, port: int) -> ExternalServer:
        nonlocal count
        tmp = tmp_path / f"nginx-{count}"
        count += 1
        tmp.mkdir()
        params = Path("/etc/nginx/uwsgi_params")  # Debian's, for `include uwsgi_params;`
        if params.exists():
            shutil.copy(params, tmp / "uwsgi_params")
        (tmp / "site.conf").write_text(site)
        # as root, nginx's workers would run as nobody, who cannot enter tmp_path
        user = "user root;\n" if os.geteuid() == 0 else ""
        (tmp / "nginx.conf").write_text(
            _NGINX_MAIN.format(user=user, tmp=tmp, site=tmp / "site.conf"))
        # -e: the error log before the config is read (not /var/log/nginx)
        return start_server(
            [NGINX, "-p", str(tmp), "-e", "stderr", "-c", str(tmp / "nginx.conf"),
             "-g", "daemon off;"], ready=tcp_probe(port), name="nginx")

    return start


@pytest.fixture
def start_haproxy(start_server: Callable[..., ExternalServer], tmp_path: Path,
                  ) -> Callable[..., ExternalServer]:
    """`start_haproxy(config, port)`: a real HAProxy (`-db`, foreground) whose frontend is `port`."""
    if HAPROXY is None:
        pytest.skip("haproxy is not installed (tools/env.sh installs it)")
    count = 0

    def start(config: str, port: int) -> ExternalServer:
        nonlocal count
        path = tmp_path / f"haproxy-{count}.cfg"
        count += 1
        path.write_text(config)
        return start_server([HAPROXY, "-f", str(path), "-db"], ready=tcp_probe(port),
                            name="haproxy")

    return start


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and its key (PEM files), for a TLS proxy."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed: no certificate for the TLS listener")
    tmp = tmp_path_factory.mktemp("tls")
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-subj", "/CN=localhost", "-days", "2", "-keyout", str(key),
         "-out", str(cert)], check=True, capture_output=True, timeout=30)
    return cert, key
