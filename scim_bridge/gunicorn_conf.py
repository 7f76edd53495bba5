"""The gunicorn configuration, shared by ``scim-bridge serve``, the Dockerfile and the tests.

Threads serve Entra's concurrent requests while one waits on GitLab; the timeout stays above the
inline reconcile deadline (at most 55 s), and below Entra's 60 s limit for an answer.
"""

import os
from typing import Any

from prometheus_client import multiprocess

from scim_bridge import gunicorn_logs
from scim_bridge import logs
from scim_bridge.metrics import exposition

bind = os.environ.get("SCIM_BRIDGE_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("SCIM_BRIDGE_SERVER_WORKERS", "2"))
worker_class = "gthread"
threads = int(os.environ.get("SCIM_BRIDGE_SERVER_THREADS", "8"))
timeout = 90
graceful_timeout = 20
keepalive = 5
accesslog = "-"
# The query string may carry a filter with a user's email: log the path only.
if logs.log_format() == "json":
    logger_class = gunicorn_logs.JsonLogger
    access_log_format = gunicorn_logs.ACCESS_FORMAT
else:
    access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(L)ss rid=%({x-request-id}o)s'
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# gunicorn's control socket lives at one fixed path per user; several instances on one host would
# fight over it, and the bridge does not use it.
control_socket_disable = True


def post_fork(server: object, worker: object) -> None:
    """The app's own loggers (auth refusals, reconcile failures) in each worker's output."""
    logs.configure()


def child_exit(server: object, worker: Any) -> None:
    """A dead worker's live gauges must not be reported (its counters still count)."""
    if exposition.multiprocess_dir():
        multiprocess.mark_process_dead(worker.pid)
