"""``serve`` and ``worker``: the long-running processes, and the supervisor that runs them together."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import click

from scim_bridge import __version__
from scim_bridge import context
from scim_bridge.bridge import Bridge
from scim_bridge.cli.common import friendly
from scim_bridge.cli.common import open_bridge
from scim_bridge.gitlab_token import TokenWatch
from scim_bridge.server.admission import threads_per_address
from scim_bridge.settings import ENV_PREFIX
from scim_bridge.settings import Settings
from scim_bridge.settings import load_settings
from scim_bridge.store.db import display_url


def _banner(settings: Settings, host: str, port: int, tokens: int, clients: int) -> str:
    # Inside a container the bridge listens on 0.0.0.0; Entra knows it by its public URL.
    base = settings.auth.public_url or f"http://{host}:{port}"
    gitlab = settings.gitlab
    if gitlab.planned_only:
        reason = "dry_run = true" if gitlab.dry_run else "no GitLab configured"
        target = f"dry-run ({reason}): GitLab calls are planned and audited, not made"
    else:
        target = f"{gitlab.url} (identity provider {gitlab.identity_provider!r})"
    credentials = (
        f"{tokens} bearer token(s), {clients} OAuth2 client(s); "
        "`scim-bridge tokens list` and `scim-bridge clients list` show them"
        if tokens or clients
        else "none yet: run `scim-bridge clients create entra` (OAuth2 client credentials) "
        "or `scim-bridge tokens create entra` (Secret Token)"
    )
    return "\n".join(
        [
            f"scim-bridge {__version__} listening on http://{host}:{port}",
            f"  SCIM base URL (Entra's Tenant URL): {base}/scim/v2",
            f"  OAuth2 token endpoint: {base}/oauth2/token",
            f"  Database: {display_url(settings.database_url)}",  # the password as ***
            f"  GitLab: {target}",
            f"  Credentials: {credentials}",
            f"  Serving: {_capacity(settings)}",
        ]
    )


def _capacity(settings: Settings) -> str:
    """What bounds throughput (threads, each held while GitLab answers) and what refuses a caller."""
    server = settings.server
    per_address = min(server.max_connections_per_address, threads_per_address(server.threads))
    return (
        f"{server.workers} process(es) x {server.threads} threads (one address: {per_address} "
        f"on threads per process, more wait their turn); per caller "
        f"{server.rate_limit_per_second:g} requests/s per process, bursts of "
        f"{server.rate_limit_burst}"
    )


@click.command()
@click.option("--host", default=None, help="Interface to listen on (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to listen on (default 8000).")
@click.option("--workers", type=int, default=None, help="gunicorn worker processes (default 4).")
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="Threads per worker process (default 32): requests each serves at once while GitLab "
    "answers. Overrides [server] threads.",
)
@friendly
def serve(host: str | None, port: int | None, workers: int | None, threads: int | None) -> None:
    """Run the SCIM endpoint under gunicorn, with the background worker."""
    # The options reach gunicorn_conf and every process's settings as the environment, so the
    # front door's caps and the rate limit's checks see the threads gunicorn runs.
    overrides = {
        f"{ENV_PREFIX}SERVER_{name.upper()}": str(value)
        for name, value in (("workers", workers), ("threads", threads))
        if value is not None
    }
    settings = load_settings({**os.environ, **overrides})
    host = host or settings.server.host
    port = port if port is not None else settings.server.port
    bridge = Bridge(settings)  # applies migrations once, before any gunicorn worker starts
    tokens = sum(1 for token in bridge.tokens.list() if token.status == "active")
    clients = sum(1 for client in bridge.clients.list() if client.status == "active")
    bridge.db.dispose()
    click.echo(_banner(settings, host, port, tokens, clients), err=True)
    gunicorn = [
        sys.executable,
        "-m",
        "gunicorn",
        "--config",
        "python:scim_bridge.gunicorn_conf",
        "--bind",
        f"{host}:{port}",
        "--workers",
        str(settings.server.workers),
        "--threads",
        str(settings.server.threads),
        "scim_bridge.app:create_app()",
    ]
    worker = [sys.executable, "-m", "scim_bridge", "worker"]
    from scim_bridge.metrics.multiproc import shared_directory  # only `serve` needs it

    # gunicorn's workers and the background worker add up their metrics in one directory.
    with shared_directory() as env:
        _supervise([gunicorn, worker], {**env, **overrides})


def _supervise(commands: list[list[str]], env: dict[str, str] | None = None) -> None:
    """Run the processes together: when one ends or a signal arrives, stop them all."""
    children = [subprocess.Popen(command, env=env) for command in commands]
    stopping = threading.Event()

    def stop(signum: int, _frame: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping.is_set() and all(child.poll() is None for child in children):
        stopping.wait(0.2)
    for child in children:
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + 20
    for child in children:
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
    codes = [child.returncode for child in children]
    sys.exit(0 if stopping.is_set() else next((code for code in codes if code), 1))


#: The audit trail's actor of a rotation the worker decided on (``[gitlab] rotate_days_before_expiry``).
TOKEN_WATCH_ACTOR = "token-watch"


def token_watch(bridge: Bridge) -> TokenWatch:
    """The daily reading of the token; it rotates a stored token when the settings ask it to."""
    rotation = bridge.token_rotation
    days = bridge.settings.gitlab.rotate_days_before_expiry
    if rotation is None or days <= 0:
        return TokenWatch(bridge.gitlab.token_info, stored=rotation is not None)

    def rotate() -> object:
        with context.bound(context.RequestContext(actor=TOKEN_WATCH_ACTOR, source="worker")):
            return rotation.rotate_if_due(days)

    return TokenWatch(bridge.gitlab.token_info, rotate=rotate, rotate_days=days, stored=True)


@click.command()
@friendly
def worker() -> None:
    """Run the background worker alone: retries what inline reconciliation left."""
    bridge = open_bridge()
    log = logging.getLogger("scim_bridge.cli")  # the name it logged under before the package
    revisited = bridge.revisit_groups_if_rules_changed()
    if revisited:
        log.info("group rules changed: %d group(s) queued", revisited)
    if not bridge.gitlab.dry_run:
        try:
            resolved = bridge.protector.refresh()
            log.info("protected GitLab accounts resolved: %d", len(resolved.accounts))
        except Exception as error:  # GitLab down: the first reconcile resolves them
            log.warning("cannot resolve the protected GitLab accounts yet: %s", error)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if not bridge.gitlab.dry_run:  # its expiry as a metric, at start and daily
        token_watch(bridge).start(stop)
    drift = bridge.drift_repair()
    if drift is not None:  # one instance's turn per [reconcile] drift_interval_minutes
        drift.start(stop)
    bridge.runner.run_forever(stop)
