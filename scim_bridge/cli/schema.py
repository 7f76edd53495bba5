"""``db``: the database schema's migrations, applied and reported."""

from __future__ import annotations

import click

from scim_bridge.cli.common import friendly
from scim_bridge.cli.common import open_bridge
from scim_bridge.store import migrate


@click.group()
def db() -> None:
    """Database schema migrations."""


@db.command("upgrade")
@friendly
def db_upgrade() -> None:
    """Apply pending migrations."""
    bridge = open_bridge(migrate_schema=False)
    migrate.upgrade(bridge.db)
    click.echo(f"database at revision {migrate.current_revision(bridge.db)}")


@db.command("current")
@friendly
def db_current() -> None:
    """Print the schema revision, and the one this version needs."""
    bridge = open_bridge(migrate_schema=False)
    click.echo(
        f"database: {migrate.current_revision(bridge.db) or 'empty'}; "
        f"this version needs: {migrate.head_revision()}"
    )
