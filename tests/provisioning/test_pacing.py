"""The member-deletion pacer admits what GitLab's rolling window admits, on a simulated clock,
counted in the database (SQLite, and PostgreSQL when configured)."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta

from scim_bridge.provisioning.pacing import MARGIN_SECONDS
from scim_bridge.provisioning.pacing import SharedWindow
from scim_bridge.store.db import Database
from scim_bridge.store.pacing import CallWindowStore


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def test_never_more_than_the_limit_in_any_window(db: Database) -> None:
    clock = Clock()
    pacer = SharedWindow(CallWindowStore(db, now=clock), 10, 10.0)
    admitted: list[datetime] = []
    for _ in range(250):  # one attempt every 0.2 s for 50 s
        if pacer.take("acme/eng") is None:
            admitted.append(clock.now)
        clock.advance(0.2)
    assert len(admitted) == 10 * 5
    for index, at in enumerate(admitted):
        in_window = [t for t in admitted[index:] if t < at + timedelta(seconds=10)]
        assert len(in_window) <= 10, "11 deletions inside one of GitLab's windows"


def test_the_wait_is_until_the_oldest_call_leaves_the_window(db: Database) -> None:
    clock = Clock()
    pacer = SharedWindow(CallWindowStore(db, now=clock), 2, 60.0)
    assert pacer.take("g") is None
    clock.advance(10)
    assert pacer.take("g") is None
    assert pacer.take("g") == 60.0 + MARGIN_SECONDS - 10
    assert pacer.take("other group") is None, "each group has its own window"
    clock.advance(60.0 + MARGIN_SECONDS - 10)
    assert pacer.take("g") is None


def test_every_process_counts_the_same_deletions(db: Database) -> None:
    """Two processes (two databases handles, as gunicorn's workers and the worker hold): the
    deletions one made count for the other."""
    clock = Clock()
    other = Database(db.url)
    try:
        here = SharedWindow(CallWindowStore(db, now=clock), 3, 60.0)
        there = SharedWindow(CallWindowStore(other, now=clock), 3, 60.0)
        assert [here.take("g"), there.take("g"), here.take("g")] == [None, None, None]
        assert there.take("g") == 60.0 + MARGIN_SECONDS
    finally:
        other.dispose()
