"""Entra groups to GitLab memberships over HTTP, asserting the GitLab double's members at each step."""

from __future__ import annotations

from typing import Any

import pytest

from scim_bridge import clock
from scim_bridge.settings import GroupRule
from scim_bridge.store import audit
from tests.conftest import entra_user

PROVIDER = "openid_connect"
DEVELOPER, MAINTAINER, REPORTER, GUEST = 30, 40, 20, 10
DEVS_OID = "0b1e0000-0000-4000-8000-00000000dev1"
LEADS_OID = "0b1e0000-0000-4000-8000-0000000lead1"
RULES = (
    GroupRule(
        display_name="GitLab Developers",
        external_id=None,
        gitlab_group="acme/engineering",
        access_level=DEVELOPER,
    ),
    GroupRule(
        display_name=None,
        external_id=LEADS_OID,
        gitlab_group="acme/engineering",
        access_level=MAINTAINER,
    ),
)


@pytest.fixture
def bridge(make_bridge: Any, acme: Any) -> Any:
    return make_bridge(acme, groups={"rules": RULES})


class Entra:
    """What Entra does, in Entra's shapes."""

    def __init__(self, bridge: Any, gitlab: Any) -> None:
        self.scim = bridge.scim
        self.gitlab = gitlab

    def user(self, name: str) -> tuple[str, int]:
        response = self.scim.post(
            "/Users", entra_user(f"{name}@contoso.com", externalId=f"oid-{name}")
        )
        assert response.status_code == 201, response.json
        (account,) = self.gitlab.users_with_identity(PROVIDER, f"oid-{name}")
        return response.json["id"], account["id"]

    def group(self, display_name: str, external_id: str, members: list[str] = ()) -> str:
        body = {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": display_name,
            "externalId": external_id,
            "members": [{"value": member} for member in members],
        }
        response = self.scim.post("/Groups", body)
        assert response.status_code == 201, response.json
        return response.json["id"]

    def add(self, group_id: str, *user_ids: str) -> None:
        operation = {
            "op": "Add",
            "path": "members",
            "value": [{"$ref": None, "value": u} for u in user_ids],
        }
        assert self.scim.patch(f"/Groups/{group_id}", [operation]).status_code == 204

    def remove(self, group_id: str, *user_ids: str) -> Any:
        operation = {
            "op": "Remove",
            "path": "members",
            "value": [{"$ref": None, "value": u} for u in user_ids],
        }
        response = self.scim.patch(f"/Groups/{group_id}", [operation])
        assert response.status_code == 204, response.json
        return response


@pytest.fixture
def entra(bridge: Any, acme: Any) -> Entra:
    return Entra(bridge, acme)


def levels(gitlab: Any, group: str = "acme/engineering") -> dict[int, int]:
    return {member["user_id"]: member["access_level"] for member in gitlab.members(group)}


def without_root(members: dict[int, int]) -> dict[int, int]:
    return {user: level for user, level in members.items() if user != 1}


def test_highest_level_wins_then_follows_removals(entra: Entra, acme: Any) -> None:
    jane, jane_id = entra.user("jane")
    devs = entra.group("GitLab Developers", DEVS_OID)  # mapped by display_name
    leads = entra.group("Tech Leads", LEADS_OID)  # mapped by external_id
    entra.add(devs, jane)
    assert without_root(levels(acme)) == {jane_id: DEVELOPER}
    entra.add(leads, jane)
    assert without_root(levels(acme)) == {jane_id: MAINTAINER}
    entra.remove(leads, jane)
    assert without_root(levels(acme)) == {jane_id: DEVELOPER}
    entra.remove(devs, jane)
    assert without_root(levels(acme)) == {}


def test_a_membership_found_in_place_is_raised_then_restored(entra: Entra, acme: Any) -> None:
    jane, jane_id = entra.user("jane")
    acme.add_member("acme/engineering", jane_id, REPORTER)
    devs = entra.group("GitLab Developers", DEVS_OID, [jane])
    assert levels(acme)[jane_id] == DEVELOPER
    entra.remove(devs, jane)
    assert levels(acme)[jane_id] == REPORTER  # restored, not removed


