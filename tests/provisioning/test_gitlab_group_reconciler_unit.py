"""`GitLabGroupReconciler` against in-memory fakes (README "Map Entra groups to GitLab roles";
DESIGN.md, Groups; docs/architecture.md): the marked users of one GitLab group made to hold their
mapped level, without ever taking away a membership the bridge did not make.

Each test reads GitLab's memberships, what the bridge remembers managing, the marks left, and the
calls made.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from scim_bridge.gitlab.access import DEVELOPER
from scim_bridge.gitlab.access import GUEST
from scim_bridge.gitlab.access import MAINTAINER
from scim_bridge.gitlab.access import REPORTER
from scim_bridge.gitlab.types import GitLabGroup
from scim_bridge.provisioning.group_mapping import GroupCreator
from scim_bridge.provisioning.memberships import GitLabGroupReconciler
from scim_bridge.provisioning.reconciling import Outcome
from scim_bridge.provisioning.reconciling import Rejected
from scim_bridge.provisioning.reconciling import Retry
from scim_bridge.store.gitlab_memberships import Managed
from scim_bridge.store.links import CREATED
from scim_bridge.store.links import UserLink
from tests.provisioning.fakes import AuditLog
from tests.provisioning.fakes import FakeGitLab
from tests.provisioning.fakes import FakeGroupTargets
from tests.provisioning.fakes import FakeLinks
from tests.provisioning.fakes import FakeMemberships

PATH = "acme/eng"


class Window:
    """A ``Pacer`` that allows ``allowed`` deletions, then asks to wait a minute."""

    def __init__(self, allowed: int) -> None:
        self.allowed = allowed
        self.taken: list[str] = []

    def take(self, key: str) -> float | None:
        self.taken.append(key)
        return None if len(self.taken) <= self.allowed else 60.0


@dataclass
class World:
    gitlab: FakeGitLab
    group: GitLabGroup
    links: FakeLinks
    memberships: FakeMemberships
    audit: AuditLog
    reconciler: GitLabGroupReconciler

    def user(self, user_id: str, granted: int | None = None) -> int:
        """A SCIM user linked to a GitLab account, granted ``granted`` in PATH, and marked."""
        account = self.gitlab.users.add(user_id.replace("u-", "user"))
        self.links.links[user_id] = UserLink(user_id, account.id, account.username, None, CREATED)
        if granted is not None:
            self.memberships.granted.setdefault(PATH, {})[user_id] = granted
        self.memberships.mark(PATH, [user_id])
        return account.id

    def direct(self) -> dict[int, int]:
        return self.gitlab.members.direct.setdefault(self.group.id, {})

    def managed(self) -> dict[int, Managed]:
        return self.memberships.managed.get(PATH, {})

    def run(self) -> Outcome:
        return self.reconciler.reconcile(PATH)


def world(*, dry_run: bool = False, deletions: Window | None = None) -> World:
    gitlab = FakeGitLab(dry_run=dry_run)
    group = gitlab.groups.add(PATH)
    links = FakeLinks()
    memberships = FakeMemberships(links)
    audit = AuditLog()
    reconciler = GitLabGroupReconciler(
        memberships,
        FakeGroupTargets(memberships),
        gitlab,
        GroupCreator(gitlab, "entra", audit),
        audit,
        deletions=deletions,
    )
    return World(gitlab, group, links, memberships, audit, reconciler)


def test_marked_users_are_added_at_their_level_with_one_call_per_level() -> None:
    w = world()
    devs = [w.user(f"u-{n}", DEVELOPER) for n in range(1, 4)]
    lead = w.user("u-9", MAINTAINER)
    w.run()
    assert w.gitlab.writes() == [
        ("members.add_many", w.group.id, devs, DEVELOPER),
        ("members.add_many", w.group.id, [lead], MAINTAINER),
    ]
    assert w.direct() == {**dict.fromkeys(devs, DEVELOPER), lead: MAINTAINER}
    assert w.managed() == {**dict.fromkeys(devs, Managed(DEVELOPER, None)), lead: Managed(40, None)}
    assert w.memberships.marks[PATH] == {}  # every mark dealt with
    (event,) = w.audit.events
    assert event.action == "reconcile.memberships"
    assert event.detail is not None
    assert {c["action"] for c in event.detail["changes"]} == {"set"}


def test_an_add_goes_out_in_calls_of_at_most_100_users() -> None:
    w = world()
    accounts = [w.user(f"u-{n:03}", DEVELOPER) for n in range(150)]
    w.run()
    calls = w.gitlab.writes()
    assert [len(call[2]) for call in calls] == [100, 50]
    assert [user for call in calls for user in call[2]] == accounts


def test_a_second_run_makes_no_write() -> None:
    w = world()
    w.user("u-1", DEVELOPER)
    w.run()
    w.gitlab.calls.clear()
    w.memberships.mark(PATH, ["u-1"])
    w.run()
    assert w.gitlab.writes() == []


def test_a_membership_found_in_place_is_raised_and_restored_when_the_grant_goes() -> None:
    w = world()
    account = w.user("u-1", DEVELOPER)
    w.direct()[account] = REPORTER  # there before the bridge
    w.run()
    assert w.direct() == {account: DEVELOPER}
    assert w.managed() == {account: Managed(DEVELOPER, REPORTER)}
    del w.memberships.granted[PATH]["u-1"]
    w.memberships.mark(PATH, ["u-1"])
    w.run()
    assert w.direct() == {account: REPORTER}  # back where it was, not removed
    assert w.managed() == {}
    assert w.gitlab.writes() == [
        ("members.add_many", w.group.id, [account], DEVELOPER),
        ("members.add_many", w.group.id, [account], REPORTER),
    ]


def test_a_managed_membership_is_lowered_to_the_new_level() -> None:
    w = world()
    account = w.user("u-1", MAINTAINER)
    w.run()
    w.memberships.granted[PATH]["u-1"] = GUEST
    w.memberships.mark(PATH, ["u-1"])
    w.run()
    assert w.direct() == {account: GUEST}
    assert w.managed() == {account: Managed(GUEST, None)}


@pytest.mark.parametrize("granted", [None, GUEST, DEVELOPER], ids=["no-grant", "lower", "same"])
def test_a_membership_the_bridge_did_not_make_is_never_removed_or_lowered(
    granted: int | None,
) -> None:
    w = world()
    account = w.user("u-1", granted)
    w.direct()[account] = DEVELOPER  # made by hand
    w.run()
    assert w.gitlab.writes() == []
    assert w.direct() == {account: DEVELOPER}
    assert w.managed() == {}


def test_a_membership_the_bridge_made_is_removed_when_the_grant_goes() -> None:
    w = world()
    account = w.user("u-1", DEVELOPER)
    w.run()
    del w.memberships.granted[PATH]["u-1"]
    w.memberships.mark(PATH, ["u-1"])
    w.run()
    assert w.gitlab.writes()[-1] == ("members.remove", w.group.id, account)
    assert w.direct() == {}
    assert w.managed() == {}


def test_an_inherited_level_needs_no_direct_membership() -> None:
    w = world()
    account = w.user("u-1", DEVELOPER)
    parent = w.gitlab.groups.get("acme")
    w.gitlab.members.direct[parent.id] = {account: MAINTAINER}
    w.run()
    assert w.gitlab.writes() == []
    assert w.direct() == {}


def test_deletions_are_paced_and_the_rest_waits() -> None:
    window = Window(allowed=2)
    w = world(deletions=window)
    accounts = [w.user(f"u-{n}", DEVELOPER) for n in range(1, 4)]
    w.run()
    w.memberships.granted[PATH].clear()
    w.memberships.mark(PATH, ["u-1", "u-2", "u-3"])
    with pytest.raises(Retry) as waiting:
        w.run()
    assert (waiting.value.paced, waiting.value.retry_after) == (True, 60.0)
    assert window.taken == [PATH] * 3
    assert [call[2] for call in w.gitlab.called("members.remove")] == accounts[:2]
    assert w.direct() == {accounts[2]: DEVELOPER}
    assert w.managed() == {accounts[2]: Managed(DEVELOPER, None)}  # still the bridge's to remove
    assert sorted(w.memberships.marks[PATH]) == ["u-3"]  # the next run takes it from there
    detail = w.audit.events[-1].detail  # the removals GitLab confirmed reach the audit trail
    assert detail is not None
    assert [c["gitlab_user_id"] for c in detail["changes"]] == accounts[:2]


def test_dry_run_changes_nothing_and_reads_no_members() -> None:
    w = world(dry_run=True)
    account = w.user("u-1", DEVELOPER)
    w.direct()[w.gitlab.users.add("someone").id] = DEVELOPER
    before = dict(w.direct())
    w.run()
    assert w.gitlab.called("members.list_direct") == w.gitlab.called("members.list_all") == []
    assert w.gitlab.writes() == [("members.add_many", w.group.id, [account], DEVELOPER)]  # planned
    assert w.direct() == before
    assert w.managed() == {}  # nothing was made, so nothing is remembered
    (event,) = w.audit.events
    assert event.detail is not None and event.detail["planned"] is True


def test_a_user_without_a_gitlab_account_is_settled_without_a_call() -> None:
    w = world()
    w.memberships.granted[PATH] = {"u-1": DEVELOPER}
    w.memberships.mark(PATH, ["u-1"])
    w.run()
    assert w.gitlab.calls == [("groups.find", PATH)]
    assert w.memberships.marks[PATH] == {}


def test_a_missing_gitlab_group_the_bridge_did_not_create_is_the_operators_to_fix() -> None:
    w = world()
    w.user("u-1", DEVELOPER)
    w.memberships.granted["acme/gone"] = {"u-1": DEVELOPER}
    w.memberships.mark("acme/gone", ["u-1"])
    with pytest.raises(Rejected, match="'acme/gone' does not exist") as refused:
        w.reconciler.reconcile("acme/gone")
    assert refused.value.tell_client is False
    assert w.gitlab.writes() == []
