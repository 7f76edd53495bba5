"""The GitLab membership store: marks that a newer mark outlives, managed memberships remembered
and forgotten, and the state a reconciler decides on."""

from __future__ import annotations

from datetime import timedelta

from scim_bridge.store.db import Database
from scim_bridge.store.gitlab_memberships import GitLabMembershipStore
from scim_bridge.store.gitlab_memberships import Managed
from scim_bridge.store.group_targets import GroupTargetStore
from scim_bridge.store.group_targets import Target
from tests.store.group_rows import stored_group
from tests.store.group_rows import stored_user

BATCH = 100


def test_settling_clears_only_the_marks_it_read(db: Database) -> None:
    store = GitLabMembershipStore(db)
    assert store.mark("acme/dev", ["a", "b", "a"]) == ["gitlab_group:acme/dev"]
    read = store.marked("acme/dev", BATCH)
    assert list(read) == ["a", "b"]
    assert list(store.marked("acme/dev", 1)) == ["a"]
    older = {"a": read["a"], "b": read["b"] - timedelta(seconds=1)}  # b marked again meanwhile
    store.settle("acme/dev", {}, older)
    assert list(store.marked("acme/dev", BATCH)) == ["b"]


def test_managed_memberships_are_remembered_and_forgotten(db: Database) -> None:
    store = GitLabMembershipStore(db)
    jane = stored_user(db, "jane", gitlab_user_id=7)
    sam = stored_user(db, "sam", gitlab_user_id=8)
    group = stored_group(db, "Developers", [jane, sam])
    GroupTargetStore(db).remap(
        group, retargeted=[], kept=[], targets={"acme/dev": Target(30, False)}, event=None
    )
    store.settle("acme/dev", {7: Managed(30, None), 9: Managed(40, 20)}, {})

    state = store.of_users("acme/dev", [jane])
    assert (state.levels, state.accounts, state.managed) == (
        {jane: 30},
        {jane: 7},
        {7: Managed(30, None)},
    )
    everyone = store.everyone("acme/dev")
    assert everyone.accounts == {jane: 7, sam: 8}
    assert everyone.managed == {7: Managed(30, None), 9: Managed(40, 20)}
    assert everyone.usernames == {7: "jane", 8: "sam"}
    assert store.concerned_groups() == ["acme/dev"]

    store.settle("acme/dev", {7: None, 9: Managed(30, 20)}, {})
    assert store.everyone("acme/dev").managed == {9: Managed(30, 20)}


def test_a_linked_user_has_its_groups_looked_at_again(db: Database) -> None:
    jane = stored_user(db, "jane")
    group = stored_group(db, "Developers", [jane])
    assert GitLabMembershipStore(db).note_user_linked(jane) == [f"scim_group:{group}"]
