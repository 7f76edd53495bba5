"""How many database transactions a request costs (issue 13), and concurrent writes coalescing.

Counted, never timed: an engine listener notes each transaction's BEGIN with its mode (the
``MODE_OPTION`` every transaction's connection carries), on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy import update

from scim_bridge.settings import GroupRule
from scim_bridge.store import audit
from scim_bridge.store.audit_verify import verify
from scim_bridge.store.schema import api_tokens
from scim_bridge.store.schema import membership_dirty
from tests.conftest import BridgeUnderTest
from tests.conftest import ScimClient
from tests.conftest import entra_user
from tests.conftest import make_settings
from tests.conftest import transactions

DEVELOPER = 30
ENGINEERING = "acme/engineering"
RULES = (
    GroupRule(
        display_name="GitLab Developers",
        external_id=None,
        gitlab_group=ENGINEERING,
        access_level=DEVELOPER,
    ),
)
# Long enough that a GitLab call the test holds never times out, however busy the machine.
PATIENT_SECONDS = 60.0


def user(scim: ScimClient, name: str) -> str:
    response = scim.post("/Users", entra_user(f"{name}@contoso.com", externalId=f"oid-{name}"))
    assert response.status_code == 201, response.json
    return str(response.json["id"])


def group(scim: ScimClient, members: list[str]) -> str:
    body = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "GitLab Developers",
        "externalId": "devs",
        "members": [{"value": member} for member in members],
    }
    response = scim.post("/Groups", body)
    assert response.status_code == 201, response.json
    return str(response.json["id"])


def add_member(scim: ScimClient, group_id: str, user_id: str) -> int:
    operation = {"op": "Add", "path": "members", "value": [{"value": user_id}]}
    return int(scim.patch(f"/Groups/{group_id}", [operation]).status_code)


def member_ids(gitlab: Any) -> set[int]:
    return {member["user_id"] for member in gitlab.members(ENGINEERING)}


def test_a_post_of_a_user_costs_three_write_transactions(make_bridge: Any, gitlab: Any) -> None:
    """The write (with its job's claim), create_started_at before GitLab's POST /users, and the
    end of the run (link, audit events of the calls, the job's completion)."""
    bridge = make_bridge(gitlab)
    user(bridge.scim, "warm-up")  # resolves the protected accounts, notes the token's use
    with transactions(bridge) as counted:
        user(bridge.scim, "jane")
    print(f"POST /Users: {dict(counted)}")
    assert gitlab.users_with_identity("openid_connect", "oid-jane")
    assert counted["write"] <= 3
    assert counted["read"] <= 3  # the credential, the reconciler's reads, one spare
    assert bridge.bridge.queue.list() == []
    # The run's GitLab calls are in the trail, chained like every other event.
    assert any(e["action"] == "gitlab.call" for e in audit.events(bridge.bridge.db))
    assert verify(bridge.bridge.db).intact


def test_adding_a_member_to_a_mapped_group_costs_four_write_transactions(
    make_bridge: Any, acme: Any
) -> None:
    """The write, the SCIM group's run ending with its remap and the claim of the GitLab group's
    job, the membership written ahead of GitLab's call, and the end of that run."""
    bridge = make_bridge(acme, groups={"rules": RULES})
    alice, bob = user(bridge.scim, "alice"), user(bridge.scim, "bob")
    group_id = group(bridge.scim, [alice])
    with transactions(bridge) as counted:
        assert add_member(bridge.scim, group_id, bob) == 204
    print(f"PATCH /Groups add one member: {dict(counted)}")
    assert len(member_ids(acme)) == 2
    assert counted["write"] <= 4
    assert counted["read"] <= 5
    assert bridge.bridge.queue.list() == []
    assert verify(bridge.bridge.db).intact


@pytest.fixture
def patient_bridge(database_url: str, acme: Any) -> Iterator[BridgeUnderTest]:
    """A bridge whose GitLab calls and inline runs outlast any call the test holds."""
    settings = make_settings(
        database_url,
        acme.url,
        groups={"rules": RULES},
        reconcile={"inline_deadline_seconds": PATIENT_SECONDS},
    )
    settings = replace(settings, gitlab=replace(settings.gitlab, timeout_seconds=PATIENT_SECONDS))
    bridge = BridgeUnderTest(settings)
    yield bridge
    bridge.close()


def test_concurrent_additions_to_one_group_coalesce_into_fewer_runs(
    patient_bridge: BridgeUnderTest, acme: Any
) -> None:
    """While the first request's run waits on GitLab, the others' members are marked; they wait
    for that run, then one run applies all of them: every member lands, in fewer runs."""
    bridge = patient_bridge
    people = [user(bridge.scim, f"member{n}") for n in range(5)]
    group_id = group(bridge.scim, [])
    assert bridge.bridge.runner is not None  # built before the threads share it
    gate = threading.Event()
    acme.faults.add(method="GET", path_pattern=r"/groups/acme%2Fengineering$", hold=gate, times=1)
    answers: dict[str, int] = {}

    def patch(user_id: str) -> None:
        answers[user_id] = add_member(ScimClient(bridge.app, bridge.token), group_id, user_id)

    first = threading.Thread(target=patch, args=(people[0],))
    first.start()
    _until(lambda: acme.held() == 1)  # the first run waits on GitLab, its claim held
    others = [threading.Thread(target=patch, args=(u,)) for u in people[1:]]
    for thread in others:
        thread.start()
    _until(lambda: _marked(bridge) == set(people))  # every request's member awaits a run
    gate.set()
    for thread in [first, *others]:
        thread.join(timeout=120)
    assert answers == dict.fromkeys(people, 204)
    bridge.run_worker()  # nothing should be left; if anything is, it would show below
    assert len(member_ids(acme)) == len(people)
    runs = acme.calls("GET", "/api/v4/groups/acme%2Fengineering")
    reconciled = list(audit.events(bridge.bridge.db, action_prefix="reconcile.memberships"))
    print(f"{len(people)} PATCHes: {len(runs)} GitLab group runs, {len(reconciled)} events")
    assert len(runs) < len(people)
    assert len(reconciled) < len(people)
    assert verify(bridge.bridge.db).intact


def _marked(bridge: BridgeUnderTest) -> set[str]:
    with bridge.bridge.db.transaction(write=False) as tx:
        rows = tx.connection.execute(
            select(membership_dirty.c.user_id).where(membership_dirty.c.gitlab_group == ENGINEERING)
        )
        return {row.user_id for row in rows}


def _until(condition: Any, rounds: int = 6000) -> None:
    """Wait for a state the test needs (not for time: the bound only stops a broken test)."""
    event_ = threading.Event()
    for _ in range(rounds):
        if condition():
            return
        event_.wait(0.01)
    raise AssertionError("the state the test waits for never came")


class Crash(BaseException):
    """The process dying: nothing after it runs, no handler catches it."""


def test_a_run_lost_before_its_end_is_redone_without_a_second_account(
    make_bridge: Any, gitlab: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The crash-safety argument of runner.py: GitLab created the account, the transaction that
    ends the run never came. The rerun finds the account, links it as the bridge's own (thanks
    to create_started_at, durable before the call), and the trail holds what the rerun did."""
    bridge = make_bridge(gitlab, reconcile={"inline_deadline_seconds": 0.0})
    user_id = user(bridge.scim, "jane")  # no inline time: the claimed job is given back at once
    (job,) = bridge.bridge.queue.list()
    assert job.state == "pending"

    def crash(*_args: Any, **_kwargs: Any) -> None:
        raise Crash

    runner = bridge.bridge.runner
    monkeypatch.setattr(runner, "_end", crash)
    (claimed,) = runner.queue.claim_due(runner.owner, lease_seconds=0.0, limit=1)
    with pytest.raises(Crash):
        runner.run_background(claimed)
    monkeypatch.undo()
    assert len(gitlab.users_with_identity("openid_connect", "oid-jane")) == 1
    assert bridge.bridge.links.get(user_id).gitlab_user_id is None  # the end was lost
    assert not [e for e in audit.events(bridge.bridge.db) if e["target"] == "POST /users"]

    bridge.run_worker()  # the lease (0 s) has expired
    (account,) = gitlab.users_with_identity("openid_connect", "oid-jane")
    link = bridge.bridge.links.get(user_id)
    assert (link.gitlab_user_id, link.origin) == (account["id"], "created")
    assert len(gitlab.calls("POST", "/api/v4/users")) == 1
    assert bridge.bridge.queue.list() == []
    (rerun,) = list(audit.events(bridge.bridge.db, action_prefix="reconcile.user"))
    assert rerun["target"] == user_id
    assert verify(bridge.bridge.db).intact


def test_a_credential_in_use_costs_no_write_transaction_per_request(make_bridge: Any) -> None:
    """The token's last use is written at most once a minute, also when requests that read an old
    value arrive together: the process remembers it wrote it."""
    bridge = make_bridge()
    assert bridge.scim.get("/Users").status_code == 200  # the first use is written
    with bridge.bridge.db.transaction(write=False) as tx:  # by its own write, beside the read
        assert tx.connection.execute(select(api_tokens.c.last_used_at)).scalar() is not None
    with bridge.bridge.db.transaction(write=True) as tx:  # as a concurrent request read it
        tx.connection.execute(update(api_tokens).values(last_used_at=None))
    with transactions(bridge) as counted:
        for _ in range(3):
            assert bridge.scim.get("/Users").status_code == 200
    assert counted["write"] == 0
    assert counted["read"] == 3  # per request: one, the credential's check and the search


def test_a_write_refused_before_the_store_takes_no_write_transaction(make_bridge: Any) -> None:
    """The body is parsed before the write transaction opens (``Database.write_scope``), so a
    request refused for its body never waits for, nor holds, the store's writer lock."""
    bridge = make_bridge()
    user(bridge.scim, "warm-up")
    with transactions(bridge) as counted:
        response = bridge.scim.post(
            "/Users", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"]}
        )
        assert response.status_code == 400, response.json
        assert response.json["scimType"] == "invalidValue"
    assert counted["write"] == 0
