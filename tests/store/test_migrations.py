"""Start-up applies migrations, or refuses with a message that says what to do."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect
from sqlalchemy import text

from scim_bridge.store import migrate
from scim_bridge.store.db import Database
from scim_bridge.store.migrate import SchemaError


def test_start_up_migrates_an_empty_database(database_url: str) -> None:
    db = Database(database_url)
    migrate.ensure_schema(db, auto_migrate=True)
    assert migrate.current_revision(db) == migrate.head_revision()
    tables = set(inspect(db.engine).get_table_names())
    assert {"users", "user_links", "jobs", "audit_events", "api_tokens"} <= tables
    migrate.ensure_schema(db, auto_migrate=True)  # idempotent
    db.dispose()


def test_start_up_refuses_an_unmigrated_database_when_told_not_to_migrate(
    database_url: str,
) -> None:
    db = Database(database_url)
    with pytest.raises(SchemaError, match="scim-bridge db upgrade"):
        migrate.ensure_schema(db, auto_migrate=False)
    db.dispose()


def test_start_up_refuses_a_schema_from_a_newer_version(database_url: str) -> None:
    db = Database(database_url)
    migrate.upgrade(db)
    with db.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(SchemaError, match="newer version"):
        migrate.ensure_schema(db, auto_migrate=True)
    db.dispose()


def test_sqlite_runs_in_wal_mode(tmp_path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'wal.db'}")
    migrate.upgrade(db)
    with db.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
    db.dispose()
