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


def test_0004_turns_links_the_bridge_found_into_adopted_ones(database_url: str) -> None:
    """Links made before the ownership rules: only "created" keeps its power to delete."""
    db = database_at(database_url, "0003")
    rows = [("a", 11, "found"), ("b", 12, "created"), ("c", 13, "adopted"), ("d", 14, None)]
    with db.engine.begin() as connection:
        for user_id, gitlab_id, origin in rows:
            connection.execute(
                text(
                    "INSERT INTO user_links (user_id, gitlab_user_id, origin, updated_at) "
                    "VALUES (:u, :g, :o, CURRENT_TIMESTAMP)"
                ),
                {"u": user_id, "g": gitlab_id, "o": origin},
            )
    migrate.upgrade(db)
    with db.engine.connect() as connection:
        found = dict(connection.execute(text("SELECT user_id, origin FROM user_links")).all())
        columns = {c["name"] for c in inspect(connection).get_columns("jobs")}
    assert found == {"a": "adopted", "b": "created", "c": "adopted", "d": "adopted"}
    assert {"actor", "request_id", "source"} <= columns
    db.dispose()


def test_0004_scrubs_passwords_an_earlier_version_stored(database_url: str) -> None:
    import json

    db = database_at(database_url, "0003")
    data = {
        "userName": "jane@contoso.com",
        "urn:ietf:params:scim:schemas:core:2.0:User:password": "hunter2-secret",
        "urn:ietf:params:scim:schemas:core:2.0:User": {"Password": "hunter2-secret", "x": 1},
        "emails": [{"value": "jane@contoso.com"}],
    }
    with db.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO users (id, user_name, user_name_key, data, created, last_modified, "
                "version) VALUES ('u1', 'jane@contoso.com', 'jane@contoso.com', :data, "
                "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 1)"
            ),
            {"data": json.dumps(data)},
        )
    migrate.upgrade(db)
    with db.engine.connect() as connection:
        stored = connection.execute(text("SELECT data FROM users WHERE id = 'u1'")).scalar()
    stored = json.loads(stored) if isinstance(stored, str) else stored
    assert "hunter2-secret" not in json.dumps(stored)
    assert stored["urn:ietf:params:scim:schemas:core:2.0:User"] == {"x": 1}
    assert stored["emails"] == [{"value": "jane@contoso.com"}]
    db.dispose()


def database_at(database_url: str, revision: str) -> Database:
    """A database migrated up to ``revision`` only, to test what a later migration does to it."""
    from alembic import command

    db = Database(database_url)
    config = migrate._config()
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    return db
