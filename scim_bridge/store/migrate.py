"""Schema migrations with Alembic, applied at start-up or refused with a message that says what to do."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from scim_bridge.store.db import Database
from scim_bridge.store.db import begin_sqlite
from scim_bridge.store.db import display_url

MIGRATIONS = Path(__file__).parent / "migrations"


class SchemaError(RuntimeError):
    """The database schema is not the one this version of the bridge needs."""


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(db: Database) -> str | None:
    with db.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(db: Database) -> None:
    """Bring the schema to the newest revision; a no-op when it is there already."""
    config = _config()
    with db.engine.begin() as connection:
        if db.is_sqlite:  # the writer lock, held to the end: one instance migrates at a time
            begin_sqlite(connection, write=True)
        else:
            # Several instances may start at once: one migrates, the others wait and find it done.
            connection.execute(text("SELECT pg_advisory_xact_lock(7364012)"))
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def ensure_schema(db: Database, *, auto_migrate: bool) -> None:
    """Apply pending migrations, or refuse to start when that is not allowed or not possible.

    :raises SchemaError: with the command that fixes it.
    """
    head = head_revision()
    try:
        current = current_revision(db)
    except Exception as error:  # the database is unreachable or not a database
        # The URL with its password hidden, and the driver's words without it should they echo it.
        password = db.engine.url.password
        reason = str(error).replace(str(password), "***") if password else str(error)
        raise SchemaError(f"cannot open the database {display_url(db.url)}: {reason}") from error
    if current == head:
        return
    known = {script.revision for script in ScriptDirectory.from_config(_config()).walk_revisions()}
    if current is not None and current not in known:
        raise SchemaError(
            f"the database schema is at revision {current}, which this version of scim-bridge does "
            f"not know (it expects {head}): it was written by a newer version; upgrade scim-bridge"
        )
    if not auto_migrate:
        raise SchemaError(
            f"the database schema is at revision {current or 'none'} and this version needs {head}; "
            "run `scim-bridge db upgrade` (or set [database] auto_migrate = true)"
        )
    upgrade(db)
