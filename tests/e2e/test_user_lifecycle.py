"""Entra's user lifecycle replayed over HTTP, asserting the SCIM answers and GitLab after each step."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import entra_user

OID = "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"
PROVIDER = "openid_connect"


def only_user(gitlab: Any, extern_uid: str = OID) -> dict[str, Any]:
    """The one GitLab account with this identity; fails if there are none or several."""
    matches = [
        user
        for user in gitlab.users()
        if any(
            i["extern_uid"] == extern_uid and i["provider"] == PROVIDER for i in user["identities"]
        )
    ]
    assert len(matches) == 1, matches
    return matches[0]


@pytest.fixture
def live(make_bridge: Any, gitlab: Any, serve: Any) -> Any:
    bridge = make_bridge(gitlab)
    return serve(bridge)


def test_entra_user_lifecycle(live: Any, gitlab: Any) -> None:
    # 1. Lookup miss (Test Connection, then the cycle's first query): 200 and empty.
    miss = live.get('/Users?filter=userName eq "Jane.Doe@contoso.com"')
    assert miss.status_code == 200 and miss.json()["totalResults"] == 0

    # 2. Create.
    created = live.post("/Users", entra_user("Jane.Doe@contoso.com", externalId=OID))
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    account = only_user(gitlab)
    assert account["username"] == "Jane.Doe"
    assert account["email"] == "jane.doe@contoso.com"
    assert account["name"] == "Jane Doe"
    assert account["state"] == "active"
    assert account["is_admin"] is False
    assert account["confirmed"] is True  # skip_confirmation: no mail
    assert account["reset_password_sent"] is False  # random password, no reset mail
    assert account["password_automatically_set"] is True

    # 3. Lookup hit, by userName in another case and by externalId.
    by_name = live.get('/Users?filter=userName eq "JANE.DOE@CONTOSO.COM"').json()
    by_oid = live.get(f'/Users?filter=externalId eq "{OID}"').json()
    assert [u["id"] for u in by_name["Resources"]] == [user_id]
    assert [u["id"] for u in by_oid["Resources"]] == [user_id]

    # 4. PATCH, default dialect: capitalised ops, value path, one op per attribute.
    patched = live.patch(
        f"/Users/{user_id}",
        [
            {"op": "Replace", "path": "displayName", "value": "Jane Q. Doe"},
            {
                "op": "Replace",
                "path": 'emails[type eq "work"].value',
                "value": "jane.q@contoso.com",
            },
        ],
    )
    assert patched.status_code == 200 and patched.json()["displayName"] == "Jane Q. Doe"
    account = only_user(gitlab)
    assert account["name"] == "Jane Q. Doe"
    assert account["email"] == "jane.q@contoso.com"

    # 5. PATCH, flag dialect: path-less object with dotted keys.
    patched = live.patch(
        f"/Users/{user_id}?aadOptscim062020",
        [
            {
                "op": "replace",
                "value": {"displayName": "Jane Doe-Smith", "name.familyName": "Doe-Smith"},
            }
        ],
    )
    assert patched.status_code == 200
    assert patched.json()["name"]["familyName"] == "Doe-Smith"
    assert only_user(gitlab)["name"] == "Jane Doe-Smith"

    # 6. Disable with the string "False".
    disabled = live.patch(
        f"/Users/{user_id}", [{"op": "Replace", "path": "active", "value": "False"}]
    )
    assert disabled.status_code == 200 and disabled.json()["active"] is False
    assert only_user(gitlab)["state"] == "blocked"
    still_listed = live.get('/Users?filter=userName eq "jane.doe@contoso.com"').json()
    assert still_listed["Resources"][0]["active"] is False

    # 7. Enable with the string "True".
    enabled = live.patch(
        f"/Users/{user_id}", [{"op": "Replace", "path": "active", "value": "True"}]
    )
    assert enabled.status_code == 200 and enabled.json()["active"] is True
    assert only_user(gitlab)["state"] == "active"

    # 8. Delete: 204, then 404; the account is blocked (on_delete = "block"), never duplicated.
    assert live.delete(f"/Users/{user_id}").status_code == 204
    assert live.get(f"/Users/{user_id}").status_code == 404
    account = only_user(gitlab)
    assert account["state"] == "blocked"
    assert len(gitlab.calls("POST", "/api/v4/users")) == 1


def test_user_name_change_renames_the_account(live: Any, gitlab: Any) -> None:
    user_id = live.post("/Users", entra_user("jdoe@contoso.com", externalId=OID)).json()["id"]
    assert only_user(gitlab)["username"] == "jdoe"
    response = live.patch(
        f"/Users/{user_id}",
        [{"op": "Replace", "path": "userName", "value": "jane.doe@fabrikam.com"}],
    )
    assert response.status_code == 200
    assert only_user(gitlab)["username"] == "jane.doe"


def test_username_collision_with_an_unlinked_account_gets_a_suffix(live: Any, gitlab: Any) -> None:
    gitlab.add_user(username="jane.doe", email="someone.else@contoso.com", name="Other Jane")
    gitlab.add_group(path="jane.doe1")  # a group path: GitLab refuses it as a username
    response = live.post("/Users", entra_user("Jane.Doe@contoso.com", externalId=OID))
    assert response.status_code == 201
    assert only_user(gitlab)["username"] == "Jane.Doe2"
    assert gitlab.user_by_username("jane.doe")["email"] == "someone.else@contoso.com"


def test_existing_account_with_the_same_email_is_adopted(live: Any, gitlab: Any) -> None:
    existing = gitlab.add_user(username="jdoe", email="jane.doe@contoso.com", name="J. Doe")
    response = live.post("/Users", entra_user("Jane.Doe@contoso.com", externalId=OID))
    assert response.status_code == 201
    account = only_user(gitlab)
    assert account["id"] == existing["id"]
    assert account["username"] == "jdoe"  # adopted accounts keep their username
    assert account["name"] == "Jane Doe"
    # The create went first and GitLab refused it (the email is taken): no second account.
    assert [r.status for r in gitlab.calls("POST", "/api/v4/users")] == [409]


def test_unadoptable_email_is_409_naming_the_conflict_and_stores_nothing(
    make_bridge: Any, gitlab: Any, serve: Any
) -> None:
    live = serve(make_bridge(gitlab, users={"link_existing": "never"}))
    gitlab.add_user(username="jdoe", email="jane.doe@contoso.com", name="J. Doe")
    response = live.post("/Users", entra_user("Jane.Doe@contoso.com", externalId=OID))
    assert response.status_code == 409, response.text
    error = response.json()
    assert error["status"] == "409" and error["scimType"] == "uniqueness"
    assert "Email has already been taken" in error["detail"]
    assert "jane.doe@contoso.com" in error["detail"]
    assert live.get('/Users?filter=userName eq "Jane.Doe@contoso.com"').json()["totalResults"] == 0
    assert live.get("/Users").json()["totalResults"] == 0
    # The same request succeeds once the conflict is gone: nothing was left behind.
    gitlab.remove_user(gitlab.user_by_username("jdoe")["id"])
    assert (
        live.post("/Users", entra_user("Jane.Doe@contoso.com", externalId=OID)).status_code == 201
    )


def test_email_owned_by_another_identity_is_not_adopted(live: Any, gitlab: Any) -> None:
    gitlab.add_user(
        username="jdoe",
        email="jane.doe@contoso.com",
        name="J. Doe",
        identities=[{"provider": PROVIDER, "extern_uid": "someone-else"}],
    )
    response = live.post("/Users", entra_user("Jane.Doe@contoso.com", externalId=OID))
    assert response.status_code == 409
    assert "another openid_connect identity" in response.json()["detail"]


def test_email_change_to_a_taken_address_is_refused_and_undone(live: Any, gitlab: Any) -> None:
    gitlab.add_user(username="other", email="taken@contoso.com", name="Other")
    user = live.post("/Users", entra_user("Jane.Doe@contoso.com", externalId=OID)).json()
    response = live.patch(
        f"/Users/{user['id']}",
        [{"op": "Replace", "path": 'emails[type eq "work"].value', "value": "taken@contoso.com"}],
    )
    assert response.status_code == 409
    assert response.json()["scimType"] == "uniqueness"
    stored = live.get(f"/Users/{user['id']}").json()
    assert stored["emails"][0]["value"] == "jane.doe@contoso.com"
    assert only_user(gitlab)["email"] == "jane.doe@contoso.com"


@pytest.mark.parametrize(("policy", "state"), [("deactivate", "deactivated"), ("ban", "banned")])
def test_deactivate_policies(
    make_bridge: Any, gitlab: Any, serve: Any, policy: str, state: str
) -> None:
    live = serve(make_bridge(gitlab, users={"on_deactivate": policy}))
    user = live.post("/Users", entra_user(externalId=OID)).json()
    live.patch(f"/Users/{user['id']}", [{"op": "Replace", "path": "active", "value": False}])
    assert only_user(gitlab)["state"] == state
    live.patch(f"/Users/{user['id']}", [{"op": "Replace", "path": "active", "value": True}])
    assert only_user(gitlab)["state"] == "active"


@pytest.mark.parametrize("policy", ["delete", "hard_delete"])
def test_delete_policies_remove_the_account(
    make_bridge: Any, gitlab: Any, serve: Any, policy: str
) -> None:
    live = serve(make_bridge(gitlab, users={"on_delete": policy}))
    user = live.post("/Users", entra_user(externalId=OID)).json()
    assert live.delete(f"/Users/{user['id']}").status_code == 204
    assert gitlab.users_with_identity(PROVIDER, OID) == []
    expected = "true" if policy == "hard_delete" else None
    (call,) = gitlab.calls("DELETE", f"/api/v4/users/{user_gitlab_id(gitlab, call_index=0)}")
    assert call["query"].get("hard_delete") == expected


def user_gitlab_id(gitlab: Any, call_index: int) -> int:
    created = gitlab.calls("POST", "/api/v4/users")[call_index]
    return int(created["response"]["id"])


def test_gitlab_down_create_still_answers_201_and_converges(
    make_bridge: Any, gitlab: Any, serve: Any
) -> None:
    bridge = make_bridge(gitlab)
    live = serve(bridge)
    gitlab.down(status=503)
    response = live.post("/Users", entra_user(externalId=OID))
    assert response.status_code == 201
    assert gitlab.users_with_identity(PROVIDER, OID) == []
    assert [job.key for job in bridge.bridge.queue.list()] == [f"user:{response.json()['id']}"]
    gitlab.up()
    bridge.run_worker()
    assert only_user(gitlab)["username"] == "Jane.Doe"
    assert bridge.bridge.queue.list() == []


def test_gitlab_rate_limit_is_not_surfaced_to_entra(
    make_bridge: Any, gitlab: Any, serve: Any
) -> None:
    bridge = make_bridge(gitlab)
    live = serve(bridge)
    # A short Retry-After: every call waits it out (the transport's gate), the worker's too.
    gitlab.faults.add(status=429, retry_after=1)
    response = live.post("/Users", entra_user(externalId=OID))
    assert response.status_code == 201
    (job,) = bridge.bridge.queue.list()
    assert "429" in (job.last_error or "")
    gitlab.faults.clear()
    bridge.run_worker()
    assert only_user(gitlab)["state"] == "active"


def test_dry_run_plans_and_audits_without_calling_gitlab(make_bridge: Any, serve: Any) -> None:
    from scim_bridge.store import audit

    bridge = make_bridge()  # no GitLab configured
    live = serve(bridge)
    user = live.post("/Users", entra_user(externalId=OID)).json()
    assert live.get(f"/Users/{user['id']}").status_code == 200
    planned = list(audit.events(bridge.bridge.db, action_prefix="gitlab.planned"))
    # A new person: the create alone (lookups come only if GitLab refuses it).
    assert [event["target"].split("?")[0] for event in planned] == ["POST /users"]
    assert all(event["detail"]["outcome"] == "planned" for event in planned)
    disabled = live.patch(
        f"/Users/{user['id']}", [{"op": "Replace", "path": "active", "value": "False"}]
    )
    assert disabled.status_code == 200
    planned = list(audit.events(bridge.bridge.db, action_prefix="gitlab.planned"))
    assert planned[-1]["target"] == "POST /users/0/block"
    writes = list(audit.events(bridge.bridge.db, action_prefix="scim.user"))
    assert writes[0]["actor"] == "token:entra" and writes[0]["request_id"]
    assert bridge.bridge.queue.list() == []


def test_external_id_held_by_another_account_is_refused_and_undone(live: Any, gitlab: Any) -> None:
    live.post("/Users", entra_user("first@contoso.com", externalId=OID))
    second = live.post("/Users", entra_user("second@contoso.com", externalId="other-oid")).json()
    response = live.patch(
        f"/Users/{second['id']}", [{"op": "Replace", "path": "externalId", "value": OID}]
    )
    assert response.status_code == 409, response.text
    assert "belongs to another GitLab account" in response.json()["detail"]
    assert live.get(f"/Users/{second['id']}").json()["externalId"] == "other-oid"
    assert only_user(gitlab)["username"] == "first"


def test_a_taken_user_name_is_409_from_the_database_and_changes_nothing(
    live: Any, gitlab: Any
) -> None:
    """The unique index, not a look before the insert, refuses the second userName (both
    backends): a clean SCIM error, no job, no GitLab call, and the next write is served."""
    assert (
        live.post("/Users", entra_user("Jane.Doe@contoso.com", externalId=OID)).status_code == 201
    )
    for _ in range(3):  # each refusal leaves its pooled connection fit for the next request
        again = live.post("/Users", entra_user("JANE.doe@Contoso.com", externalId="oid-other"))
        assert again.status_code == 409, again.text
        assert again.json()["scimType"] == "uniqueness" and again.json()["status"] == "409"
    listed = live.get('/Users?filter=userName eq "jane.doe@contoso.com"').json()
    assert listed["totalResults"] == 1
    assert len(gitlab.calls("POST", "/api/v4/users")) == 1
    other = live.post("/Users", entra_user("Ann.Lee@contoso.com", externalId="oid-ann"))
    assert other.status_code == 201, other.text
    assert len(gitlab.calls("POST", "/api/v4/users")) == 2
