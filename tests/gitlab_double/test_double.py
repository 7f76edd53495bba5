"""The double's Users API, auth and pagination, through python-gitlab over real HTTP.

Each expectation is a gitlab.md fact; a test failing here means the double lies about GitLab.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import gitlab
import pytest
from gitlab.exceptions import GitlabError

from tests.gitlab_double import GitLabDouble

SSO = {"force_random_password": True, "skip_confirmation": True, "reset_password": False}


def error_of(action: Callable[[], Any]) -> GitlabError:
    with pytest.raises(GitlabError) as info:
        action()
    return info.value


def create(gl: gitlab.Gitlab, username: str, email: str, **extra: Any) -> Any:
    return gl.users.create({"username": username, "email": email, "name": username, **SSO, **extra})


# -- instance and auth -------------------------------------------------------------------


def test_version_metadata_current_user_and_token(double: GitLabDouble, gl: gitlab.Gitlab) -> None:
    assert gl.http_get("/version") == {"version": "18.6.0-ee", "revision": "abc"}
    metadata = gl.http_get("/metadata")
    assert metadata["enterprise"] is True and "kas" in metadata
    me = gl.http_get("/user")
    assert (me["id"], me["username"], me["is_admin"]) == (1, "root", True)
    token = gl.http_get("/personal_access_tokens/self")
    assert token["scopes"] == ["api", "admin_mode"] and token["user_id"] == 1


def test_missing_or_unknown_token_is_401(double: GitLabDouble) -> None:
    for client in (gitlab.Gitlab(double.url), gitlab.Gitlab(double.url, private_token="nope")):
        error = error_of(lambda c=client: c.http_get("/user"))
        assert isinstance(error, gitlab.exceptions.GitlabAuthenticationError)
        assert (error.response_code, error.error_message) == (401, "401 Unauthorized")


def test_non_admin_token_is_403_on_admin_endpoints(double: GitLabDouble) -> None:
    alice = double.add_user("alice", "alice@example.com")
    double.add_token("glpat-alice", alice["id"])
    client = gitlab.Gitlab(double.url, private_token="glpat-alice")
    assert "is_admin" not in client.http_get("/user")
    error = error_of(lambda: create(client, "bob", "bob@example.com"))
    assert (error.response_code, error.error_message) == (403, "403 Forbidden")
    error = error_of(lambda: client.users.list(extern_uid="x", provider="saml"))
    assert error.response_code == 403


def test_admin_mode_needs_the_admin_mode_scope(double: GitLabDouble, gl: gitlab.Gitlab) -> None:
    double.settings.admin_mode = True
    double.set_token_scopes(double.admin_token, ["api"])
    assert error_of(lambda: create(gl, "bob", "bob@example.com")).response_code == 403
    double.set_token_scopes(double.admin_token, ["api", "admin_mode"])
    assert create(gl, "bob", "bob@example.com").id > 1


# -- create ------------------------------------------------------------------------------


def test_create_for_sso_sends_no_mail_and_confirms(double: GitLabDouble, gl: gitlab.Gitlab) -> None:
    user = create(gl, "alice", "alice@example.com", extern_uid="oid-1", provider="openid_connect")
    assert user.state == "active" and user.is_admin is False
    assert user.identities == [
        {"provider": "openid_connect", "extern_uid": "oid-1", "saml_provider_id": None}
    ]
    stored = double.user(user.id)
    assert stored["confirmed"] and stored["password_automatically_set"]
    assert not stored["reset_password_sent"]
    assert double.mails == []


def test_create_without_skip_confirmation_or_with_reset_sends_mail(
    double: GitLabDouble, gl: gitlab.Gitlab
) -> None:
    user = gl.users.create(
        {"username": "a", "email": "a@example.com", "name": "A", "reset_password": True}
    )
    assert [(m.kind, m.to) for m in double.mails] == [
        ("confirmation", "a@example.com"),
        ("reset_password", "a@example.com"),
    ]
    assert double.user(user.id)["confirmed"] is False


def test_create_needs_a_password_option(gl: gitlab.Gitlab) -> None:
    error = error_of(
        lambda: gl.users.create({"username": "a", "email": "a@example.com", "name": "A"})
    )
    assert error.response_code == 400
    assert error.error_message == (
        "password, reset_password, force_random_password are missing, "
        "at least one parameter must be provided"
    )


def test_create_extern_uid_and_provider_all_or_none(gl: gitlab.Gitlab) -> None:
    error = error_of(lambda: create(gl, "a", "a@example.com", extern_uid="oid"))
    assert error.error_message == "extern_uid, provider provide all or none of parameters"


def test_conflict_order_email_before_username(double: GitLabDouble, gl: gitlab.Gitlab) -> None:
    double.add_user("taken", "taken@example.com", emails=["second@example.com"])
    both = error_of(lambda: create(gl, "TAKEN", "Taken@Example.com"))
    assert (both.response_code, both.error_message) == (409, "Email has already been taken")
    secondary = error_of(lambda: create(gl, "fresh", "SECOND@example.com"))
    assert (secondary.response_code, secondary.error_message) == (
        409,
        "Email has already been taken",
    )
    username = error_of(lambda: create(gl, "Taken", "new@example.com"))
    assert (username.response_code, username.error_message) == (
        409,
        "Username has already been taken",
    )


def test_unconfirmed_secondary_email_is_a_400_not_a_409(
    double: GitLabDouble, gl: gitlab.Gitlab
) -> None:
    owner = create(gl, "owner", "owner@example.com")
    gl.http_post(f"/users/{owner.id}/emails", post_data={"email": "pending@example.com"})
    error = error_of(lambda: create(gl, "fresh", "pending@example.com"))
    assert (error.response_code, error.error_message) == (
        400,
        {"email": ["has already been taken"]},
    )


@pytest.mark.parametrize(
    ("username", "message"),
    [
        ("bad name", "can contain only letters"),
        ("-lead", "can contain only letters"),
        ("trailing.", "can contain only letters"),
        ("repo.git", "can contain only letters"),
        ("feed.atom", "can contain only letters"),
        ("admin", "admin is a reserved name"),
        ("Help", "Help is a reserved name"),
        ("acme", "has already been taken"),
    ],
)
def test_username_validation_is_400(
    double: GitLabDouble, gl: gitlab.Gitlab, username: str, message: str
) -> None:
    double.add_group("ACME")
    error = error_of(lambda: create(gl, username, "x@example.com"))
    assert error.response_code == 400
    assert any(m.startswith(message) for m in error.error_message["username"])


def test_invalid_email_is_400(gl: gitlab.Gitlab) -> None:
    error = error_of(lambda: create(gl, "ok", "not-an-email"))
    assert (error.response_code, error.error_message) == (400, {"email": ["is invalid"]})


# -- read and list -----------------------------------------------------------------------


def test_get_missing_user_is_404(gl: gitlab.Gitlab) -> None:
    error = error_of(lambda: gl.users.get(999))
    assert (error.response_code, error.error_message) == (404, "404 User Not Found")


def test_list_filters(double: GitLabDouble, gl: gitlab.Gitlab) -> None:
    alice = double.add_user(
        "alice", "alice@example.com", emails=["a2@example.com"], identities=[("saml", "OID-A")]
    )
    bob = double.add_user("bob", "bob@example.com", name="Bob Alison", state="blocked")

    def ids(**filters: Any) -> list[int]:
        return sorted(u.id for u in gl.users.list(get_all=True, **filters))

    assert ids(username="ALICE") == [alice["id"]]
    assert ids(search="ali") == [alice["id"], bob["id"]]
    assert ids(search="A2@EXAMPLE.COM") == [alice["id"]]
    assert ids(extern_uid="oid-a", provider="saml") == [alice["id"]]
    assert ids(extern_uid="OID-A", provider="other") == []
    assert ids(blocked=True) == [bob["id"]]
    assert bob["id"] not in ids(active=True)


def test_identity_lookup_needs_both_parameters(gl: gitlab.Gitlab) -> None:
    error = error_of(lambda: gl.users.list(extern_uid="x"))
    assert (error.response_code, error.error_message) == (
        400,
        "extern_uid, provider provide all or none of parameters",
    )


def test_non_admin_search_does_not_match_private_emails(double: GitLabDouble) -> None:
    alice = double.add_user("alice", "alice@example.com")
    double.add_token("glpat-alice", alice["id"])
    client = gitlab.Gitlab(double.url, private_token="glpat-alice")
    assert client.users.list(search="alice@example.com", get_all=True) == []
    assert "email" not in client.users.list(username="alice")[0].attributes


def test_pagination_headers_and_get_all(double: GitLabDouble, gl: gitlab.Gitlab) -> None:
    for n in range(44):
        double.add_user(f"user{n:02}", f"user{n}@example.com")
    response = gl.http_request("get", "/users", query_data={"page": 2, "per_page": 20})
    headers = response.headers
    assert [headers[h] for h in ("X-Page", "X-Per-Page", "X-Total", "X-Total-Pages")] == [
        "2",
        "20",
        "45",
        "3",
    ]
    assert (headers["X-Next-Page"], headers["X-Prev-Page"]) == ("3", "1")
    assert set(response.links) == {"next", "prev", "first", "last"}
    assert response.links["next"]["url"].startswith(f"{double.url}/api/v4/users?")
    assert "page=3" in response.links["next"]["url"]
    assert len(response.json()) == 20

    double.clear_requests()
    everyone = gl.users.list(get_all=True)
    assert len({u.id for u in everyone}) == 45
    assert len(double.calls("GET", "/api/v4/users")) == 3


def test_keyset_pages_of_users_link_only_the_next_by_cursor(
    double: GitLabDouble, gl: gitlab.Gitlab
) -> None:
    for n in range(44):
        double.add_user(f"user{n:02}", f"user{n}@example.com")
    keyset = {"pagination": "keyset", "order_by": "id", "sort": "asc", "per_page": 20}
    response = gl.http_request("get", "/users", query_data=keyset)
    assert set(response.links) == {"next"}
    assert not {"X-Page", "X-Total", "X-Total-Pages", "X-Next-Page"} & set(response.headers)
    ids = [user["id"] for user in response.json()]
    seen = list(ids)
    while "next" in response.links:
        url = response.links["next"]["url"]
        assert "cursor=" in url and "page=" not in url.replace("per_page=", "")
        response = gl.http_request("get", url.removeprefix(f"{double.url}/api/v4"))
        seen += [user["id"] for user in response.json()]
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == 45


def test_per_page_is_capped_at_100(double: GitLabDouble, gl: gitlab.Gitlab) -> None:
    response = gl.http_request("get", "/users", query_data={"per_page": 500})
    assert response.headers["X-Per-Page"] == "100"
    assert response.headers["X-Next-Page"] == ""


# -- update, emails, identities, delete ----------------------------------------------------


def test_update_conflicts_are_checked_before_saving(
    double: GitLabDouble, gl: gitlab.Gitlab
) -> None:
    double.add_user("other", "other@example.com")
    me = double.add_user("me", "me@example.com")
    email = error_of(lambda: gl.users.update(me["id"], {"email": "OTHER@example.com"}))
    assert (email.response_code, email.error_message) == (409, "Email has already been taken")
    username = error_of(lambda: gl.users.update(me["id"], {"username": "Other"}))
    assert (username.response_code, username.error_message) == (
        409,
        "Username has already been taken",
    )
    assert double.user(me["id"])["email"] == "me@example.com"


def test_primary_email_must_already_be_a_secondary(double: GitLabDouble, gl: gitlab.Gitlab) -> None:
    me = double.add_user("me", "me@example.com")
    error = error_of(lambda: gl.users.update(me["id"], {"email": "new@example.com"}))
    assert error.response_code == 400 and "email" in error.error_message

    gl.http_post(
        f"/users/{me['id']}/emails",
        post_data={"email": "new@example.com", "skip_confirmation": True},
    )
    gl.users.update(me["id"], {"email": "new@example.com", "skip_reconfirmation": True})
    stored = double.user(me["id"])
    assert stored["email"] == "new@example.com"
    assert [e["email"] for e in stored["emails"]] == ["me@example.com"]
    assert double.mails == []


def test_adding_an_existing_email_is_400_taken(double: GitLabDouble, gl: gitlab.Gitlab) -> None:
    me = double.add_user("me", "me@example.com", emails=["alt@example.com"])
    for address in ("me@example.com", "alt@example.com"):
        error = error_of(
            lambda a=address: gl.http_post(f"/users/{me['id']}/emails", post_data={"email": a})
        )
        assert (error.response_code, error.error_message) == (
            400,
            {"email": ["has already been taken"]},
        )


def test_identity_update_find_or_create_by_provider(
    double: GitLabDouble, gl: gitlab.Gitlab
) -> None:
    me = double.add_user("me", "me@example.com", identities=[("saml", "old")])
    double.add_user("other", "other@example.com", identities=[("saml", "theirs")])
    gl.users.update(me["id"], {"provider": "saml", "extern_uid": "new"})
    gl.users.update(me["id"], {"provider": "oidc", "extern_uid": "x"})
    identities = {(i["provider"], i["extern_uid"]) for i in double.user(me["id"])["identities"]}
    assert identities == {("saml", "new"), ("oidc", "x")}
    # GitLab ignores a failed identity update: 200, identity unchanged.
    answer = gl.users.update(me["id"], {"provider": "saml", "extern_uid": "THEIRS"})
    assert {"provider": "saml", "extern_uid": "new", "saml_provider_id": None} in answer[
        "identities"
    ]
    gl.http_delete(f"/users/{me['id']}/identities/oidc")
    error = error_of(lambda: gl.http_delete(f"/users/{me['id']}/identities/oidc"))
    assert (error.response_code, error.error_message) == (404, "404 Identity Not Found")


def test_delete_sole_owner_needs_hard_delete(double: GitLabDouble, gl: gitlab.Gitlab) -> None:
    owner = double.add_user("owner", "owner@example.com")
    double.add_group("solo")
    double.add_member("solo", owner["id"], 50)
    error = error_of(lambda: gl.users.delete(owner["id"]))
    assert (error.response_code, error.error_message) == (
        409,
        "User cannot be removed while is the sole-owner of a group",
    )
    gl.users.delete(owner["id"], hard_delete=True)
    assert double.user(owner["id"]) is None and double.group("solo") is None
    assert error_of(lambda: gl.users.delete(owner["id"])).response_code == 404


# -- moderation (gitlab.md §1.5) ----------------------------------------------------------


def test_block_is_idempotent(double: GitLabDouble, gl: gitlab.Gitlab) -> None:
    user = double.add_user("u", "u@example.com")
    assert gl.users.get(user["id"], lazy=True).block() is True
    assert gl.users.get(user["id"], lazy=True).block() is None
    assert double.user(user["id"])["state"] == "blocked"
    assert gl.users.get(user["id"], lazy=True).unblock() is True
    assert gl.users.get(user["id"], lazy=True).unblock() is False


@pytest.mark.parametrize(
    ("state", "action", "message"),
    [
        (
            "ldap_blocked",
            "block",
            "403 Forbidden - LDAP blocked users cannot be modified by the API",
        ),
        (
            "ldap_blocked",
            "unblock",
            "403 Forbidden - LDAP blocked users cannot be unblocked by the API",
        ),
        (
            "deactivated",
            "unblock",
            "403 Forbidden - Deactivated users cannot be unblocked by the API",
        ),
        ("blocked", "deactivate", "Error occurred. A blocked user cannot be deactivated"),
        ("blocked", "activate", "Error occurred. A blocked user must be unblocked to be activated"),
        ("blocked", "ban", "You cannot ban blocked users."),
        ("active", "unban", "You cannot unban active users."),
    ],
)
def test_moderation_refusals(
    double: GitLabDouble, gl: gitlab.Gitlab, state: str, action: str, message: str
) -> None:
    user = double.add_user("u", "u@example.com", state=state)
    error = error_of(lambda: getattr(gl.users.get(user["id"], lazy=True), action)())
    assert (error.response_code, error.error_message) == (403, message)
    assert double.user(user["id"])["state"] == state


def test_admin_cannot_block_itself(gl: gitlab.Gitlab) -> None:
    error = error_of(lambda: gl.users.get(1, lazy=True).block())
    assert (
        error.error_message
        == "403 Forbidden - The API initiating user cannot be blocked by the API"
    )


def test_deactivate_needs_90_days_of_inactivity(double: GitLabDouble, gl: gitlab.Gitlab) -> None:
    recent = double.add_user("recent", "r@example.com", last_activity_on=dt.date.today())
    error = error_of(lambda: gl.users.get(recent["id"], lazy=True).deactivate())
    assert (error.response_code, error.error_message) == (
        403,
        "The user you are trying to deactivate has been active in the past 90 days "
        "and cannot be deactivated",
    )
    double.set_last_activity_on(recent["id"], dt.date.today() - dt.timedelta(days=91))
    assert gl.users.get(recent["id"], lazy=True).deactivate() is True
    assert gl.users.get(recent["id"], lazy=True).deactivate() is None
    assert gl.users.get(recent["id"], lazy=True).activate() is True
    assert double.user(recent["id"])["state"] == "active"


def test_ban_and_unban(double: GitLabDouble, gl: gitlab.Gitlab) -> None:
    user = double.add_user("u", "u@example.com")
    assert gl.users.get(user["id"], lazy=True).ban() is True
    assert gl.users.get(user["id"], lazy=True).block() is None  # banned counts as blocked
    assert gl.users.get(user["id"], lazy=True).unban() is True
    assert double.user(user["id"])["state"] == "active"


def test_blocked_users_token_is_refused(double: GitLabDouble) -> None:
    user = double.add_user("u", "u@example.com", state="blocked")
    double.add_token("glpat-u", user["id"])
    error = error_of(lambda: gitlab.Gitlab(double.url, private_token="glpat-u").http_get("/user"))
    assert (error.response_code, error.error_message) == (
        403,
        "403 Forbidden - Your account has been blocked.",
    )


def test_request_log_records_method_path_body_status(
    double: GitLabDouble, gl: gitlab.Gitlab
) -> None:
    create(gl, "alice", "alice@example.com")
    (record,) = double.calls("POST", "/api/v4/users")
    assert record.status == 201 and record.json["username"] == "alice"
    assert record.token == double.admin_token


# -- the token's own rotation ------------------------------------------------------------------


def test_rotating_the_token_revokes_it_and_answers_a_new_one(double: GitLabDouble) -> None:
    alice = double.add_user("alice", "alice@example.com")
    double.add_token("glpat-alice", alice["id"], scopes=["api"])
    old = gitlab.Gitlab(double.url, private_token="glpat-alice")
    rotated = old.http_post("/personal_access_tokens/self/rotate")
    assert rotated["token"].startswith("glpat-") and rotated["token"] != "glpat-alice"
    week = (dt.date.today() + dt.timedelta(days=7)).isoformat()
    assert (rotated["active"], rotated["expires_at"], rotated["scopes"]) == (True, week, ["api"])
    new = gitlab.Gitlab(double.url, private_token=rotated["token"])
    assert new.http_get("/personal_access_tokens/self")["id"] == rotated["id"]
    error = error_of(lambda: old.http_get("/user"))
    assert (error.response_code, error.error_message) == (401, "401 Unauthorized")

    later = new.http_post(
        "/personal_access_tokens/self/rotate", post_data={"expires_at": "2027-11-30"}
    )
    assert later["expires_at"] == "2027-11-30"


def test_rotating_again_with_the_old_token_revokes_the_new_one(double: GitLabDouble) -> None:
    """Reuse detection (gitlab.md): two instances rotating the same token lose both."""
    alice = double.add_user("alice", "alice@example.com")
    double.add_token("glpat-alice", alice["id"], scopes=["api"])
    old = gitlab.Gitlab(double.url, private_token="glpat-alice")
    first = old.http_post("/personal_access_tokens/self/rotate")["token"]
    error = error_of(lambda: old.http_post("/personal_access_tokens/self/rotate"))
    assert error.response_code == 401
    error = error_of(lambda: gitlab.Gitlab(double.url, private_token=first).http_get("/user"))
    assert error.response_code == 401, "the token minted from it is revoked too"


def test_a_token_without_api_may_not_rotate_itself(double: GitLabDouble) -> None:
    alice = double.add_user("alice", "alice@example.com")
    double.add_token("glpat-alice", alice["id"], scopes=["read_api"])
    client = gitlab.Gitlab(double.url, private_token="glpat-alice")
    error = error_of(lambda: client.http_post("/personal_access_tokens/self/rotate"))
    assert error.response_code == 403
    assert client.http_get("/personal_access_tokens/self")["active"] is True
