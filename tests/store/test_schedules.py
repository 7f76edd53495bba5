"""A schedule's turns (store/schedules.py): exactly one taker per turn among racing instances,
none before the turn is due, and one again once it is."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from scim_bridge import clock
from scim_bridge.store.db import Database
from scim_bridge.store.schedules import Schedules
from scim_bridge.store.schema import schedules
from tests.store.racing import race

HOUR = timedelta(hours=1)


def race_for_turn(db: Database, takers: int = 8) -> list[str]:
    """``takers`` threads on two database handles (two instances) ask for the turn at once;
    the owners that got it."""

    def take(handle: Database, index: int) -> str | None:
        owner = f"instance-{index % 2}:{index}"
        return owner if Schedules(handle).take_turn("drift", HOUR, owner) else None

    return [owner for owner in race(db, takers, take) if owner is not None]


def come_due(db: Database) -> None:
    """The interval passes (the turn's due time moved into the past)."""
    with db.transaction(write=True) as tx:
        tx.connection.execute(update(schedules).values(due_at=clock.now() - timedelta(seconds=1)))


def test_racing_instances_take_each_turn_once(db: Database) -> None:
    assert race_for_turn(db) == [], "a new schedule's first turn is one interval away"
    come_due(db)
    assert len(race_for_turn(db)) == 1
    assert race_for_turn(db) == [], "not due again before its interval"
    come_due(db)
    assert len(race_for_turn(db)) == 1


def test_another_schedule_has_turns_of_its_own(db: Database) -> None:
    store = Schedules(db)
    assert not store.take_turn("drift", HOUR, "a")
    come_due(db)
    assert not store.take_turn("token", HOUR, "a"), "first seen now: due an hour from now"
    assert store.take_turn("drift", HOUR, "a")
    assert not store.take_turn("token", HOUR, "b")
