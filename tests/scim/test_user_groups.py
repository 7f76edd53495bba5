"""A user's ``groups`` (RFC 7643 §4.1.2): read-only, returned by default, computed from members.

Each entry is a group the user is a direct member of: its ``id`` as ``value``, an absolute
``$ref``, its ``displayName`` as ``display`` and ``type`` "direct", in group id order. They are
read from the membership rows (never from the user's stored document, whatever a client sends),
only when the answer keeps them, with one query for a whole page of users; they can be filtered.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from scim_bridge.store.schema import users
from tests.conftest import entra_user
from tests.conftest import sql_statements as statements
from tests.scim.test_groups_api import create_group

BASE = "http://localhost/scim/v2"
SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"


def create_user(scim: Any, name: str, **overrides: Any) -> str:
    response = scim.post("/Users", entra_user(f"{name}@contoso.com", **overrides))
    assert response.status_code == 201, response.json
    return str(response.json["id"])


def entry(group: dict[str, Any]) -> dict[str, Any]:
    """What a user's ``groups`` holds for ``group``."""
    return {
        "value": group["id"],
        "$ref": f"{BASE}/Groups/{group['id']}",
        "display": group["displayName"],
        "type": "direct",
    }


def expected(*groups: dict[str, Any]) -> list[dict[str, Any]]:
    return [entry(group) for group in sorted(groups, key=lambda group: group["id"])]


def join(scim: Any, group: dict[str, Any], *user_ids: str) -> None:
    add = [{"op": "Add", "path": "members", "value": [{"value": u} for u in user_ids]}]
    assert scim.patch(f"/Groups/{group['id']}", add).status_code == 204


def reads_groups(seen: list[str]) -> int:
    return sum("group_members" in statement for statement in seen)


@pytest.fixture
def member(scim: Any) -> dict[str, Any]:
    """A user in two groups, and a user in none."""
    alice = create_user(scim, "alice")
    loner = create_user(scim, "loner")
    developers = create_group(scim, "GitLab Developers", members=[{"value": alice}])
    operators = create_group(scim, "Operators", externalId="ops")
    join(scim, operators, alice)
    return {"id": alice, "loner": loner, "groups": [developers, operators]}


def test_a_member_gets_its_groups_by_default(scim: Any, member: dict[str, Any]) -> None:
    found = scim.get(f"/Users/{member['id']}").json
    assert found["groups"] == expected(*member["groups"])
    assert "groups" not in scim.get(f"/Users/{member['loner']}").json  # absent, not empty


def test_groups_follow_the_attributes_asked_for(scim: Any, member: dict[str, Any]) -> None:
    at = f"/Users/{member['id']}"
    asked = scim.get(f"{at}?attributes=groups").json
    assert set(asked) == {"schemas", "id", "groups"}
    assert asked["groups"] == expected(*member["groups"])
    assert scim.get(f"{at}?attributes=groups.display").json["groups"] == [
        {"display": group["displayName"]}
        for group in sorted(member["groups"], key=lambda g: g["id"])
    ]
    urn = "urn:ietf:params:scim:schemas:core:2.0:User:groups"
    assert scim.get(f"{at}?attributes={urn}").json["groups"] == expected(*member["groups"])
    assert "groups" not in scim.get(f"{at}?attributes=userName").json
    assert "groups" not in scim.get(f"{at}?excludedAttributes=groups").json
    assert "groups" in scim.get(f"{at}?excludedAttributes=emails").json


def test_groups_are_not_read_when_the_answer_leaves_them_out(
    bridge: Any, scim: Any, member: dict[str, Any]
) -> None:
    at = f"/Users/{member['id']}"
    for query in ("?excludedAttributes=groups", "?attributes=userName,emails"):
        with statements(bridge) as seen:
            assert scim.get(f"{at}{query}").status_code == 200
        assert reads_groups(seen) == 0, query
        with statements(bridge) as seen:
            assert scim.get(f"/Users{query}").status_code == 200
        assert reads_groups(seen) == 0, query
    with statements(bridge) as seen:
        assert "groups" in scim.get(at).json
    assert reads_groups(seen) == 1


def test_lists_and_searches_carry_groups(scim: Any, member: dict[str, Any]) -> None:
    listed = {user["id"]: user for user in scim.get("/Users").json["Resources"]}
    assert listed[member["id"]]["groups"] == expected(*member["groups"])
    assert "groups" not in listed[member["loner"]]
    body = {"schemas": [SEARCH], "filter": f'id eq "{member["id"]}"', "attributes": ["groups"]}
    searched = scim.post("/Users/.search", body).json["Resources"]
    assert searched == [
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "id": member["id"],
            "groups": expected(*member["groups"]),
        }
    ]
    root = scim.get('/?filter=userName eq "alice@contoso.com"').json["Resources"]
    assert root[0]["groups"] == expected(*member["groups"])


