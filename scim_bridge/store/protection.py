"""The GitLab accounts the bridge never writes to, by id (DESIGN.md, Ownership).

Administrators and ``[users] protected_usernames`` are resolved to GitLab user ids by the
provisioning layer and kept here, so that every process (web workers, the background worker, the
CLI) sees the same list, and a rename in GitLab cannot move a protection to another account.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete
from sqlalchemy import insert
from sqlalchemy import select

from scim_bridge import clock
from scim_bridge.store.db import Database
from scim_bridge.store.db import upsert
from scim_bridge.store.schema import bridge_state
from scim_bridge.store.schema import protected_accounts

ADMIN = "admin"
NAMED = "protected_usernames"
RESOLVED_AT = "protection.resolved_at"


@dataclass(frozen=True)
class ProtectedAccount:
    gitlab_user_id: int
    reason: str  # ADMIN | NAMED
    username: str  # when resolved
    name: str | None = None  # the configured name it was resolved from (NAMED)


class ProtectedAccounts:
    def __init__(self, db: Database) -> None:
        self.db = db

    def all(self) -> list[ProtectedAccount]:
        with self.db.transaction(write=False) as tx:
            rows = tx.connection.execute(
                select(protected_accounts).order_by(
                    protected_accounts.c.gitlab_user_id, protected_accounts.c.reason
                )
            ).mappings()
            return [
                ProtectedAccount(row["gitlab_user_id"], row["reason"], row["username"], row["name"])
                for row in rows
            ]

    def resolved_at(self) -> datetime | None:
        """When the list was last resolved from GitLab; None if it never was."""
        with self.db.transaction(write=False) as tx:
            value = tx.connection.execute(
                select(bridge_state.c.value).where(bridge_state.c.key == RESOLVED_AT)
            ).scalar()
        return None if value is None else clock.aware(datetime.fromisoformat(value))

    def replace(self, accounts: Sequence[ProtectedAccount]) -> None:
        """The list as just resolved, in one transaction."""
        now = clock.now()
        with self.db.transaction(write=True) as tx:
            tx.connection.execute(delete(protected_accounts))
            rows = {
                (account.gitlab_user_id, account.reason): {
                    "gitlab_user_id": account.gitlab_user_id,
                    "reason": account.reason,
                    "name": account.name,
                    "username": account.username,
                    "resolved_at": now,
                }
                for account in accounts
            }
            if rows:
                tx.connection.execute(insert(protected_accounts), list(rows.values()))
            upsert(
                bridge_state, [{"key": RESOLVED_AT, "value": now.isoformat()}], ["key"], ["value"]
            )
