"""Ownership over HTTP: a SCIM credential never reaches an account the bridge does not own.

Each test drives the bridge the way an attacker holding a SCIM credential would, and asserts
GitLab's side after every step: the account's username, name, email, identities and state are
exactly as before, and no write request touched it (DESIGN.md, Ownership).
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest

from scim_bridge import clock
from scim_bridge.settings import GroupRule
from scim_bridge.store import audit
from scim_bridge.store.links import UserLink
from scim_bridge.token_vault import new_key
from tests.conftest import ADMIN_TOKEN
from tests.conftest import cli_environment
from tests.conftest import entra_user
from tests.conftest import run_cli

PROVIDER = "openid_connect"
OID = "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"
DEVELOPER = 30
KEPT = ("username", "name", "email", "identities", "state", "is_admin", "emails")


def snapshot(gitlab: Any, user_id: int) -> dict[str, Any]:
    """What the bridge must never change on an account it does not own."""
    account = gitlab.user(user_id)
    assert account is not None
    return {key: account[key] for key in KEPT}


def writes_to(gitlab: Any, user_id: int) -> list[str]:
    """Write requests aimed at the account itself (memberships are not the account)."""
    prefix = f"/api/v4/users/{user_id}"
    return [
        f"{r.method} {r.path}"
        for r in gitlab.requests
        if r.method != "GET" and (r.path == prefix or r.path.startswith(f"{prefix}/"))
    ]


def gitlab_writes(gitlab: Any) -> list[str]:
    """Writes GitLab carried out; a create it refused (the email or identity is taken) is not one,
    and :func:`refused_creates` accounts for those."""
    return [f"{r.method} {r.path}" for r in gitlab.requests if r.method != "GET" and r.status < 400]


def refused_creates(gitlab: Any) -> list[int]:
    """The statuses of every `POST /users`: the bridge creates first, GitLab refuses a taken
    email (409) or identity (400), and then the ownership rules decide."""
    return [r.status for r in gitlab.calls("POST", "/api/v4/users")]


class Untouched:
    """An account whose every attribute and state must stay as it was."""

    def __init__(self, gitlab: Any, user_id: int) -> None:
        self.gitlab = gitlab
        self.user_id = user_id
        self.before = snapshot(gitlab, user_id)

    def check(self) -> None:
        assert snapshot(self.gitlab, self.user_id) == self.before
        assert writes_to(self.gitlab, self.user_id) == []


def refused(response: Any, *words: str) -> dict[str, Any]:
    assert response.status_code == 409, response.text
    error: dict[str, Any] = response.json()
    assert error["status"] == "409" and error["scimType"] == "uniqueness"
    for word in words:
        assert word in error["detail"], error["detail"]
    return error


@pytest.fixture
def bridge(make_bridge: Any, gitlab: Any) -> Any:
    return make_bridge(gitlab)


@pytest.fixture
def live(bridge: Any, serve: Any) -> Any:
    return serve(bridge)


def stored_users(live: Any) -> int:
    return int(live.get("/Users").json()["totalResults"])


# -- Adoption by email ----------------------------------------------------------------------


@pytest.mark.parametrize("state", ["active", "blocked"])
def test_an_admin_with_the_same_email_is_refused_and_untouched(
    live: Any, bridge: Any, gitlab: Any, state: str
) -> None:
    admin = gitlab.add_user("alice", "alice@contoso.com", name="Alice Admin", is_admin=True)
    gitlab.set_user_state(admin["id"], state)
    untouched = Untouched(gitlab, admin["id"])
    response = live.post("/Users", entra_user("alice@contoso.com", externalId=OID))
    refused(
        response,
        "'alice'",
        "held by a GitLab administrator",
        "scim-bridge users link alice@contoso.com alice",
    )
    assert stored_users(live) == 0, "a refused create stores nothing"
    untouched.check()
    bridge.run_worker()
    untouched.check()
    assert gitlab_writes(gitlab) == [], "nothing at all was written to GitLab"
    assert refused_creates(gitlab) == [409] * len(refused_creates(gitlab)) != []
    assert len(gitlab.users()) == 2, "root and the admin: no second account"


def test_root_itself_is_refused(live: Any, gitlab: Any) -> None:
    untouched = Untouched(gitlab, 1)
    refused(live.post("/Users", entra_user("admin@example.com", externalId=OID)), "'root'")
    untouched.check()


@pytest.mark.parametrize(
    "user_type", ["project_bot", "service_account", "ghost", "support_bot", "alert_bot"]
)
def test_bots_internal_and_service_accounts_are_never_adopted(
    live: Any, gitlab: Any, user_type: str
) -> None:
    machine = gitlab.add_user("support", "support@contoso.com", user_type=user_type)
    untouched = Untouched(gitlab, machine["id"])
    response = live.post("/Users", entra_user("support@contoso.com", externalId=OID))
    refused(response, "a bot, internal or service account")
    untouched.check()
    assert gitlab_writes(gitlab) == []
    assert refused_creates(gitlab) == [409]


def test_an_account_linked_to_another_scim_user_is_not_adopted(live: Any, gitlab: Any) -> None:
    first = live.post("/Users", entra_user("jane@contoso.com", externalId="oid-jane"))
    assert first.status_code == 201
    (account,) = gitlab.users_with_identity(PROVIDER, "oid-jane")
    untouched = Untouched(gitlab, account["id"])
    gitlab.clear_requests()
    # Another SCIM user with the same address: the account is jane's, not a free one to adopt.
    second = entra_user("jane.other@contoso.com", externalId="oid-other")
    second["emails"] = [{"primary": True, "type": "work", "value": "jane@contoso.com"}]
    refused(live.post("/Users", second), "linked to another SCIM user")
    untouched.check()


def test_an_ordinary_account_without_identity_is_adopted_as_before(
    live: Any, bridge: Any, gitlab: Any
) -> None:
    existing = gitlab.add_user("jdoe", "jane.doe@contoso.com", name="J. Doe")
    response = live.post("/Users", entra_user("Jane.Doe@contoso.com", externalId=OID))
    assert response.status_code == 201, response.text
    account = gitlab.user(existing["id"])
    assert account["username"] == "jdoe"
    assert account["name"] == "Jane Doe"
    assert account["identities"] == [{"provider": PROVIDER, "extern_uid": OID}]
    assert refused_creates(gitlab) == [409], "the create GitLab refused, then the adoption"
    assert len(gitlab.users()) == 2
    link = bridge.bridge.links.get(response.json()["id"])
    assert link is not None and link.origin == "adopted" and link.gitlab_user_id == existing["id"]


# -- Identity matches -------------------------------------------------------------------------


@pytest.mark.parametrize("link_existing", ["email", "never"])
def test_an_admins_extern_uid_is_refused_and_untouched(
    make_bridge: Any, gitlab: Any, serve: Any, link_existing: str
) -> None:
    live = serve(make_bridge(gitlab, users={"link_existing": link_existing}))
    admin = gitlab.add_user(
        "alice",
        "alice@contoso.com",
        is_admin=True,
        identities=[{"provider": PROVIDER, "extern_uid": OID}],
    )
    untouched = Untouched(gitlab, admin["id"])
    # Another name and address: the object id alone must not hand over the account.
    response = live.post("/Users", entra_user("mallory@contoso.com", externalId=OID))
    refused(response, "'alice'", f"the {PROVIDER} identity {OID}")
    assert stored_users(live) == 0
    untouched.check()
    assert gitlab_writes(gitlab) == []
    assert refused_creates(gitlab) == [400], "GitLab refuses a second holder of the identity"
    assert len(gitlab.users()) == 2


def test_an_ordinary_accounts_extern_uid_with_link_existing_never_is_refused(
    make_bridge: Any, gitlab: Any, serve: Any
) -> None:
    live = serve(make_bridge(gitlab, users={"link_existing": "never"}))
    someone = gitlab.add_user(
        "sam", "sam@contoso.com", identities=[{"provider": PROVIDER, "extern_uid": OID}]
    )
    untouched = Untouched(gitlab, someone["id"])
    refused(live.post("/Users", entra_user("sam@contoso.com", externalId=OID)), "never")
    untouched.check()


def test_a_post_without_external_id_is_refused_on_an_admin_with_an_identity(
    live: Any, gitlab: Any
) -> None:
    admin = gitlab.add_user(
        "alice",
        "alice@contoso.com",
        is_admin=True,
        identities=[{"provider": PROVIDER, "extern_uid": "alice-oid"}],
    )
    untouched = Untouched(gitlab, admin["id"])
    body = entra_user("alice@contoso.com")
    del body["externalId"]
    refused(live.post("/Users", body), "held by a GitLab administrator")
    untouched.check()


def test_an_account_with_another_identity_is_not_adopted_without_external_id(
    live: Any, gitlab: Any
) -> None:
    someone = gitlab.add_user(
        "sam", "sam@contoso.com", identities=[{"provider": PROVIDER, "extern_uid": "sam-oid"}]
    )
    untouched = Untouched(gitlab, someone["id"])
    body = entra_user("sam@contoso.com")
    del body["externalId"]
    refused(live.post("/Users", body), f"linked to another {PROVIDER} identity")
    untouched.check()


# -- Links made before the ownership rules (an upgraded database) ------------------------------


def legacy_link(bridge: Any, user_id: str, account: dict[str, Any], user_name: str) -> None:
    """A link as an earlier version left it: the bridge once adopted this account by email."""
    bridge.bridge.links.save(
        UserLink(
            user_id=user_id,
            gitlab_user_id=account["id"],
            gitlab_username=account["username"],
            source_user_name=user_name,
            origin="adopted",
        )
    )


def test_follow_up_writes_on_an_admin_linked_earlier_are_skipped_and_audited(
    live: Any, bridge: Any, gitlab: Any
) -> None:
    admin = gitlab.add_user("alice", "alice@contoso.com", name="Alice Admin", is_admin=True)
    created = live.post("/Users", entra_user("mallory@contoso.com", externalId="oid-mallory"))
    user_id = created.json()["id"]
    legacy_link(bridge, user_id, admin, "mallory@contoso.com")
    untouched = Untouched(gitlab, admin["id"])
    steps = [
        [{"op": "Replace", "path": "externalId", "value": "attacker-oid"}],
        [
            {
                "op": "Replace",
                "path": 'emails[type eq "work"].value',
                "value": "evil@attacker.example.com",
            }
        ],
        [{"op": "Replace", "path": "userName", "value": "alice.renamed@contoso.com"}],
        [{"op": "Replace", "path": "displayName", "value": "Pwned"}],
        [{"op": "Replace", "path": "active", "value": "False"}],
    ]
    for operations in steps:
        response = live.patch(f"/Users/{user_id}", operations)
        assert response.status_code == 200, response.text
        untouched.check()
    assert live.delete(f"/Users/{user_id}").status_code == 204
    bridge.run_worker()
    untouched.check()
    link = bridge.bridge.links.get(user_id)
    assert link is not None and link.origin == "operator"
    events = list(audit.events(bridge.bridge.db))
    demoted = [e for e in events if e["action"] == "user.link.operator"]
    assert [e["detail"]["reason"] for e in demoted] == ["held by a GitLab administrator"]
    skipped = [e["detail"]["skipped"] for e in events if e["action"] == "reconcile.user.skipped"]
    flat = {item for entry in skipped for item in entry}
    assert {"identity", "email", "name", "block", "delete"} <= flat
    assert all(e["target"] == "alice" for e in events if e["action"] == "reconcile.user.skipped")


def test_the_worker_turns_links_to_admins_into_operator_links_at_start(
    bridge: Any, live: Any, gitlab: Any
) -> None:
    admin = gitlab.add_user("alice", "alice@contoso.com", is_admin=True)
    user_id = live.post("/Users", entra_user("mallory@contoso.com")).json()["id"]
    legacy_link(bridge, user_id, admin, "mallory@contoso.com")
    resolution = bridge.bridge.protector.refresh()  # what `scim-bridge worker` does at start
    assert {a.gitlab_user_id for a in resolution.accounts} == {1, admin["id"]}
    link = bridge.bridge.links.get(user_id)
    assert link is not None and link.origin == "operator"
    (event,) = list(audit.events(bridge.bridge.db, action_prefix="user.link.operator"))
    assert event["detail"]["account"] == "alice"


def test_a_protected_account_renamed_is_still_never_blocked_renamed_or_deleted(
    make_bridge: Any, gitlab: Any, serve: Any
) -> None:
    bridge = make_bridge(
        gitlab, users={"protected_usernames": ("root", "deploy"), "on_delete": "hard_delete"}
    )
    live = serve(bridge)
    deploy = gitlab.add_user("deploy", "deploy@contoso.com", name="Deploy")
    user_id = live.post("/Users", entra_user("svc@contoso.com")).json()["id"]
    legacy_link(bridge, user_id, deploy, "svc@contoso.com")
    bridge.bridge.protector.refresh()  # resolved by id at worker start
    # Someone renames the protected account in GitLab: the protection follows the account.
    gitlab.rename_user(deploy["id"], "deploy-old")
    untouched = Untouched(gitlab, deploy["id"])
    # Its old name no longer matches, yet it is still never adopted: protection is by id.
    claim = live.post("/Users", entra_user("deploy@contoso.com", externalId="oid-claim"))
    refused(claim, "'deploy-old'", "protected")
    untouched.check()
    renamed = live.patch(
        f"/Users/{user_id}",
        [{"op": "Replace", "path": "userName", "value": "someone.else@contoso.com"}],
    )
    assert renamed.status_code == 200
    untouched.check()
    disabled = live.patch(
        f"/Users/{user_id}", [{"op": "Replace", "path": "active", "value": False}]
    )
    assert disabled.status_code == 200
    untouched.check()
    assert live.delete(f"/Users/{user_id}").status_code == 204
    bridge.run_worker()
    untouched.check()


def test_the_freed_protected_name_is_never_given_to_a_new_account(
    make_bridge: Any, gitlab: Any, serve: Any
) -> None:
    bridge = make_bridge(gitlab, users={"protected_usernames": ("root", "deploy")})
    live = serve(bridge)
    deploy = gitlab.add_user("deploy", "deploy@contoso.com")
    bridge.bridge.protector.refresh()
    gitlab.rename_user(deploy["id"], "deploy-old")  # the name "deploy" is free in GitLab now
    created = live.post("/Users", entra_user("deploy@fabrikam.com", externalId=OID))
    assert created.status_code == 201, created.text
    (account,) = gitlab.users_with_identity(PROVIDER, OID)
    assert account["username"] == "deploy1", "a protected name takes a suffix like a taken one"
    # It is an ordinary account the bridge created: deprovisioning works as for anyone.
    user_id = created.json()["id"]
    live.patch(f"/Users/{user_id}", [{"op": "Replace", "path": "active", "value": False}])
    assert gitlab.user(account["id"])["state"] == "blocked"
    # And no rename ever lands on the protected name either.
    other = live.post("/Users", entra_user("pat@contoso.com", externalId="oid-pat")).json()
    live.patch(
        f"/Users/{other['id']}",
        [{"op": "Replace", "path": "userName", "value": "Deploy@example.com"}],
    )
    (pat,) = gitlab.users_with_identity(PROVIDER, "oid-pat")
    assert pat["username"].lower() not in {"deploy", "deploy1"}
    assert pat["username"].lower().startswith("deploy")


# -- A refused create acts on nothing ----------------------------------------------------------


def test_a_refused_create_leaves_the_matched_account_untouched_after_the_worker(
    live: Any, bridge: Any, gitlab: Any
) -> None:
    existing = gitlab.add_user("jdoe", "jane.doe@contoso.com", name="J. Doe")
    untouched = Untouched(gitlab, existing["id"])
    body = entra_user("Jane.Doe@contoso.com", externalId=OID, displayName="x" * 300)
    response = live.post("/Users", body)
    assert response.status_code == 400, response.text
    assert response.json()["scimType"] == "invalidValue"
    assert stored_users(live) == 0
    bridge.run_worker()
    assert snapshot(gitlab, existing["id"]) == untouched.before
    assert [w for w in writes_to(gitlab, existing["id"]) if "block" in w or "DELETE" in w] == []
    assert all(link.gitlab_user_id is None for link in bridge.bridge.links.all())
    # The only write was the refused name update; nothing acted on the account afterwards.
    assert writes_to(gitlab, existing["id"]) == [f"PUT /api/v4/users/{existing['id']}"]


# -- Delete policies -----------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["delete", "hard_delete"])
def test_delete_policies_delete_only_accounts_the_bridge_created(
    make_bridge: Any, gitlab: Any, serve: Any, policy: str
) -> None:
    bridge = make_bridge(gitlab, users={"on_delete": policy})
    live = serve(bridge)
    existing = gitlab.add_user("jdoe", "jane.doe@contoso.com", name="J. Doe")
    adopted = live.post("/Users", entra_user("Jane.Doe@contoso.com", externalId=OID)).json()
    created = live.post("/Users", entra_user("new@contoso.com", externalId="oid-new")).json()
    (made,) = gitlab.users_with_identity(PROVIDER, "oid-new")
    assert live.delete(f"/Users/{adopted['id']}").status_code == 204
    assert live.delete(f"/Users/{created['id']}").status_code == 204
    assert gitlab.user(existing["id"])["state"] == "blocked", "adopted: blocked, not deleted"
    assert gitlab.user(made["id"]) is None, "created by the bridge: deleted as the policy says"
    actions = [
        action
        for event in audit.events(bridge.bridge.db, action_prefix="reconcile.user")
        for action in event["detail"].get("actions", [])
    ]
    assert any("applies only to accounts the bridge created" in a for a in actions)


def test_an_account_whose_create_answer_was_lost_is_still_the_bridges_own(
    make_bridge: Any, gitlab: Any, serve: Any
) -> None:
    bridge = make_bridge(gitlab, users={"on_delete": "delete"})
    live = serve(bridge)
    # GitLab creates the account, but the answer never arrives (a timeout).
    gitlab.faults.add(method="POST", path_pattern=r"^/api/v4/users$", latency=3.0, times=1)
    response = live.post("/Users", entra_user("lost@contoso.com", externalId=OID))
    assert response.status_code == 201
    deadline = time.monotonic() + 20
    while not gitlab.users_with_identity(PROVIDER, OID) and time.monotonic() < deadline:
        time.sleep(0.05)  # the double finishes the create the bridge stopped waiting for
    bridge.run_worker()
    assert len(gitlab.calls("POST", "/api/v4/users")) == 1
    (account,) = gitlab.users_with_identity(PROVIDER, OID)
    link = bridge.bridge.links.get(response.json()["id"])
    assert link is not None and link.origin == "created"
    assert live.delete(f"/Users/{response.json()['id']}").status_code == 204
    assert gitlab.user(account["id"]) is None


# -- The operator's link -------------------------------------------------------------------


def cli(database_url: str, gitlab: Any) -> dict[str, str]:
    env = cli_environment(database_url)
    env.update(SCIM_BRIDGE_GITLAB_URL=gitlab.url, SCIM_BRIDGE_GITLAB_TOKEN=ADMIN_TOKEN)
    return env


def admin_and_engineering_rule(make_bridge: Any, gitlab: Any, serve: Any) -> tuple[Any, Any, Any]:
    """A bridge served with a rule granting acme/engineering, and the administrator alice in
    GitLab (not yet linked): the bridge, its live SCIM client, and her account."""
    gitlab.add_group("acme")
    gitlab.add_group("acme/engineering")
    rule = GroupRule(None, "GitLab Developers", "acme/engineering", DEVELOPER)
    bridge = make_bridge(gitlab, groups={"rules": (rule,)})
    live = serve(bridge)
    admin = gitlab.add_user("alice", "alice@contoso.com", name="Alice Admin", is_admin=True)
    return bridge, live, admin


def test_users_link_lets_rules_grant_an_admin_memberships_and_never_writes_the_account(
    make_bridge: Any, gitlab: Any, serve: Any, database_url: str, tmp_path: Path
) -> None:
    bridge, live, admin = admin_and_engineering_rule(make_bridge, gitlab, serve)
    untouched = Untouched(gitlab, admin["id"])
    env = cli(database_url, gitlab)

    # Entra's create is refused until the operator decides.
    refused(live.post("/Users", entra_user("alice@contoso.com", externalId=OID)), "users link")
    done = run_cli(env, "users", "link", "alice@contoso.com", "alice")
    assert "operator link" in done.stdout and "not provisioned yet" in done.stdout

    created = live.post("/Users", entra_user("alice@contoso.com", externalId=OID))
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    untouched.check()
    group = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "GitLab Developers",
        "members": [{"value": user_id}],
    }
    assert live.post("/Groups", group).status_code == 201
    assert {m["user_id"]: m["access_level"] for m in gitlab.members("acme/engineering")} == {
        admin["id"]: DEVELOPER
    }
    for operations in (
        [{"op": "Replace", "path": "displayName", "value": "Renamed"}],
        [{"op": "Replace", "path": 'emails[type eq "work"].value', "value": "x@contoso.com"}],
        [{"op": "Replace", "path": "active", "value": "False"}],
    ):
        assert live.patch(f"/Users/{user_id}", operations).status_code == 200
        untouched.check()
    listed = run_cli(env, "users", "list").stdout
    assert "alice@contoso.com" in listed and "operator" in listed and "admin" in listed
    skipped = list(audit.events(bridge.bridge.db, action_prefix="reconcile.user.skipped"))
    reasons = {e["detail"]["reason"] for e in skipped}
    assert reasons == {"held by a GitLab administrator"}
    assert {"name", "email", "identity", "block"} <= {
        s for e in skipped for s in e["detail"]["skipped"]
    }
    links = [e for e in audit.events(bridge.bridge.db) if e["action"].startswith("user.link")]
    assert links and all(e["actor"].startswith("cli:") for e in links)

    # Deleting the user takes its grants and leaves the account as it is.
    assert live.delete(f"/Users/{user_id}").status_code == 204
    assert gitlab.members("acme/engineering") == []
    untouched.check()


def test_users_link_and_unlink_an_existing_scim_user(
    live: Any, bridge: Any, gitlab: Any, database_url: str
) -> None:
    env = cli(database_url, gitlab)
    deploy = gitlab.add_user("deploy", "deploy@contoso.com")
    user_id = live.post("/Users", entra_user("svc@contoso.com", externalId=OID)).json()["id"]
    (made,) = gitlab.users_with_identity(PROVIDER, OID)
    conflict = run_cli(env, "users", "link", "svc@contoso.com", "deploy", check=False)
    assert conflict.returncode == 2 and "unlink" in conflict.stderr
    run_cli(env, "users", "unlink", "svc@contoso.com")
    assert bridge.bridge.links.get(user_id) is None
    done = run_cli(env, "users", "link", "svc@contoso.com", "deploy")
    assert "linked svc@contoso.com to GitLab account deploy" in done.stdout
    link = bridge.bridge.links.get(user_id)
    assert link is not None and link.origin == "operator" and link.gitlab_user_id == deploy["id"]
    missing = run_cli(env, "users", "link", "svc@contoso.com", "nobody", check=False)
    assert missing.returncode == 2 and "no account" in missing.stderr
    assert made["id"] != deploy["id"]


def test_a_run_that_fails_part_way_audits_what_it_did(live: Any, bridge: Any, gitlab: Any) -> None:
    user_id = live.post("/Users", entra_user("jane@contoso.com", externalId=OID)).json()["id"]
    gitlab.faults.add(method="POST", path_pattern=r"/emails$", status=503)
    response = live.patch(
        f"/Users/{user_id}",
        [
            {"op": "Replace", "path": "displayName", "value": "Jane Q. Doe"},
            {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "jq@contoso.com"},
        ],
    )
    assert response.status_code == 200  # acknowledged: the worker finishes once GitLab is back
    (account,) = gitlab.users_with_identity(PROVIDER, OID)
    assert account["name"] == "Jane Q. Doe" and account["email"] == "jane@contoso.com"
    *_, last = audit.events(bridge.bridge.db, action_prefix="reconcile.user")
    assert last["detail"]["actions"] == ["updated name"]
    assert last["detail"]["completed"] is False
    gitlab.faults.clear()
    bridge.run_worker()
    assert gitlab.user(account["id"])["email"] == "jq@contoso.com"


def test_group_grants_never_reach_an_account_the_bridge_refused_to_adopt(
    make_bridge: Any, gitlab: Any, serve: Any
) -> None:
    """Memberships go only to linked accounts: a user whose adoption the worker refused (GitLab
    was down when Entra created it, so Entra got 201) gets no grant on the admin's account."""
    gitlab.add_group("acme")
    gitlab.add_group("acme/engineering")
    rule = GroupRule(None, "GitLab Developers", "acme/engineering", DEVELOPER)
    bridge = make_bridge(gitlab, groups={"rules": (rule,)})
    live = serve(bridge)
    admin = gitlab.add_user("alice", "alice@contoso.com", is_admin=True)
    untouched = Untouched(gitlab, admin["id"])
    gitlab.down(status=503)
    created = live.post("/Users", entra_user("alice@contoso.com", externalId=OID))
    assert created.status_code == 201  # acknowledged before GitLab could be asked
    group = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "GitLab Developers",
        "members": [{"value": created.json()["id"]}],
    }
    assert live.post("/Groups", group).status_code == 201
    gitlab.up()
    bridge.run_worker()
    parked = [job for job in bridge.bridge.queue.list() if job.kind == "user"]
    assert [job.state for job in parked] == ["parked"]
    assert "held by a GitLab administrator" in (parked[0].last_error or "")
    assert gitlab.members("acme/engineering") == []
    assert not [r for r in gitlab.requests if r.method != "GET" and "/members" in r.path]
    untouched.check()


