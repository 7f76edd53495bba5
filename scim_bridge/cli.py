"""The ``scim-bridge`` command: serve, worker, tokens, clients, jobs, audit, db (DESIGN.md)."""

from __future__ import annotations

import csv
import getpass
import io
import json
import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from collections.abc import Sequence
from datetime import UTC
from datetime import datetime
from functools import wraps
from typing import Any
from typing import TypeVar

import click

from scim_bridge import __version__
from scim_bridge import context
from scim_bridge import logs
from scim_bridge.auth.clients import ClientError
from scim_bridge.auth.tokens import TokenError
from scim_bridge.bridge import Bridge
from scim_bridge.provisioning.drift import Drift
from scim_bridge.provisioning.drift import DriftFinder
from scim_bridge.provisioning.drift import queue_repairs
from scim_bridge.provisioning.operator_links import OperatorLinkError
from scim_bridge.provisioning.reconciler import Rejected
from scim_bridge.provisioning.reconciler import Retry
from scim_bridge.settings import Settings
from scim_bridge.settings import SettingsError
from scim_bridge.settings import load_settings
from scim_bridge.store import audit as audit_log
from scim_bridge.store import migrate
from scim_bridge.store.audit_verify import verify as verify_audit_chain
from scim_bridge.store.db import display_url
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
        except (SettingsError, SchemaError, TokenError, ClientError, OperatorLinkError) as error:
            _fail(str(error))

    return wrapper  # type: ignore[return-value]


@click.group()
@click.version_option(__version__, prog_name="scim-bridge")
def main() -> None:
    """SCIM 2.0 endpoint for Microsoft Entra ID that provisions GitLab."""
    logs.configure()


# -- serve / worker ---------------------------------------------------------------


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
        str(workers or settings.server.workers),
        "scim_bridge.app:create_app()",
    ]
    worker = [sys.executable, "-m", "scim_bridge", "worker"]
    from scim_bridge.metrics.multiproc import shared_directory  # only `serve` needs it

    # gunicorn's workers and the background worker add up their metrics in one directory.
    with shared_directory() as env:
        _supervise([gunicorn, worker], env)


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


@main.command()
@_friendly
def worker() -> None:
    """Run the background worker alone: retries what inline reconciliation left."""
    bridge = _bridge()
    log = logging.getLogger(__name__)
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
    bridge.runner.run_forever(stop)


@main.command()
@click.option("--apply", "apply_", is_flag=True, help="Repair the drift (queue and run the jobs).")
@_friendly
def reconcile(apply_: bool) -> None:
    """Compare every user and managed membership with GitLab; print the drift (exit 1 if any)."""
    bridge = _bridge()
    if bridge.settings.gitlab.planned_only:
        click.echo("GitLab is not configured (dry-run): there is nothing to compare")
        return
    finder = DriftFinder(
        bridge.db, bridge.gitlab, bridge.links, bridge.settings.users, bridge.protector
    )
    drifts = _find_drift(finder)
    _print_drift(drifts)
    if not drifts:
        return
    if not apply_:
        click.echo("repair with: scim-bridge reconcile --apply")
        sys.exit(1)
    keys = queue_repairs(bridge.db, drifts)
    try:
        bridge.runner.run_inline(keys, REPAIR_SECONDS)
    except Rejected as rejection:
        click.echo(f"GitLab refused a repair: {rejection.detail}")
    remaining = _find_drift(finder)
    click.echo(f"repaired {len(drifts) - len(remaining)} of {len(drifts)}")
    if remaining:
        _print_drift(remaining)
        click.echo("what remains waits in `scim-bridge jobs`")
        sys.exit(1)


REPAIR_SECONDS = 300.0


def _find_drift(finder: DriftFinder) -> list[Drift]:
    try:
        return finder.find()
    except Retry as retry:
        _fail(f"cannot read GitLab: {retry.detail}")
        raise  # unreachable


def _print_drift(drifts: list[Drift]) -> None:
    if not drifts:
        click.echo("no drift: GitLab matches the store")
        return
    width = max(len(drift.target) for drift in drifts)
    click.echo(f"{'KIND':10} {'TARGET':{width}} {'DESIRED':24} ACTUAL")
    for drift in drifts:
        click.echo(f"{drift.kind:10} {drift.target:{width}} {drift.desired:24} {drift.actual}")


# -- check ----------------------------------------------------------------------------


