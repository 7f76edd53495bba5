"""What SQLite's BEGIN gives each kind of transaction (``db.begin_sqlite``): a reader one snapshot
for all its statements, a writer the database's one writer lock from its first line, the migration
that lock to its end, an audit walk one snapshot. Each is shown against a second connection that
writes meanwhile: without the BEGIN, every statement would be a transaction of its own.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import Connection
from sqlalchemy import text

from scim_bridge.store import audit
from scim_bridge.store import migrate
from scim_bridge.store.db import Database


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'bridge.db'}")
    migrate.upgrade(database)
    other = _other(database)
    other.execute("CREATE TABLE scratch (x INTEGER)")
    other.close()
    return database


def _other(db: Database) -> sqlite3.Connection:
    """Another connection to the same file, in autocommit, that never waits for a lock."""
    assert db.sqlite_file is not None
    connection = sqlite3.connect(db.sqlite_file, isolation_level=None, timeout=0)
    connection.execute("PRAGMA busy_timeout=0")
    return connection


def _count(connection: Connection) -> int:
    return int(connection.execute(text("SELECT count(*) FROM scratch")).scalar_one())


def test_a_read_transaction_sees_one_snapshot(db: Database) -> None:
    other = _other(db)
    with db.transaction(write=False) as tx:
        before = _count(tx.connection)
        other.execute("INSERT INTO scratch VALUES (1)")
        assert _count(tx.connection) == before, "a row committed meanwhile is not seen"
    with db.transaction(write=False) as tx:
        assert _count(tx.connection) == before + 1
    other.close()


def test_a_write_transaction_holds_the_writer_lock_from_its_start(db: Database) -> None:
    other = _other(db)
    with db.transaction(write=True), pytest.raises(sqlite3.OperationalError, match="locked"):
        other.execute("BEGIN IMMEDIATE")
    other.execute("BEGIN IMMEDIATE")  # free once it committed
    other.execute("ROLLBACK")
    other.close()


def test_an_audit_walk_reads_one_snapshot(db: Database) -> None:
    other = _other(db)
    with audit.snapshot(db) as connection:
        before = _count(connection)
        other.execute("INSERT INTO scratch VALUES (1)")
        assert _count(connection) == before
    other.close()


def test_a_migration_holds_the_writer_lock(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two instances starting at once: the second waits for the first's migration to end."""
    seen: list[str] = []

    def upgrade_in_place(_config: object, _revision: str) -> None:
        other = _other(db)
        try:
            other.execute("BEGIN IMMEDIATE")
            seen.append("free")
        except sqlite3.OperationalError as error:
            seen.append(str(error))
        finally:
            other.close()

    monkeypatch.setattr("alembic.command.upgrade", upgrade_in_place)
    migrate.upgrade(db)
    assert seen == ["database is locked"]