# -- The direct create: POST /users first, the lookups only when GitLab refuses it -------------


def test_an_admins_secondary_email_gets_neither_a_second_account_nor_the_admins(
    live: Any, bridge: Any, gitlab: Any
) -> None:
    admin = gitlab.add_user(
        "alice", "alice@contoso.com", is_admin=True, emails=["mallory@contoso.com"]
    )
    untouched = Untouched(gitlab, admin["id"])
    response = live.post("/Users", entra_user("mallory@contoso.com", externalId=OID))
    refused(response, "Email has already been taken", "mallory@contoso.com")
    assert refused_creates(gitlab) == [409]
    assert stored_users(live) == 0 and len(gitlab.users()) == 2
    assert gitlab_writes(gitlab) == []
    untouched.check()
    # GitLab's refusal takes back the "create in progress" mark: it can vouch for no account.
    assert [link.create_started_at for link in bridge.bridge.links.all()] in ([], [None])


def test_an_admins_username_only_ever_names_a_new_account(live: Any, gitlab: Any) -> None:
    admin = gitlab.add_user("alice", "alice@contoso.com", is_admin=True)
    untouched = Untouched(gitlab, admin["id"])
    response = live.post("/Users", entra_user("alice@evil.example.com", externalId=OID))
    assert response.status_code == 201, response.text
    assert refused_creates(gitlab) == [409, 201], "409 Username has already been taken, then alice1"
    (made,) = gitlab.users_with_identity(PROVIDER, OID)
    assert (made["username"], made["is_admin"]) == ("alice1", False)
    untouched.check()


