"""UserManager against the double: the calls it makes and what it makes of the answers."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from scim_bridge.gitlab.client import GitLab
from scim_bridge.gitlab.errors import ConflictError
from scim_bridge.gitlab.errors import ForbiddenError
from scim_bridge.gitlab.errors import InvalidError
from scim_bridge.gitlab.errors import NotFoundError
from scim_bridge.gitlab.errors import identity_taken
from scim_bridge.gitlab.types import CallRecord
from scim_bridge.gitlab.types import Identity
from tests.gitlab.conftest import PROVIDER
from tests.gitlab_double import GitLabDouble


def create_jane(client: GitLab, **overrides: str) -> int:
    fields = {"username": "jane", "email": "jane@example.com", "name": "Jane Doe"}
    fields.update(overrides)
    user = client.users.create(**fields, provider=PROVIDER, extern_uid="oid-jane")
    return user.id


def test_create_is_an_sso_account_without_mail(client: GitLab, double: GitLabDouble) -> None:
    user = client.users.create(
        username="jane",
        email="jane@example.com",
        name="Jane Doe",
        provider=PROVIDER,
        extern_uid="oid-jane",
    )
    assert (user.username, user.email, user.state, user.is_admin) == (
        "jane",
        "jane@example.com",
        "active",
        False,
    )
    assert user.identity(PROVIDER) == Identity(PROVIDER, "oid-jane")
    stored = double.user(user.id)
    assert stored["confirmed"] and stored["password_automatically_set"]
    assert not stored["reset_password_sent"] and not stored["is_admin"]
    assert stored["can_create_group"] is False
    assert double.mails == []
    (call,) = double.calls("POST", "/api/v4/users")
    assert call.json["force_random_password"] is True
    assert (call.json["reset_password"], call.json["admin"]) == (False, False)
    assert "password" not in call.json


def test_create_without_identity_and_half_an_identity(client: GitLab) -> None:
    user = client.users.create(
        username="bob", email="bob@example.com", name="Bob", provider=None, extern_uid=None
    )
    assert user.identities == ()
    with pytest.raises(ValueError):
        client.users.create(
            username="c", email="c@example.com", name="C", provider=PROVIDER, extern_uid=None
        )


def test_create_with_a_taken_identity_is_refused_in_the_order_gitlab_checks(
    client: GitLab, double: GitLabDouble
) -> None:
    """The email conflict first, then the username, else the identity's validation error:
    400 {"message": {"identities.extern_uid": ["has already been taken"]}} (gitlab.md §1.2)."""
    create_jane(client)  # holds oid-jane, case-insensitively unique per provider
    with pytest.raises(InvalidError) as info:
        client.users.create(
            username="mallory",
            email="m@example.com",
            name="M",
            provider=PROVIDER,
            extern_uid="OID-JANE",
        )
    assert info.value.status == 400
    assert info.value.errors == {"identities.extern_uid": ["has already been taken"]}
    assert identity_taken(info.value)
    with pytest.raises(ConflictError) as conflict:
        client.users.create(
            username="jane",
            email="m@example.com",
            name="M",
            provider=PROVIDER,
            extern_uid="oid-jane",
        )
    assert conflict.value.field == "username"
    with pytest.raises(ConflictError) as conflict:
        create_jane(client, username="mallory")
    assert conflict.value.field == "email"
    (response,) = [r.response for r in double.calls("POST", "/api/v4/users") if r.status == 400]
    assert response == {"message": {"identities.extern_uid": ["has already been taken"]}}
    assert not identity_taken(InvalidError("username: is reserved", errors={"username": ["x"]}))


def test_get_and_lookups(client: GitLab, double: GitLabDouble) -> None:
    jane = create_jane(client)
    double.add_user("other", "other@example.com", name="jane@example.com fan")
    double.add_user("alias", "alias@example.com", emails=["JANE2@example.com"])
    assert client.users.get(jane).username == "jane"
    assert client.users.find_by_identity(PROVIDER, "oid-jane").id == jane
    assert client.users.find_by_identity("saml", "oid-jane") is None
    assert client.users.find_by_username("JANE").id == jane
    assert client.users.find_by_username("nobody") is None
    # Only the primary email counts: the name match and the secondary email are dropped.
    assert client.users.find_by_email("Jane@Example.com").id == jane
    assert client.users.find_by_email("jane2@example.com") is None
    with pytest.raises(NotFoundError):
        client.users.get(4242)


def test_update_sends_only_the_given_keys(client: GitLab, double: GitLabDouble) -> None:
    jane = create_jane(client)
    updated = client.users.update(jane, name="Jane Q. Doe")
    assert updated.name == "Jane Q. Doe" and updated.username == "jane"
    (put,) = double.calls("PUT", f"/api/v4/users/{jane}")
    assert put.json == {"name": "Jane Q. Doe"}
    assert client.users.update(jane, username="jdoe").username == "jdoe"
    double.clear_requests()
    assert client.users.update(jane).username == "jdoe"
    assert [r.method for r in double.requests] == ["GET"]


def test_set_identity(client: GitLab, double: GitLabDouble) -> None:
    user = double.add_user("u", "u@example.com", identities=[(PROVIDER, "old")])
    client.users.set_identity(user["id"], PROVIDER, "new")
    assert client.users.get(user["id"]).identity(PROVIDER) == Identity(PROVIDER, "new")


def test_set_identity_held_by_another_account_is_a_conflict(
    client: GitLab, double: GitLabDouble
) -> None:
    """GitLab answers 200 and keeps the identity; the manager notices."""
    double.add_user("owner", "owner@example.com", identities=[(PROVIDER, "taken")])
    user = double.add_user("u", "u@example.com")
    with pytest.raises(ConflictError) as info:
        client.users.set_identity(user["id"], PROVIDER, "taken")
    assert info.value.status is None and info.value.field is None
    assert double.user(user["id"])["identities"] == []


def test_change_email_adds_a_confirmed_secondary_then_swaps(
    client: GitLab, double: GitLabDouble, records: list[CallRecord]
) -> None:
    jane = create_jane(client)
    records.clear()
    client.users.change_email(jane, "jane.doe@example.com")
    assert [(r.method, r.path) for r in records] == [
        ("POST", f"/users/{jane}/emails"),
        ("PUT", f"/users/{jane}"),
    ]
    assert double.calls("POST", f"/api/v4/users/{jane}/emails")[0].json == {
        "email": "jane.doe@example.com",
        "skip_confirmation": True,
    }
    assert double.calls("PUT", f"/api/v4/users/{jane}")[0].json == {
        "email": "jane.doe@example.com",
        "skip_reconfirmation": True,
    }
    stored = double.user(jane)
    assert stored["email"] == "jane.doe@example.com"
    assert [e["email"] for e in stored["emails"]] == ["jane@example.com"]
    assert double.mails == []
    # Back to an address the user already has as secondary: the 400 "taken" is expected.
    client.users.change_email(jane, "jane@example.com")
    assert double.user(jane)["email"] == "jane@example.com"


def test_change_email_to_someone_elses_is_a_conflict(client: GitLab, double: GitLabDouble) -> None:
    double.add_user("other", "other@example.com")
    jane = create_jane(client)
    with pytest.raises(ConflictError) as info:
        client.users.change_email(jane, "OTHER@example.com")
    assert info.value.field == "email"
    with pytest.raises(InvalidError) as invalid:
        client.users.change_email(jane, "not an email")
    assert invalid.value.errors == {"email": ["is invalid"]}


def test_moderation_is_idempotent_where_gitlab_is(client: GitLab, double: GitLabDouble) -> None:
    user = double.add_user("u", "u@example.com")["id"]
    client.users.block(user)
    client.users.block(user)  # 201 null
    assert double.user(user)["state"] == "blocked"
    client.users.moderate(user, "unblock")
    client.users.moderate(user, "unblock")  # 201 false
    assert double.user(user)["state"] == "active"
    client.users.moderate(user, "ban")
    client.users.moderate(user, "unban")
    assert double.user(user)["state"] == "active"


def test_moderate_takes_the_action_by_name(client: GitLab, double: GitLabDouble) -> None:
    """What the reconciler calls with a state's action: the same request as the named method."""
    user = double.add_user("u", "u@example.com")["id"]
    client.users.moderate(user, "ban")
    assert double.user(user)["state"] == "banned"
    client.users.moderate(user, "unban")
    assert double.user(user)["state"] == "active"


