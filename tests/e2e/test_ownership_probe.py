"""Ownership probes: an attacker holding only a SCIM bearer token tries to make the bridge write
to a GitLab account or membership it must not touch (DESIGN.md, Ownership). Each test asserts
what the rules demand.

Three of these found real violations, since fixed: the adoption races (the losing run wrote
identity, name, email and state to the account the winner linked; now a run claims the account in
the store before its first write, ``LinkStore.claim_account``), and the two "create mark" tests
(an account the bridge did not create was recorded as ``created``, so ``on_delete =
"hard_delete"`` deleted it; now the mark is cleared once the link is saved, and a found account
counts as the bridge's only when made around the mark under a username the bridge would give)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import text

from scim_bridge.settings import GroupRule
from tests.conftest import entra_user
from tests.e2e.test_ownership import PROVIDER
from tests.e2e.test_ownership import Untouched
from tests.e2e.test_ownership import refused
from tests.e2e.test_ownership import writes_to

OID = "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"
DEVELOPER, MAINTAINER, OWNER, REPORTER = 30, 40, 50, 20
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"


@pytest.fixture
def bridge(make_bridge: Any, gitlab: Any) -> Any:
    return make_bridge(gitlab)


@pytest.fixture
def live(bridge: Any, serve: Any) -> Any:
    return serve(bridge)


def gitlab_writes_to(gitlab: Any, user_id: int) -> list[str]:
    return writes_to(gitlab, user_id)


def with_email(user_name: str, email: str, **overrides: Any) -> dict[str, Any]:
    body = entra_user(user_name, **overrides)
    body["emails"] = [{"primary": True, "type": "work", "value": email}]
    return body


# -- Two SCIM users racing for one adoptable account -------------------------------------------


@pytest.mark.parametrize("loser_active", [True, False])
def test_two_scim_users_racing_to_adopt_one_account_write_it_only_for_the_winner(
    live: Any, bridge: Any, gitlab: Any, loser_active: bool
) -> None:
    """Both creates are refused by GitLab (email taken), both look the account up while neither
    link is saved, both find it adoptable. The loser must not leave its identity (its Entra object
    id) on the account the winner is linked to: SSO of the loser would land in the winner's account."""
    existing = gitlab.add_user("jdoe", "jane.doe@contoso.com", name="J. Doe")
    path = rf"^/api/v4/users/{existing['id']}$"
    # The first PUT to the account (A's name update) is slow: B overtakes A in the meantime.
    hold = threading.Event()
    gitlab.faults.add(method="PUT", path_pattern=path, hold=hold, times=1)
    results: dict[str, Any] = {}

    def post(key: str, user_name: str, oid: str, active: bool = True) -> None:
        body = with_email(user_name, "jane.doe@contoso.com", externalId=oid, active=active)
        results[key] = live.post("/Users", body)

    a = threading.Thread(target=post, args=("a", "jane.a@contoso.com", "oid-a", loser_active))
    a.start()
    # Wait until A's PUT is held in GitLab, then send B; release A once B is done.
    for _ in range(500):
        if gitlab.held():
            break
        threading.Event().wait(0.01)
    b = threading.Thread(target=post, args=("b", "jane.b@contoso.com", "oid-b"))
    b.start()
    b.join(timeout=4)
    hold.set()
    a.join()
    b.join()
    bridge.run_worker()
    statuses = {k: r.status_code for k, r in results.items()}
    links = [
        link
        for link in bridge.bridge.links.all()
        if link.gitlab_user_id == existing["id"] and link.retired_at is None
    ]
    assert len(links) == 1, (statuses, links)
    winner = links[0]
    winner_oid = {results["a"].json().get("id"): "oid-a", results["b"].json().get("id"): "oid-b"}[
        winner.user_id
    ]
    account = gitlab.user(existing["id"])
    writes = [
        (f"{r.method} {r.path}", r.json)
        for r in gitlab.requests
        if r.method != "GET" and r.path.startswith(f"/api/v4/users/{existing['id']}")
    ]
    winner_active = loser_active if winner_oid == "oid-a" else True
    loser = "b" if winner_oid == "oid-a" else "a"
    problems = []
    if account["identities"] != [{"provider": PROVIDER, "extern_uid": winner_oid}]:
        problems.append(f"identity {account['identities']} on the account linked to {winner_oid}")
    if (account["state"] == "active") != winner_active:
        problems.append(
            f"account {account['state']} though its linked user's active is {winner_active}"
        )
    loser_oid = {"a": "oid-a", "b": "oid-b"}[loser]
    if any(loser_oid in str(body) for _, body in writes):
        problems.append("the losing run wrote to the account")
    assert statuses[loser] == 409, statuses
    assert problems == [], (statuses, problems, writes)


