"""The double's Groups and Members APIs, through python-gitlab (gitlab.md §1.9, §1.10)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gitlab
import pytest
from gitlab.exceptions import GitlabError

from tests.gitlab_double import GitLabDouble


def error_of(action: Callable[[], Any]) -> GitlabError:
    with pytest.raises(GitlabError) as info:
        action()
    return info.value


@pytest.fixture
def users(double: GitLabDouble) -> list[int]:
    return [double.add_user(f"u{n}", f"u{n}@example.com")["id"] for n in range(5)]


def test_create_and_get_by_encoded_full_path(double: GitLabDouble, gl: gitlab.Gitlab) -> None:
    acme = gl.groups.create({"name": "Acme", "path": "acme"})
    dev = gl.groups.create({"name": "Dev", "path": "dev", "parent_id": acme.id})
    assert (dev.full_path, dev.parent_id, dev.visibility) == ("acme/dev", acme.id, "private")
    assert gl.groups.get("ACME/dev").id == dev.id
    assert double.calls("GET", "/api/v4/groups/ACME%2Fdev")
    # Groups::CreateService makes the creator an Owner.
    assert double.members("acme/dev") == [{"user_id": 1, "access_level": 50}]


def test_missing_group_is_404(gl: gitlab.Gitlab) -> None:
    error = error_of(lambda: gl.groups.get("nope/never"))
    assert (error.response_code, error.error_message) == (404, "404 Group Not Found")


def test_path_taken_among_siblings_is_400(double: GitLabDouble, gl: gitlab.Gitlab) -> None:
    acme = double.add_group("acme")
    double.add_group("acme/dev")
    error = error_of(
        lambda: gl.groups.create({"name": "Dev", "path": "DEV", "parent_id": acme["id"]})
    )
    assert (error.response_code, error.error_message) == (
        400,
        'Failed to save group {:path=>["has already been taken"]}',
    )
    # Same path elsewhere is fine; a top-level path may not equal a username.
    assert gl.groups.create({"name": "Dev", "path": "dev"}).full_path == "dev"
    error = error_of(lambda: gl.groups.create({"name": "Root", "path": "root"}))
    assert error.response_code == 400 and "has already been taken" in error.error_message


def test_list_search_update_and_delete(double: GitLabDouble, gl: gitlab.Gitlab) -> None:
    double.add_group("engineering")
    double.add_group("sales")
    assert [g.path for g in gl.groups.list(search="engin", get_all=True)] == ["engineering"]
    group = gl.groups.get("engineering")
    gl.groups.update(group.id, {"name": "Engineering"})
    assert gl.groups.get(group.id).name == "Engineering"
    gl.groups.delete(group.id)
    assert double.group("engineering")["marked_for_deletion_on"] is not None
    assert double.calls("DELETE", f"/api/v4/groups/{group.id}")[0].status == 202


def test_single_add_conflict_and_missing_user(
    double: GitLabDouble, gl: gitlab.Gitlab, users: list[int]
) -> None:
    group = double.add_group("acme")
    members = gl.groups.get(group["id"], lazy=True).members
    member = members.create({"user_id": users[0], "access_level": 30})
    assert (member.id, member.access_level, member.username) == (users[0], 30, "u0")
    again = error_of(lambda: members.create({"user_id": users[0], "access_level": 40}))
    assert (again.response_code, again.error_message) == (409, "Member already exists")
    missing = error_of(lambda: members.create({"user_id": 999, "access_level": 30}))
    assert (missing.response_code, missing.error_message) == (404, "404 User Not Found")
    bad = error_of(lambda: members.create({"user_id": users[1], "access_level": 35}))
    assert (bad.response_code, bad.error_message) == (
        400,
        "access_level does not have a valid value",
    )


def test_multi_add_is_an_upsert_with_a_status_body(
    double: GitLabDouble, gl: gitlab.Gitlab, users: list[int]
) -> None:
    group = double.add_group("acme")
    double.add_member("acme", users[0], 50)
    answer = gl.http_post(
        f"/groups/{group['id']}/members",
        post_data={"user_id": f"{users[0]},{users[1]},999", "access_level": 20},
    )
    assert answer == {"status": "success"}
    levels = {m["user_id"]: m["access_level"] for m in double.members("acme")}
    assert levels == {users[0]: 20, users[1]: 20}  # overwritten down; unknown id dropped
    assert double.calls("POST", f"/api/v4/groups/{group['id']}/members")[0].status == 201


def test_multi_add_reports_per_user_errors_and_limits(
    double: GitLabDouble, gl: gitlab.Gitlab, users: list[int]
) -> None:
    double.add_group("acme")
    dev = double.add_group("acme/dev")
    double.add_member("acme", users[0], 30)
    double.add_member("acme", users[1], 40)
    answer = gl.http_post(
        f"/groups/{dev['id']}/members",
        post_data={"user_id": ",".join(str(u) for u in users[:3]), "access_level": 10},
    )
    assert answer == {
        "status": "error",
        "message": "u0: Access level should be greater than or equal to Developer inherited "
        "membership from group acme and u1: Access level should be greater than or equal to "
        "Maintainer inherited membership from group acme",
    }
    assert double.members("acme/dev") == [{"user_id": users[2], "access_level": 10}]
    too_many = gl.http_post(
        f"/groups/{dev['id']}/members",
        post_data={"user_id": ",".join(str(n) for n in range(1000, 1101)), "access_level": 10},
    )
    assert too_many["status"] == "error"
    assert too_many["message"] == "Too many users specified (limit is 100)"


def test_single_add_below_inherited_level_is_400(
    double: GitLabDouble, gl: gitlab.Gitlab, users: list[int]
) -> None:
    double.add_group("acme")
    dev = double.add_group("acme/dev")
    double.add_member("acme", users[0], 30)
    members = gl.groups.get(dev["id"], lazy=True).members
    error = error_of(lambda: members.create({"user_id": users[0], "access_level": 20}))
    assert (error.response_code, error.error_message) == (
        400,
        {
            "access_level": [
                "should be greater than or equal to Developer inherited membership from group acme"
            ]
        },
    )
    assert members.create({"user_id": users[0], "access_level": 30}).access_level == 30


def test_list_direct_all_and_user_ids_filter(
    double: GitLabDouble, gl: gitlab.Gitlab, users: list[int]
) -> None:
    double.add_group("acme")
    dev = double.add_group("acme/dev")
    double.add_member("acme", users[0], 40)
    double.add_member("acme/dev", users[0], 20)
    double.add_member("acme/dev", users[1], 30)
    group = gl.groups.get(dev["id"], lazy=True)
    assert {(m.id, m.access_level) for m in group.members.list(get_all=True)} == {
        (users[0], 20),
        (users[1], 30),
    }
    assert {(m.id, m.access_level) for m in group.members_all.list(get_all=True)} == {
        (users[0], 40),
        (users[1], 30),
    }
    filtered = group.members.list(user_ids=[users[1]], get_all=True)
    assert [m.id for m in filtered] == [users[1]]
    comma = gl.http_list(f"/groups/{dev['id']}/members", query_data={"user_ids": str(users[0])})
    assert [m["id"] for m in comma] == [users[0]]


def test_member_get_update_delete_are_direct_only(
    double: GitLabDouble, gl: gitlab.Gitlab, users: list[int]
) -> None:
    double.add_group("acme")
    dev = double.add_group("acme/dev")
    double.add_member("acme", users[0], 30)
    double.add_member("acme/dev", users[1], 30)
    members = gl.groups.get(dev["id"], lazy=True).members
    assert members.get(users[1]).access_level == 30
    for action in (
        lambda: members.get(users[0]),
        lambda: members.update(users[0], {"access_level": 40}),
        lambda: members.delete(users[0]),
    ):
        error = error_of(action)
        assert (error.response_code, error.error_message) == (404, "404 Not found")
    members.update(users[1], {"access_level": 40})
    assert double.members("acme/dev") == [{"user_id": users[1], "access_level": 40}]
    members.delete(users[1])
    assert double.members("acme/dev") == []


def test_member_delete_is_rate_limited_per_group_and_token(
    double: GitLabDouble, gl: gitlab.Gitlab, users: list[int]
) -> None:
    double.member_delete_limit_per_minute = 3
    first, second = double.add_group("first"), double.add_group("second")
    for user in users:
        double.add_member("first", user, 30)
    double.add_member("second", users[0], 30)
    for user in users[:3]:
        gl.http_delete(f"/groups/{first['id']}/members/{user}")
    error = error_of(
        lambda: gl.http_delete(f"/groups/{first['id']}/members/{users[3]}", obey_rate_limit=False)
    )
    assert error.response_code == 429
    assert error.error_message == {
        "error": "This endpoint has been requested too many times. Try again later."
    }
    (limited,) = [r for r in double.requests if r.status == 429]
    assert users[3] in [m["user_id"] for m in double.members("first")]
    gl.http_delete(f"/groups/{second['id']}/members/{users[0]}")  # another group: own budget
    response = _raw_delete(double, f"/groups/{first['id']}/members/{users[3]}")
    assert (response.status_code, response.headers["Retry-After"]) == (429, "60")
    assert limited.path == f"/api/v4/groups/{first['id']}/members/{users[3]}"


def test_member_delete_limit_recovers_after_the_window(
    double: GitLabDouble, gl: gitlab.Gitlab, users: list[int]
) -> None:
    double.member_delete_limit_per_minute = 1
    double.member_delete_window = 0.2
    group = double.add_group("acme")
    double.add_member("acme", users[0], 30)
    double.add_member("acme", users[1], 30)
    gl.http_delete(f"/groups/{group['id']}/members/{users[0]}")
    path = f"/groups/{group['id']}/members/{users[1]}"
    assert error_of(lambda: gl.http_delete(path, obey_rate_limit=False)).response_code == 429
    time.sleep(0.25)
    gl.http_delete(path, obey_rate_limit=False)
    assert double.members("acme") == []


def _raw_delete(double: GitLabDouble, path: str) -> Any:
    import requests

    return requests.delete(
        f"{double.url}/api/v4{path}", headers={"PRIVATE-TOKEN": double.admin_token}, timeout=5
    )