def test_moderation_refusals_are_forbidden_errors(client: GitLab, double: GitLabDouble) -> None:
    recent = double.add_user("recent", "r@example.com", last_activity_on=dt.date.today())["id"]
    with pytest.raises(ForbiddenError) as info:
        client.users.moderate(recent, "deactivate")
    assert "active in the past 90 days" in info.value.message and info.value.status == 403
    ldap = double.add_user("ldap", "l@example.com", state="ldap_blocked")["id"]
    with pytest.raises(ForbiddenError) as info:
        client.users.block(ldap)
    assert info.value.message.endswith("LDAP blocked users cannot be modified by the API")
    dormant = double.add_user("dormant", "d@example.com")["id"]
    client.users.moderate(dormant, "deactivate")
    client.users.moderate(dormant, "deactivate")
    client.users.moderate(dormant, "activate")
    assert double.user(dormant)["state"] == "active"


def test_delete(client: GitLab, double: GitLabDouble) -> None:
    owner = double.add_user("owner", "owner@example.com")["id"]
    double.add_group("solo")
    double.add_member("solo", owner, 50)
    with pytest.raises(ConflictError) as info:
        client.users.delete(owner)
    assert info.value.field is None and "sole-owner" in info.value.message
    client.users.delete(owner, hard=True)
    assert double.calls("DELETE", f"/api/v4/users/{owner}")[-1].query == {"hard_delete": "true"}
    assert double.user(owner) is None
    with pytest.raises(NotFoundError):
        client.users.delete(owner)


