"""What `scim-bridge access report` reads of the store: who holds what in each GitLab group, why,
and since when.

Everything here is read a chunk at a time (keyset on the SCIM user id, or a page of GitLab
accounts the caller holds), so a report over 10,000 users holds one chunk of rows, never all of
them. Nothing here writes (the report's audit events are the journal's, ``provisioning/journal.py``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime

from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy import union

from scim_bridge import clock
from scim_bridge.store.db import Database
from scim_bridge.store.documents import folded
from scim_bridge.store.gitlab_memberships import GitLabMembershipStore
from scim_bridge.store.gitlab_memberships import Managed
from scim_bridge.store.schema import group_members
from scim_bridge.store.schema import group_targets
from scim_bridge.store.schema import groups
from scim_bridge.store.schema import managed_memberships
from scim_bridge.store.schema import user_links
from scim_bridge.store.schema import users


@dataclass(frozen=True)
class Grant:
    """One mapped Entra group that contains the user and grants the GitLab group."""

    display_name: str
    external_id: str | None
    level: int
    created_by_bridge: bool  # the GitLab group was created for this Entra group (unmapped)


@dataclass(frozen=True)
class Holder:
    """One SCIM user's side of one GitLab group: its account, grants, and what the bridge manages."""

    user_id: str
    user_name: str | None  # the SCIM userName (kept on the link when the user is gone)
    live: bool  # False: the SCIM user is gone, its link remains
    gitlab_user_id: int | None
    gitlab_username: str | None
    grants: list[Grant] = field(default_factory=list)
    managed: Managed | None = None


@dataclass(frozen=True)
class LinkedUser:
    """The SCIM user an account is linked to, live or gone."""

    user_id: str
    user_name: str | None  # the SCIM userName (kept on the link when the user is gone)
    live: bool
    retired_at: datetime | None