def test_a_losing_adoption_race_never_moves_the_winners_email(
    live: Any, bridge: Any, gitlab: Any
) -> None:
    """The same race by identity: the victim's SCIM user and an attacker's one carry the same
    externalId (object ids are not secrets), the attacker with its own address. The victim wins
    the link; the attacker's losing run must not make its address the account's primary email
    (a password reset would then hand it the victim's account)."""
    victim = gitlab.add_user(
        "victim",
        "victim@contoso.com",
        name="Victim",
        identities=[{"provider": PROVIDER, "extern_uid": "oid-v"}],
    )
    hold = threading.Event()
    gitlab.faults.add(
        method="PUT", path_pattern=rf"^/api/v4/users/{victim['id']}$", hold=hold, times=1
    )
    results: dict[str, Any] = {}

    def post(key: str, body: dict[str, Any]) -> None:
        results[key] = live.post("/Users", body)

    attacker = with_email("mallory@contoso.com", "mallory@attacker.example", externalId="oid-v")
    a = threading.Thread(target=post, args=("attacker", attacker))
    a.start()
    for _ in range(500):
        if gitlab.held():
            break
        threading.Event().wait(0.01)
    post("victim", with_email("victim@contoso.com", "victim@contoso.com", externalId="oid-v"))
    hold.set()
    a.join()
    bridge.run_worker()
    statuses = {k: r.status_code for k, r in results.items()}
    (link,) = [
        link
        for link in bridge.bridge.links.all()
        if link.gitlab_user_id == victim["id"] and link.retired_at is None
    ]
    emails = {"attacker": "mallory@attacker.example", "victim": "victim@contoso.com"}
    (winner,) = [k for k, r in results.items() if r.status_code == 201]
    (loser,) = [k for k in results if k != winner]
    assert link.user_id == results[winner].json()["id"], statuses
    assert statuses[loser] == 409, statuses
    account = gitlab.user(victim["id"])
    writes = [
        (f"{r.method} {r.path}", r.json)
        for r in gitlab.requests
        if r.method != "GET" and r.path.startswith(f"/api/v4/users/{victim['id']}")
    ]
    # The identity is Entra's word (DESIGN.md: an account with exactly the same extern_uid is
    # adoptable), so the first to claim it adopts it; the loser writes nothing at all.
    assert account["email"] == emails[winner], (statuses, writes)
    assert not any(emails[loser] in str(body) for _, body in writes), (statuses, writes)


# -- "created" origin laundering: delete/hard_delete on an account the bridge did not create ----


def test_a_create_mark_left_by_a_failed_create_never_makes_a_later_account_the_bridges(
    make_bridge: Any, gitlab: Any, serve: Any
) -> None:
    """GitLab fails the bridge's create once (5xx or 429: a burst of requests is enough), so the
    "create in progress" mark stays. Before the retry, a person's account with the user's email
    appears in GitLab (self sign-up, an admin). The retry finds it by email: it may be adopted,
    but it is not the bridge's, so a DELETE must block it, never delete it."""
    bridge = make_bridge(gitlab, users={"on_delete": "hard_delete"})
    live = serve(bridge)
    gitlab.faults.add(method="POST", path_pattern=r"^/api/v4/users$", status=503, times=1)
    body = entra_user("newhire@contoso.com")
    del body["externalId"]
    created = live.post("/Users", body)
    assert created.status_code == 201, created.text
    # Not a name the bridge would give: a person's own account, not a lost create of the bridge.
    person = gitlab.add_user("hire.person", "newhire@contoso.com", name="Someone Else")
    bridge.run_worker()
    user_id = created.json()["id"]
    link = bridge.bridge.links.get(user_id)
    assert link is not None and link.gitlab_user_id == person["id"]
    assert live.delete(f"/Users/{user_id}").status_code == 204
    bridge.run_worker()
    assert gitlab.user(person["id"]) is not None, f"{link.origin} account hard-deleted"
    assert gitlab.calls("DELETE", f"/api/v4/users/{person['id']}") == []


