"""The GitLab groups (and levels) each SCIM group was last mapped to, and their remapping.

A remap is one transaction: it consumes the SCIM group's noted member changes, marks the users
whose grant may have changed in each GitLab group concerned (``gitlab_memberships.mark``),
records the new mapping and its audit event together. Which users a GitLab group concerns is the
caller's decision, given as ``retargeted`` (every member) and ``kept`` (the changed members only).

:class:`GroupTargets` is the surface the provisioning layer sees (an in-memory fake can stand in).
"""

from __future__ import annotations

from collections.abc import Collection
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from typing import NamedTuple
from typing import Protocol

from sqlalchemy import delete
from sqlalchemy import select

from scim_bridge import clock
from scim_bridge.store import audit
from scim_bridge.store import jobs
from scim_bridge.store import memberships as member_rows
from scim_bridge.store.db import Database
from scim_bridge.store.db import upsert
from scim_bridge.store.gitlab_memberships import GITLAB_GROUP_JOB
from scim_bridge.store.gitlab_memberships import mark
from scim_bridge.store.schema import created_groups
from scim_bridge.store.schema import group_member_changes
from scim_bridge.store.schema import group_targets
from scim_bridge.store.schema import groups


class Target(NamedTuple):
    """One GitLab group a SCIM group maps to."""

    access_level: int
    created_by_bridge: bool


@dataclass(frozen=True)
class AuditEvent:
    """An audit event to commit with the change it records."""

    action: str
    target: str | None
    detail: dict[str, Any] | None


class GroupTargets(Protocol):
    """SCIM group → GitLab groups, as the group reconcilers see it."""

    def recorded(self, group_id: str) -> dict[str, Target]: ...

    def remap(
        self,
        group_id: str,
        *,
        retargeted: Collection[str],
        kept: Collection[str],
        targets: Mapping[str, Target] | None,
        event: AuditEvent | None,
    ) -> list[str]: ...

    def created_for(self, gitlab_group: str) -> str | None: ...

    def record_created(self, gitlab_group: str, gitlab_group_id: int) -> None: ...

    def created_id(self, gitlab_group: str) -> int | None: ...


class GroupTargetStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def recorded(self, group_id: str) -> dict[str, Target]:
        """GitLab path → target, as the SCIM group was last mapped."""
        with self.db.transaction(write=False) as tx:
            rows = tx.connection.execute(
                select(group_targets).where(group_targets.c.group_id == group_id)
            ).mappings()
            return {
                row["gitlab_group"]: Target(row["access_level"], row["created_by_bridge"])
                for row in rows
            }

    def remap(
        self,
        group_id: str,
        *,
        retargeted: Collection[str],
        kept: Collection[str],
        targets: Mapping[str, Target] | None,
        event: AuditEvent | None,
    ) -> list[str]:
        """Consume the group's member changes and mark, in sorted order of path, every member
        (changed ones included) in each ``retargeted`` GitLab group and the changed members in
        each ``kept`` one; replace the mapping by ``targets`` unless None, and record ``event``.
        Returns the keys of the ``gitlab_group`` jobs the marks queued."""
        follow_up: list[str] = []
        with self.db.transaction(write=True) as tx:
            connection = tx.connection
            changes = connection.execute(
                select(group_member_changes.c.id, group_member_changes.c.user_id)
                .where(group_member_changes.c.group_id == group_id)
                .order_by(group_member_changes.c.id)
            ).all()
            changed_users = list(dict.fromkeys(row.user_id for row in changes))
            everyone: list[str] | None = None
            for path in sorted({*retargeted, *kept}):
                if path in retargeted:
                    if everyone is None:
                        members = member_rows.member_ids(group_id)
                        everyone = list(dict.fromkeys([*members, *changed_users]))
                    users = everyone
                else:
                    users = changed_users
                if users:
                    mark(path, users)
                    follow_up.append(jobs.job_key(GITLAB_GROUP_JOB, path))
            if targets is not None:
                connection.execute(
                    delete(group_targets).where(group_targets.c.group_id == group_id)
                )
                if targets:
                    connection.execute(
                        group_targets.insert(),
                        [
                            {
                                "group_id": group_id,
                                "gitlab_group": path,
                                "access_level": level,
                                "created_by_bridge": created,
                            }
                            for path, (level, created) in targets.items()
                        ],
                    )
            if event is not None:
                audit.record(event.action, event.target, event.detail)
            if changes:
                connection.execute(
                    delete(group_member_changes).where(
                        group_member_changes.c.group_id == group_id,
                        group_member_changes.c.id <= changes[-1].id,
                    )
                )
        return follow_up

    def created_for(self, gitlab_group: str) -> str | None:
        """The display name of the SCIM group the bridge created ``gitlab_group`` for, if it did."""
        with self.db.transaction(write=False) as tx:
            row = tx.connection.execute(
                select(groups.c.display_name)
                .join(group_targets, group_targets.c.group_id == groups.c.id)
                .where(
                    group_targets.c.gitlab_group == gitlab_group,
                    group_targets.c.created_by_bridge,
                )
            ).first()
        return None if row is None else str(row.display_name)

    def record_created(self, gitlab_group: str, gitlab_group_id: int) -> None:
        """The id of the GitLab group the bridge made at ``gitlab_group`` (made again: replaced)."""
        row = {
            "gitlab_group": gitlab_group,
            "gitlab_group_id": gitlab_group_id,
            "recorded_at": clock.now(),
        }
        with self.db.transaction(write=True):
            upsert(created_groups, [row], ["gitlab_group"], ["gitlab_group_id", "recorded_at"])

    def created_id(self, gitlab_group: str) -> int | None:
        """The id recorded for the group the bridge made at ``gitlab_group``, if any."""
        with self.db.transaction(write=False) as tx:
            found: int | None = tx.connection.execute(
                select(created_groups.c.gitlab_group_id).where(
                    created_groups.c.gitlab_group == gitlab_group
                )
            ).scalar()
        return found
