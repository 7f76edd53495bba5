"""The group target store: a remap marks whom it must, records the mapping and its event, and
consumes the member changes it saw, all in one transaction."""

from __future__ import annotations

from scim_bridge.store import audit
from scim_bridge.store.db import Database
from scim_bridge.store.gitlab_memberships import GitLabMembershipStore
from scim_bridge.store.group_targets import AuditEvent
from scim_bridge.store.group_targets import GroupTargetStore
from scim_bridge.store.group_targets import Target
from tests.store.group_rows import stored_group
from tests.store.group_rows import stored_user

BATCH = 100


def test_a_remap_marks_changed_members_where_kept_and_everyone_where_retargeted(
    db: Database,
) -> None:
    jane, sam = stored_user(db, "jane"), stored_user(db, "sam")
    group = stored_group(db, "Developers", [jane, sam])
    targets, marks = GroupTargetStore(db), GitLabMembershipStore(db)

    # jane and sam were added: both are changed members, marked in the kept group.
    follow_up = targets.remap(
        group, retargeted=[], kept=["acme/dev"], targets={"acme/dev": Target(30, False)}, event=None
    )
    assert follow_up == ["gitlab_group:acme/dev"]
    assert set(marks.marked("acme/dev", BATCH)) == {jane, sam}
    assert targets.recorded(group) == {"acme/dev": Target(30, False)}

    # The changes were consumed: a kept group has no one to mark now, a retargeted one everyone.
    event = AuditEvent("reconcile.group", group, {"targets": "acme/new as reporter"})
    follow_up = targets.remap(
        group,
        retargeted=["acme/new"],
        kept=["acme/dev"],
        targets={"acme/new": Target(20, True)},
        event=event,
    )
    assert follow_up == ["gitlab_group:acme/new"]
    assert set(marks.marked("acme/new", BATCH)) == {jane, sam}
    assert targets.recorded(group) == {"acme/new": Target(20, True)}
    assert targets.created_for("acme/new") == "Developers"
    assert targets.created_for("acme/dev") is None
    recorded = [e for e in audit.events(db) if e["action"] == "reconcile.group"]
    assert [e["detail"] for e in recorded] == [{"targets": "acme/new as reporter"}]


def test_a_remap_without_targets_keeps_the_mapping(db: Database) -> None:
    group = stored_group(db, "Developers", [])
    targets = GroupTargetStore(db)
    targets.remap(group, retargeted=[], kept=[], targets={"a/b": Target(10, False)}, event=None)
    assert targets.remap(group, retargeted=[], kept=["a/b"], targets=None, event=None) == []
    assert targets.recorded(group) == {"a/b": Target(10, False)}