def test_an_old_create_mark_never_vouches_for_another_account_after_the_own_one_is_gone(
    make_bridge: Any, gitlab: Any, serve: Any
) -> None:
    """The mark of the bridge's successful create stays on the link. The account is later
    deleted in GitLab by hand; the attacker points the SCIM user's email at a colleague's account
    (made after that create) and drops externalId. The re-provisioning finds the colleague's
    account by email and must not call it the bridge's own: DELETE must not delete it."""
    bridge = make_bridge(gitlab, users={"on_delete": "hard_delete"})
    live = serve(bridge)
    body = entra_user("mallory@contoso.com")
    del body["externalId"]
    created = live.post("/Users", body)
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    own = gitlab.user_by_username("mallory")
    assert own is not None
    gitlab.remove_user(own["id"])  # removed by a GitLab admin
    victim = gitlab.add_user("victim", "victim@contoso.com", name="Victim")
    patched = live.patch(
        f"/Users/{user_id}",
        [{"op": "Replace", "path": 'emails[type eq "work"].value', "value": "victim@contoso.com"}],
    )
    assert patched.status_code == 200, patched.text
    bridge.run_worker()
    link = bridge.bridge.links.get(user_id)
    assert link is not None
    assert live.delete(f"/Users/{user_id}").status_code == 204
    bridge.run_worker()
    assert gitlab.user(victim["id"]) is not None, f"victim's account ({link.origin}) hard-deleted"
    assert gitlab.calls("DELETE", f"/api/v4/users/{victim['id']}") == []


# -- Write-time re-checks: an account promoted to administrator after it was linked ------------


def promote(gitlab: Any, user_id: int) -> None:
    """An instance admin makes the account an administrator, behind the bridge's back."""
    with gitlab.state.lock:
        gitlab.state.users[user_id].is_admin = True


ATTACKS = [
    [{"op": "Replace", "path": "displayName", "value": "Pwned"}],
    [{"op": "Replace", "path": "externalId", "value": "attacker-oid"}],
    [{"op": "Replace", "path": 'emails[type eq "work"].value', "value": "evil@attacker.example"}],
    [{"op": "Replace", "path": "userName", "value": "someone.else@contoso.com"}],
    # Entra's other dialects: no path, URN-qualified paths, "False" as a string.
    [{"op": "Replace", "value": {"displayName": "Pwned 2", "active": "False"}}],
    [
        {
            "op": "Replace",
            "path": "urn:ietf:params:scim:schemas:core:2.0:User:userName",
            "value": "third@contoso.com",
        }
    ],
    [{"op": "Replace", "path": "active", "value": "False"}],
]


@pytest.mark.parametrize("policy", ["block", "hard_delete"])
def test_an_account_promoted_to_admin_after_linking_is_never_written(
    make_bridge: Any, gitlab: Any, serve: Any, policy: str
) -> None:
    bridge = make_bridge(gitlab, users={"on_delete": policy})
    live = serve(bridge)
    created = live.post("/Users", entra_user("pat@contoso.com", externalId="oid-pat"))
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    (account,) = gitlab.users_with_identity(PROVIDER, "oid-pat")
    promote(gitlab, account["id"])
    untouched = Untouched(gitlab, account["id"])
    for operations in ATTACKS:
        response = live.patch(f"/Users/{user_id}", operations)
        assert response.status_code == 200, response.text
        untouched.check()
    put = entra_user("fourth@contoso.com", externalId="oid-put", active=False)
    assert live.request("PUT", f"/Users/{user_id}", put).status_code == 200
    untouched.check()
    assert live.delete(f"/Users/{user_id}").status_code == 204
    bridge.run_worker()
    untouched.check()


def test_the_worker_replaying_a_block_after_the_account_became_admin_does_not_block_it(
    bridge: Any, live: Any, gitlab: Any
) -> None:
    created = live.post("/Users", entra_user("pat@contoso.com", externalId="oid-pat"))
    user_id = created.json()["id"]
    (account,) = gitlab.users_with_identity(PROVIDER, "oid-pat")
    gitlab.down(status=503)
    deactivate = [{"op": "Replace", "path": "active", "value": "False"}]
    assert live.patch(f"/Users/{user_id}", deactivate).status_code == 200  # queued for the worker
    gitlab.up()
    promote(gitlab, account["id"])
    untouched = Untouched(gitlab, account["id"])
    bridge.run_worker()
    untouched.check()


# -- Renames into protected names, and into an admin's name -------------------------------------


