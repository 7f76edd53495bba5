"""``check``: the pre-flight an operator runs before Entra's first call (DESIGN.md)."""

from __future__ import annotations

import sys

import click

from scim_bridge.cli.common import friendly
from scim_bridge.cli.common import open_bridge


@click.command()
@friendly
def check() -> None:
    """Pre-flight: settings, database, GitLab (token, admin, scopes, groups); exit 1 on problems."""
    from scim_bridge import checks

    findings = checks.run_all(open_bridge(migrate_schema=False))
    for finding in findings:
        click.echo(f"{finding.level.value:<4} {finding.subject:<8} {finding.message}")
    failed = checks.problems(findings)
    if failed:
        click.echo(f"check failed: {failed} problem(s)")
        sys.exit(1)
    click.echo("check passed")