def test_a_protected_accounts_identity_is_refused_after_gitlab_refuses_the_create(
    make_bridge: Any, gitlab: Any, serve: Any
) -> None:
    bridge = make_bridge(gitlab, users={"protected_usernames": ("root", "deploy")})
    live = serve(bridge)
    deploy = gitlab.add_user(
        "deploy", "deploy@contoso.com", identities=[{"provider": PROVIDER, "extern_uid": OID}]
    )
    bridge.bridge.protector.refresh()
    untouched = Untouched(gitlab, deploy["id"])
    # Another name and address, the protected account's identity: GitLab refuses a second holder.
    response = live.post("/Users", entra_user("mallory@contoso.com", externalId=OID))
    refused(response, "'deploy'", "protected")
    assert refused_creates(gitlab) == [400]
    assert stored_users(live) == 0 and len(gitlab.users()) == 2
    untouched.check()


def test_a_create_that_failed_part_way_never_vouches_for_an_account_made_just_before(
    bridge: Any, live: Any, gitlab: Any
) -> None:
    """The create is sent without a lookup, so when GitLab fails it (maybe after creating), the
    next run looks up first, and an account made minutes before by someone else may look like the
    bridge's own: the refusals still apply to it."""
    machine = gitlab.add_user("support", "support@contoso.com", user_type="service_account")
    untouched = Untouched(gitlab, machine["id"])
    gitlab.faults.add(method="POST", path_pattern=r"^/api/v4/users$", status=503, times=1)
    body = entra_user("support@contoso.com")
    del body["externalId"]
    created = live.post("/Users", body)
    assert created.status_code == 201  # acknowledged: the worker finishes once GitLab is back
    bridge.run_worker()
    parked = [job for job in bridge.bridge.queue.list() if job.kind == "user"]
    assert [job.state for job in parked] == ["parked"]
    assert "a bot, internal or service account" in (parked[0].last_error or "")
    link = bridge.bridge.links.get(created.json()["id"])
    assert link is None or link.gitlab_user_id is None
    assert gitlab_writes(gitlab) == []
    untouched.check()


