"""The gunicorn configuration, shared by ``scim-bridge serve``, the Dockerfile and the tests.

Threads serve Entra's concurrent requests while each waits on GitLab: a request holds its thread
for the whole inline reconcile, so a process serves at most ``threads / latency`` requests a second
(``[server] threads``, README "Sizing for your GitLab's latency"). The timeout stays above the inline
reconcile deadline (at most 55 s), and below Entra's 60 s limit for an answer. The worker is gthread
with a front door (``scim_bridge.server.worker``): refusals wait for their release time without a
thread, and one address can hold only ``[server] max_connections_per_address``. gthread, not an
event loop (gevent): the database drivers and python-gitlab block, and tens of threads are enough
for tens of requests in flight.
"""

import os
from typing import Any

from prometheus_client import multiprocess

from scim_bridge import gunicorn_logs
from scim_bridge import logs
from scim_bridge.metrics import exposition
from scim_bridge.server.balance import ConnectionShares
from scim_bridge.server.proxies import TrustedProxies
from scim_bridge.settings import load_settings

# The file and the environment, as the app reads them: [server] workers and threads work from
# either (``scim-bridge serve --workers/--threads`` pass theirs on as the environment).
_server = load_settings().server
bind = os.environ.get("SCIM_BRIDGE_BIND", "127.0.0.1:8000")
workers = _server.workers
worker_class = "scim_bridge.server.worker.FrontDoorWorker"
threads = _server.threads
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
# gunicorn believes X-Forwarded-Proto from the same peers as the app: [server] trusted_proxies
# (none by default). FORWARDED_ALLOW_IPS is not read: one list, so the two cannot disagree.
_trusted = TrustedProxies(_server.trusted_proxies)
forwarded_allow_ips = _trusted.gunicorn_list()
# gunicorn's control socket lives at one fixed path per user; several instances on one host would
# fight over it, and the bridge does not use it.
control_socket_disable = True
# Workers whose connections are balanced: [server] workers allows 64, and TTIN may add more; any
# beyond take what they are given.
BALANCED_WORKERS = 128


def on_starting(server: Any) -> None:
    """FORWARDED_ALLOW_IPS used to name the proxies; say so if it is set and now ignored."""
    legacy = [entry for entry in os.environ.get("FORWARDED_ALLOW_IPS", "").split(",") if entry]
    try:
        same = set(TrustedProxies(legacy).networks) == set(_trusted.networks)
    except ValueError:  # "*" or a typo
        same = False
    if legacy and not same:
        server.log.warning(
            "FORWARDED_ALLOW_IPS is ignored: set [server] trusted_proxies "
            "(SCIM_BRIDGE_SERVER_TRUSTED_PROXIES) to the proxies' addresses instead"
        )


def pre_fork(server: Any, worker: Any) -> None:
    """A slot in the table of connections per worker, which every worker sees
    (``scim_bridge.server.balance``): made once, before the first fork."""
    shares = getattr(server, "scim_bridge_connection_shares", None)
    if shares is None:
        shares = server.scim_bridge_connection_shares = ConnectionShares(BALANCED_WORKERS)
    worker.connection_shares = shares
    worker.share_slot = shares.assign(
        getattr(other, "share_slot", None) for other in server.WORKERS.values()
    )


def post_fork(server: object, worker: object) -> None:
    """The app's own loggers (auth refusals, reconcile failures) in each worker's output."""
    logs.configure()


def child_exit(server: object, worker: Any) -> None:
    """A dead worker's live gauges must not be reported (its counters still count), nor its
    connections weigh on where new ones go."""
    shares = getattr(server, "scim_bridge_connection_shares", None)
    if shares is not None:
        shares.release(getattr(worker, "share_slot", None))
    if exposition.multiprocess_dir():
        multiprocess.mark_process_dead(worker.pid)