def test_each_thread_gets_its_own_session(client: GitLab, double: GitLabDouble) -> None:
    sessions: list[object] = []
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            sessions.append(client._transport.client().session)
            client.users.create(
                username=f"user{n}",
                email=f"user{n}@example.com",
                name=f"User {n}",
                provider=PROVIDER,
                extern_uid=f"oid-{n}",
            )
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert errors == []
    assert len({id(s) for s in sessions}) == 8
    assert len(double.calls("POST", "/api/v4/users")) == 8


@pytest.mark.parametrize(
    ("user_type", "bot", "human"),
    [
        ("human", False, True),
        ("project_bot", True, False),
        ("service_account", True, False),
        ("support_bot", True, False),
        ("ghost", False, False),  # internal, yet GitLab does not mark it as a bot
    ],
)
def test_people_are_told_from_bots_and_internal_users(
    client: GitLab, double: GitLabDouble, user_type: str, bot: bool, human: bool
) -> None:
    double.add_user("someone", "someone@example.com", user_type=user_type)
    found = client.users.find_by_username("someone")
    assert found is not None and found.bot is bot
    assert client.users.is_human("someone") is human
    (call,) = [c for c in double.calls("GET", "/api/v4/users") if "humans" in c.query]
    assert call.query["humans"] == "true" and call.query["username"] == "someone"


def test_admins_lists_every_administrator_across_pages(
    client: GitLab, double: GitLabDouble
) -> None:
    for index in range(120):
        double.add_user(f"user{index}", f"user{index}@example.com", is_admin=index % 3 == 0)
    admins = client.users.admins()
    assert {a.username for a in admins} == {"root"} | {f"user{i}" for i in range(0, 120, 3)}
    assert all(a.is_admin for a in admins)