def test_write_answers_carry_groups_and_never_store_them(
    bridge: Any, scim: Any, member: dict[str, Any]
) -> None:
    """PATCH and PUT answer with the groups; what a client sends as ``groups`` is not kept."""
    at = f"/Users/{member['id']}"
    patched = scim.patch(at, [{"op": "Replace", "path": "title", "value": "Engineer"}])
    assert patched.status_code == 200 and patched.json["groups"] == expected(*member["groups"])
    claimed = [{"value": "not-a-group", "display": "Claimed", "type": "direct"}]
    put = scim.put(at, entra_user("alice@contoso.com", groups=claimed))
    assert put.status_code == 200, put.json
    assert put.json["groups"] == expected(*member["groups"])
    created = scim.post("/Users", entra_user("newcomer@contoso.com", groups=claimed))
    assert created.status_code == 201 and "groups" not in created.json
    with bridge.bridge.db.transaction(write=False) as tx:
        documents = tx.connection.execute(select(users.c.data)).scalars().all()
    assert documents and all("groups" not in document for document in documents)
    refused = scim.patch(at, [{"op": "add", "path": "groups", "value": claimed}])
    assert refused.status_code == 400 and refused.json["scimType"] == "mutability"


def test_groups_follow_membership_changes(scim: Any, member: dict[str, Any]) -> None:
    developers, operators = member["groups"]
    at = f"/Users/{member['id']}"
    rename = [{"op": "Replace", "path": "displayName", "value": "Ops"}]
    assert scim.patch(f"/Groups/{operators['id']}", rename).status_code == 204
    renamed = {**operators, "displayName": "Ops"}
    assert scim.get(at).json["groups"] == expected(developers, renamed)
    leave = [{"op": "remove", "path": f'members[value eq "{member["id"]}"]'}]
    assert scim.patch(f"/Groups/{developers['id']}", leave).status_code == 204
    assert scim.get(at).json["groups"] == expected(renamed)
    assert scim.delete(f"/Groups/{operators['id']}").status_code == 204
    assert "groups" not in scim.get(at).json


def test_filters_on_groups(scim: Any, member: dict[str, Any]) -> None:
    developers, operators = member["groups"]
    bob = create_user(scim, "bob")
    join(scim, developers, bob)

    def names(expression: str) -> list[str]:
        response = scim.get(f"/Users?filter={expression}&attributes=userName")
        assert response.status_code == 200, response.json
        return sorted(user["userName"].split("@")[0] for user in response.json["Resources"])

    assert names(f'groups.value eq "{developers["id"]}"') == ["alice", "bob"]
    assert names(f'groups eq "{operators["id"]}"') == ["alice"]
    assert names('groups.display co "OPERAT"') == ["alice"]
    assert names('groups[display eq "gitlab developers" and type eq "direct"]') == ["alice", "bob"]
    assert names("groups pr") == ["alice", "bob"]
    assert names("not (groups pr)") == ["loner"]
    assert names(f'groups.value eq "{operators["id"]}" and userName sw "b"') == []
    assert names(f'groups.value eq "{developers["id"].upper()}"') == []  # caseExact, as ids are
    for order, loner_at in (("ascending", -1), ("descending", 0)):  # no value: last, or first
        query = f"/Users?sortBy=groups.display&sortOrder={order}&attributes=userName"
        ordered = [user["userName"] for user in scim.get(query).json["Resources"]]
        assert ordered[loner_at] == "loner@contoso.com", ordered


def test_a_page_of_users_reads_their_groups_in_one_query(bridge: Any, scim: Any) -> None:
    """Listing costs one more query per page, not one per user: 2 and 20 users cost the same."""
    people = [create_user(scim, f"user{n:02}") for n in range(20)]
    for name in ("Alpha", "Beta", "Gamma"):
        create_group(scim, name, members=[{"value": user} for user in people])
    assert scim.get("/Users?count=1").status_code == 200  # what a first search reads once
    counts = {}
    for size in (2, 20):
        with statements(bridge) as seen:
            page = scim.get(f"/Users?count={size}").json["Resources"]
        assert len(page) == size
        assert all([g["display"] for g in user["groups"]] for user in page)
        assert all(len(user["groups"]) == 3 for user in page)
        counts[size] = (len(seen), reads_groups(seen))
    assert counts[2] == counts[20], counts
    assert counts[2][1] == 1