def test_a_grant_below_a_membership_found_in_place_leaves_it(entra: Entra, acme: Any) -> None:
    jane, jane_id = entra.user("jane")
    acme.add_member("acme/engineering", jane_id, MAINTAINER + 10)
    devs = entra.group("GitLab Developers", DEVS_OID, [jane])
    assert levels(acme)[jane_id] == MAINTAINER + 10
    entra.remove(devs, jane)
    assert levels(acme)[jane_id] == MAINTAINER + 10


def test_members_never_seen_in_entra_are_never_touched(entra: Entra, acme: Any) -> None:
    manual = acme.add_user(username="contractor", email="c@elsewhere.com", name="Contractor")
    acme.add_member("acme/engineering", manual["id"], GUEST)
    jane, jane_id = entra.user("jane")
    devs = entra.group("GitLab Developers", DEVS_OID, [jane])
    assert without_root(levels(acme)) == {manual["id"]: GUEST, jane_id: DEVELOPER}
    entra.remove(devs, jane)
    assert entra.scim.delete(f"/Groups/{devs}").status_code == 204
    assert without_root(levels(acme)) == {manual["id"]: GUEST}


def test_inherited_level_needs_no_direct_membership(entra: Entra, acme: Any) -> None:
    jane, jane_id = entra.user("jane")
    acme.add_member("acme", jane_id, MAINTAINER)
    entra.group("GitLab Developers", DEVS_OID, [jane])
    assert jane_id not in levels(acme)


def test_unmapped_groups_are_stored_and_ignored(entra: Entra, acme: Any) -> None:
    jane, _ = entra.user("jane")
    group = entra.group("Marketing", "oid-marketing", [jane])
    assert entra.scim.get(f"/Groups/{group}").status_code == 200
    assert acme.calls("POST", "/api/v4/groups") == []
    assert [c for c in acme.requests if "/members" in c.path] == []


def test_unmapped_groups_are_created_under_parent(make_bridge: Any, acme: Any) -> None:
    acme.add_group("entra")
    acme.add_group("entra/marketing-team")  # taken: the created group gets a suffix
    bridge = make_bridge(
        acme, groups={"unmapped": "create", "parent": "entra", "default_access_level": REPORTER}
    )
    entra = Entra(bridge, acme)
    jane, jane_id = entra.user("jane")
    group = entra.group("Marketing Team", "oid-marketing", [jane])
    created = acme.group("entra/marketing-team-1")
    assert created is not None and created["name"] == "Marketing Team"
    assert without_root(levels(acme, "entra/marketing-team-1")) == {jane_id: REPORTER}
    assert levels(acme, "entra/marketing-team") == {}
    # Renaming the Entra group keeps the created group; deleting it never deletes the GitLab group.
    rename = [{"op": "Replace", "path": "displayName", "value": "Marketing"}]
    assert entra.scim.patch(f"/Groups/{group}", rename).status_code == 204
    assert without_root(levels(acme, "entra/marketing-team-1")) == {jane_id: REPORTER}
    assert entra.scim.delete(f"/Groups/{group}").status_code == 204
    assert acme.group("entra/marketing-team-1") is not None
    assert without_root(levels(acme, "entra/marketing-team-1")) == {}


def test_deleting_a_scim_group_removes_its_grants_not_the_gitlab_group(
    entra: Entra, acme: Any
) -> None:
    jane, jane_id = entra.user("jane")
    devs = entra.group("GitLab Developers", DEVS_OID, [jane])
    assert levels(acme)[jane_id] == DEVELOPER
    assert entra.scim.delete(f"/Groups/{devs}").status_code == 204
    assert jane_id not in levels(acme)
    assert acme.group("acme/engineering") is not None
    assert acme.calls("DELETE", "/api/v4/groups/acme%2Fengineering") == []


def test_renaming_a_group_out_of_its_rule_removes_the_grants(entra: Entra, acme: Any) -> None:
    jane, jane_id = entra.user("jane")
    devs = entra.group("GitLab Developers", DEVS_OID, [jane])
    assert levels(acme)[jane_id] == DEVELOPER
    rename = [{"op": "replace", "value": {"displayName": "Former Developers"}}]
    assert entra.scim.patch(f"/Groups/{devs}", rename).status_code == 204
    assert jane_id not in levels(acme)
    back = [{"op": "Replace", "path": "displayName", "value": "GitLab Developers"}]
    assert entra.scim.patch(f"/Groups/{devs}", back).status_code == 204
    assert levels(acme)[jane_id] == DEVELOPER


