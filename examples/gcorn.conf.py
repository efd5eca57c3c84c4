"""An example gcorn config file; a gunicorn.conf.py works the same way.

Run it with: gcorn -c examples/gcorn.conf.py
Every module-level name that is a setting is applied; see docs/settings.md.
"""

import multiprocessing
import os

wsgi_app = "hello:app"
chdir = os.path.dirname(os.path.abspath(__file__))

bind = os.environ.get("GCORN_BIND", "127.0.0.1:8000")
workers = min(2, multiprocessing.cpu_count())
worker_class = "sync"
timeout = 30
graceful_timeout = 10

accesslog = "-"
loglevel = "info"

# A dirty pool beside the HTTP workers (hello.py's /dirty route calls it); uncomment to run it.
# dirty_apps = ["dirty_app:WordCount"]
# dirty_workers = 2
# dirty_timeout = 30
# dirty_queue_size = 64   # past it, /dirty answers 503 with Retry-After


def when_ready(server):
    server.log.info("gcorn is ready: %s", ", ".join(bind.split()))


def post_fork(server, worker):
    server.log.info("worker %s started", worker.pid)
