"""A user deleted while it is being added to a group leaves no phantom member, in either order.

On PostgreSQL the users an add names are locked (``FOR KEY SHARE``, as a foreign key would lock
them) until the add commits: a concurrent DELETE of the user waits, then takes it out of the
group; a DELETE that went first makes the add find no user (400). SQLite runs one writer at a
time, so there a DELETE cannot start during an add.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from scim2_models import Group
from scim2_models import InvalidValueException
from scim2_models import ResourceType
from sqlalchemy import select

from scim_bridge.scim.models import ENTRA_POLICY
from scim_bridge.scim.models import UserResource
from scim_bridge.store import memberships
from scim_bridge.store.db import Database
from scim_bridge.store.groups import GroupStore
from scim_bridge.store.schema import group_members
from scim_bridge.store.users import UserStore

USER_TYPE = ResourceType.from_resource(UserResource)
GROUP_TYPE = ResourceType.from_resource(Group)
HOLD_SECONDS = 0.5  # how long the first transaction stays open while the other one waits


def setup(db: Database) -> tuple[UserStore, str, str]:
    users = UserStore(db, UserResource, ENTRA_POLICY)
    groups = GroupStore(db, Group, ENTRA_POLICY)
    user = users.create(USER_TYPE, UserResource.model_validate({"userName": "jane"}))
    group = groups.create(GROUP_TYPE, Group.model_validate({"displayName": "Developers"}))
    assert user.id is not None and group.id is not None
    return users, user.id, group.id


def rows(db: Database) -> list[Any]:
    with db.transaction(write=False) as tx:
        return list(tx.connection.execute(select(group_members)).all())


def in_thread(work: Any) -> tuple[threading.Thread, threading.Event, list[BaseException]]:
    """Run ``work(started)`` in a thread of its own; ``started`` is set once it holds its locks."""
    started = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            work(started)
        except BaseException as error:  # reported by the test
            errors.append(error)
            started.set()

    thread = threading.Thread(target=run)
    thread.start()
    assert started.wait(10)
    return thread, started, errors


def test_a_delete_during_an_add_waits_and_takes_the_user_out(db: Database) -> None:
    if db.is_sqlite:
        pytest.skip("SQLite runs one writer at a time: the delete cannot start before the commit")
    users, user_id, group_id = setup(db)

    def add(started: threading.Event) -> None:
        with db.transaction(write=True):
            assert memberships.add(group_id, [(user_id, None)]) == [user_id]
            started.set()
            time.sleep(HOLD_SECONDS)

    thread, _started, errors = in_thread(add)
    users.delete(USER_TYPE, user_id)  # waits for the add to commit, then sees its row
    thread.join()
    assert errors == []
    assert rows(db) == []


def test_an_add_during_a_delete_waits_and_finds_no_user(db: Database) -> None:
    users, user_id, group_id = setup(db)

    def delete(started: threading.Event) -> None:
        with db.transaction(write=True):
            users.delete(USER_TYPE, user_id)
            started.set()
            time.sleep(HOLD_SECONDS)

    thread, _started, errors = in_thread(delete)
    with pytest.raises(InvalidValueException, match=user_id), db.transaction(write=True):
        memberships.add(group_id, [(user_id, None)])
    thread.join()
    assert errors == []
    assert rows(db) == []
