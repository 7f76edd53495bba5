"""``jobs``: the reconcile work waiting for GitLab, and parked work put back in the queue."""

from __future__ import annotations

import click

from scim_bridge.cli.common import fail
from scim_bridge.cli.common import friendly
from scim_bridge.cli.common import open_bridge
from scim_bridge.cli.table import print_table
from scim_bridge.cli.table import when


@click.group(invoke_without_command=True)
@click.pass_context
@friendly
def jobs(ctx: click.Context) -> None:
    """Pending and parked reconcile work."""
    if ctx.invoked_subcommand is not None:
        return
    rows = open_bridge().queue.list()
    print_table(
        ["KEY", "STATE", "ATTEMPTS", "NEXT RUN", "LAST ERROR"],
        [
            [job.key, job.state, str(job.attempts), when(job.run_after), job.last_error or "-"]
            for job in rows
        ],
        widths=[48, 8, 8, 20],
        empty="no pending or parked jobs",
    )
    if any(job.state == "parked" for job in rows):
        click.echo("retry parked jobs with: scim-bridge jobs retry --all (or KEY)")


@jobs.command("retry")
@click.argument("key", required=False)
@click.option("--all", "retry_all", is_flag=True, help="Retry every parked job.")
@friendly
def jobs_retry(key: str | None, retry_all: bool) -> None:
    """Put parked jobs back in the queue."""
    if not key and not retry_all:
        fail("name a job KEY or pass --all")
    count = open_bridge().queue.retry_parked(None if retry_all else key)
    click.echo(f"{count} job(s) queued again")
