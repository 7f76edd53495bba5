"""GitLab calls per SCIM operation, counted in the double's request log (issue 13).

Each count is the floor, what GitLab needs at minimum: a new person is one create; a member
added to a settled group is one lookup of that member (never a listing of the group) and one
add; the group's path is resolved once, until GitLab answers 404 for its id.
"""

from __future__ import annotations

from typing import Any

import pytest

from scim_bridge.settings import GroupRule
from tests.conftest import entra_user

PROVIDER = "openid_connect"
DEVELOPER = 30
RULE = GroupRule(None, "GitLab Developers", "acme/engineering", DEVELOPER)
GROUP_PATH = "/api/v4/groups/acme%2Fengineering"


@pytest.fixture
def bridge(make_bridge: Any, acme: Any) -> Any:
    return make_bridge(acme, groups={"rules": (RULE,)})


def create_user(bridge: Any, gitlab: Any, name: str) -> tuple[str, int]:
    response = bridge.scim.post(
        "/Users", entra_user(f"{name}@contoso.com", externalId=f"oid-{name}")
    )
    assert response.status_code == 201, response.json
    (account,) = gitlab.users_with_identity(PROVIDER, f"oid-{name}")
    return response.json["id"], account["id"]


def create_group(bridge: Any, *members: str) -> str:
    body = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "GitLab Developers",
        "externalId": "devs-oid",
        "members": [{"value": member} for member in members],
    }
    response = bridge.scim.post("/Groups", body)
    assert response.status_code == 201, response.json
    return str(response.json["id"])


def add_members(bridge: Any, group_id: str, *user_ids: str) -> None:
    operation = {"op": "Add", "path": "members", "value": [{"value": u} for u in user_ids]}
    assert bridge.scim.patch(f"/Groups/{group_id}", [operation]).status_code == 204


def calls(gitlab: Any) -> list[str]:
    return [f"{r.method} {r.path}" for r in gitlab.requests]


def looked_up_ids(gitlab: Any, path: str) -> list[list[int]]:
    """The `user_ids[]` of each lookup on `path`: never absent, so the group is never listed."""
    found = []
    for record in gitlab.calls("GET", path):
        ids = record.query.get("user_ids[]")
        assert ids is not None, f"{path} listed without user_ids: {record.query}"
        found.append([int(i) for i in (ids if isinstance(ids, list) else [ids])])
    return found


def levels(gitlab: Any) -> dict[int, int]:
    return {m["user_id"]: m["access_level"] for m in gitlab.members("acme/engineering")}


def test_a_new_person_is_one_call_the_create(bridge: Any, acme: Any) -> None:
    acme.clear_requests()
    create_user(bridge, acme, "jane")
    # The process's first run also resolves the protected accounts to ids, once.
    protection = [
        (r.method, r.path, r.query)
        for r in acme.requests
        if r.path != "/api/v4/users" or r.method == "GET"
    ]
    assert protection == [
        ("GET", "/api/v4/users", {"admins": "true", "per_page": "100"}),
        ("GET", "/api/v4/users", {"username": "root", "per_page": "100"}),
    ]
    assert calls(acme)[-1] == "POST /api/v4/users"
    acme.clear_requests()
    create_user(bridge, acme, "bob")
    assert calls(acme) == ["POST /api/v4/users"]


def test_one_member_added_to_a_settled_group_is_one_lookup_and_one_add(
    bridge: Any, acme: Any
) -> None:
    group_id = acme.group("acme/engineering")["id"]
    # A big group: 300 members the bridge never saw, which no add may list.
    for n in range(300):
        other = acme.add_user(f"member{n}", f"member{n}@elsewhere.com")
        acme.add_member("acme/engineering", other["id"], DEVELOPER)
    jane, _ = create_user(bridge, acme, "jane")
    bob, bob_account = create_user(bridge, acme, "bob")
    pat, pat_account = create_user(bridge, acme, "pat")
    devs = create_group(bridge, jane)  # the group's first settle resolves its path
    assert len(acme.calls("GET", GROUP_PATH)) == 1

    acme.clear_requests()
    add_members(bridge, devs, bob)
    members = f"/api/v4/groups/{group_id}/members"
    assert calls(acme) == [f"GET {members}/all", f"POST {members}"]
    assert looked_up_ids(acme, f"{members}/all") == [[bob_account]]
    assert levels(acme)[bob_account] == DEVELOPER

    acme.clear_requests()
    add_members(bridge, devs, pat)  # the second PATCH: the path is not resolved again
    assert calls(acme) == [f"GET {members}/all", f"POST {members}"]
    assert levels(acme)[pat_account] == DEVELOPER


def test_250_members_in_one_patch_are_three_lookups_and_three_adds(bridge: Any, acme: Any) -> None:
    group_id = acme.group("acme/engineering")["id"]
    users = [create_user(bridge, acme, f"user{n}") for n in range(250)]
    devs = create_group(bridge)
    acme.clear_requests()
    add_members(bridge, devs, *(user_id for user_id, _ in users))
    members = f"/api/v4/groups/{group_id}/members"
    assert sorted(calls(acme)) == sorted(
        [f"GET {GROUP_PATH}"] + [f"GET {members}/all"] * 3 + [f"POST {members}"] * 3
    )
    assert [len(ids) for ids in looked_up_ids(acme, f"{members}/all")] == [100, 100, 50]
    accounts = {account for _, account in users}
    assert {u for u, level in levels(acme).items() if level == DEVELOPER} >= accounts


def test_a_member_found_in_the_lookup_is_looked_up_as_a_direct_member_too(
    bridge: Any, acme: Any
) -> None:
    """`/members/all` may report an inherited level; only then is `/members` asked, for that user,
    and a level found in place is kept as before."""
    group_id = acme.group("acme/engineering")["id"]
    jane, _ = create_user(bridge, acme, "jane")
    bob, bob_account = create_user(bridge, acme, "bob")
    devs = create_group(bridge, jane)
    acme.add_member("acme", bob_account, 40)  # bob inherits maintainer from the parent group
    acme.clear_requests()
    add_members(bridge, devs, bob)
    members = f"/api/v4/groups/{group_id}/members"
    assert calls(acme) == [f"GET {members}/all", f"GET {members}"]
    assert looked_up_ids(acme, members) == [[bob_account]]
    assert bob_account not in levels(acme), "inheritance covers it: no direct membership"


def test_a_group_gone_from_its_cached_id_is_resolved_again(bridge: Any, acme: Any) -> None:
    jane, _ = create_user(bridge, acme, "jane")
    bob, bob_account = create_user(bridge, acme, "bob")
    devs = create_group(bridge, jane)
    old_id = acme.group("acme/engineering")["id"]
    # Deleted for good and made again at the same path: the cached id answers 404 now.
    acme.remove_group("acme/engineering")
    new_id = acme.add_group("acme/engineering")["id"]
    acme.clear_requests()
    add_members(bridge, devs, bob)
    assert calls(acme) == [
        f"GET /api/v4/groups/{old_id}/members/all",
        f"GET {GROUP_PATH}",
        f"GET /api/v4/groups/{new_id}/members/all",
        f"POST /api/v4/groups/{new_id}/members",
    ]
    assert [r.status for r in acme.requests] == [404, 200, 200, 201]
    assert levels(acme) == {bob_account: DEVELOPER}
