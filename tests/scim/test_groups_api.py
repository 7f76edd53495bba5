"""SCIM /Groups over HTTP as Entra uses it (entra.md §1.8), with no GitLab configured (dry-run)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import SCIM_JSON
from tests.conftest import entra_user

MS_GROUP_URI = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


def entra_group(display_name: str = "GitLab Developers", **overrides: Any) -> dict[str, Any]:
    body = {
        "schemas": [CORE_GROUP, MS_GROUP_URI],
        "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
        "displayName": display_name,
        "meta": {"resourceType": "Group"},
    }
    body.update(overrides)
    return body


def create_group(
    scim: Any, display_name: str = "GitLab Developers", **overrides: Any
) -> dict[str, Any]:
    response = scim.post("/Groups", entra_group(display_name, **overrides))
    assert response.status_code == 201, response.json
    return response.json


def create_users(scim: Any, count: int) -> list[str]:
    return [
        scim.post("/Users", entra_user(f"user{index}@contoso.com")).json["id"]
        for index in range(count)
    ]


def members_of(scim: Any, group_id: str) -> list[str]:
    return sorted(
        member["value"] for member in scim.get(f"/Groups/{group_id}").json.get("members", [])
    )


def test_create_tolerates_entras_schema_uri_and_answers_201(scim: Any) -> None:
    response = scim.post("/Groups", entra_group())
    assert response.status_code == 201
    group = response.json
    assert response.headers["Location"].endswith(f"/Groups/{group['id']}")
    assert group["schemas"] == [CORE_GROUP]
    assert group["displayName"] == "GitLab Developers"
    assert group["externalId"] == "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159"
    assert group["meta"]["resourceType"] == "Group" and group["meta"]["version"]


def test_create_with_members_and_read_them_back(scim: Any) -> None:
    users = create_users(scim, 3)
    group = create_group(scim, members=[{"value": user, "$ref": None} for user in users])
    assert sorted(m["value"] for m in group["members"]) == sorted(users)
    assert members_of(scim, group["id"]) == sorted(users)


def test_display_name_uniqueness_is_case_insensitive(scim: Any) -> None:
    create_group(scim)
    response = scim.post("/Groups", entra_group("GITLAB developers", externalId="other"))
    assert response.status_code == 409 and response.json["scimType"] == "uniqueness"


def test_excluded_members_are_absent_not_empty(scim: Any) -> None:
    users = create_users(scim, 2)
    group = create_group(scim, members=[{"value": user} for user in users])
    by_id = scim.get(f"/Groups/{group['id']}?excludedAttributes=members").json
    assert "members" not in by_id and by_id["displayName"] == "GitLab Developers"
    listed = scim.get(
        '/Groups?excludedAttributes=members&filter=displayName eq "gitlab developers"'
    )
    assert listed.json["totalResults"] == 1
    assert "members" not in listed.json["Resources"][0]
    everything = scim.get("/Groups?excludedAttributes=members").json
    assert all("members" not in resource for resource in everything["Resources"])


@pytest.mark.parametrize(
    "expression",
    [
        'displayName eq "GITLAB DEVELOPERS"',
        'externalId eq "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159"',
    ],
)
def test_filters(scim: Any, expression: str) -> None:
    group = create_group(scim)
    create_group(scim, "Other", externalId="x")
    found = scim.get("/Groups", query_string={"filter": expression}).json
    assert [resource["id"] for resource in found["Resources"]] == [group["id"]]


def test_filter_by_id_and_no_match_is_empty(scim: Any) -> None:
    group = create_group(scim)
    assert scim.get(f'/Groups?filter=id eq "{group["id"]}"').json["totalResults"] == 1
    assert scim.get('/Groups?filter=displayName eq "nope"').json["totalResults"] == 0


@pytest.mark.parametrize(
    "template",
    [
        'id eq "{group}" and members eq "{user}"',
        'members eq "{user}" and id eq "{group}"',
        'id eq "{group}" and members.value eq "{user}"',
        'members.value eq "{user}" and id eq "{group}"',
    ],
)
def test_membership_check(scim: Any, template: str) -> None:
    member, outsider = create_users(scim, 2)
    group = create_group(scim, members=[{"value": member}])
    query = {
        "filter": template.format(group=group["id"], user=member),
        "excludedAttributes": "members",
    }
    hit = scim.get("/Groups", query_string=query).json
    assert hit["totalResults"] == 1 and "members" not in hit["Resources"][0]
    query["filter"] = template.format(group=group["id"], user=outsider)
    assert scim.get("/Groups", query_string=query).json["totalResults"] == 0


def test_patch_add_members_default_dialect_answers_204(scim: Any) -> None:
    users = create_users(scim, 3)
    group = create_group(scim)
    response = scim.patch(
        f"/Groups/{group['id']}",
        [{"op": "Add", "path": "members", "value": [{"$ref": None, "value": u} for u in users]}],
    )
    assert response.status_code == 204
    assert members_of(scim, group["id"]) == sorted(users)
    again = scim.patch(
        f"/Groups/{group['id']}", [{"op": "Add", "path": "members", "value": [{"value": users[0]}]}]
    )
    assert again.status_code == 204
    assert members_of(scim, group["id"]) == sorted(users)


def test_patch_remove_with_value_removes_exactly_those(scim: Any) -> None:
    users = create_users(scim, 3)
    group = create_group(scim, members=[{"value": u} for u in users])
    response = scim.patch(
        f"/Groups/{group['id']}",
        [
            {
                "op": "Remove",
                "path": "members",
                "value": [{"$ref": None, "value": users[0]}, {"value": "not-a-member"}],
            }
        ],
    )
    assert response.status_code == 204
    assert members_of(scim, group["id"]) == sorted(users[1:])


def test_patch_remove_with_value_path_flag_dialect(scim: Any) -> None:
    users = create_users(scim, 3)
    group = create_group(scim, members=[{"value": u} for u in users])
    response = scim.patch(
        f"/Groups/{group['id']}?aadOptscim062020",
        [{"op": "remove", "path": f'members[value eq "{users[1]}"]'}],
    )
    assert response.status_code == 204
    assert members_of(scim, group["id"]) == sorted([users[0], users[2]])
    nothing = scim.patch(
        f"/Groups/{group['id']}", [{"op": "remove", "path": 'members[value eq "ghost"]'}]
    )
    assert nothing.status_code == 204
    assert members_of(scim, group["id"]) == sorted([users[0], users[2]])


def test_patch_remove_with_a_richer_filter_still_works(scim: Any) -> None:
    users = create_users(scim, 3)
    group = create_group(
        scim, members=[{"value": u, "display": f"User {i}"} for i, u in enumerate(users)]
    )
    response = scim.patch(
        f"/Groups/{group['id']}", [{"op": "remove", "path": 'members[display eq "User 2"]'}]
    )
    assert response.status_code == 204
    assert members_of(scim, group["id"]) == sorted(users[:2])


def test_patch_replace_display_name_and_external_id_with_and_without_path(scim: Any) -> None:
    group = create_group(scim)
    response = scim.patch(
        f"/Groups/{group['id']}",
        [{"op": "Replace", "path": "displayName", "value": "Renamed"}],
    )
    assert response.status_code == 204
    path_less = scim.patch(
        f"/Groups/{group['id']}",
        [{"op": "replace", "value": {"displayName": "Renamed Again", "externalId": "c3b97a69"}}],
    )
    assert path_less.status_code == 204
    fetched = scim.get(f"/Groups/{group['id']}").json
    assert fetched["displayName"] == "Renamed Again" and fetched["externalId"] == "c3b97a69"
    assert fetched["meta"]["version"] != group["meta"]["version"]


def test_patch_with_requested_attributes_answers_200(scim: Any) -> None:
    group = create_group(scim)
    response = scim.patch(
        f"/Groups/{group['id']}?attributes=displayName",
        [{"op": "Replace", "path": "displayName", "value": "Asked"}],
    )
    assert response.status_code == 200
    assert response.json["displayName"] == "Asked"


def test_patch_members_changes_the_version(scim: Any) -> None:
    (user,) = create_users(scim, 1)
    group = create_group(scim)
    scim.patch(
        f"/Groups/{group['id']}", [{"op": "Add", "path": "members", "value": [{"value": user}]}]
    )
    assert scim.get(f"/Groups/{group['id']}").json["meta"]["version"] != group["meta"]["version"]
    stale = scim.patch(
        f"/Groups/{group['id']}",
        [{"op": "Remove", "path": "members", "value": [{"value": user}]}],
        headers={"If-Match": group["meta"]["version"]},
    )
    assert stale.status_code == 412
    assert members_of(scim, group["id"]) == [user]


def test_put_replaces_members(scim: Any) -> None:
    users = create_users(scim, 3)
    group = create_group(scim, members=[{"value": u} for u in users[:2]])
    replacement = entra_group(
        "GitLab Developers", members=[{"value": users[1]}, {"value": users[2]}]
    )
    response = scim.put(f"/Groups/{group['id']}", replacement)
    assert response.status_code == 200
    assert members_of(scim, group["id"]) == sorted(users[1:])


def test_delete_then_404(scim: Any) -> None:
    group = create_group(scim)
    assert scim.delete(f"/Groups/{group['id']}").status_code == 204
    assert scim.get(f"/Groups/{group['id']}").status_code == 404
    assert scim.delete(f"/Groups/{group['id']}").status_code == 404


def test_deleting_a_user_removes_it_from_its_groups(scim: Any) -> None:
    users = create_users(scim, 2)
    group = create_group(scim, members=[{"value": u} for u in users])
    assert scim.delete(f"/Users/{users[0]}").status_code == 204
    assert members_of(scim, group["id"]) == [users[1]]


def test_paging_groups(scim: Any) -> None:
    ids = [create_group(scim, f"Group {index}", externalId=str(index))["id"] for index in range(7)]
    first = scim.get("/Groups?startIndex=1&count=5&excludedAttributes=members").json
    second = scim.get("/Groups?startIndex=6&count=5&excludedAttributes=members").json
    assert first["totalResults"] == 7 and second["startIndex"] == 6
    assert [g["id"] for g in first["Resources"] + second["Resources"]] == ids


def test_group_responses_are_scim_json(scim: Any) -> None:
    group = create_group(scim)
    assert scim.get(f"/Groups/{group['id']}").headers["Content-Type"].startswith(SCIM_JSON)


def test_patch_asking_for_members_gets_them(scim: Any) -> None:
    users = create_users(scim, 2)
    group = create_group(scim, members=[{"value": users[0]}])
    add = [{"op": "Add", "path": "members", "value": [{"value": users[1]}]}]
    response = scim.patch(f"/Groups/{group['id']}?attributes=members", add)
    assert response.status_code == 200
    assert sorted(m["value"] for m in response.json["members"]) == sorted(users)
    without = scim.patch(f"/Groups/{group['id']}?excludedAttributes=members", [])
    assert without.status_code == 200 and "members" not in without.json


def test_patch_cannot_blank_the_display_name(scim: Any) -> None:
    group = create_group(scim)
    response = scim.patch(
        f"/Groups/{group['id']}", [{"op": "Replace", "path": "displayName", "value": ""}]
    )
    assert response.status_code == 400
    assert response.json["scimType"] in ("mutability", "invalidValue")
    assert scim.get(f"/Groups/{group['id']}").json["displayName"] == "GitLab Developers"