def test_drift_repair_never_writes_an_account_the_bridge_must_not_write(
    make_bridge: Any, gitlab: Any, serve: Any, database_url: str
) -> None:
    """The scheduled drift repair (provisioning/drift_repair.py) compares only what the bridge
    may write: an administrator's account, operator-linked and deactivated in Entra, stays active
    and as an admin left it, though the store says otherwise; its membership is repaired."""
    bridge, live, admin = admin_and_engineering_rule(make_bridge, gitlab, serve)
    run_cli(cli(database_url, gitlab), "users", "link", "alice@contoso.com", "alice")
    created = live.post("/Users", entra_user("alice@contoso.com", externalId=OID))
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    group = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "GitLab Developers",
        "members": [{"value": user_id}],
    }
    assert live.post("/Groups", group).status_code == 201
    deactivate = [{"op": "Replace", "path": "active", "value": "False"}]
    assert live.patch(f"/Users/{user_id}", deactivate).status_code == 200
    bridge.run_worker()
    untouched = Untouched(gitlab, admin["id"])  # active, named by an admin: not the store's
    gitlab.remove_member("acme/engineering", admin["id"])

    drift = bridge.bridge.drift_repair()
    assert drift is not None
    repaired = drift.repair()
    bridge.run_worker()

    assert [(d.kind, d.target.split(" / ")[0]) for d in repaired] == [
        ("membership", "acme/engineering")
    ]
    assert gitlab.members("acme/engineering") == [
        {"user_id": admin["id"], "access_level": DEVELOPER}
    ]
    untouched.check()
    events = list(audit.events(bridge.bridge.db, action_prefix="drift.repair"))
    assert [(e["actor"], e["target"]) for e in events] == [("drift", "acme/engineering")]


