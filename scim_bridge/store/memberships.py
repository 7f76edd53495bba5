"""Group membership rows, and the trail of membership changes the provisioning layer consumes.

Members are rows, not part of the group's document: adding or removing one member touches one
row whatever the group's size. Every change is noted in ``group_member_changes`` and the group's
reconcile job is queued, in the writer's transaction.

A member is a User that exists (``require_users``): an id that names no User (an unknown id, a
Group, a value too long to be an id) is refused before anything is written, so a group never lists
a member whose ``$ref`` leads nowhere.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from collections.abc import Sequence
from typing import Any

from scim2_models import InvalidValueException
from sqlalchemy import bindparam
from sqlalchemy import delete
from sqlalchemy import select
from sqlalchemy import update

from scim_bridge import clock
from scim_bridge.store import jobs
from scim_bridge.store.db import current_transaction
from scim_bridge.store.db import insert_ignoring_duplicates
from scim_bridge.store.prepared import Prepared
from scim_bridge.store.schema import group_member_changes
from scim_bridge.store.schema import group_members
from scim_bridge.store.schema import groups
from scim_bridge.store.schema import managed_memberships
from scim_bridge.store.schema import users

GROUP_JOB = "scim_group"
BATCH = 1000
# The longest id a member row or a user can have: a longer value is compared with no row, and
# never reaches a statement (PostgreSQL refuses to store an overlong value in these columns).
MEMBER_ID_LENGTH: int = group_members.c.member_id.type.length  # type: ignore[attr-defined]
USER_ID_LENGTH: int = users.c.id.type.length  # type: ignore[attr-defined]
SHOWN = 10  # an error names this many offending values, then counts the rest
SHOWN_LENGTH = 80  # characters of each value an error shows


def listed(values: Sequence[Any], notes: dict[str, str] | None = None) -> str:
    """The first ``SHOWN`` values as JSON, shortened and noted, and how many more there are."""
    shown = []
    for value in values[:SHOWN]:
        if isinstance(value, str):
            text = json.dumps(_shortened(value), ensure_ascii=False)
            note = (notes or {}).get(value)
            shown.append(text + (f" ({note})" if note else ""))
        else:
            shown.append(_shortened(json.dumps(value, ensure_ascii=False, default=str)))
    rest = len(values) - SHOWN
    return ", ".join(shown) + (f" and {rest} more" if rest > 0 else "")


def _shortened(text: str) -> str:
    return text if len(text) <= SHOWN_LENGTH else text[: SHOWN_LENGTH - 1] + "\u2026"


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
    wanted = [user_id for user_id in dict.fromkeys(user_ids) if len(user_id) <= MEMBER_ID_LENGTH]
    found: set[str] = set()
    connection = current_transaction().connection
    for start in range(0, len(wanted), BATCH):
        chunk = wanted[start : start + BATCH]
        statement = select(group_members.c.member_id).where(
            group_members.c.group_id == group_id, group_members.c.member_id.in_(chunk)
        )
        found.update(connection.execute(statement).scalars())
    return found


def existing_users(user_ids: Iterable[str]) -> set[str]:
    """Which of these ids are Users' (one query per batch).

    On PostgreSQL the users found are locked (``FOR KEY SHARE``) until the transaction ends, as a
    foreign key would lock them: a concurrent DELETE of one of them waits, then takes it out of
    the group it was just added to; or it went first, and the user is not found.
    """
    wanted = [user_id for user_id in dict.fromkeys(user_ids) if len(user_id) <= USER_ID_LENGTH]
    found: set[str] = set()
    connection = current_transaction().connection
    for start in range(0, len(wanted), BATCH):
        statement = select(users.c.id).where(users.c.id.in_(wanted[start : start + BATCH]))
        found.update(
            connection.execute(statement.with_for_update(read=True, key_share=True)).scalars()
        )
    return found


def require_users(user_ids: Iterable[str]) -> None:
    """Refuse with 400 ``invalidValue``, naming them, the ids that name no User."""
    wanted = list(dict.fromkeys(user_ids))
    found = existing_users(wanted)
    unknown = [user_id for user_id in wanted if user_id not in found]
    if not unknown:
        return
    shown = [user_id for user_id in unknown[:SHOWN] if len(user_id) <= MEMBER_ID_LENGTH]
    statement = select(groups.c.id).where(groups.c.id.in_(shown))
    found_groups = current_transaction().connection.execute(statement).scalars()
    notes = dict.fromkeys(found_groups, "a Group: groups cannot be members")
    many = len(unknown) > 1
    raise InvalidValueException(
        detail=f"members must be existing Users: {len(unknown)} value{'s' if many else ''} "
        f"name{'' if many else 's'} no User: {listed(unknown, notes)}"
    )


def add(group_id: str, members: Sequence[tuple[str, str | None]]) -> list[str]:
    """Add (id, display) members; returns the ids that were not members yet.

    Each new member must be an existing User (``require_users``), or nothing is added.
    """
    wanted = dict(members)
    existing = present(group_id, wanted)
    new = {member_id: display for member_id, display in wanted.items() if member_id not in existing}
    require_users(new)
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


# Run at the end of every new account's run: built once, not per call.
_GROUPS_OF_MEMBER = Prepared(
    select(group_members.c.group_id).where(group_members.c.member_id == bindparam("member"))
)


def note_user_linked(user_id: str) -> None:
    """A user's GitLab account now exists: its groups' grants can be applied (DESIGN.md 4)."""
    connection = current_transaction().connection
    for (group_id,) in _GROUPS_OF_MEMBER.tuples(connection, {"member": user_id}):
        note_changes(group_id, [user_id])


def forget_managed(gitlab_user_id: int) -> None:
    """Stop managing an account's memberships (its link is gone); GitLab keeps them as they are."""
    current_transaction().connection.execute(
        delete(managed_memberships).where(managed_memberships.c.gitlab_user_id == gitlab_user_id)
    )