@main.command()
@_friendly
def check() -> None:
    """Pre-flight: settings, database, GitLab (token, admin, scopes, groups); exit 1 on problems."""
    from scim_bridge import checks

    findings = checks.run_all(_bridge(migrate_schema=False))
    for finding in findings:
        click.echo(f"{finding.level.value:<4} {finding.subject:<8} {finding.message}")
    failed = checks.problems(findings)
    if failed:
        click.echo(f"check failed: {failed} problem(s)")
        sys.exit(1)
    click.echo("check passed")


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


# -- clients ------------------------------------------------------------------------


@main.group()
def clients() -> None:
    """OAuth2 clients for Entra's "OAuth2 client credentials grant" (token endpoint /oauth2/token)."""


@clients.command("create")
@click.argument("name")
@_friendly
def clients_create(name: str) -> None:
    """Create a client and print its id and first secret once (the secret is stored hashed)."""
    client = _bridge().clients.create(name)
    click.echo(f"client_id: {client.client_id}")
    click.echo(f"client_secret: {client.client_secret}")
    click.echo(
        f"The secret expires {_when(client.secret_expires_at)} UTC and cannot be shown again. "
        "In Entra: Authentication method 'OAuth2 client credentials grant', Token endpoint "
        "https://<this host>/oauth2/token, Client identifier and Client secret as above.",
        err=True,
    )


@clients.command("rotate")
@click.argument("name")
@_friendly
def clients_rotate(name: str) -> None:
    """Add a secret; the old ones stay valid until they expire or `clients revoke-secret`."""
    secret, expires_at = _bridge().clients.rotate(name)
    click.echo(f"client_secret: {secret}")
    click.echo(
        f"The secret expires {_when(expires_at)} UTC. Once Entra uses it, end the old one with "
        f"`scim-bridge clients revoke-secret {name}`.",
        err=True,
    )


@clients.command("revoke-secret")
@click.argument("name")
@click.argument("secret_id", type=int, required=False)
@_friendly
def clients_revoke_secret(name: str, secret_id: int | None) -> None:
    """Revoke secret SECRET_ID (see `clients list`), or every secret but the newest."""
    revoked = _bridge().clients.revoke_secret(name, secret_id)
    if revoked:
        click.echo(f"revoked secret(s) {', '.join(f'#{number}' for number in revoked)} of {name}")
    else:
        click.echo(f"{name} has only one live secret; nothing revoked")


@clients.command("revoke")
@click.argument("name")
@_friendly
def clients_revoke(name: str) -> None:
    """End the client, its secrets and every access token it holds, at once."""
    _bridge().clients.revoke(name)
    click.echo(f"revoked {name} and its access tokens")


@clients.command("list")
@_friendly
def clients_list() -> None:
    """List clients and their secrets (never the secrets themselves)."""
    rows = _bridge().clients.list()
    if not rows:
        click.echo("no clients")
        return
    click.echo(f"{'NAME':24} {'CLIENT ID':30} {'STATUS':8} SECRETS")
    for client in rows:
        click.echo(f"{client.name:24} {client.client_id:30} {client.status:8}")
        for secret in client.secrets:
            click.echo(
                f"{'':24} secret #{secret.id:<6} {secret.status:8} created "
                f"{_when(secret.created_at)}, expires {_when(secret.expires_at)}, last used "
                f"{_when(secret.last_used_at)}"
            )


# -- users ----------------------------------------------------------------------------


def _operator() -> context.RequestContext:
    """Who runs a command that changes links, for the audit trail."""
    try:
        name = getpass.getuser()
    except Exception:  # no user name in a bare container
        name = "unknown"
    return context.RequestContext(actor=f"cli:{name}", source="cli")


@main.group()
def users() -> None:
    """Links between SCIM users and GitLab accounts, and how each was made."""


@users.command("link")
@click.argument("scim_user_name")
@click.argument("gitlab_username")
@_friendly
def users_link(scim_user_name: str, gitlab_username: str) -> None:
    """Link a SCIM user to an existing GitLab account by hand (an operator link).

    For an administrator or a protected person who is also provisioned from Entra: the group
    rules then manage the account's memberships, but the bridge never writes its username,
    email, identity or state.
    """
    bridge = _bridge()
    with context.bound(_operator()):
        link, protected, keys = bridge.operator_links.link(scim_user_name, gitlab_username)
        account = f"GitLab account {link.gitlab_username} (id {link.gitlab_user_id})"
        if not link.user_id:
            click.echo(
                f"{scim_user_name} is not provisioned yet: when Entra provisions it, it is linked "
                f"to {account} as an operator link"
            )
        else:
            click.echo(
                f"linked {scim_user_name} to {account} as an operator link"
                + (f"; the account is {protected}" if protected else "")
            )
        click.echo("the bridge manages its group memberships and never writes the account itself")
        _run_now(bridge, keys)


