"""Work done once per interval by exactly one of several instances, coordinated by the database.

A schedule is a row: when its next turn is due. Whoever finds it due moves ``due_at`` one interval
past now in an ``UPDATE ... WHERE due_at <= now``; the database lets exactly one such update
through (PostgreSQL's row lock makes a concurrent one re-read the row and find it no longer due;
SQLite has one writer), and only that caller runs the turn. A turn's work is not in this
transaction: a caller that dies mid-turn loses that turn, and the next interval's comes as usual.

Callers look first in a read transaction, so polling a schedule that is not due writes nothing
(on SQLite, takes no turn at the writer lock).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy import update

from scim_bridge import clock
from scim_bridge.store.db import Database
from scim_bridge.store.db import insert_ignoring_duplicates
from scim_bridge.store.schema import schedules


class Schedules:
    def __init__(self, db: Database) -> None:
        self.db = db

    def take_turn(self, name: str, interval: timedelta, owner: str) -> bool:
        """Whether ``owner`` runs this turn of ``name``: True for exactly one caller per turn.

        A schedule seen for the first time has its first turn one interval later: a bridge just
        deployed is busy with Entra's initial cycle, and has nothing to compare yet.
        """
        now = clock.now()
        with self.db.transaction(write=False) as tx:
            due_at = tx.connection.execute(
                select(schedules.c.due_at).where(schedules.c.name == name)
            ).scalar()
        if due_at is None:
            with self.db.transaction(write=True):
                insert_ignoring_duplicates(schedules, [{"name": name, "due_at": now + interval}])
            return False
        if clock.aware(due_at) > now:
            return False
        with self.db.transaction(write=True) as tx:
            taken = tx.connection.execute(
                update(schedules)
                .where(schedules.c.name == name, schedules.c.due_at <= now)
                .values(due_at=now + interval, taken_by=owner, taken_at=now)
            )
            return taken.rowcount == 1
