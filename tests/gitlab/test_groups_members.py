"""GroupManager and MemberManager against the double (gitlab.md §1.9, §1.10)."""

from __future__ import annotations

import pytest

from scim_bridge.gitlab.client import GitLab
from scim_bridge.gitlab.errors import InvalidError
from scim_bridge.gitlab.errors import NotFoundError
from scim_bridge.gitlab.errors import TransientError
from scim_bridge.gitlab.types import GitLabGroup
from scim_bridge.gitlab.types import Member
from tests.gitlab_double import GitLabDouble


def seed_users(double: GitLabDouble, count: int) -> list[int]:
    return [double.add_user(f"u{n}", f"u{n}@example.com")["id"] for n in range(count)]


def levels(double: GitLabDouble, group: str) -> dict[int, int]:
    return {m["user_id"]: m["access_level"] for m in double.members(group)}


# -- groups -------------------------------------------------------------------------------


def test_get_by_id_or_full_path_and_find(client: GitLab, double: GitLabDouble) -> None:
    acme = double.add_group("acme", name="ACME Corp")
    dev = double.add_group("acme/dev")
    assert client.groups.get(acme["id"]) == GitLabGroup(acme["id"], "acme", "ACME Corp", None)
    assert client.groups.get("acme/dev") == GitLabGroup(dev["id"], "acme/dev", "dev", acme["id"])
    assert double.calls("GET", "/api/v4/groups/acme%2Fdev")[0].query == {"with_projects": "False"}
    assert client.groups.find("acme/nope") is None
    with pytest.raises(NotFoundError):
        client.groups.get("acme/nope")


def test_a_full_path_is_resolved_once_per_client(client: GitLab, double: GitLabDouble) -> None:
    double.add_group("acme")
    dev = double.add_group("acme/dev")
    double.clear_requests()
    found = [
        client.groups.find("acme/dev"),
        client.groups.get("ACME/Dev"),
        client.groups.find("acme/dev"),
    ]
    assert {group.id for group in found if group is not None} == {dev["id"]}
    assert len(double.requests) == 1, "one GET /groups/acme%2Fdev, then the cached id"
    client.groups.get(dev["id"])
    assert len(double.requests) == 2, "by id, GitLab is asked: the cache is for paths"
    assert client.groups.find("acme/nope") is None and client.groups.find("acme/nope") is None
    assert len(double.requests) == 4, "a missing path is never cached"


def test_a_404_for_the_path_or_a_call_on_the_id_forgets_it(
    client: GitLab, double: GitLabDouble
) -> None:
    (user,) = seed_users(double, 1)
    double.add_group("acme")
    old = client.groups.get("acme")
    double.remove_group("acme")
    new = double.add_group("acme")  # deleted and made again: same path, another id
    double.clear_requests()
    with pytest.raises(NotFoundError):
        client.members.list_all(old.id, [user])  # the stale id: GitLab's 404 Group Not Found
    assert client.groups.get("acme").id == new["id"]
    assert [r.path for r in double.requests] == [
        f"/api/v4/groups/{old.id}/members/all",
        "/api/v4/groups/acme",
    ]
    # A 404 for a member, not the group, keeps the id.
    client.members.remove(new["id"], user)
    client.groups.get("acme")
    assert len(double.calls("GET", "/api/v4/groups/acme")) == 1
    double.remove_group("acme")
    with pytest.raises(NotFoundError):
        client.groups.get(new["id"])
    assert client.groups.find("acme") is None, "asked again after the 404 on its id"
    assert len(double.calls("GET", "/api/v4/groups/acme")) == 2


def test_a_created_group_needs_no_lookup(client: GitLab, double: GitLabDouble) -> None:
    parent = double.add_group("entra")
    created = client.groups.create(name="Developers", path="developers", parent_id=parent["id"])
    double.clear_requests()
    assert client.groups.get("entra/developers") == created
    assert double.requests == []


def test_create_subgroup_and_taken_path(client: GitLab, double: GitLabDouble) -> None:
    parent = double.add_group("entra")
    created = client.groups.create(name="Developers", path="developers", parent_id=parent["id"])
    assert (created.full_path, created.parent_id) == ("entra/developers", parent["id"])
    assert double.group("entra/developers")["visibility"] == "private"
    with pytest.raises(InvalidError) as info:
        client.groups.create(name="Again", path="developers", parent_id=parent["id"])
    assert info.value.status == 400
    assert info.value.message == 'Failed to save group {:path=>["has already been taken"]}'


# -- members ------------------------------------------------------------------------------


def test_list_direct_follows_pages(client: GitLab, double: GitLabDouble) -> None:
    users = seed_users(double, 130)
    double.add_group("big")
    for user in users:
        double.add_member("big", user, 30)
    group_id = double.group("big")["id"]
    double.clear_requests()
    members = client.members.list_direct(group_id)
    assert sorted(m.user_id for m in members) == users
    assert len(double.calls("GET", f"/api/v4/groups/{group_id}/members")) == 2


