"""Membership events name every user they affected, by SCIM id and GitLab user id (issue 10, §3).

Over HTTP against the GitLab double: however many members one PATCH adds, the union of the
``reconcile.memberships`` events names each of them once; removals, raises and restores name their
users; and a reconcile that GitLab stops part-way still records what it did before failing.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest

from scim_bridge.provisioning import memberships
from scim_bridge.store import audit
from tests.conftest import entra_user
from tests.e2e.test_group_memberships import DEVELOPER
from tests.e2e.test_group_memberships import DEVS_OID
from tests.e2e.test_group_memberships import PROVIDER
from tests.e2e.test_group_memberships import REPORTER
from tests.e2e.test_group_memberships import RULES
from tests.e2e.test_group_memberships import Entra
from tests.e2e.test_group_memberships import levels
from tests.e2e.test_group_memberships import without_root

MEMBERS_PATH = r"^/api/v4/groups/\d+/members$"
# Requests wait for GitLab as long as it takes: what a run did inline never depends on its speed.
PATIENT = {"inline_deadline_seconds": 600.0}


def provision(bridge: Any, gitlab: Any, names: list[str]) -> dict[str, int]:
    """SCIM id → GitLab user id for new users; the worker finishes what a slow request left."""
    scim_ids = {}
    for name in names:
        body = entra_user(f"{name}@contoso.com", externalId=f"oid-{name}")
        response = bridge.scim.post("/Users", body)
        assert response.status_code == 201, response.json
        scim_ids[name] = response.json["id"]
    bridge.run_worker()
    accounts = {}
    for name, scim_id in scim_ids.items():
        (account,) = gitlab.users_with_identity(PROVIDER, f"oid-{name}")
        accounts[scim_id] = account["id"]
    return accounts


def membership_events(bridge: Any) -> list[dict[str, Any]]:
    return list(audit.events(bridge.bridge.db, action_prefix="reconcile.memberships"))


def changes(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [change for event in events for change in event["detail"]["changes"]]


def named(events: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """(SCIM id, GitLab user id) of every change, sorted: a user named twice shows twice."""
    return sorted(
        (scim_id, change["gitlab_user_id"])
        for change in changes(events)
        for scim_id in change["users"]
    )


def fail_only_the_nth(gitlab: Any, n: int, **rule: Any) -> None:
    """A fault on the nth request the rule matches, and on no other.

    The double draws ``probability`` from a seeded ``random.Random``, only for requests the rule
    matches and only until its ``times`` are used up: pick the seed whose first n - 1 draws let
    requests through and whose nth fails it. Deterministic, whatever the machine's speed.
    """

    def fails_first_at(seed: int) -> int:
        draws = random.Random(seed)
        return next(i for i in itertools.count(1) if draws.random() < 0.5)

    gitlab.faults.seed(next(seed for seed in itertools.count() if fails_first_at(seed) == n))
    gitlab.faults.add(probability=0.5, times=1, **rule)


def test_every_member_one_patch_adds_is_named_whatever_their_number(
    make_bridge: Any, acme: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two full batches and one more user, with values redacted: ids are not values.

    1001 users make 2 x 500 + 1 in production; the batch is made smaller here so that provisioning
    the users stays quick. A batch above GitLab's 100 users per call is the part-way test's.
    """
    monkeypatch.setattr(memberships, "BATCH_USERS", 50)
    count = 2 * memberships.BATCH_USERS + 1
    bridge = make_bridge(
        acme, groups={"rules": RULES}, reconcile=PATIENT, audit={"redact_values": True}
    )
    accounts = provision(bridge, acme, [f"user{index}" for index in range(count)])
    devs = Entra(bridge, acme).group("GitLab Developers", DEVS_OID)

    Entra(bridge, acme).add(devs, *accounts)
    bridge.run_worker()

    assert without_root(levels(acme)) == {account: DEVELOPER for account in accounts.values()}
    events = membership_events(bridge)
    assert len(events) == 3, "one event per batch of users"
    assert named(events) == sorted(accounts.items())
    for change in changes(events):
        assert change["action"] == "set"
        assert (change["level"], change["before"]) == ("developer", None)
    assert {event["target"] for event in events} == {"acme/engineering"}
    assert all(event["detail"]["planned"] is False for event in events)
    assert all(event["detail"]["actions"] for event in events)


