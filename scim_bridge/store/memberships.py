"""Group membership rows, and the trail of membership changes the provisioning layer consumes.

Members are rows, not part of the group's document: adding or removing one member touches one
row whatever the group's size. Every change is noted in ``group_member_changes`` and the group's
reconcile job is queued, in the writer's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Sequence

from sqlalchemy import delete
from sqlalchemy import select
from sqlalchemy import update

from scim_bridge import clock
from scim_bridge.store import jobs
from scim_bridge.store.db import current_transaction
from scim_bridge.store.db import insert_ignoring_duplicates
from scim_bridge.store.schema import group_member_changes
from scim_bridge.store.schema import group_members
from scim_bridge.store.schema import groups
from scim_bridge.store.schema import managed_memberships

GROUP_JOB = "scim_group"
BATCH = 1000


def note_changes(group_id: str, user_ids: Iterable[str]) -> None:
    """Remember whose membership of a group changed, and queue the group's reconcile."""
    rows = [{"group_id": group_id, "user_id": user_id} for user_id in user_ids]
    if not rows:
        return
    connection = current_transaction().connection
    for start in range(0, len(rows), BATCH):
        connection.execute(group_member_changes.insert(), rows[start : start + BATCH])
    jobs.enqueue(GROUP_JOB, group_id)


def member_ids(group_id: str) -> list[str]:
    connection = current_transaction().connection
    statement = select(group_members.c.member_id).where(group_members.c.group_id == group_id)
    return list(connection.execute(statement).scalars())


def present(group_id: str, user_ids: Iterable[str]) -> set[str]:
    """Which of these ids are members already (one query per batch, whatever the group's size)."""
    wanted = list(dict.fromkeys(user_ids))
    found: set[str] = set()
    connection = current_transaction().connection
    for start in range(0, len(wanted), BATCH):
        chunk = wanted[start : start + BATCH]
        statement = select(group_members.c.member_id).where(
            group_members.c.group_id == group_id, group_members.c.member_id.in_(chunk)
        )
        found.update(connection.execute(statement).scalars())
    return found


def add(group_id: str, members: Sequence[tuple[str, str | None]]) -> list[str]:
    """Add (id, display) members; returns the ids that were not members yet."""
    wanted = dict(members)
    existing = present(group_id, wanted)
    new = {member_id: display for member_id, display in wanted.items() if member_id not in existing}
    insert_ignoring_duplicates(
        group_members,
        [{"group_id": group_id, "member_id": mid, "display": shown} for mid, shown in new.items()],
    )
    note_changes(group_id, new)
    return list(new)


def remove(group_id: str, user_ids: Iterable[str]) -> list[str]:
    """Remove members; returns the ids that were members (removing a non-member is a no-op)."""
    gone = sorted(present(group_id, user_ids))
    connection = current_transaction().connection
    for start in range(0, len(gone), BATCH):
        connection.execute(
            delete(group_members).where(
                group_members.c.group_id == group_id,
                group_members.c.member_id.in_(gone[start : start + BATCH]),
            )
        )
    note_changes(group_id, gone)
    return gone


def remove_all(group_id: str) -> list[str]:
    gone = member_ids(group_id)
    current_transaction().connection.execute(
        delete(group_members).where(group_members.c.group_id == group_id)
    )
    note_changes(group_id, gone)
    return gone


def leave_every_group(user_id: str) -> list[str]:
    """Take a deleted user out of every group; returns the groups it left."""
    connection = current_transaction().connection
    group_ids = list(
        connection.execute(
            select(group_members.c.group_id).where(group_members.c.member_id == user_id)
        ).scalars()
    )
    if not group_ids:
        return []
    connection.execute(delete(group_members).where(group_members.c.member_id == user_id))
    connection.execute(
        update(groups)
        .where(groups.c.id.in_(group_ids))
        .values(version=groups.c.version + 1, last_modified=clock.now())
    )
    for group_id in group_ids:
        note_changes(group_id, [user_id])
    return group_ids


def note_user_linked(user_id: str) -> None:
    """A user's GitLab account now exists: its groups' grants can be applied (DESIGN.md 4)."""
    connection = current_transaction().connection
    group_ids = connection.execute(
        select(group_members.c.group_id).where(group_members.c.member_id == user_id)
    ).scalars()
    for group_id in list(group_ids):
        note_changes(group_id, [user_id])


def forget_managed(gitlab_user_id: int) -> None:
    """Stop managing an account's memberships (its link is gone); GitLab keeps them as they are."""
    current_transaction().connection.execute(
        delete(managed_memberships).where(managed_memberships.c.gitlab_user_id == gitlab_user_id)
    )