@users.command("unlink")
@click.argument("scim_user_name")
@_friendly
def users_unlink(scim_user_name: str) -> None:
    """Forget a SCIM user's link; GitLab keeps the account and its memberships as they are."""
    bridge = _bridge()
    with context.bound(_operator()):
        link = bridge.operator_links.unlink(scim_user_name)
    if not link.user_id:
        click.echo(f"{scim_user_name} will not be linked to {link.gitlab_username}")
        return
    click.echo(
        f"unlinked {scim_user_name} from GitLab account {link.gitlab_username} "
        f"(id {link.gitlab_user_id}, {link.origin}); its memberships are no longer managed"
    )


@users.command("list")
@_friendly
def users_list() -> None:
    """Every link: the SCIM user, the GitLab account, how the link was made, its protection."""
    rows = _bridge().operator_links.rows()
    if not rows:
        click.echo("no links")
        return
    _table(
        ["SCIM USER", "GITLAB ACCOUNT", "ID", "ORIGIN", "PROTECTION", "STATE"],
        [
            [
                row.user_name,
                row.gitlab_username,
                str(row.gitlab_user_id),
                row.origin,
                row.protection,
                row.state,
            ]
            for row in rows
        ],
    )


def _run_now(bridge: Bridge, keys: list[str]) -> None:
    """Run the jobs a command queued, so its effect shows at once; the worker finishes the rest."""
    if not keys or bridge.gitlab.dry_run:
        return
    try:
        bridge.runner.run_inline(keys, REPAIR_SECONDS)
    except Rejected as rejection:
        click.echo(f"GitLab refused: {rejection.detail}")
    waiting = [job.key for job in bridge.queue.list() if job.key in keys]
    if waiting:
        click.echo(f"waiting for GitLab (see `scim-bridge jobs`): {', '.join(waiting)}")


def _table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=False)]
    for line in [header, *rows]:
        click.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )


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


@main.group(invoke_without_command=True)
@click.option("--limit", type=int, default=50, show_default=True)
@click.pass_context
@_friendly
def audit(ctx: click.Context, limit: int) -> None:
    """Show the newest audit events; `audit verify` checks their hash chain, `audit export`."""
    if ctx.invoked_subcommand is not None:
        return
    for event in audit_log.newest(_bridge().db, limit):
        click.echo(
            f"{_when(event['at'])} {event['action']:22} {event['target'] or '-':40} "
            f"actor={event['actor'] or '-'} request={event['request_id'] or '-'} "
            f"{event['detail'] or ''}"
        )


@audit.command("verify")
@_friendly
def audit_verify() -> None:
    """Check the hash chain: exit 1, naming each event, if any was edited, removed or moved."""
    report = verify_audit_chain(_bridge().db)
    if report.intact:
        head = (report.head_hash or audit_log.GENESIS)[:16]
        click.echo(f"audit trail intact: {report.events} events, chain head {head}")
        return
    for problem in report.problems:
        click.echo(str(problem))
    if report.unlisted:
        click.echo(f"... and {report.unlisted} more problem(s)")
    click.echo(
        f"audit trail NOT intact: {report.problem_count} problem(s) "
        f"in {report.events} chained events"
    )
    sys.exit(1)


def _since(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    """An ISO 8601 date or date-time; without a zone it is UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 date or date-time (e.g. 2024-05-01T12:00:00Z)"
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@audit.command("export")
@click.option(
    "--since", callback=_since, metavar="ISO-8601", help="Start at the first event at or after it."
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["jsonl", "csv"]),
    default="jsonl",
    show_default=True,
)
@_friendly
def audit_export(since: datetime | None, output_format: str) -> None:
    """Stream the chained events oldest first, with seq, prev_hash and hash (for a SIEM)."""
    rows = audit_log.export(_bridge().db, since)
    if output_format == "jsonl":
        for row in rows:
            click.echo(json.dumps(row))
        return
    _echo_csv(audit_log.EXPORT_FIELDS)
    for row in rows:
        detail = json.dumps(row["detail"], sort_keys=True, separators=(",", ":"))
        _echo_csv([detail if name == "detail" else row[name] for name in audit_log.EXPORT_FIELDS])


def _echo_csv(values: Sequence[Any]) -> None:
    """One CSV record, written at once so the export streams."""
    buffer = io.StringIO()
    csv.writer(buffer).writerow(values)
    click.echo(buffer.getvalue(), nl=False)


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
