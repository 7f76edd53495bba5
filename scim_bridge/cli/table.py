"""The one table printer: every command that lists rows prints them through ``print_table``.

Operators read these tables and scripts parse them, so each command keeps the layout it has always
had: fixed columns one space apart (tokens, clients, jobs, reconcile), or columns fitted to their
widest cell, two spaces apart (users).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import click


@dataclass(frozen=True)
class Note:
    """A line printed as it is, under the row before it (a client's secrets, say)."""

    text: str


def print_table(
    header: Sequence[str],
    rows: Sequence[Sequence[str] | Note],
    widths: Sequence[int] | None = None,
    *,
    empty: str,
) -> None:
    """Print ``header`` and ``rows``, in one of the two layouts the commands use; ``empty`` if none.

    With ``widths`` (one per column but the last): each cell padded to its column's width (never
    cut), one space between columns, the last column as it is. Without: every column as wide as
    its widest cell, header included, two spaces between columns, trailing spaces trimmed.
    """
    if not rows:
        click.echo(empty)
        return
    if widths is None:
        cells = [header, *(row for row in rows if not isinstance(row, Note))]
        fitted = [max(len(cell) for cell in column) for column in zip(*cells, strict=False)]
        gap, trim = "  ", True
    else:
        fitted, gap, trim = list(widths), " ", False
    for row in [header, *rows]:
        if isinstance(row, Note):
            click.echo(row.text)
            continue
        last = len(header) - 1
        line = gap.join(
            cell if column == last else cell.ljust(fitted[column])
            for column, cell in enumerate(row)
        )
        click.echo(line.rstrip() if trim else line)


def when(value: datetime | None) -> str:
    """A time as every listing shows it, or ``-`` for none."""
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"