@pytest.mark.parametrize(
    "user_name",
    [
        "SVC-Deploy@contoso.com",
        "svc-deploy.@contoso.com",
        "_svc-deploy_@contoso.com",
        "svc-deploy",
        "svc-deploy..@x",
        "-svc-deploy-@fabrikam.com",
    ],
)
def test_no_create_or_rename_lands_on_a_protected_name_no_account_holds(
    make_bridge: Any, gitlab: Any, serve: Any, user_name: str
) -> None:
    bridge = make_bridge(gitlab, users={"protected_usernames": ("root", "svc-deploy")})
    live = serve(bridge)
    made = live.post("/Users", with_email(user_name, "new@contoso.com", externalId="oid-new"))
    assert made.status_code == 201, made.text
    (new,) = gitlab.users_with_identity(PROVIDER, "oid-new")
    assert new["username"].lower() != "svc-deploy"
    other = live.post("/Users", entra_user("pat@contoso.com", externalId="oid-pat")).json()
    renamed = user_name.split("@")[0] + "@rename.example"
    response = live.patch(
        f"/Users/{other['id']}", [{"op": "Replace", "path": "userName", "value": renamed}]
    )
    assert response.status_code == 200, response.text
    (pat,) = gitlab.users_with_identity(PROVIDER, "oid-pat")
    assert pat["username"].lower() != "svc-deploy"
    assert all(u["username"].lower() != "svc-deploy" for u in gitlab.users())


def test_a_put_renaming_into_an_admins_username_never_touches_the_admin(
    live: Any, gitlab: Any
) -> None:
    admin = gitlab.add_user("alice", "alice@contoso.com", is_admin=True)
    untouched = Untouched(gitlab, admin["id"])
    created = live.post("/Users", entra_user("pat@contoso.com", externalId="oid-pat")).json()
    body = entra_user("ALICE@contoso.com", externalId="oid-pat")
    body["emails"] = [{"primary": True, "type": "work", "value": "pat@contoso.com"}]
    assert live.request("PUT", f"/Users/{created['id']}", body).status_code == 200
    (pat,) = gitlab.users_with_identity(PROVIDER, "oid-pat")
    assert pat["username"].lower() != "alice" and not pat["is_admin"]
    untouched.check()


# -- Attribute changes on an owned account that collide with an admin ---------------------------


def test_an_adopted_accounts_email_changed_to_an_admins_touches_neither_admin_nor_address(
    live: Any, bridge: Any, gitlab: Any
) -> None:
    admin = gitlab.add_user("alice", "alice@contoso.com", is_admin=True)
    untouched = Untouched(gitlab, admin["id"])
    jdoe = gitlab.add_user("jdoe", "jane.doe@contoso.com", name="J. Doe")
    adopted = live.post("/Users", entra_user("Jane.Doe@contoso.com", externalId=OID))
    assert adopted.status_code == 201, adopted.text
    for value in ("alice@contoso.com", "ALICE@Contoso.com"):
        response = live.patch(
            f"/Users/{adopted.json()['id']}",
            [{"op": "Replace", "path": 'emails[type eq "work"].value', "value": value}],
        )
        assert response.status_code in (200, 409), response.text
    bridge.run_worker()
    untouched.check()
    assert gitlab.user(jdoe["id"])["email"] == "jane.doe@contoso.com"


def test_an_external_id_changed_to_an_admins_extern_uid_never_touches_the_admin(
    live: Any, bridge: Any, gitlab: Any
) -> None:
    admin = gitlab.add_user(
        "alice",
        "alice@contoso.com",
        is_admin=True,
        identities=[{"provider": PROVIDER, "extern_uid": "admin-oid"}],
    )
    untouched = Untouched(gitlab, admin["id"])
    created = live.post("/Users", entra_user("pat@contoso.com", externalId="oid-pat")).json()
    for value in ("admin-oid", "ADMIN-OID"):
        response = live.patch(
            f"/Users/{created['id']}", [{"op": "Replace", "path": "externalId", "value": value}]
        )
        assert response.status_code in (200, 409), response.text
    bridge.run_worker()
    untouched.check()
    assert gitlab.users_with_identity(PROVIDER, "admin-oid")[0]["id"] == admin["id"]


