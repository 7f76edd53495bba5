"""The audit log: one row per state-changing request and per GitLab call, as a hash chain.

Events are recorded in the writer's transaction, so they commit or roll back with the change. They
are not written at once: ``record()`` buffers them per transaction, and the hook this module
registers with ``db.before_commit`` hands them to ``append()`` as the last step before the commit. ``append()`` locks the chain head
(one row in ``audit_chain_head``), numbers the events after it (``seq``), and stores with each the
hash of the event before it (``prev_hash``) and its own (``hash``, see ``event_hash``). Locking the
head last keeps it held only for the commit, after every row lock the transaction takes, so the
chain follows commit order across processes without deadlocks; SQLite's ``BEGIN IMMEDIATE``
already serialises writers.

``store/audit_verify.py`` walks the chain and finds what was done to the table afterwards: events
edited, removed, reordered, a tail cut off, rows inserted outside the chain.

What it cannot detect: whoever can rewrite the whole table and the head row can recompute every
hash and forge a consistent chain. Anchor the chain outside the database: record the head hash that
``scim-bridge audit verify`` prints (or ship ``scim-bridge audit export`` to a SIEM) elsewhere, and
compare later. The ``id`` column is not part of the chain; ``seq`` is the order.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from contextlib import contextmanager
from datetime import UTC
from datetime import datetime
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Connection
from sqlalchemy import bindparam
from sqlalchemy import func
from sqlalchemy import insert
from sqlalchemy import select
from sqlalchemy import update

from scim_bridge import clock
from scim_bridge import context
from scim_bridge.store.db import Database
from scim_bridge.store.db import Transaction
from scim_bridge.store.db import before_commit
from scim_bridge.store.db import begin_sqlite
from scim_bridge.store.db import current_transaction
from scim_bridge.store.db import insert_ignoring_duplicates
from scim_bridge.store.prepared import Prepared
from scim_bridge.store.schema import audit_chain_head
from scim_bridge.store.schema import audit_events

log = logging.getLogger(__name__)

# The prev_hash of the first event.
GENESIS = "0" * 64
# The one row of audit_chain_head.
HEAD_ID = 1
# Rows read per query when walking the chain.
BATCH = 1000

EVENT_FIELDS = ("at", "request_id", "actor", "source", "action", "target", "detail")
EXPORT_FIELDS = ("seq", "id", *EVENT_FIELDS, "prev_hash", "hash")

# The events recorded in each open transaction; ``_chain_pending`` stores them at its commit. A
# transaction that rolls back is dropped with its events when it is garbage.
_pending: WeakKeyDictionary[Transaction, list[dict[str, Any]]] = WeakKeyDictionary()


# -- The format (a contract: exports are verified against it elsewhere) ------------------------


def event_hash(event: Mapping[str, Any]) -> str:
    """The hash of one event: hex SHA-256 of ``canonical(event)``.

    This is a format contract. Stored chains, the 0003 migration (which holds a frozen copy;
    tests/store/test_frozen_migrations.py compares the two) and SIEMs verifying exports all depend
    on it: never change it; a new format needs a new chain (and a migration).
    """
    return hashlib.sha256(canonical(event)).hexdigest()


def canonical(event: Mapping[str, Any]) -> bytes:
    """The bytes an event's hash covers (a format contract, see ``event_hash``).

    A JSON object of ``seq``, ``prev_hash`` and the event fields (at, request_id, actor, source,
    action, target, detail), keys sorted, no whitespace, non-ASCII escaped as ``\\uXXXX`` (so the
    UTF-8 bytes are ASCII), ``at`` as ISO 8601 UTC with microseconds
    (``2024-05-01T12:00:00.000000+00:00``), and ``detail`` as ``normalised_detail`` returns it.
    """
    document = {name: event[name] for name in EVENT_FIELDS}
    document["at"] = instant(event["at"])
    document["detail"] = normalised_detail(event["detail"])
    document["seq"] = int(event["seq"])
    document["prev_hash"] = event["prev_hash"]
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8")


def instant(value: datetime | str) -> str:
    """``at`` as hashed: ISO 8601 in UTC with microseconds, whatever zone the database returns."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return _utc(value).isoformat(timespec="microseconds")


