"""The rolling-window counts in the database: one taker at a time per key, old rows pruned."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta

from sqlalchemy import func
from sqlalchemy import select

from scim_bridge.store.db import Database
from scim_bridge.store.pacing import CallWindowStore
from scim_bridge.store.schema import paced_calls
from tests.store.racing import race


def rows(db: Database, key: str | None = None) -> int:
    statement = select(func.count()).select_from(paced_calls)
    if key is not None:
        statement = statement.where(paced_calls.c.key == key)
    with db.transaction(write=False) as tx:
        return int(tx.connection.execute(statement).scalar_one())


def test_concurrent_takers_never_share_the_last_place(db: Database) -> None:
    """Eight threads on two database handles (two instances) race for five places: five get one."""
    results = race(db, 8, lambda handle, _: CallWindowStore(handle).take("acme/eng", 5, 3600.0))
    assert results.count(None) == 5
    assert all(wait is not None and 3590 < wait <= 3600 for wait in results if wait is not None)
    assert rows(db, "acme/eng") == 5, "a refused call is not counted"


def test_rows_that_left_the_window_are_pruned(db: Database) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    store = CallWindowStore(db, now=lambda: now)
    for _ in range(3):
        assert store.take("g", 3, 60.0) is None
    assert store.take("other", 3, 60.0) is None
    now += timedelta(seconds=60)
    assert store.take("g", 3, 60.0) is None
    assert rows(db, "g") == 1, "the three older ones left the window and the table"
    assert rows(db) == 2
