"""The GitLab membership store: marks that a newer mark outlives, managed memberships remembered
and forgotten, and the state a reconciler decides on."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest

from scim_bridge import clock
from scim_bridge.store.db import Database
from scim_bridge.store.gitlab_memberships import GitLabMembershipStore
from scim_bridge.store.gitlab_memberships import Managed
from scim_bridge.store.group_targets import GroupTargetStore
from scim_bridge.store.group_targets import Target
from tests.store.group_rows import stored_group
from tests.store.group_rows import stored_user

BATCH = 100
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


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


def test_a_managed_level_keeps_its_time_until_the_level_changes(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`since` (the access review's): when the bridge set the level, not when it last looked."""
    store = GitLabMembershipStore(db)
    times = iter(T0 + timedelta(hours=hour) for hour in range(10))
    monkeypatch.setattr(clock, "now", lambda: next(times))

    store.settle("acme/dev", {7: Managed(30, None), 8: Managed(40, 20)}, {})
    store.settle("acme/dev", {7: Managed(30, None), 8: Managed(50, 20)}, {})  # 8 raised again
    store.settle("acme/dev", {7: Managed(30, None)}, {})

    managed = store.everyone("acme/dev").managed
    assert {account: m.since for account, m in managed.items()} == {
        7: T0,
        8: T0 + timedelta(hours=1),
    }
    store.settle("acme/dev", {7: None}, {})
    store.settle("acme/dev", {7: Managed(30, None)}, {})  # set again after it went
    assert store.everyone("acme/dev").managed[7].since == T0 + timedelta(hours=4)
