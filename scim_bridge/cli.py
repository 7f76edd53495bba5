"""The ``scim-bridge`` command: serve, worker, tokens, jobs, db (DESIGN.md, Operator interface)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from functools import wraps
from typing import Any
from typing import TypeVar

import click

from scim_bridge import __version__
from scim_bridge.auth.tokens import TokenError
from scim_bridge.bridge import Bridge
from scim_bridge.settings import Settings
from scim_bridge.settings import SettingsError
from scim_bridge.settings import load_settings
from scim_bridge.store import audit as audit_log
from scim_bridge.store import migrate
from scim_bridge.store.migrate import SchemaError

F = TypeVar("F", bound=Callable[..., Any])


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as error:
        _fail(str(error))
        raise  # unreachable


def _bridge(*, migrate_schema: bool = True) -> Bridge:
    try:
        return Bridge(_settings(), migrate=migrate_schema)
    except SchemaError as error:
        _fail(str(error))
        raise  # unreachable


def _friendly(function: F) -> F:
    """Settings and schema problems end the command with one readable line, not a traceback."""

    @wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except (SettingsError, SchemaError, TokenError) as error:
            _fail(str(error))

    return wrapper  # type: ignore[return-value]


@click.group()
@click.version_option(__version__, prog_name="scim-bridge")
def main() -> None:
    """SCIM 2.0 endpoint for Microsoft Entra ID that provisions GitLab."""
    logging.basicConfig(
        level=os.environ.get("SCIM_BRIDGE_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)


# -- serve / worker ---------------------------------------------------------------


def _banner(settings: Settings, host: str, port: int, tokens: int) -> str:
    base = f"http://{host}:{port}"
    gitlab = settings.gitlab
    if gitlab.planned_only:
        reason = "dry_run = true" if gitlab.dry_run else "no GitLab configured"
        target = f"dry-run ({reason}): GitLab calls are planned and audited, not made"
    else:
        target = f"{gitlab.url} (identity provider {gitlab.identity_provider!r})"
    token_line = (
        f"{tokens} active token(s); `scim-bridge tokens list` shows them"
        if tokens
        else "none yet: run `scim-bridge tokens create entra` and paste the secret into Entra"
    )
    return "\n".join(
        [
            f"scim-bridge {__version__} listening on {base}",
            f"  SCIM base URL (Entra's Tenant URL): {base}/scim/v2",
            f"  Database: {settings.database_url}",
            f"  GitLab: {target}",
            f"  Bearer token: {token_line}",
        ]
    )


@main.command()
@click.option("--host", default=None, help="Interface to listen on (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to listen on (default 8000).")
@click.option("--workers", type=int, default=None, help="gunicorn worker processes (default 2).")
@_friendly
def serve(host: str | None, port: int | None, workers: int | None) -> None:
    """Run the SCIM endpoint under gunicorn, with the background worker."""
    settings = _settings()
    host = host or settings.server.host
    port = port if port is not None else settings.server.port
    bridge = Bridge(settings)  # applies migrations once, before any gunicorn worker starts
    active = sum(1 for token in bridge.tokens.list() if token.status == "active")
    bridge.db.dispose()
    click.echo(_banner(settings, host, port, active), err=True)
    gunicorn = [
        sys.executable,
        "-m",
        "gunicorn",
        "--config",
        "python:scim_bridge.gunicorn_conf",
        "--bind",
        f"{host}:{port}",
        "--workers",
        str(workers or settings.server.workers),
        "scim_bridge.app:create_app()",
    ]
    worker = [sys.executable, "-m", "scim_bridge", "worker"]
    _supervise([gunicorn, worker])


def _supervise(commands: list[list[str]]) -> None:
    """Run the processes together: when one ends or a signal arrives, stop them all."""
    children = [subprocess.Popen(command) for command in commands]
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


@main.command()
@_friendly
def worker() -> None:
    """Run the background worker alone: retries what inline reconciliation left."""
    bridge = _bridge()
    revisited = bridge.revisit_groups_if_rules_changed()
    if revisited:
        logging.getLogger(__name__).info("group rules changed: %d group(s) queued", revisited)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    bridge.runner.run_forever(stop)


# -- tokens -------------------------------------------------------------------------


@main.group()
def tokens() -> None:
    """Bearer tokens for Entra's Secret Token field."""


