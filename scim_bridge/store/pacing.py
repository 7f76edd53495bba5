"""Rolling-window counts of calls in the database, so every process and instance paces alike.

GitLab counts some calls per scope in a rolling window (member deletions: 60 a minute per group
and token, gitlab.md §1.10). Counted per process, gunicorn's workers and the background worker
would each allow the whole limit. Here each call the bridge is about to make is a row, and the
takers of one key are serialised: SQLite's ``BEGIN IMMEDIATE`` already serialises every writer;
on PostgreSQL a transaction-scoped advisory lock per key does, so two instances never both take
the last place. Time is the database's on PostgreSQL (one clock for every host); SQLite's
processes share one host and its clock. Rows older than the window are pruned as keys are taken.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime
from datetime import timedelta
from typing import Protocol

from sqlalchemy import Connection
from sqlalchemy import delete
from sqlalchemy import func
from sqlalchemy import insert
from sqlalchemy import select
from sqlalchemy import text

from scim_bridge import clock
from scim_bridge.store.db import Database
from scim_bridge.store.schema import paced_calls

# The first key of the advisory locks that serialise the takers of one key (PostgreSQL).
PACING_LOCK_SPACE = 7364014


class CallWindows(Protocol):
    def take(self, key: str, limit: int, window_seconds: float) -> float | None: ...


class CallWindowStore:
    """``now`` replaces the clock in tests; by default the database's (PostgreSQL) or the host's."""

    def __init__(self, db: Database, *, now: Callable[[], datetime] | None = None) -> None:
        self.db = db
        self._now = now

    def take(self, key: str, limit: int, window_seconds: float) -> float | None:
        """Count one call for ``key`` if fewer than ``limit`` were counted in the last
        ``window_seconds``: None; else, counting nothing, the seconds until one leaves the window.
        One transaction."""
        with self.db.transaction(write=True) as tx:
            connection = tx.connection
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:space, :key)"),
                    {"space": PACING_LOCK_SPACE, "key": _lock_key(key)},
                )
            now = self._clock(connection)
            window = timedelta(seconds=window_seconds)
            connection.execute(
                delete(paced_calls).where(
                    paced_calls.c.key == key, paced_calls.c.taken_at <= now - window
                )
            )
            count, oldest = connection.execute(
                select(func.count(), func.min(paced_calls.c.taken_at)).where(
                    paced_calls.c.key == key
                )
            ).one()
            if count >= limit:
                first = clock.aware(oldest) or now
                return max(0.0, (first + window - now).total_seconds())
            connection.execute(insert(paced_calls).values(key=key, taken_at=now))
            return None

    def _clock(self, connection: Connection) -> datetime:
        if self._now is not None:
            return self._now()
        if connection.dialect.name == "postgresql":
            # After the lock: the time this taker really counts at, not when it began waiting.
            return connection.execute(select(func.clock_timestamp())).scalar_one()  # type: ignore[no-any-return]
        return clock.now()


def _lock_key(key: str) -> int:
    """A stable 32-bit key for the advisory lock: a collision only serialises two keys' takers."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big", signed=True)
