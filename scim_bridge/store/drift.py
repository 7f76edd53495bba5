"""What `scim-bridge reconcile` reads of the store, and how it queues the repairs of drift.

Repairs are the reconcile jobs that already know how: a user's own job, or a mark on a
membership (``gitlab_memberships.mark``). :class:`DriftRecords` is the surface the drift finder
sees (an in-memory fake can stand in for it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from typing import Protocol

from sqlalchemy import select
from sqlalchemy import update

from scim_bridge.store import jobs
from scim_bridge.store.db import Database
from scim_bridge.store.gitlab_memberships import mark
from scim_bridge.store.schema import user_links
from scim_bridge.store.schema import users
from scim_bridge.store.users import USER_JOB


@dataclass(frozen=True)
class Repair:
    """A user's job (``gitlab_group`` None), or a new look at its membership of a GitLab group."""

    user_id: str | None
    gitlab_group: str | None = None
    revive: bool = False  # a deleted user's link must be looked at again


class DriftRecords(Protocol):
    def user_documents(self) -> dict[str, dict[str, Any]]: ...

    def queue_repairs(self, repairs: Iterable[Repair]) -> list[str]: ...


class DriftStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def user_documents(self) -> dict[str, dict[str, Any]]:
        """Every stored SCIM User's document, by id."""
        with self.db.transaction(write=False) as tx:
            return {
                row.id: dict(row.data)
                for row in tx.connection.execute(select(users.c.id, users.c.data))
            }

    def queue_repairs(self, repairs: Iterable[Repair]) -> list[str]:
        """Queue the jobs that make GitLab match again, in one transaction; returns their keys."""
        with self.db.transaction(write=True) as tx:
            for repair in repairs:
                if repair.gitlab_group is not None:
                    mark(repair.gitlab_group, [repair.user_id] if repair.user_id else [])
                elif repair.user_id is not None:
                    if repair.revive:
                        tx.connection.execute(
                            update(user_links)
                            .where(user_links.c.user_id == repair.user_id)
                            .values(retired_at=None)
                        )
                    jobs.enqueue(USER_JOB, repair.user_id)
            return list(tx.job_keys)
