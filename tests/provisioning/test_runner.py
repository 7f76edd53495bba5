"""What the background worker does with work the request could not finish."""

from __future__ import annotations

from typing import Any

from scim_bridge.store import audit
from tests.conftest import entra_user

OID = "7f4bc1a3-285e-48ae-8202-5accb43efb0e"


def accounts(gitlab: Any) -> list[dict[str, Any]]:
    return gitlab.users_with_identity("openid_connect", OID)


def test_a_gitlab_timeout_does_not_fail_the_request(make_bridge: Any, gitlab: Any) -> None:
    bridge = make_bridge(gitlab)  # GitLab timeout 2 s in the test settings
    gitlab.faults.add(latency=2.5, times=1)
    response = bridge.scim.post("/Users", entra_user(externalId=OID))
    assert response.status_code == 201
    (job,) = bridge.bridge.queue.list()
    assert job.last_error == "GitLab: GitLab did not answer in time (timeout)"
    bridge.run_worker()
    assert len(accounts(gitlab)) == 1


def test_work_that_keeps_failing_is_parked_then_retried_by_command(
    make_bridge: Any, gitlab: Any
) -> None:
    bridge = make_bridge(gitlab, reconcile={"max_attempts": 3})
    gitlab.down(status=502)
    assert bridge.scim.post("/Users", entra_user(externalId=OID)).status_code == 201
    bridge.run_worker(rounds=10)
    (job,) = bridge.bridge.queue.list()
    assert job.state == "parked"
    assert job.attempts == 3
    assert "502" in (job.last_error or "")
    assert [e["target"] for e in audit.events(bridge.bridge.db, action_prefix="job.parked")] == [
        job.key
    ]
    gitlab.up()
    bridge.run_worker()
    assert accounts(gitlab) == []  # parked work is not retried on its own
    assert bridge.bridge.queue.retry_parked(job.key) == 1
    bridge.run_worker()
    assert len(accounts(gitlab)) == 1
    assert bridge.bridge.queue.list() == []


def test_a_refusal_found_by_the_worker_is_parked_not_retried_forever(
    make_bridge: Any, gitlab: Any
) -> None:
    bridge = make_bridge(gitlab, users={"link_existing": "never"})
    gitlab.down(status=503)
    assert bridge.scim.post("/Users", entra_user(externalId=OID)).status_code == 201
    gitlab.up()
    gitlab.add_user(username="someone", email="jane.doe@contoso.com", name="Someone")
    bridge.run_worker()
    (job,) = bridge.bridge.queue.list()
    assert job.state == "parked"
    assert "Email has already been taken" in (job.last_error or "")
    assert accounts(gitlab) == []
    assert len(gitlab.calls("POST", "/api/v4/users")) == 1


def test_a_later_write_revives_parked_work(make_bridge: Any, gitlab: Any) -> None:
    bridge = make_bridge(gitlab, users={"link_existing": "never"})
    gitlab.down(status=503)
    user = bridge.scim.post("/Users", entra_user(externalId=OID)).json
    gitlab.up()
    taken = gitlab.add_user(username="someone", email="jane.doe@contoso.com", name="Someone")
    bridge.run_worker()
    gitlab.remove_user(taken["id"])
    response = bridge.scim.patch(
        f"/Users/{user['id']}", [{"op": "Replace", "path": "displayName", "value": "Jane"}]
    )
    assert response.status_code == 200
    assert accounts(gitlab)[0]["name"] == "Jane"
    assert bridge.bridge.queue.list() == []
