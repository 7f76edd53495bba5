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


def test_0005_deletes_members_that_name_no_user(database_url: str) -> None:
    """Phantoms and nested groups an older version stored go; real members and groups stay."""
    db = database_at(database_url, "0004")
    row = "(:id, :name, :key, '{}', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 1)"
    with db.engine.begin() as connection:
        for user_id in ("u1", "u2"):
            connection.execute(
                text(
                    "INSERT INTO users (id, user_name, user_name_key, data, created, "
                    f"last_modified, version) VALUES {row}"
                ),
                {"id": user_id, "name": user_id, "key": user_id},
            )
        for group_id in ("g1", "g2", "g3"):
            connection.execute(
                text(
                    "INSERT INTO groups (id, display_name, display_name_key, data, created, "
                    f"last_modified, version) VALUES {row}"
                ),
                {"id": group_id, "name": group_id, "key": group_id},
            )
        members = [
            ("g1", "u1"),
            ("g1", "fake-member-id"),  # a phantom
            ("g1", "g2"),  # a nested group
            ("g2", "u1"),
            ("g2", "u2"),
            ("g3", "x" * 64),  # the longest phantom the column holds
        ]
        for group_id, member_id in members:
            connection.execute(
                text("INSERT INTO group_members (group_id, member_id) VALUES (:g, :m)"),
                {"g": group_id, "m": member_id},
            )
    migrate.upgrade(db)
    with db.engine.connect() as connection:
        kept = connection.execute(text("SELECT group_id, member_id FROM group_members")).all()
        versions = dict(connection.execute(text("SELECT id, version FROM groups")).all())
        changes = connection.execute(text("SELECT count(*) FROM group_member_changes")).scalar()
    assert sorted(tuple(member) for member in kept) == [("g1", "u1"), ("g2", "u1"), ("g2", "u2")]
    assert versions == {"g1": 2, "g2": 1, "g3": 2}  # a changed member list is a new version
    assert changes == 0  # no GitLab grant followed from those ids: nothing to reconcile
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
