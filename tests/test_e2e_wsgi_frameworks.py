"""End to end through the `gcorn` command: a Flask app and a Django app on sync, gthread and gevent
(a page, a form POST, a file download sent with wsgi.file_wrapper/sendfile)."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable

import httpx
import pytest
from harness import Gcorn

FLASK_APP = '''
import os
from flask import Flask, request, send_file

app = Flask(__name__)

@app.get("/")
def page():
    return "<h1>flask page</h1>"

@app.post("/form")
def form():
    return "hello " + request.form["name"] + " " + str(len(request.files["upload"].read()))

@app.get("/download")
def download():
    return send_file(os.environ["E2E_FILE"], mimetype="application/octet-stream")
'''

DJANGO_APP = '''
import os
import django
from django.conf import settings

settings.configure(DEBUG=False, SECRET_KEY="e2e", ROOT_URLCONF=__name__, ALLOWED_HOSTS=["*"],
                   MIDDLEWARE=[])
django.setup()

from django.core.wsgi import get_wsgi_application
from django.http import FileResponse, HttpResponse
from django.urls import path


def page(request):
    return HttpResponse("<h1>django page</h1>")


def form(request):
    upload = request.FILES["upload"].read()
    return HttpResponse("hello " + request.POST["name"] + " " + str(len(upload)))


def download(request):
    return FileResponse(open(os.environ["E2E_FILE"], "rb"))


urlpatterns = [path("", page), path("form", form), path("download", download)]
application = get_wsgi_application()
'''


@pytest.fixture
def files(tmp_path):
    data = os.urandom(700_000)
    (tmp_path / "payload.bin").write_bytes(data)
    (tmp_path / "flask_e2e_app.py").write_text(textwrap.dedent(FLASK_APP))
    (tmp_path / "django_e2e_app.py").write_text(textwrap.dedent(DJANGO_APP))
    return tmp_path, data


@pytest.mark.parametrize("framework,worker", [
    ("flask", "sync"), ("flask", "gthread"), ("django", "sync"), ("django", "gthread"),
    ("flask", "gevent"), ("django", "gevent"),
])
def test_framework_app(start_gcorn: Callable[..., Gcorn], files, framework, worker):
    pytest.importorskip(framework)
    if worker == "gevent":
        pytest.importorskip("gevent", reason="-k gevent needs pip install 'gcorn-workers[gevent]'")
    tmp, data = files
    app = "flask_e2e_app:app" if framework == "flask" else "django_e2e_app:application"
    server = start_gcorn("-k", worker, "--threads", "2", "-w", "1", "--chdir", str(tmp), app,
                         env={"E2E_FILE": str(tmp / "payload.bin")}, ready_timeout=20)
    with httpx.Client(timeout=5) as client:
        r = client.get(server.url + "/")
        assert r.status_code == 200
        assert f"{framework} page" in r.text
        r = client.post(server.url + "/form", data={"name": "ada"},
                        files={"upload": ("u.bin", b"u" * 5000)})
        assert r.status_code == 200, r.text
        assert r.text == "hello ada 5000"
        r = client.get(server.url + "/download")
        assert r.status_code == 200
        assert r.content == data
        assert r.headers["content-length"] == str(len(data))
    server.stop()
    assert "Traceback" not in server.log()