def test_an_unlinked_user_pointed_at_an_admins_identity_is_refused_by_the_worker(
    live: Any, bridge: Any, gitlab: Any
) -> None:
    """The create fails transiently (its "in progress" mark stays), then the attacker points the
    SCIM user at an admin made after that mark: externalId and email. The retry looks up first."""
    gitlab.faults.add(method="POST", path_pattern=r"^/api/v4/users$", status=503, times=1)
    created = live.post("/Users", entra_user("mallory@contoso.com", externalId="oid-m"))
    assert created.status_code == 201
    admin = gitlab.add_user(
        "alice",
        "alice@contoso.com",
        is_admin=True,
        identities=[{"provider": PROVIDER, "extern_uid": "admin-oid"}],
    )
    untouched = Untouched(gitlab, admin["id"])
    response = live.patch(
        f"/Users/{created.json()['id']}",
        [
            {"op": "Replace", "path": "externalId", "value": "admin-oid"},
            {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "alice@contoso.com"},
            {"op": "Replace", "path": "active", "value": "False"},
        ],
    )
    assert response.status_code in (200, 409), response.text
    bridge.run_worker()
    untouched.check()
    link = bridge.bridge.links.get(created.json()["id"])
    assert link is None or link.gitlab_user_id != admin["id"]


# -- Memberships: what existed before the bridge is never lowered nor removed -------------------


def rules_bridge(make_bridge: Any, gitlab: Any, serve: Any) -> tuple[Any, Any]:
    gitlab.add_group("acme")
    gitlab.add_group("acme/engineering")
    rules = (
        GroupRule(None, "GitLab Developers", "acme/engineering", DEVELOPER),
        GroupRule(None, "GitLab Leads", "acme/engineering", MAINTAINER),
    )
    bridge = make_bridge(gitlab, groups={"rules": rules})
    return bridge, serve(bridge)


def scim_group(name: str, *members: str) -> dict[str, Any]:
    return {
        "schemas": [GROUP_SCHEMA],
        "displayName": name,
        "members": [{"value": m} for m in members],
    }


def levels(gitlab: Any, path: str) -> dict[int, int]:
    return {m["user_id"]: m["access_level"] for m in gitlab.members(path)}


def member_writes(gitlab: Any) -> list[str]:
    return [
        f"{r.method} {r.path}"
        for r in gitlab.requests
        if r.method != "GET" and "/members" in r.path
    ]


def in_place_then_granted(make_bridge: Any, gitlab: Any, serve: Any, level: int) -> tuple[Any, ...]:
    """jdoe, a member of acme/engineering at ``level`` before the bridge, then adopted by a SCIM
    user put in "GitLab Developers" and "GitLab Leads": (bridge, live, jdoe, the SCIM user, the
    developers' group, the leads' group)."""
    bridge, live = rules_bridge(make_bridge, gitlab, serve)
    jdoe = gitlab.add_user("jdoe", "jane.doe@contoso.com", name="J. Doe")
    gitlab.add_member("acme/engineering", jdoe["id"], level)
    adopted = live.post("/Users", entra_user("Jane.Doe@contoso.com", externalId=OID)).json()
    devs = live.post("/Groups", scim_group("GitLab Developers", adopted["id"])).json()
    leads = live.post("/Groups", scim_group("GitLab Leads", adopted["id"])).json()
    bridge.run_worker()
    return bridge, live, jdoe, adopted, devs, leads


def test_a_higher_membership_found_in_place_survives_grants_group_delete_and_user_delete(
    make_bridge: Any, gitlab: Any, serve: Any
) -> None:
    bridge, live, jdoe, adopted, group, leads = in_place_then_granted(
        make_bridge, gitlab, serve, OWNER
    )
    assert levels(gitlab, "acme/engineering") == {jdoe["id"]: OWNER}
    remove = [{"op": "Remove", "path": f'members[value eq "{adopted["id"]}"]'}]
    assert live.patch(f"/Groups/{leads['id']}", remove).status_code in (200, 204)
    assert live.delete(f"/Groups/{group['id']}").status_code == 204
    assert live.delete(f"/Users/{adopted['id']}").status_code == 204
    bridge.run_worker()
    assert levels(gitlab, "acme/engineering") == {jdoe["id"]: OWNER}
    assert member_writes(gitlab) == []