class AccessRecords:
    def __init__(self, db: Database) -> None:
        self.db = db

    def mapped_groups(self) -> list[str]:
        """Every GitLab group a mapping names or the bridge manages a membership in, sorted."""
        return GitLabMembershipStore(self.db).concerned_groups()

    def holders(
        self, path: str, *, after: str | None, limit: int, only: Collection[str] | None = None
    ) -> list[Holder]:
        """The next ``limit`` SCIM users (by id, after ``after``) that a grant or a managed
        membership ties to the GitLab group, with their accounts, grants and managed membership;
        ``only`` narrows them to these SCIM ids."""
        granted = (
            select(group_members.c.member_id.label("user_id"))
            .join(group_targets, group_targets.c.group_id == group_members.c.group_id)
            .where(group_targets.c.gitlab_group == path)
        )
        managed_users = (
            select(user_links.c.user_id)
            .join(
                managed_memberships,
                managed_memberships.c.gitlab_user_id == user_links.c.gitlab_user_id,
            )
            .where(managed_memberships.c.gitlab_group == path)
        )
        ids = union(granted, managed_users).subquery()
        statement = select(ids.c.user_id).order_by(ids.c.user_id).limit(limit)
        if after is not None:
            statement = statement.where(ids.c.user_id > after)
        if only is not None:
            statement = statement.where(ids.c.user_id.in_(list(only)))
        with self.db.transaction(write=False) as tx:
            connection = tx.connection
            chunk = list(connection.execute(statement).scalars())
            if not chunk:
                return []
            names = {
                row.id: row.user_name
                for row in connection.execute(
                    select(users.c.id, users.c.user_name).where(users.c.id.in_(chunk))
                )
            }
            links = {
                row.user_id: row
                for row in connection.execute(
                    select(
                        user_links.c.user_id,
                        user_links.c.gitlab_user_id,
                        user_links.c.gitlab_username,
                        user_links.c.source_user_name,
                    ).where(user_links.c.user_id.in_(chunk))
                )
            }
            grants: dict[str, list[Grant]] = defaultdict(list)
            for row in connection.execute(
                select(
                    group_members.c.member_id,
                    groups.c.display_name,
                    groups.c.external_id,
                    group_targets.c.access_level,
                    group_targets.c.created_by_bridge,
                )
                .join(group_targets, group_targets.c.group_id == group_members.c.group_id)
                .join(groups, groups.c.id == group_members.c.group_id)
                .where(group_targets.c.gitlab_group == path, group_members.c.member_id.in_(chunk))
                .order_by(group_targets.c.access_level.desc(), groups.c.display_name)
            ):
                grants[row.member_id].append(
                    Grant(
                        row.display_name, row.external_id, row.access_level, row.created_by_bridge
                    )
                )
            accounts = [row.gitlab_user_id for row in links.values() if row.gitlab_user_id]
            managed = {
                row.gitlab_user_id: Managed(
                    row.access_level, row.prior_level, clock.aware(row.since)
                )
                for row in connection.execute(
                    select(managed_memberships).where(
                        managed_memberships.c.gitlab_group == path,
                        managed_memberships.c.gitlab_user_id.in_(accounts),
                    )
                )
            }
        holders = []
        for user_id in chunk:
            link = links.get(user_id)
            account = link.gitlab_user_id if link is not None else None
            holders.append(
                Holder(
                    user_id,
                    names.get(user_id) or (link.source_user_name if link is not None else None),
                    user_id in names,
                    account,
                    link.gitlab_username if link is not None else None,
                    grants.get(user_id, []),
                    managed.get(account) if account is not None else None,
                )
            )
        return holders

    def explained(self, path: str, accounts: Sequence[int]) -> set[int]:
        """Those of ``accounts`` that a grant (through a linked SCIM user) or a managed
        membership ties to the GitLab group."""
        if not accounts:
            return set()
        ids = list(accounts)
        statement = union(
            select(user_links.c.gitlab_user_id)
            .join(group_members, group_members.c.member_id == user_links.c.user_id)
            .join(group_targets, group_targets.c.group_id == group_members.c.group_id)
            .where(group_targets.c.gitlab_group == path, user_links.c.gitlab_user_id.in_(ids)),
            select(managed_memberships.c.gitlab_user_id).where(
                managed_memberships.c.gitlab_group == path,
                managed_memberships.c.gitlab_user_id.in_(ids),
            ),
        )
        with self.db.transaction(write=False) as tx:
            return set(tx.connection.execute(statement).scalars())

    def linked_users(self, accounts: Sequence[int]) -> dict[int, LinkedUser]:
        """The SCIM user each of ``accounts`` is linked to; a live one before a gone one."""
        if not accounts:
            return {}
        statement = (
            select(
                user_links.c.user_id,
                user_links.c.gitlab_user_id,
                user_links.c.source_user_name,
                user_links.c.retired_at,
                users.c.user_name,
                users.c.id.is_not(None).label("live"),
            )
            .outerjoin(users, users.c.id == user_links.c.user_id)
            .where(user_links.c.gitlab_user_id.in_(list(accounts)))
        )
        found: dict[int, LinkedUser] = {}
        with self.db.transaction(write=False) as tx:
            for row in tx.connection.execute(statement):
                linked = LinkedUser(
                    row.user_id,
                    row.user_name or row.source_user_name,
                    bool(row.live),
                    clock.aware(row.retired_at),
                )
                known = found.get(row.gitlab_user_id)
                if known is None or (linked.live and not known.live):
                    found[row.gitlab_user_id] = linked
        return found

    def live_external_ids(self, external_ids: Collection[str]) -> set[str]:
        """Those of ``external_ids`` (Entra object ids) that a stored SCIM user carries."""
        if not external_ids:
            return set()
        with self.db.transaction(write=False) as tx:
            return set(
                tx.connection.execute(
                    select(users.c.external_id).where(users.c.external_id.in_(list(external_ids)))
                ).scalars()
            )

    def matching(self, name: str) -> tuple[set[str], set[int]]:
        """The SCIM users and accounts ``name`` designates: a SCIM userName, or a linked GitLab
        username (both compared case-insensitively)."""
        key = folded(name)
        with self.db.transaction(write=False) as tx:
            connection = tx.connection
            user_ids = set(
                connection.execute(select(users.c.id).where(users.c.user_name_key == key)).scalars()
            )
            rows = connection.execute(
                select(user_links.c.user_id, user_links.c.gitlab_user_id).where(
                    user_links.c.user_id.in_(list(user_ids))
                    | (func.lower(user_links.c.gitlab_username) == name.lower())
                )
            ).all()
        user_ids.update(row.user_id for row in rows)
        return user_ids, {row.gitlab_user_id for row in rows if row.gitlab_user_id is not None}