@tokens.command("create")
@click.argument("name")
@click.option("--expires-in-days", type=click.IntRange(min=1), default=None)
@_friendly
def tokens_create(name: str, expires_in_days: int | None) -> None:
    """Create a token and print its secret once (it is stored hashed)."""
    secret = _bridge().tokens.create(name, expires_in_days=expires_in_days)
    click.echo(f"token: {secret}")
    click.echo("Paste it into Entra's Secret Token field; it cannot be shown again.", err=True)


@tokens.command("list")
@_friendly
def tokens_list() -> None:
    """List tokens (never their secrets)."""
    rows = _bridge().tokens.list()
    if not rows:
        click.echo("no tokens")
        return
    click.echo(f"{'NAME':24} {'STATUS':8} {'CREATED':20} {'EXPIRES':20} LAST USED")
    for row in rows:
        click.echo(
            f"{row.name:24} {row.status:8} {_when(row.created_at):20} "
            f"{_when(row.expires_at):20} {_when(row.last_used_at)}"
        )


@tokens.command("revoke")
@click.argument("name")
@_friendly
def tokens_revoke(name: str) -> None:
    """Revoke a token at once."""
    _bridge().tokens.revoke(name)
    click.echo(f"revoked {name}")


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


# -- jobs / audit / db -------------------------------------------------------------------


@main.group(invoke_without_command=True)
@click.pass_context
@_friendly
def jobs(ctx: click.Context) -> None:
    """Pending and parked reconcile work."""
    if ctx.invoked_subcommand is not None:
        return
    rows = _bridge().queue.list()
    if not rows:
        click.echo("no pending or parked jobs")
        return
    click.echo(f"{'KEY':48} {'STATE':8} {'ATTEMPTS':8} {'NEXT RUN':20} LAST ERROR")
    for job in rows:
        click.echo(
            f"{job.key:48} {job.state:8} {job.attempts:<8} {_when(job.run_after):20} "
            f"{job.last_error or '-'}"
        )
    if any(job.state == "parked" for job in rows):
        click.echo("retry parked jobs with: scim-bridge jobs retry --all (or KEY)")


@jobs.command("retry")
@click.argument("key", required=False)
@click.option("--all", "retry_all", is_flag=True, help="Retry every parked job.")
@_friendly
def jobs_retry(key: str | None, retry_all: bool) -> None:
    """Put parked jobs back in the queue."""
    if not key and not retry_all:
        _fail("name a job KEY or pass --all")
    count = _bridge().queue.retry_parked(None if retry_all else key)
    click.echo(f"{count} job(s) queued again")


@main.command()
@click.option("--limit", type=int, default=50, show_default=True)
@_friendly
def audit(limit: int) -> None:
    """Show the newest audit events."""
    events = list(audit_log.events(_bridge().db))[-limit:]
    for event in events:
        click.echo(
            f"{_when(event['at'])} {event['action']:22} {event['target'] or '-':40} "
            f"actor={event['actor'] or '-'} request={event['request_id'] or '-'} "
            f"{event['detail'] or ''}"
        )


@main.group()
def db() -> None:
    """Database schema migrations."""


@db.command("upgrade")
@_friendly
def db_upgrade() -> None:
    """Apply pending migrations."""
    bridge = _bridge(migrate_schema=False)
    migrate.upgrade(bridge.db)
    click.echo(f"database at revision {migrate.current_revision(bridge.db)}")


@db.command("current")
@_friendly
def db_current() -> None:
    """Print the schema revision, and the one this version needs."""
    bridge = _bridge(migrate_schema=False)
    click.echo(
        f"database: {migrate.current_revision(bridge.db) or 'empty'}; "
        f"this version needs: {migrate.head_revision()}"
    )