def test_a_lower_membership_found_in_place_is_raised_then_restored_never_removed(
    make_bridge: Any, gitlab: Any, serve: Any
) -> None:
    bridge, live, jdoe, adopted, devs, leads = in_place_then_granted(
        make_bridge, gitlab, serve, REPORTER
    )
    assert levels(gitlab, "acme/engineering") == {jdoe["id"]: MAINTAINER}
    remove = [{"op": "Remove", "path": f'members[value eq "{adopted["id"]}"]'}]
    assert live.patch(f"/Groups/{leads['id']}", remove).status_code in (200, 204)
    bridge.run_worker()
    assert levels(gitlab, "acme/engineering") == {jdoe["id"]: DEVELOPER}
    # Entra's "replace members with none" (no path), then the user goes.
    empty = [{"op": "Replace", "value": {"members": []}}]
    assert live.patch(f"/Groups/{devs['id']}", empty).status_code in (200, 204)
    bridge.run_worker()
    assert levels(gitlab, "acme/engineering") == {jdoe["id"]: REPORTER}
    assert live.delete(f"/Users/{adopted['id']}").status_code == 204
    bridge.run_worker()
    assert levels(gitlab, "acme/engineering") == {jdoe["id"]: REPORTER}
    assert not any(w.startswith("DELETE") for w in member_writes(gitlab))


def test_an_operator_linked_admins_owner_membership_is_never_lowered(
    make_bridge: Any, gitlab: Any, serve: Any
) -> None:
    bridge, live = rules_bridge(make_bridge, gitlab, serve)
    admin = gitlab.add_user("alice", "alice@contoso.com", is_admin=True)
    gitlab.add_member("acme/engineering", admin["id"], OWNER)
    untouched = Untouched(gitlab, admin["id"])
    bridge.bridge.links.add_pending("alice@contoso.com", admin["id"], "alice")  # users link
    user = live.post("/Users", entra_user("alice@contoso.com", externalId=OID))
    assert user.status_code == 201, user.text
    user_id = user.json()["id"]
    group = live.post("/Groups", scim_group("GitLab Developers", user_id)).json()
    bridge.run_worker()
    assert levels(gitlab, "acme/engineering") == {admin["id"]: OWNER}
    assert live.delete(f"/Groups/{group['id']}").status_code == 204
    assert live.delete(f"/Users/{user_id}").status_code == 204
    bridge.run_worker()
    assert levels(gitlab, "acme/engineering") == {admin["id"]: OWNER}
    assert member_writes(gitlab) == []
    untouched.check()


def test_a_deleted_users_id_added_to_a_group_grants_nothing(
    make_bridge: Any, gitlab: Any, serve: Any
) -> None:
    """The deleted user's link is retired, not gone: a group member naming the deleted id must
    not bring a grant back to the (blocked) account."""
    bridge, live = rules_bridge(make_bridge, gitlab, serve)
    user = live.post("/Users", entra_user("pat@contoso.com", externalId="oid-pat")).json()
    (pat,) = gitlab.users_with_identity(PROVIDER, "oid-pat")
    assert live.delete(f"/Users/{user['id']}").status_code == 204
    created = live.post("/Groups", scim_group("GitLab Developers", user["id"]))
    group = (
        live.post("/Groups", scim_group("GitLab Developers")).json()
        if created.status_code >= 400
        else created.json()
    )
    add = [{"op": "Add", "path": "members", "value": [{"value": user["id"]}]}]
    live.patch(f"/Groups/{group['id']}", add)
    bridge.run_worker()
    assert pat["id"] not in levels(gitlab, "acme/engineering")
    assert member_writes(gitlab) == []


def test_a_post_with_an_admins_extern_uid_in_another_case_never_touches_the_admin(
    live: Any, bridge: Any, gitlab: Any
) -> None:
    admin = gitlab.add_user(
        "alice",
        "alice@contoso.com",
        is_admin=True,
        identities=[{"provider": PROVIDER, "extern_uid": "admin-oid"}],
    )
    untouched = Untouched(gitlab, admin["id"])
    response = live.post("/Users", entra_user("alice@contoso.com", externalId="ADMIN-OID"))
    refused(response)
    bridge.run_worker()
    untouched.check()


# -- Created groups never land on a group the bridge did not create -----------------------------


