"""`ScimGroupReconciler` against in-memory fakes (README "Map Entra groups to GitLab roles";
DESIGN.md, Groups): the GitLab groups a SCIM group maps to, the users marked in each, and the
follow-up ``gitlab_group`` jobs for the GitLab groups whose members changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scim_bridge.gitlab.access import DEVELOPER
from scim_bridge.gitlab.access import GUEST
from scim_bridge.gitlab.access import MAINTAINER
from scim_bridge.provisioning.group_mapping import ScimGroupReconciler
from scim_bridge.provisioning.reconciling import Outcome
from scim_bridge.store.group_targets import Target
from tests.provisioning.fakes import AuditLog
from tests.provisioning.fakes import FakeGitLab
from tests.provisioning.fakes import FakeGroupTargets
from tests.provisioning.fakes import FakeLinks
from tests.provisioning.fakes import FakeMemberships
from tests.provisioning.fakes import settings

GROUP = "g-1"
DEVS_OID = "6f1c1a4e-0000-4000-8000-000000000001"
RULES = [
    {"display_name": "GitLab Developers", "gitlab_group": "acme/eng", "access_level": "developer"},
    {"external_id": DEVS_OID, "gitlab_group": "acme/eng", "access_level": "maintainer"},
    {"display_name": "GitLab Developers", "gitlab_group": "acme/handbook", "access_level": "guest"},
    {"display_name": "Ops", "gitlab_group": "acme/ops", "access_level": "developer"},
]


@dataclass
class World:
    gitlab: FakeGitLab
    documents: dict[str, dict[str, Any]]
    memberships: FakeMemberships
    targets: FakeGroupTargets
    audit: AuditLog
    reconciler: ScimGroupReconciler

    def run(self) -> Outcome:
        return self.reconciler.reconcile(GROUP)

    def marked(self) -> dict[str, list[str]]:
        """GitLab path → the SCIM users marked there."""
        return {path: sorted(m) for path, m in self.memberships.marks.items() if m}


def world(display_name: str = "GitLab Developers", **groups: Any) -> World:
    gitlab = FakeGitLab()
    documents = {GROUP: {"displayName": display_name}}
    memberships = FakeMemberships(FakeLinks(), {GROUP: ["u-1", "u-2"]})
    targets = FakeGroupTargets(memberships)
    audit = AuditLog()
    config = settings(groups={"rules": RULES, **groups})
    reconciler = ScimGroupReconciler(targets, documents.get, config.groups, gitlab, audit)
    return World(gitlab, documents, memberships, targets, audit, reconciler)


def test_a_mapped_group_records_its_targets_and_marks_every_member() -> None:
    w = world()
    outcome = w.run()
    assert w.targets.mappings[GROUP] == {
        "acme/eng": Target(DEVELOPER, False),
        "acme/handbook": Target(GUEST, False),
    }
    assert w.marked() == {"acme/eng": ["u-1", "u-2"], "acme/handbook": ["u-1", "u-2"]}
    assert outcome.follow_up == ["gitlab_group:acme/eng", "gitlab_group:acme/handbook"]
    assert outcome.actions == ["maps to acme/eng as developer (30), acme/handbook as guest (10)"]
    (event,) = w.targets.events
    assert event.action == "reconcile.group"
    assert w.gitlab.calls == []  # mapping by rules asks GitLab nothing


def test_the_highest_of_the_matching_rules_wins() -> None:
    w = world()
    w.documents[GROUP]["externalId"] = DEVS_OID
    w.run()
    assert w.targets.mappings[GROUP]["acme/eng"] == Target(MAINTAINER, False)


def test_an_unchanged_mapping_marks_only_the_changed_members() -> None:
    w = world()
    w.run()
    w.memberships.marks.clear()
    assert w.run() == Outcome()  # nothing changed: nothing to follow up
    w.targets.changes[GROUP] = ["u-3"]
    outcome = w.run()
    assert w.marked() == {"acme/eng": ["u-3"], "acme/handbook": ["u-3"]}
    assert outcome.follow_up == ["gitlab_group:acme/eng", "gitlab_group:acme/handbook"]
    assert outcome.actions == []
    assert len(w.targets.events) == 1  # only the first mapping was an event


def test_a_new_level_marks_every_member_of_that_group_only() -> None:
    w = world()
    w.run()
    w.memberships.marks.clear()
    w.documents[GROUP]["externalId"] = DEVS_OID  # acme/eng: developer → maintainer
    w.targets.changes[GROUP] = ["u-3"]
    outcome = w.run()
    assert w.marked() == {"acme/eng": ["u-1", "u-2", "u-3"], "acme/handbook": ["u-3"]}
    assert outcome.follow_up == ["gitlab_group:acme/eng", "gitlab_group:acme/handbook"]


def test_a_renamed_group_moves_its_members_from_the_old_targets_to_the_new() -> None:
    w = world()
    w.run()
    w.memberships.marks.clear()
    w.documents[GROUP]["displayName"] = "Ops"
    outcome = w.run()
    assert w.targets.mappings[GROUP] == {"acme/ops": Target(DEVELOPER, False)}
    everyone = ["u-1", "u-2"]
    assert w.marked() == {"acme/eng": everyone, "acme/handbook": everyone, "acme/ops": everyone}
    assert outcome.follow_up == [
        "gitlab_group:acme/eng",
        "gitlab_group:acme/handbook",
        "gitlab_group:acme/ops",
    ]


def test_a_deleted_group_maps_to_nothing_and_marks_its_last_members() -> None:
    w = world()
    w.run()
    w.memberships.marks.clear()
    del w.documents[GROUP]
    w.memberships.scim_members[GROUP] = []
    w.targets.changes[GROUP] = ["u-1", "u-2"]  # the members removed with it
    outcome = w.run()
    assert w.targets.mappings[GROUP] == {}
    assert w.marked() == {"acme/eng": ["u-1", "u-2"], "acme/handbook": ["u-1", "u-2"]}
    assert outcome.follow_up == ["gitlab_group:acme/eng", "gitlab_group:acme/handbook"]


def test_an_unmapped_group_is_ignored_by_default() -> None:
    w = world("Marketing")
    assert w.run() == Outcome()
    assert w.targets.mappings.get(GROUP, {}) == {}
    assert w.marked() == {}
    assert w.gitlab.calls == []


def test_an_unmapped_group_gets_a_gitlab_group_under_parent_when_unmapped_is_create() -> None:
    w = world("Platform Team", unmapped="create")
    outcome = w.run()
    assert w.gitlab.writes() == [
        ("groups.create", "entra", "entra", None),  # the parent is made first
        ("groups.create", "Platform Team", "platform-team", w.gitlab.groups.get("entra").id),
    ]
    assert w.targets.mappings[GROUP] == {"entra/platform-team": Target(GUEST, True)}
    assert w.marked() == {"entra/platform-team": ["u-1", "u-2"]}
    assert outcome.follow_up == ["gitlab_group:entra/platform-team"]
    assert w.audit.actions() == ["gitlab.group.create", "gitlab.group.create"]
    w.gitlab.calls.clear()
    w.run()
    assert w.gitlab.calls == []  # the group it made is remembered, not made again


def test_a_created_group_takes_a_suffix_when_its_path_is_taken() -> None:
    w = world("Platform Team", unmapped="create")
    w.gitlab.groups.add("entra/platform-team")
    w.run()
    assert w.gitlab.writes() == [
        ("groups.create", "Platform Team", "platform-team-1", w.gitlab.groups.get("entra").id)
    ]
    assert w.targets.mappings[GROUP] == {"entra/platform-team-1": Target(GUEST, True)}