def test_deleting_a_user_removes_its_grants(entra: Entra, acme: Any) -> None:
    jane, jane_id = entra.user("jane")
    entra.group("GitLab Developers", DEVS_OID, [jane])
    assert entra.scim.delete(f"/Users/{jane}").status_code == 204
    assert jane_id not in levels(acme)
    assert acme.user(jane_id)["state"] == "blocked"


def test_a_blocked_user_keeps_its_memberships(entra: Entra, acme: Any) -> None:
    jane, jane_id = entra.user("jane")
    entra.group("GitLab Developers", DEVS_OID, [jane])
    disable = [{"op": "Replace", "path": "active", "value": "False"}]
    assert entra.scim.patch(f"/Users/{jane}", disable).status_code == 200
    assert acme.user(jane_id)["state"] == "blocked"
    assert levels(acme)[jane_id] == DEVELOPER


def test_memberships_wait_for_the_account_then_apply(bridge: Any, entra: Entra, acme: Any) -> None:
    acme.down(status=503)
    response = entra.scim.post("/Users", entra_user("jane@contoso.com", externalId="oid-jane"))
    assert response.status_code == 201
    jane = response.json["id"]
    entra.group("GitLab Developers", DEVS_OID, [jane])
    acme.up()
    bridge.run_worker()
    (account,) = acme.users_with_identity(PROVIDER, "oid-jane")
    assert levels(acme)[account["id"]] == DEVELOPER


def test_120_members_in_one_patch_cost_two_member_add_calls(entra: Entra, acme: Any) -> None:
    users = [entra.user(f"user{index}") for index in range(120)]
    devs = entra.group("GitLab Developers", DEVS_OID)
    acme.clear_requests()
    entra.add(devs, *[scim_id for scim_id, _ in users])
    member_adds = [c for c in acme.requests if c.method == "POST" and c.path.endswith("/members")]
    assert 1 <= len(member_adds) <= 2
    assert without_root(levels(acme)) == {gitlab_id: DEVELOPER for _, gitlab_id in users}


def test_removing_100_members_is_paced_and_never_surfaces_a_429(
    make_bridge: Any, acme: Any
) -> None:
    """Pacing left to GitLab's own 429s: Entra gets its 204, the request stops at the first 429,
    and the worker removes the rest once GitLab allows it.

    GitLab's window is an hour while the request runs, so the 61st deletion is refused however
    slow the machine (a short window could roll before 60 deletions were made, and the test
    would prove nothing); then a second, so the test sees the whole recovery. GitLab's
    Retry-After (the hour) pauses the request's process, as it should: the worker here is
    another process, as ``scim-bridge worker`` is.
    """
    no_pacing = {"member_deletions_per_minute": 0, "inline_deadline_seconds": 600.0}
    bridge = make_bridge(acme, groups={"rules": RULES}, reconcile=no_pacing)
    entra = Entra(bridge, acme)
    acme.member_delete_window = 3600.0
    users = [entra.user(f"user{index}") for index in range(100)]
    devs = entra.group("GitLab Developers", DEVS_OID, [scim_id for scim_id, _ in users])
    assert len(without_root(levels(acme))) == 100
    acme.clear_requests()
    response = entra.remove(devs, *[scim_id for scim_id, _ in users])
    assert response.status_code == 204
    deletes = [call.status for call in acme.requests if call.method == "DELETE"]
    assert deletes == [204] * 60 + [429], "the request stopped at GitLab's first refusal"
    (job,) = [job for job in bridge.bridge.queue.list() if job.kind == "gitlab_group"]
    assert "429" in (job.last_error or "")
    acme.member_delete_window = 1.0
    worker = make_bridge(acme, groups={"rules": RULES}, reconcile=no_pacing)
    worker.run_worker(rounds=50)  # runs the job whenever it stops, whatever it asked to wait
    assert without_root(levels(acme)) == {}
    deletes = [call for call in acme.requests if call.method == "DELETE" and call.status == 204]
    assert len(deletes) == 100