def _utc(value: datetime) -> datetime:
    """In UTC; a naive value (SQLite returns them) is UTC already."""
    aware = clock.aware(value)
    assert aware is not None
    return aware.astimezone(UTC)


def normalised_detail(detail: Any) -> Any:
    """``detail`` as JSON reads it back, with whole numbers as integers.

    The round trip makes what is hashed at insert equal what JSON/JSONB columns return; whole
    floats become integers because JSONB prints a float such as 1e16 as 10000000000000000.
    """
    return _whole_numbers(json.loads(json.dumps(detail)))


def _whole_numbers(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _whole_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole_numbers(item) for item in value]
    return value


# -- Writing --------------------------------------------------------------------------------


def record(action: str, target: str | None = None, detail: dict[str, Any] | None = None) -> None:
    """Buffer an event on the current write transaction; it is chained and stored at its commit.

    ``detail`` is copied now (as JSON), so later changes to the caller's dict do not leak in.
    """
    record_pending([pending_event(action, target, detail)])


def pending_event(
    action: str, target: str | None = None, detail: dict[str, Any] | None = None
) -> dict[str, Any]:
    """An event as it is now (its time, the request context, a copy of ``detail``), to be
    recorded later with :func:`record_pending`: a reconcile run keeps the events of its GitLab
    calls and writes them with its outcome, in one transaction."""
    ctx = context.current()
    return {
        "at": clock.now(),
        "request_id": ctx.request_id,
        "actor": ctx.actor,
        "source": ctx.source,
        "action": action,
        "target": target,
        "detail": None if detail is None else json.loads(json.dumps(detail)),
    }


def record_pending(events: Sequence[Mapping[str, Any]]) -> None:
    """Buffer events made by :func:`pending_event` on the current write transaction, in order."""
    if not events:
        return
    tx = current_transaction()
    if not tx.write:
        actions = ", ".join(repr(event["action"]) for event in events)
        raise RuntimeError(f"audit event {actions} recorded in a read-only transaction")
    _pending.setdefault(tx, []).extend(dict(event) for event in events)


def record_now(
    db: Database, action: str, target: str | None = None, detail: dict[str, Any] | None = None
) -> None:
    """Append an event in a transaction of its own (e.g. a GitLab call made outside any write)."""
    with db.transaction(write=True):
        record(action, target, detail)


@before_commit
def _chain_pending(tx: Transaction) -> None:
    """Chain the transaction's events after the others, as its last step before commit."""
    pending = _pending.pop(tx, None)
    if not pending:
        return
    if not tx.write:
        raise RuntimeError("audit events were recorded in a read-only transaction")
    append(tx.connection, pending)


def append(connection: Connection, pending: Sequence[Mapping[str, Any]]) -> None:
    """Chain ``pending`` after the head and insert it; the caller commits right after.

    ``_chain_pending`` calls this as the last step of a write transaction, so the head's lock is
    held only until the commit.
    """
    if not pending:
        return
    seq, previous = _lock_head(connection)
    rows = []
    for event in pending:
        seq += 1
        row = {name: event[name] for name in EVENT_FIELDS}
        row["at"] = _utc(event["at"])
        row.update(seq=seq, prev_hash=previous)
        row["hash"] = previous = event_hash(row)
        rows.append(row)
    connection.execute(_INSERT_EVENTS, rows)
    _ADVANCE_HEAD.rowcount(connection, {"new_seq": seq, "new_hash": previous})


# Every write transaction that records an event runs these three: built once, not per commit.
_HEAD = Prepared(
    select(audit_chain_head.c.seq, audit_chain_head.c.hash)
    .where(audit_chain_head.c.id == HEAD_ID)
    .with_for_update()  # SQLite has no FOR UPDATE: BEGIN IMMEDIATE serialises writers there
)
_INSERT_EVENTS = insert(audit_events)
_ADVANCE_HEAD = Prepared(
    update(audit_chain_head)
    .where(audit_chain_head.c.id == HEAD_ID)
    .values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))
)


def _lock_head(connection: Connection) -> tuple[int, str]:
    """Lock the head row and return it, creating it (race-safe) when it is missing."""
    row = _HEAD.first(connection, {})
    if row is None:
        _create_head(connection)
        row = _HEAD.first(connection, {})
        assert row is not None, "created just now, or by a concurrent writer"
    return int(row["seq"]), str(row["hash"])


