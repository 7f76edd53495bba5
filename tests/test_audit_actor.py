"""Work the background worker does still names the SCIM request that caused it (issue 10, §3).

When GitLab is down, a request answers Entra and leaves its work to the worker. The events the
worker writes later (the reconcile, each GitLab call, a parked job) and the jobs it queues in turn
must carry that request's actor and id, not ``actor=- request=-``.
"""

from __future__ import annotations

from typing import Any

from scim_bridge.store import audit
from tests.conftest import cli_environment
from tests.conftest import entra_user
from tests.conftest import run_cli

PROVIDER = "openid_connect"
OID = "4d3f7a10-0000-4000-8000-0000000ac7o2"
ACTOR = "token:entra"
# Requests wait for GitLab as long as it takes: what a run did inline never depends on its speed.
PATIENT = {"inline_deadline_seconds": 600.0}


def newest_event_id(bridge: Any) -> int:
    return max((event["id"] for event in audit.events(bridge.bridge.db)), default=0)


def events_after(bridge: Any, event_id: int) -> list[dict[str, Any]]:
    return [event for event in audit.events(bridge.bridge.db) if event["id"] > event_id]


def causes(events: list[dict[str, Any]]) -> set[tuple[str | None, str | None, str | None]]:
    return {(event["actor"], event["request_id"], event["source"]) for event in events}


def test_the_workers_block_names_the_request_that_disabled_the_user(
    make_bridge: Any, gitlab: Any, database_url: str
) -> None:
    bridge = make_bridge(gitlab, reconcile=PATIENT)
    created = bridge.scim.post("/Users", entra_user(externalId=OID))
    assert created.status_code == 201
    (account,) = gitlab.users_with_identity(PROVIDER, OID)
    gitlab.down(status=503)
    disable = [{"op": "Replace", "path": "active", "value": "False"}]
    request_id = "9a7c2e51-entra-disable"
    response = bridge.scim.patch(
        f"/Users/{created.json['id']}", disable, headers={"client-request-id": request_id}
    )
    assert response.status_code == 200
    assert gitlab.user(account["id"])["state"] == "active"  # left to the worker
    (job,) = bridge.bridge.queue.list()
    assert (job.actor, job.request_id, job.source) == (ACTOR, request_id, "127.0.0.1")

    gitlab.up()
    before = newest_event_id(bridge)
    bridge.run_worker()

    assert gitlab.user(account["id"])["state"] == "blocked"
    by_worker = events_after(bridge, before)
    assert causes(by_worker) == {(ACTOR, request_id, "127.0.0.1")}, by_worker
    block = f"POST /users/{account['id']}/block"
    assert [e["detail"]["status"] for e in by_worker if e["target"] == block] == [201]
    assert [e["target"] for e in by_worker if e["action"] == "reconcile.user"] == [
        created.json["id"]
    ]
    # What an operator reads: `scim-bridge audit` names the caller of the worker's block.
    shown = run_cli(cli_environment(database_url), "audit").stdout.splitlines()
    (line,) = [line for line in shown if block in line]
    assert f"actor={ACTOR} request={request_id}" in line


def test_jobs_the_worker_queues_carry_the_cause_of_the_job_that_queued_them(
    make_bridge: Any, gitlab: Any
) -> None:
    """A group's job, run by the worker, queues the GitLab group's job: same request, same actor."""
    gitlab.add_group("entra")
    bridge = make_bridge(
        gitlab,
        groups={"unmapped": "create", "parent": "entra", "default_access_level": 20},
        reconcile=PATIENT,
    )
    jane = bridge.scim.post("/Users", entra_user("jane@contoso.com", externalId=OID))
    (account,) = gitlab.users_with_identity(PROVIDER, OID)
    gitlab.down(status=503)
    request_id = "61f0d9b4-entra-group"
    group = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "Design",
        "externalId": "oid-design",
        "members": [{"value": jane.json["id"]}],
    }
    response = bridge.scim.post("/Groups", group, headers={"client-request-id": request_id})
    assert response.status_code == 201
    assert [job.kind for job in bridge.bridge.queue.list()] == ["scim_group"]
    gitlab.up()
    before = newest_event_id(bridge)

    bridge.run_worker(rounds=1)  # the group's job only: it creates the group, queues its members
    (follow_up,) = bridge.bridge.queue.list()
    assert follow_up.kind == "gitlab_group"
    assert (follow_up.actor, follow_up.request_id) == (ACTOR, request_id)
    bridge.run_worker()

    assert bridge.bridge.queue.list() == []
    members = {m["user_id"]: m["access_level"] for m in gitlab.members("entra/design")}
    assert members[account["id"]] == 20  # root is there too: GitLab adds a group's creator
    by_worker = events_after(bridge, before)
    assert causes(by_worker) == {(ACTOR, request_id, "127.0.0.1")}, by_worker
    actions = {event["action"] for event in by_worker}
    assert {"gitlab.group.create", "reconcile.group", "reconcile.memberships"} <= actions
    assert any(e["target"].startswith("POST /groups/") for e in by_worker if "call" in e["action"])


def test_a_job_the_worker_parks_names_the_request_behind_it(make_bridge: Any, gitlab: Any) -> None:
    bridge = make_bridge(gitlab, reconcile={"max_attempts": 2, **PATIENT})
    gitlab.down(status=502)
    request_id = "0c8e44aa-entra-create"
    response = bridge.scim.post(
        "/Users", entra_user(externalId=OID), headers={"client-request-id": request_id}
    )
    assert response.status_code == 201
    bridge.run_worker()
    (job,) = bridge.bridge.queue.list()
    assert job.state == "parked"
    (parked,) = audit.events(bridge.bridge.db, action_prefix="job.parked")
    assert (parked["target"], parked["actor"], parked["request_id"]) == (
        job.key,
        ACTOR,
        request_id,
    )
    failed_calls = list(audit.events(bridge.bridge.db, action_prefix="gitlab.call"))
    assert failed_calls and causes(failed_calls) == {(ACTOR, request_id, "127.0.0.1")}


def test_a_later_request_becomes_the_cause_of_work_still_waiting(
    make_bridge: Any, gitlab: Any
) -> None:
    """Pending work coalesces: the newest request that asked for it is the one the worker names."""
    bridge = make_bridge(gitlab, reconcile=PATIENT)
    gitlab.down(status=503)
    created = bridge.scim.post(
        "/Users", entra_user(externalId=OID), headers={"client-request-id": "first"}
    )
    rename = [{"op": "Replace", "path": "displayName", "value": "Jane Q. Doe"}]
    response = bridge.scim.patch(
        f"/Users/{created.json['id']}", rename, headers={"client-request-id": "second"}
    )
    assert response.status_code == 200
    gitlab.up()
    before = newest_event_id(bridge)
    bridge.run_worker()
    (account,) = gitlab.users_with_identity(PROVIDER, OID)
    assert account["name"] == "Jane Q. Doe"
    assert causes(events_after(bridge, before)) == {(ACTOR, "second", "127.0.0.1")}
