"""``audit``: the newest events, the hash chain's verification, and the export for a SIEM."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Sequence
from datetime import UTC
from datetime import datetime
from typing import Any

import click

from scim_bridge.cli.common import friendly
from scim_bridge.cli.common import open_bridge
from scim_bridge.cli.table import when
from scim_bridge.store import audit as audit_log
from scim_bridge.store.audit_verify import verify as verify_audit_chain


@click.group(invoke_without_command=True)
@click.option("--limit", type=int, default=50, show_default=True)
@click.pass_context
@friendly
def audit(ctx: click.Context, limit: int) -> None:
    """Show the newest audit events; `audit verify` checks their hash chain, `audit export`."""
    if ctx.invoked_subcommand is not None:
        return
    for event in audit_log.newest(open_bridge().db, limit):
        click.echo(
            f"{when(event['at'])} {event['action']:22} {event['target'] or '-':40} "
            f"actor={event['actor'] or '-'} request={event['request_id'] or '-'} "
            f"{event['detail'] or ''}"
        )


@audit.command("verify")
@friendly
def audit_verify() -> None:
    """Check the hash chain: exit 1, naming each event, if any was edited, removed or moved."""
    report = verify_audit_chain(open_bridge().db)
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
@friendly
def audit_export(since: datetime | None, output_format: str) -> None:
    """Stream the chained events oldest first, with seq, prev_hash and hash (for a SIEM)."""
    rows = audit_log.export(open_bridge().db, since)
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