def test_list_filters_by_user_ids_in_chunks(client: GitLab, double: GitLabDouble) -> None:
    users = seed_users(double, 3)
    double.add_group("acme")
    double.add_member("acme", users[0], 30)
    double.add_member("acme", users[1], 40)
    group_id = double.group("acme")["id"]
    assert client.members.list_direct(group_id, [users[1]]) == [Member(users[1], 40)]
    assert client.members.list_direct(group_id, []) == []
    double.clear_requests()
    wanted = [users[0], *range(10_000, 10_150)]
    assert client.members.list_direct(group_id, wanted) == [Member(users[0], 30)]
    assert len(double.requests) == 2  # 151 ids: two calls of at most 100


def test_list_all_includes_inherited_at_the_highest_level(
    client: GitLab, double: GitLabDouble
) -> None:
    users = seed_users(double, 2)
    double.add_group("acme")
    dev = double.add_group("acme/dev")
    double.add_member("acme", users[0], 40)
    double.add_member("acme/dev", users[0], 20)
    double.add_member("acme/dev", users[1], 30)
    assert sorted(client.members.list_all(dev["id"]), key=lambda m: m.user_id) == [
        Member(users[0], 40),
        Member(users[1], 30),
    ]
    assert client.members.list_all(dev["id"], [users[1]]) == [Member(users[1], 30)]


def test_add_many_batches_100_per_call_and_overwrites(client: GitLab, double: GitLabDouble) -> None:
    users = seed_users(double, 250)
    group = double.add_group("acme")
    double.add_member("acme", users[0], 50)
    client.members.add_many(group["id"], users, 30)
    posts = double.calls("POST", f"/api/v4/groups/{group['id']}/members")
    assert [len(p.json["user_id"].split(",")) for p in posts] == [100, 100, 50]
    assert levels(double, "acme") == dict.fromkeys(users, 30)


def test_add_many_single_user_adds_or_updates(client: GitLab, double: GitLabDouble) -> None:
    (user,) = seed_users(double, 1)
    group = double.add_group("acme")
    client.members.add_many(group["id"], [user], 20)
    assert levels(double, "acme") == {user: 20}
    client.members.add_many(group["id"], [user], 40)  # 409 "Member already exists" → PUT
    assert levels(double, "acme") == {user: 40}
    assert [r.method for r in double.requests] == ["POST", "POST", "PUT"]
    double.clear_requests()
    client.members.add_many(group["id"], [], 40)
    assert double.requests == []


def test_add_many_reads_the_status_body(client: GitLab, double: GitLabDouble) -> None:
    users = seed_users(double, 2)
    double.add_group("acme")
    dev = double.add_group("acme/dev")
    double.add_member("acme", users[0], 40)
    with pytest.raises(InvalidError) as info:
        client.members.add_many(dev["id"], users, 20)
    assert info.value.message == (
        "u0: Access level should be greater than or equal to Maintainer inherited "
        "membership from group acme"
    )
    assert levels(double, "acme/dev") == {users[1]: 20}


def test_add_below_inherited_single_is_invalid(client: GitLab, double: GitLabDouble) -> None:
    (user,) = seed_users(double, 1)
    double.add_group("acme")
    dev = double.add_group("acme/dev")
    double.add_member("acme", user, 40)
    with pytest.raises(InvalidError) as info:
        client.members.add_many(dev["id"], [user], 20)
    assert list(info.value.errors) == ["access_level"]


def test_update(client: GitLab, double: GitLabDouble) -> None:
    users = seed_users(double, 2)
    group = double.add_group("acme")
    double.add_member("acme", users[0], 30)
    client.members.update(group["id"], users[0], 40)
    assert levels(double, "acme") == {users[0]: 40}
    with pytest.raises(NotFoundError):
        client.members.update(group["id"], users[1], 40)


def test_remove_is_idempotent_but_not_for_a_missing_group(
    client: GitLab, double: GitLabDouble
) -> None:
    (user,) = seed_users(double, 1)
    group = double.add_group("acme")
    double.add_member("acme", user, 30)
    client.members.remove(group["id"], user)
    client.members.remove(group["id"], user)  # 404 "404 Not found": already gone
    assert levels(double, "acme") == {}
    with pytest.raises(NotFoundError):
        client.members.remove(4242, user)


def test_remove_rate_limit_is_transient_with_retry_after(
    client: GitLab, double: GitLabDouble
) -> None:
    double.member_delete_limit_per_minute = 2
    users = seed_users(double, 3)
    group = double.add_group("acme")
    for user in users:
        double.add_member("acme", user, 30)
    client.members.remove(group["id"], users[0])
    client.members.remove(group["id"], users[1])
    with pytest.raises(TransientError) as info:
        client.members.remove(group["id"], users[2])
    assert (info.value.status, info.value.retry_after) == (429, 60.0)
    assert "requested too many times" in info.value.message
    assert levels(double, "acme") == {users[2]: 30}