def _create_head(connection: Connection) -> None:
    """Insert the head after the last chained event (or at genesis); a no-op if another did."""
    last = connection.execute(
        select(audit_events.c.seq, audit_events.c.hash)
        .where(audit_events.c.seq.is_not(None))
        .order_by(audit_events.c.seq.desc())
        .limit(1)
    ).first()
    if last is not None:
        log.warning("the audit chain head was missing; recreated at seq %s", last.seq)
    head = {
        "id": HEAD_ID,
        "seq": last.seq if last is not None else 0,
        "hash": last.hash if last is not None else GENESIS,
    }
    insert_ignoring_duplicates(audit_chain_head, [head])


# -- Reading --------------------------------------------------------------------------------


def events(db: Database, *, action_prefix: str | None = None) -> Iterator[dict[str, Any]]:
    """Read events oldest first (for the CLI and the tests)."""
    statement = select(audit_events).order_by(audit_events.c.id)
    if action_prefix:
        statement = statement.where(audit_events.c.action.startswith(action_prefix))
    with db.transaction(write=False) as tx:
        rows = tx.connection.execute(statement).mappings().all()
    for row in rows:
        yield dict(row)


def newest(db: Database, limit: int) -> list[dict[str, Any]]:
    """The ``limit`` newest events, oldest first, without reading the rest of the table."""
    statement = select(audit_events).order_by(audit_events.c.id.desc()).limit(max(limit, 0))
    with db.transaction(write=False) as tx:
        rows = tx.connection.execute(statement).mappings().all()
    return [dict(row) for row in reversed(rows)]


@contextmanager
def snapshot(db: Database) -> Iterator[Connection]:
    """One consistent view for a whole walk, so events committed meanwhile do not show half-way.

    SQLite (WAL) reads from one snapshot per transaction; PostgreSQL needs REPEATABLE READ.
    """
    engine = db.engine
    if not db.is_sqlite:
        engine = engine.execution_options(isolation_level="REPEATABLE READ")
    with engine.connect() as connection, connection.begin():
        if db.is_sqlite:
            begin_sqlite(connection, write=False)
        yield connection


def batches(connection: Connection, after: int | None = None) -> Iterator[list[dict[str, Any]]]:
    """The chained events (after seq ``after``), in seq order, ``BATCH`` rows per query."""
    while True:
        statement = (
            select(audit_events)
            .where(audit_events.c.seq.is_not(None))
            .order_by(audit_events.c.seq)
            .limit(BATCH)
        )
        if after is not None:
            statement = statement.where(audit_events.c.seq > after)
        rows = [dict(row) for row in connection.execute(statement).mappings()]
        if rows:
            yield rows
        if len(rows) < BATCH:
            return
        after = rows[-1]["seq"]


def chain_head(connection: Connection) -> tuple[int, str] | None:
    row = connection.execute(
        select(audit_chain_head.c.seq, audit_chain_head.c.hash).where(
            audit_chain_head.c.id == HEAD_ID
        )
    ).first()
    return None if row is None else (int(row.seq), str(row.hash))


# -- Export ---------------------------------------------------------------------------------


def export(db: Database, since: datetime | None = None) -> Iterator[dict[str, Any]]:
    """The chained events, oldest first, with seq, prev_hash and hash, ready for JSON.

    ``at`` and ``detail`` are exported exactly as hashed, so a SIEM can recompute every hash with
    ``canonical``'s rules and check each ``prev_hash``. With ``since``, the export starts at the
    first event (in seq order) at or after it and continues without gaps, so the segment still
    verifies; an event committed late may therefore carry an ``at`` slightly before ``since``.
    """
    with snapshot(db) as connection:
        after = None
        if since is not None:
            first = _first_seq_since(connection, since)
            if first is None:
                return
            after = first - 1
        for rows in batches(connection, after):
            for row in rows:
                yield _exported(row)


def _first_seq_since(connection: Connection, since: datetime) -> int | None:
    return connection.execute(
        select(func.min(audit_events.c.seq)).where(audit_events.c.at >= _utc(since))
    ).scalar()


def _exported(row: Mapping[str, Any]) -> dict[str, Any]:
    exported = {name: row[name] for name in EXPORT_FIELDS}
    exported["at"] = instant(row["at"])
    exported["detail"] = normalised_detail(row["detail"])
    return exported