@pytest.mark.parametrize("display_name", ["Secret", "SECRET", "secret!", " Secret "])
def test_an_unmapped_group_named_like_an_existing_group_gets_its_own(
    make_bridge: Any, gitlab: Any, serve: Any, display_name: str
) -> None:
    gitlab.add_group("entra")
    gitlab.add_group("entra/secret")
    keeper = gitlab.add_user("keeper", "keeper@contoso.com")
    gitlab.add_member("entra/secret", keeper["id"], OWNER)
    bridge = make_bridge(gitlab, groups={"unmapped": "create", "default_access_level": OWNER})
    live = serve(bridge)
    user = live.post("/Users", entra_user("pat@contoso.com", externalId="oid-pat")).json()
    (pat,) = gitlab.users_with_identity(PROVIDER, "oid-pat")
    response = live.post("/Groups", scim_group(display_name, user["id"]))
    assert response.status_code == 201, response.text
    bridge.run_worker()
    assert levels(gitlab, "entra/secret") == {keeper["id"]: OWNER}
    owned = [g for g in ("entra/secret-1",) if gitlab.group(g)]
    assert owned and levels(gitlab, owned[0]).get(pat["id"]) == OWNER


# -- A group the bridge created, deleted by hand, and made again by someone else ---------------


class EngGroup:
    """With ``unmapped = "create"``: pat in the Entra group "Eng", whose GitLab group the bridge
    made at entra/eng; sam provisioned, to be added later."""

    def __init__(self, make_bridge: Any, gitlab: Any, serve: Any, **groups: Any) -> None:
        gitlab.add_group("entra")
        self.gitlab = gitlab
        self.bridge = make_bridge(gitlab, groups={"unmapped": "create", **groups})
        self.live = serve(self.bridge)
        pat = self.live.post("/Users", entra_user("pat@contoso.com", externalId="oid-pat")).json()
        self.sam = self.live.post("/Users", entra_user("sam@contoso.com", externalId="oid-sam"))
        self.group = self.live.post("/Groups", scim_group("Eng", pat["id"])).json()
        self.bridge.run_worker()
        (self.pat_account,) = gitlab.users_with_identity(PROVIDER, "oid-pat")

    def add_sam(self) -> None:
        added = self.live.patch(
            f"/Groups/{self.group['id']}",
            [{"op": "Add", "path": "members", "value": [{"value": self.sam.json()["id"]}]}],
        )
        assert added.status_code in (200, 204), added.text
        self.bridge.run_worker()

    def sam_is_a_member_of_the_recorded_group(self) -> bool:
        (sam_account,) = self.gitlab.users_with_identity(PROVIDER, "oid-sam")
        recorded = self.bridge.bridge.group_targets.created_id("entra/eng")
        return bool(
            sam_account["id"] in levels(self.gitlab, "entra/eng")
            and recorded == self.gitlab.group("entra/eng")["id"]
        )


def test_a_group_someone_else_made_where_the_bridges_was_is_never_filled(
    make_bridge: Any, gitlab: Any, serve: Any
) -> None:
    eng = EngGroup(make_bridge, gitlab, serve, default_access_level=OWNER)
    assert levels(gitlab, "entra/eng")[eng.pat_account["id"]] == OWNER
    gitlab.remove_group("entra/eng")  # by a GitLab administrator
    theirs = gitlab.add_group("entra/eng")  # someone else's group, at the same path
    keeper = gitlab.add_user("keeper", "keeper@contoso.com")
    gitlab.add_member("entra/eng", keeper["id"], OWNER)
    gitlab.clear_requests()

    eng.add_sam()

    assert levels(gitlab, "entra/eng") == {keeper["id"]: OWNER}
    assert [r for r in gitlab.requests if r.method != "GET" and str(theirs["id"]) in r.path] == []
    parked = [job for job in eng.bridge.bridge.queue.list() if job.entity_id == "entra/eng"]
    assert parked and "not the group the bridge created" in (parked[0].last_error or "")


def test_a_deleted_group_of_the_bridges_is_made_again_and_filled(
    make_bridge: Any, gitlab: Any, serve: Any
) -> None:
    eng = EngGroup(make_bridge, gitlab, serve)
    gitlab.remove_group("entra/eng")  # by a GitLab administrator; nobody makes another
    eng.add_sam()
    assert eng.sam_is_a_member_of_the_recorded_group()


def test_a_group_created_before_ids_were_recorded_is_recorded_when_next_found(
    make_bridge: Any, gitlab: Any, serve: Any
) -> None:
    eng = EngGroup(make_bridge, gitlab, serve)
    with eng.bridge.bridge.db.transaction(write=True) as tx:  # as a database from before 0012
        tx.connection.execute(text("DELETE FROM created_groups"))
    eng.add_sam()
    assert eng.sam_is_a_member_of_the_recorded_group()
