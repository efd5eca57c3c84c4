# /srv/myapp/gcorn.conf.py: one config for systemd, a container and Kubernetes.
import os

wsgi_app = "myapp:app"
bind = ["0.0.0.0:8000"]  # not used under systemd socket activation (gcorn.socket binds)
worker_class = "gthread"
workers = int(os.environ.get("GCORN_WORKERS", "4"))
threads = 4
timeout = 30
# on TERM (systemctl stop, docker stop, a pod's deletion) requests in flight get
# this long; the service manager's own limit must be longer
graceful_timeout = 25
# the proxies whose X-Forwarded-Proto is believed (nginx on the host, or the
# ingress controller's pod network)
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
accesslog = "-"
