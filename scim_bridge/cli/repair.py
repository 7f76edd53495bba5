"""``reconcile``: compare the store with GitLab, print the drift, and repair it on request."""

from __future__ import annotations

import sys

import click

from scim_bridge.cli.common import REPAIR_SECONDS
from scim_bridge.cli.common import fail
from scim_bridge.cli.common import friendly
from scim_bridge.cli.common import open_bridge
from scim_bridge.cli.table import print_table
from scim_bridge.provisioning.drift import Drift
from scim_bridge.provisioning.drift import DriftFinder
from scim_bridge.provisioning.drift import queue_repairs
from scim_bridge.provisioning.reconciling import Rejected
from scim_bridge.provisioning.reconciling import Retry


@click.command()
@click.option("--apply", "apply_", is_flag=True, help="Repair the drift (queue and run the jobs).")
@friendly
def reconcile(apply_: bool) -> None:
    """Compare every user and managed membership with GitLab; print the drift (exit 1 if any)."""
    bridge = open_bridge()
    if bridge.settings.gitlab.planned_only:
        click.echo("GitLab is not configured (dry-run): there is nothing to compare")
        return
    finder = bridge.drift_finder
    drifts = _find_drift(finder)
    _print_drift(drifts)
    if not drifts:
        return
    if not apply_:
        click.echo("repair with: scim-bridge reconcile --apply")
        sys.exit(1)
    keys = queue_repairs(bridge.drift_records, drifts)
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


def _find_drift(finder: DriftFinder) -> list[Drift]:
    try:
        return finder.find()
    except Retry as retry:
        fail(f"cannot read GitLab: {retry.detail}")


def _print_drift(drifts: list[Drift]) -> None:
    # TARGET is as wide as the widest target (not the header), as it always was.
    width = max((len(drift.target) for drift in drifts), default=0)
    print_table(
        ["KIND", "TARGET", "DESIRED", "ACTUAL"],
        [[drift.kind, drift.target, drift.desired, drift.actual] for drift in drifts],
        widths=[10, width, 24],
        empty="no drift: GitLab matches the store",
    )