def test_removals_raises_and_restores_name_their_users(make_bridge: Any, acme: Any) -> None:
    bridge = make_bridge(acme, groups={"rules": RULES}, reconcile=PATIENT)
    entra = Entra(bridge, acme)
    accounts = provision(bridge, acme, ["jane", "bob"])
    (jane, jane_id), (bob, bob_id) = accounts.items()
    acme.add_member("acme/engineering", bob_id, REPORTER)  # bob's membership predates the bridge
    devs = entra.group("GitLab Developers", DEVS_OID)

    entra.add(devs, jane, bob)
    (granted,) = membership_events(bridge)
    assert sorted(granted["detail"]["changes"], key=lambda c: c["gitlab_user_id"]) == sorted(
        [
            {
                "users": [jane],
                "gitlab_user_id": jane_id,
                "action": "set",
                "level": "developer",
                "before": None,
            },
            {
                "users": [bob],
                "gitlab_user_id": bob_id,
                "action": "raised",
                "level": "developer",
                "before": "reporter",
                "prior": "reporter",
            },
        ],
        key=lambda c: c["gitlab_user_id"],
    )

    entra.remove(devs, jane, bob)
    bridge.run_worker()
    assert without_root(levels(acme)) == {bob_id: REPORTER}
    (_, taken_back) = membership_events(bridge)
    assert sorted(taken_back["detail"]["changes"], key=lambda c: c["gitlab_user_id"]) == sorted(
        [
            {
                "users": [jane],
                "gitlab_user_id": jane_id,
                "action": "removed",
                "before": "developer",
            },
            {
                "users": [bob],
                "gitlab_user_id": bob_id,
                "action": "restored",
                "level": "reporter",
                "before": "developer",
            },
        ],
        key=lambda c: c["gitlab_user_id"],
    )


def test_a_refused_member_is_named_with_gitlabs_reason(make_bridge: Any, acme: Any) -> None:
    bridge = make_bridge(acme, groups={"rules": RULES}, reconcile=PATIENT)
    ((carol, carol_id),) = provision(bridge, acme, ["carol"]).items()
    acme.faults.add(method="POST", path_pattern=MEMBERS_PATH, status=400, times=1)
    Entra(bridge, acme).group("GitLab Developers", DEVS_OID, [carol])
    (event,) = membership_events(bridge)
    (change,) = event["detail"]["changes"]
    assert change["users"] == [carol] and change["gitlab_user_id"] == carol_id
    assert (change["action"], change["level"]) == ("refused", "developer")
    assert "400" in change["reason"]
    assert event["detail"]["actions"] == [
        "GitLab refused 1 member(s) of acme/engineering at developer (30)"
    ]


def test_a_batch_gitlab_stops_part_way_records_the_members_it_added(
    make_bridge: Any, acme: Any
) -> None:
    """101 users at one level: two member-add calls; GitLab fails the second, and the first
    call's 100 users are in the trail before the worker adds the last one."""
    bridge = make_bridge(acme, groups={"rules": RULES}, reconcile=PATIENT)
    accounts = provision(bridge, acme, [f"user{index}" for index in range(101)])
    devs = Entra(bridge, acme).group("GitLab Developers", DEVS_OID)
    fail_only_the_nth(acme, 2, method="POST", path_pattern=MEMBERS_PATH, status=503)

    Entra(bridge, acme).add(devs, *accounts)

    (job,) = bridge.bridge.queue.list()
    assert "503" in (job.last_error or "")
    (before_failing,) = membership_events(bridge)
    added = set(without_root(levels(acme)))
    assert len(added) == 100
    assert {c["gitlab_user_id"] for c in before_failing["detail"]["changes"]} == added
    bridge.run_worker()
    assert without_root(levels(acme)) == {account: DEVELOPER for account in accounts.values()}
    assert named(membership_events(bridge)) == sorted(accounts.items())  # each named once


@pytest.mark.parametrize("status", [503, 429])
def test_a_removal_gitlab_refuses_after_an_add_keeps_the_add_in_the_trail(
    make_bridge: Any, acme: Any, status: int
) -> None:
    bridge = make_bridge(acme, groups={"rules": RULES}, reconcile=PATIENT)
    entra = Entra(bridge, acme)
    accounts = provision(bridge, acme, ["jane", "bob"])
    (jane, jane_id), (bob, bob_id) = accounts.items()
    devs = entra.group("GitLab Developers", DEVS_OID, [jane])
    acme.faults.add(method="DELETE", path_pattern=r"/members/\d+$", status=status, retry_after=1)

    swap = [
        {"op": "Remove", "path": "members", "value": [{"value": jane}]},
        {"op": "Add", "path": "members", "value": [{"value": bob}]},
    ]
    assert bridge.scim.patch(f"/Groups/{devs}", swap).status_code == 204

    assert without_root(levels(acme)) == {jane_id: DEVELOPER, bob_id: DEVELOPER}
    (job,) = bridge.bridge.queue.list()
    assert str(status) in (job.last_error or "")
    _, swapped = membership_events(bridge)
    assert [(c["users"], c["action"]) for c in swapped["detail"]["changes"]] == [([bob], "set")]
    acme.faults.clear()
    bridge.run_worker()
    assert without_root(levels(acme)) == {bob_id: DEVELOPER}
    *_, removed = membership_events(bridge)
    assert [
        (c["users"], c["gitlab_user_id"], c["action"]) for c in removed["detail"]["changes"]
    ] == [([jane], jane_id, "removed")]