def test_member_deletions_are_paced_before_gitlab_refuses_them(make_bridge: Any, acme: Any) -> None:
    """60 deletions a minute per group, as GitLab allows: the 61st waits, no 429 is provoked.

    The request's deadline is out of reach, so however slow the machine the 60 deletions are
    made in the request and only the pacing stops it (the count is the database's, shared by
    every process: tests/e2e/test_member_pacing.py).
    """
    bridge = make_bridge(
        acme, groups={"rules": RULES}, reconcile={"inline_deadline_seconds": 600.0}
    )
    entra = Entra(bridge, acme)
    users = [entra.user(f"user{index}") for index in range(70)]
    devs = entra.group("GitLab Developers", DEVS_OID, [scim_id for scim_id, _ in users])
    acme.clear_requests()
    response = entra.remove(devs, *[scim_id for scim_id, _ in users])
    assert response.status_code == 204
    deletes = [call for call in acme.requests if call.method == "DELETE"]
    assert [call.status for call in deletes] == [204] * 60, "60 made, none refused"
    assert len(without_root(levels(acme))) == 10, "the rest wait for the next minute"
    (job,) = [job for job in bridge.bridge.queue.list() if job.kind == "gitlab_group"]
    assert "pacing member deletions" in (job.last_error or "")
    assert job.attempts == 0, "waiting on purpose is not a failure: it never parks the job"
    assert 0 < (job.run_after - clock.now()).total_seconds() <= 61


def test_rules_changed_between_runs_are_applied_to_existing_groups(
    make_bridge: Any, acme: Any
) -> None:
    before = make_bridge(acme)  # no rules yet
    entra = Entra(before, acme)
    jane, jane_id = entra.user("jane")
    entra.group("GitLab Developers", DEVS_OID, [jane])
    assert jane_id not in levels(acme)
    after = make_bridge(acme, groups={"rules": RULES})
    assert after.bridge.revisit_groups_if_rules_changed() == 1
    after.run_worker()
    assert levels(acme)[jane_id] == DEVELOPER
    assert after.bridge.revisit_groups_if_rules_changed() == 0
    assert [e["action"] for e in audit.events(after.bridge.db, action_prefix="rules.")] == [
        "rules.changed"
    ]


def test_a_rule_naming_a_missing_gitlab_group_parks_the_work_not_entras_write(
    make_bridge: Any, gitlab: Any
) -> None:
    missing = (
        GroupRule(
            display_name="Ops", external_id=None, gitlab_group="nowhere/ops", access_level=DEVELOPER
        ),
    )
    bridge = make_bridge(gitlab, groups={"rules": missing})
    entra = Entra(bridge, gitlab)
    jane, _ = entra.user("jane")
    group = entra.group("Ops", "oid-ops", [jane])
    assert entra.scim.get(f"/Groups/{group}").status_code == 200
    (job,) = [job for job in bridge.bridge.queue.list() if job.kind == "gitlab_group"]
    assert job.state == "parked"
    assert "nowhere/ops" in (job.last_error or "") and "does not exist" in (job.last_error or "")


def test_groups_planned_in_dry_run_are_created_once_gitlab_is_configured(
    make_bridge: Any, gitlab: Any
) -> None:
    create = {"unmapped": "create", "parent": "entra", "default_access_level": REPORTER}
    rehearsal = make_bridge(groups=create)  # no GitLab yet: dry-run
    user = rehearsal.scim.post("/Users", entra_user("jane@contoso.com", externalId="oid-jane"))
    group = rehearsal.scim.post(
        "/Groups",
        {
            "displayName": "Design",
            "externalId": "oid-design",
            "members": [{"value": user.json["id"]}],
        },
    )
    assert group.status_code == 201
    assert gitlab.requests == []  # nothing was called while planning
    live = make_bridge(gitlab, groups=create)
    touch = [{"op": "Replace", "path": "displayName", "value": "Jane D."}]
    assert live.scim.patch(f"/Users/{user.json['id']}", touch).status_code == 200  # creates jane
    live.run_worker()
    (account,) = gitlab.users_with_identity(PROVIDER, "oid-jane")
    assert gitlab.group("entra/design") is not None
    assert without_root(levels(gitlab, "entra/design")) == {account["id"]: REPORTER}
