"""Prepared statements answer exactly what SQLAlchemy Core answers, on both databases: the same
rows and the same Python values (JSON documents, aware datetimes), seen by the engine's statement
listeners, with driver errors raised as SQLAlchemy's own."""

from __future__ import annotations

from typing import Any

import pytest
from scim2_models import ResourceType
from scim2_models import User
from sqlalchemy import Column
from sqlalchemy import Integer
from sqlalchemy import MetaData
from sqlalchemy import Table
from sqlalchemy import bindparam
from sqlalchemy import delete
from sqlalchemy import event
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.exc import DBAPIError

from scim_bridge.scim.models import ENTRA_POLICY
from scim_bridge.store.db import Database
from scim_bridge.store.prepared import Prepared
from scim_bridge.store.schema import users
from scim_bridge.store.users import UserStore

USER_TYPE = ResourceType.from_resource(User)
BY_NAME = select(users).where(users.c.user_name_key == bindparam("key"))


def _user(db: Database, name: str) -> None:
    store = UserStore(db, User, ENTRA_POLICY)
    store.create(USER_TYPE, User.model_validate({"userName": name, "displayName": name.title()}))


def test_rows_and_values_are_cores(db: Database) -> None:
    for name in ("ada", "grace"):
        _user(db, name)
    prepared = Prepared(BY_NAME)
    with db.transaction(write=False) as tx:
        core = [dict(row) for row in tx.connection.execute(BY_NAME, {"key": "ada"}).mappings()]
        ours = prepared.all(tx.connection, {"key": "ada"})
        assert prepared.first(tx.connection, {"key": "nobody"}) is None
    assert len(ours) == 1 and ours == core
    assert ours[0]["data"]["userName"] == "ada", "the JSON document, parsed"
    assert ours[0]["created"] == core[0]["created"] and ours[0]["created"].year > 2000


def test_the_engines_listeners_see_each_statement(db: Database) -> None:
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", note)
    try:
        with db.transaction(write=False) as tx:
            Prepared(BY_NAME).all(tx.connection, {"key": "ada"})
    finally:
        event.remove(db.engine, "before_cursor_execute", note)
    assert [s for s in seen if "user_name_key" in s], seen


def test_a_list_parameter_is_refused(db: Database) -> None:
    listed = select(users).where(users.c.id.in_(bindparam("ids", expanding=True)))
    with db.transaction(write=False) as tx, pytest.raises(ValueError, match="expands"):
        Prepared(listed).all(tx.connection, {"ids": ["a"]})


def test_a_driver_error_is_sqlalchemys_and_the_next_transaction_works(db: Database) -> None:
    nowhere = Table("nowhere", MetaData(), Column("x", Integer))
    with pytest.raises(DBAPIError), db.transaction(write=False) as tx:
        Prepared(select(nowhere)).all(tx.connection, {})
    _user(db, "ada")
    with db.transaction(write=False) as tx:
        assert Prepared(BY_NAME).first(tx.connection, {"key": "ada"}) is not None


def test_updates_and_deletes_count_the_rows_they_matched(db: Database) -> None:
    for name in ("ada", "grace"):
        _user(db, name)
    rename = Prepared(
        update(users)
        .where(users.c.user_name_key == bindparam("key"))
        .values(external_id=bindparam("new_external_id"))
    )
    remove = Prepared(delete(users).where(users.c.user_name_key == bindparam("key")))
    external_id = Prepared(select(users.c.external_id).where(users.c.user_name_key == "ada"))
    with db.transaction(write=True) as tx:
        assert rename.rowcount(tx.connection, {"key": "ada", "new_external_id": "e-1"}) == 1
        assert rename.rowcount(tx.connection, {"key": "nobody", "new_external_id": "e-2"}) == 0
        assert external_id.scalar(tx.connection, {}) == "e-1", "a literal bound as Core binds it"
        assert remove.rowcount(tx.connection, {"key": "grace"}) == 1
    with db.transaction(write=False) as tx:
        keys = tx.connection.execute(select(users.c.user_name_key)).scalars().all()
    assert keys == ["ada"]


def test_an_update_core_would_complete_per_execution_is_refused() -> None:
    stamped = Table(
        "stamped",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("at", Integer, onupdate=lambda: 1),
    )
    with pytest.raises(ValueError, match="onupdate"):
        Prepared(update(stamped).values(id=bindparam("new_id")))