def test_drift_repair_leaves_protected_unowned_and_manual_accounts_as_a_person_left_them(
    make_bridge: Any, gitlab: Any, serve: Any
) -> None:
    """A drift turn writes only what the bridge owns. Changed by hand: a protected account linked
    by an earlier version (deactivated in Entra, active in GitLab), an account no SCIM user is
    linked to (blocked), a member the bridge never managed (removed); none is written. The
    bridge's own account, unblocked by hand, is blocked again: the turn did run."""
    gitlab.add_group("acme")
    gitlab.add_group("acme/engineering")
    rule = GroupRule(None, "GitLab Developers", "acme/engineering", DEVELOPER)
    bridge = make_bridge(
        gitlab, users={"protected_usernames": ("root", "deploy")}, groups={"rules": (rule,)}
    )
    live = serve(bridge)
    deploy = gitlab.add_user("deploy", "deploy@contoso.com", name="Deploy")
    svc = live.post("/Users", entra_user("svc@contoso.com")).json()["id"]
    legacy_link(bridge, svc, deploy, "svc@contoso.com")
    bridge.bridge.protector.refresh()
    outsider = gitlab.add_user("outsider", "outsider@example.com", name="Outsider")
    manual = gitlab.add_user("manual", "manual@example.com", name="Manual")
    gitlab.add_member("acme/engineering", manual["id"], DEVELOPER)
    own = live.post("/Users", entra_user("bob@contoso.com")).json()["id"]
    deactivate = [{"op": "Replace", "path": "active", "value": "False"}]
    for user_id in (svc, own):
        assert live.patch(f"/Users/{user_id}", deactivate).status_code == 200
    bridge.run_worker()
    bob = gitlab.user_by_username("bob")
    assert bob is not None and bob["state"] == "blocked"

    gitlab.set_user_state(bob["id"], "active")  # the bridge's own, changed by hand
    gitlab.set_user_state(outsider["id"], "blocked")
    gitlab.remove_member("acme/engineering", manual["id"])
    untouched = [Untouched(gitlab, account["id"]) for account in (deploy, outsider, manual)]
    gitlab.clear_requests()

    drift = bridge.bridge.drift_repair()
    assert drift is not None
    repaired = drift.repair()
    bridge.run_worker()

    assert [drift.kind for drift in repaired] == ["account"]
    assert gitlab.user(bob["id"])["state"] == "blocked"
    for account in untouched:
        account.check()
    assert gitlab.members("acme/engineering") == []
    writes = gitlab_writes(gitlab)
    assert writes == [f"POST /api/v4/users/{bob['id']}/block"], writes


# -- The bridge's own token ---------------------------------------------------------------------


def test_no_scim_request_rotates_the_token_only_the_operator_or_the_worker_can(
    make_bridge: Any, gitlab: Any, serve: Any, database_url: str
) -> None:
    """`POST /personal_access_tokens/self/rotate` reaches one account's token: the bridge's own
    (``self``). A SCIM caller cannot trigger it, even with the token a day from expiry and the
    worker set to rotate it: only `scim-bridge gitlab rotate-token` and the worker's reading do."""
    gitlab.set_token_expiry(ADMIN_TOKEN, clock.now().date() + dt.timedelta(days=1))
    bridge = make_bridge(gitlab, gitlab={"token_key": new_key(), "rotate_days_before_expiry": 30})
    live = serve(bridge)
    created = live.post("/Users", entra_user("alice@contoso.com"))
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    patch = [{"op": "Replace", "path": "displayName", "value": "Alice B"}]
    assert live.patch(f"/Users/{user_id}", patch).status_code == 200
    assert live.delete(f"/Users/{user_id}").status_code == 204
    bridge.run_worker()

    assert gitlab.calls("POST", "/api/v4/personal_access_tokens/self/rotate") == []
    assert gitlab.state.tokens[ADMIN_TOKEN].active
