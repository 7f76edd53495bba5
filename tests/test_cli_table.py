"""The one table printer keeps each listing's layout byte for byte: scripts parse these tables."""

from __future__ import annotations

import click
from click.testing import CliRunner

from scim_bridge.cli.table import Note
from scim_bridge.cli.table import print_table


def printed(*args: object, **kwargs: object) -> str:
    @click.command()
    def command() -> None:
        print_table(*args, **kwargs)  # type: ignore[arg-type]

    return CliRunner().invoke(command, catch_exceptions=False).output


def test_fixed_columns_pad_all_but_the_last_and_never_cut() -> None:
    rows = [["alice", "active", "2026-01-02"], ["x" * 12, "", ""], Note("   a note as it is")]
    assert printed(["NAME", "STATUS", "WHEN"], rows, widths=[8, 3], empty="none") == (
        "NAME     STATUS WHEN\nalice    active 2026-01-02\nxxxxxxxxxxxx     \n   a note as it is\n"
    )


def test_a_short_row_keeps_its_padding() -> None:
    """`clients list` prints a client's row without its last column, padded as the others."""
    assert printed(["A", "B", "C"], [["a", "b"]], widths=[3, 3], empty="none") == (
        "A   B   C\na   b  \n"
    )


def test_fitted_columns_are_as_wide_as_their_widest_cell_and_trimmed() -> None:
    rows = [["alice", "7", "live"], ["bob-the-long", "123456", ""]]
    assert printed(["USER", "ID", "STATE"], rows, empty="none") == (
        "USER          ID      STATE\nalice         7       live\nbob-the-long  123456\n"
    )


def test_no_rows_print_the_empty_message_alone() -> None:
    assert printed(["USER"], [], empty="no links") == "no links\n"
    assert printed(["USER"], [], widths=[], empty="no tokens") == "no tokens\n"
