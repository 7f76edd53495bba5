"""``access report``: who holds what in each mapped GitLab group, why and since when.

The logic lives in ``provisioning/access_report.py``; this module only formats its rows, each
written as it comes (CSV and JSONL one record at a time, the table in fixed columns), so a
report over 10,000 users never holds them all.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from collections.abc import Sequence

import click

from scim_bridge.cli.common import fail
from scim_bridge.cli.common import friendly
from scim_bridge.cli.common import open_bridge
from scim_bridge.gitlab.transport import patient
from scim_bridge.provisioning.access_report import DRY_RUN_NOTICE
from scim_bridge.provisioning.access_report import FIELDS
from scim_bridge.provisioning.access_report import AccessReport
from scim_bridge.provisioning.access_report import Row
from scim_bridge.provisioning.access_report import notice
from scim_bridge.provisioning.reconciling import Retry
from scim_bridge.store.access_review import AccessRecords

# The table's columns and their fixed widths (the last, REASON, as it is): fixed so that the
# table streams like the other formats; a longer cell pushes its line, it is never cut.
TABLE = (
    ("KIND", "kind", 10),
    ("SCIM USER", "scim_user", 28),
    ("GITLAB USER", "gitlab_user", 20),
    ("GITLAB GROUP", "gitlab_group", 24),
    ("LEVEL", "level", 10),
    ("SINCE", "since", 20),
    ("REASON", "reason", 0),
)
SECTIONS = ("memberships", "orphans", "unexplained members")


@click.group()
def access() -> None:
    """Access review: who can reach what in GitLab, and why."""


@access.command("report")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "csv", "jsonl"]),
    default="table",
    show_default=True,
)
@click.option("--gitlab-group", metavar="PATH", help="Only this mapped GitLab group.")
@click.option("--user", metavar="USERNAME", help="Only this SCIM userName or GitLab username.")
@click.option(
    "--max-wait",
    type=click.FloatRange(min=0),
    default=600.0,
    show_default=True,
    metavar="SECONDS",
    help="How long each GitLab read may wait for GitLab's pauses, or be sent again after a "
    "429, a 5xx or no answer, before the report gives up (exit 2).",
)
@friendly
def report(output_format: str, gitlab_group: str | None, user: str | None, max_wait: float) -> None:
    """Every membership of a provisioned user in a mapped GitLab group, with its level, reason
    and since when; then orphaned accounts and unexplained (manual) members. Reads GitLab only."""
    with patient(max_wait):
        _report(output_format, gitlab_group, user)


def _report(output_format: str, gitlab_group: str | None, user: str | None) -> None:
    bridge = open_bridge()
    settings = bridge.settings
    access_report = AccessReport(
        AccessRecords(bridge.db),
        bridge.gitlab,
        settings.groups,
        settings.gitlab.identity_provider,
        gitlab_group=gitlab_group,
        user=user,
    )
    if gitlab_group is not None and not access_report.groups():
        fail(f"{gitlab_group} is not a mapped GitLab group (no rule or membership names it)")
    writers: dict[str, type[_Writer]] = {"table": _Table, "csv": _Csv, "jsonl": _Jsonl}
    write = writers[output_format]()
    write.start()
    if not access_report.reads_gitlab:
        write.row(notice(DRY_RUN_NOTICE))
    try:
        write.section(SECTIONS[0], access_report.memberships())
        if access_report.reads_gitlab:
            if gitlab_group is None:
                write.section(SECTIONS[1], access_report.orphans())
            write.section(SECTIONS[2], access_report.unexplained())
    except Retry as trouble:
        fail(f"cannot read GitLab: {trouble.detail}")


class _Writer:
    """Writes each row as it comes; the sections follow one another."""

    def start(self) -> None:
        """Before the first row."""

    def section(self, _title: str, rows: Iterator[Row]) -> None:
        for row in rows:
            self.row(row)

    def row(self, row: Row) -> None:
        raise NotImplementedError


class _Csv(_Writer):
    """One header, then one record per row (a ``kind`` column tells the sections apart)."""

    def start(self) -> None:
        _echo_csv(FIELDS)

    def row(self, row: Row) -> None:
        _echo_csv(row.values())


class _Jsonl(_Writer):
    """One JSON object per row, keys as the CSV header."""

    def row(self, row: Row) -> None:
        click.echo(json.dumps(dict(zip(FIELDS, row.values(), strict=True))))


class _Table(_Writer):
    """Each section under its title, in fixed columns; notices as plain lines."""

    def section(self, title: str, rows: Iterator[Row]) -> None:
        click.echo(f"{title}:")
        empty = True
        for row in rows:
            if empty and row.kind != "notice":
                self._line([name for name, _, _ in TABLE])
            empty = empty and row.kind == "notice"
            self.row(row)
        if empty:
            click.echo("  none")
        click.echo("")

    def row(self, row: Row) -> None:
        if row.kind == "notice":
            click.echo(row.reason)
            return
        cells = dict(zip(FIELDS, row.values(), strict=True))
        self._line([cells[key] or "-" for _, key, _ in TABLE])

    def _line(self, cells: Sequence[str]) -> None:
        click.echo(
            " ".join(
                cell if width == 0 else cell.ljust(width)
                for cell, (_, _, width) in zip(cells, TABLE, strict=True)
            )
        )


def _echo_csv(values: Sequence[str]) -> None:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(values)
    click.echo(buffer.getvalue(), nl=False)
