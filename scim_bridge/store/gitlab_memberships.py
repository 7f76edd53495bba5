"""What the bridge owes and owns in GitLab groups: membership marks and managed memberships.

A *mark* (``membership_dirty``) says "look at this SCIM user's membership of this GitLab group
again"; marking queues the group's ``gitlab_group`` job. A *managed membership* is one the bridge
set, with the level found in place before it raised one, to restore when the grant goes.

Each method of :class:`GitLabMembershipStore` is one transaction; :class:`GitLabMemberships` is
the surface the provisioning layer sees (an in-memory fake can stand in for it).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from typing import Protocol

from sqlalchemy import Connection
from sqlalchemy import delete
from sqlalchemy import select
from sqlalchemy import union

from scim_bridge import clock
from scim_bridge.store import jobs
from scim_bridge.store import memberships as member_rows
from scim_bridge.store.db import ROWS_PER_STATEMENT
from scim_bridge.store.db import Database
from scim_bridge.store.db import upsert
from scim_bridge.store.schema import group_members
from scim_bridge.store.schema import group_targets
from scim_bridge.store.schema import managed_memberships
from scim_bridge.store.schema import membership_dirty
from scim_bridge.store.schema import user_links

GITLAB_GROUP_JOB = "gitlab_group"


@dataclass(frozen=True)
class Managed:
    """What the bridge remembers of a membership it manages."""

    level: int
    prior: int | None  # the level found in place before the bridge raised it; None if it created it
    # When the bridge set ``level`` (kept while the level stays); not part of what is managed.
    since: datetime | None = field(default=None, compare=False)


@dataclass(frozen=True)
class MembershipState:
    """The store's side of some SCIM users' memberships of one GitLab group.

    ``levels``: SCIM user id → the highest level its mapped Entra groups grant there;
    ``accounts``: SCIM user id → its linked GitLab user id;
    ``managed``: GitLab user id → what the bridge manages there;
    ``usernames``: GitLab user id → the linked username (only for :meth:`everyone`).
    """

    levels: dict[str, int]
    accounts: dict[str, int]
    managed: dict[int, Managed]
    usernames: dict[int, str] = field(default_factory=dict)


class GitLabMemberships(Protocol):
    """The membership work of the provisioning layer, as the reconcilers and drift see it."""

    def mark(self, gitlab_group: str, user_ids: Iterable[str]) -> list[str]: ...

    def marked(self, gitlab_group: str, limit: int) -> dict[str, datetime]: ...

    def of_users(self, gitlab_group: str, user_ids: list[str]) -> MembershipState: ...

    def everyone(self, gitlab_group: str) -> MembershipState: ...

    def settle(
        self,
        gitlab_group: str,
        managed: Mapping[int, Managed | None],
        settled: Mapping[str, datetime],
    ) -> None: ...

    def concerned_groups(self) -> list[str]: ...

    def note_user_linked(self, user_id: str) -> list[str]: ...


def mark(gitlab_group: str, user_ids: Iterable[str]) -> None:
    """In the open write transaction: mark users of a GitLab group for a new look, and queue the
    group's job; a newer mark survives a run that read an older."""
    rows = [
        {"gitlab_group": gitlab_group, "user_id": user_id, "marked_at": clock.now()}
        for user_id in dict.fromkeys(user_ids)
    ]
    if rows:
        upsert(membership_dirty, rows, ["gitlab_group", "user_id"], ["marked_at"])
        jobs.enqueue(GITLAB_GROUP_JOB, gitlab_group)


class GitLabMembershipStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def mark(self, gitlab_group: str, user_ids: Iterable[str]) -> list[str]:
        """Mark users of a GitLab group for a new look; returns the job keys queued."""
        with self.db.transaction(write=True) as tx:
            mark(gitlab_group, user_ids)
            return list(tx.job_keys)

    def marked(self, gitlab_group: str, limit: int) -> dict[str, datetime]:
        """The first ``limit`` marked users of a group (by SCIM id), with when each was marked."""
        with self.db.transaction(write=False) as tx:
            rows = tx.connection.execute(
                select(membership_dirty.c.user_id, membership_dirty.c.marked_at)
                .where(membership_dirty.c.gitlab_group == gitlab_group)
                .order_by(membership_dirty.c.user_id)
                .limit(limit)
            ).all()
        return {row.user_id: row.marked_at for row in rows}

    def of_users(self, gitlab_group: str, user_ids: list[str]) -> MembershipState:
        """Desired levels, accounts and managed memberships of these SCIM users in the group."""
        with self.db.transaction(write=False) as tx:
            return _state(tx.connection, gitlab_group, user_ids)

    def everyone(self, gitlab_group: str) -> MembershipState:
        """The same for everyone the group concerns (its mapped members and the accounts whose
        membership the bridge manages there), with their GitLab usernames."""
        with self.db.transaction(write=False) as tx:
            state = _state(tx.connection, gitlab_group, None)
            names = tx.connection.execute(
                select(user_links.c.gitlab_user_id, user_links.c.gitlab_username).where(
                    user_links.c.gitlab_user_id.in_(list(state.accounts.values()))
                )
            ).all()
        state.usernames.update({row.gitlab_user_id: row.gitlab_username for row in names})
        return state

    def settle(
        self,
        gitlab_group: str,
        managed: Mapping[int, Managed | None],
        settled: Mapping[str, datetime],
    ) -> None:
        """Remember (a Managed) or forget (None) managed memberships, and clear the marks dealt
        with, unless a newer mark came in meanwhile."""
        with self.db.transaction(write=True) as tx:
            connection = tx.connection
            kept = _levels_and_since(connection, gitlab_group, [a for a, m in managed.items() if m])
            now = clock.now()
            for account, remember in managed.items():
                connection.execute(
                    delete(managed_memberships).where(
                        managed_memberships.c.gitlab_group == gitlab_group,
                        managed_memberships.c.gitlab_user_id == account,
                    )
                )
                if remember is not None:
                    level, since = kept.get(account, (None, None))
                    connection.execute(
                        managed_memberships.insert().values(
                            gitlab_group=gitlab_group,
                            gitlab_user_id=account,
                            access_level=remember.level,
                            prior_level=remember.prior,
                            since=since if level == remember.level else now,
                        )
                    )
            for user_id, marked_at in settled.items():
                connection.execute(
                    delete(membership_dirty).where(
                        membership_dirty.c.gitlab_group == gitlab_group,
                        membership_dirty.c.user_id == user_id,
                        membership_dirty.c.marked_at <= marked_at,
                    )
                )

    def concerned_groups(self) -> list[str]:
        """Every GitLab group a mapping names or the bridge manages a membership in, sorted."""
        with self.db.transaction(write=False) as tx:
            return sorted(
                tx.connection.execute(
                    union(
                        select(group_targets.c.gitlab_group),
                        select(managed_memberships.c.gitlab_group),
                    )
                ).scalars()
            )

    def note_user_linked(self, user_id: str) -> list[str]:
        """A user's GitLab account exists now: its groups' grants can be applied (DESIGN.md 4).
        Returns the job keys queued."""
        with self.db.transaction(write=True) as tx:
            member_rows.note_user_linked(user_id)
            return list(tx.job_keys)


def _state(connection: Connection, path: str, users: list[str] | None) -> MembershipState:
    """``users`` None means everyone the group concerns."""
    levels: dict[str, int] = defaultdict(int)
    desired = select(group_members.c.member_id, group_targets.c.access_level).join(
        group_targets, group_targets.c.group_id == group_members.c.group_id
    )
    desired = desired.where(group_targets.c.gitlab_group == path)
    if users is not None:
        desired = desired.where(group_members.c.member_id.in_(users))
    for row in connection.execute(desired):
        levels[row.member_id] = max(levels[row.member_id], row.access_level)
    linked = select(user_links.c.user_id, user_links.c.gitlab_user_id).where(
        user_links.c.gitlab_user_id.is_not(None)
    )
    if users is not None:
        linked = linked.where(user_links.c.user_id.in_(users))
    else:
        managed_ids = select(managed_memberships.c.gitlab_user_id).where(
            managed_memberships.c.gitlab_group == path
        )
        linked = linked.where(
            user_links.c.user_id.in_(list(levels)) | user_links.c.gitlab_user_id.in_(managed_ids)
        )
    accounts = {row.user_id: row.gitlab_user_id for row in connection.execute(linked)}
    managed_rows = select(managed_memberships).where(managed_memberships.c.gitlab_group == path)
    if users is not None:
        managed_rows = managed_rows.where(
            managed_memberships.c.gitlab_user_id.in_(list(accounts.values()))
        )
    managed = {
        row.gitlab_user_id: Managed(row.access_level, row.prior_level, clock.aware(row.since))
        for row in connection.execute(managed_rows)
    }
    return MembershipState(dict(levels), accounts, managed)


def _levels_and_since(
    connection: Connection, gitlab_group: str, accounts: list[int]
) -> dict[int, tuple[int, datetime | None]]:
    """The level each of these accounts is managed at now, and since when: a level remembered
    again unchanged keeps its time."""
    kept: dict[int, tuple[int, datetime | None]] = {}
    for start in range(0, len(accounts), ROWS_PER_STATEMENT):
        for row in connection.execute(
            select(
                managed_memberships.c.gitlab_user_id,
                managed_memberships.c.access_level,
                managed_memberships.c.since,
            ).where(
                managed_memberships.c.gitlab_group == gitlab_group,
                managed_memberships.c.gitlab_user_id.in_(
                    accounts[start : start + ROWS_PER_STATEMENT]
                ),
            )
        ):
            kept[row.gitlab_user_id] = (row.access_level, row.since)
    return kept
