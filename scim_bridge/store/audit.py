"""The audit log: one row per state-changing request and per GitLab call, in the writer's transaction."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import insert
from sqlalchemy import select

from scim_bridge import clock
from scim_bridge import context
from scim_bridge.store.db import Database
from scim_bridge.store.db import current_transaction
from scim_bridge.store.schema import audit_events


def record(action: str, target: str | None = None, detail: dict[str, Any] | None = None) -> None:
    """Append an event inside the current transaction, so it commits or rolls back with the change."""
    ctx = context.current()
    current_transaction().connection.execute(
        insert(audit_events).values(
            at=clock.now(),
            request_id=ctx.request_id,
            actor=ctx.actor,
            source=ctx.source,
            action=action,
            target=target,
            detail=detail,
        )
    )


def record_now(
    db: Database, action: str, target: str | None = None, detail: dict[str, Any] | None = None
) -> None:
    """Append an event in a transaction of its own (e.g. a GitLab call made outside any write)."""
    with db.transaction(write=True):
        record(action, target, detail)


def events(db: Database, *, action_prefix: str | None = None) -> Iterator[dict[str, Any]]:
    """Read events oldest first (for the CLI and the tests)."""
    statement = select(audit_events).order_by(audit_events.c.id)
    if action_prefix:
        statement = statement.where(audit_events.c.action.startswith(action_prefix))
    with db.transaction(write=False) as tx:
        rows = tx.connection.execute(statement).mappings().all()
    for row in rows:
        yield dict(row)
