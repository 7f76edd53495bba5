"""RFC 7644 around queries and versions: response attributes on writes, paging edges, ETags."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import entra_user


@pytest.fixture
def scim(make_bridge: Any) -> Any:
    return make_bridge().scim


def test_post_put_and_patch_answer_only_what_attributes_ask_for(scim: Any) -> None:
    created = scim.post("/Users?attributes=userName", entra_user())
    assert created.status_code == 201 and created.headers["Location"]
    assert set(created.json) == {"schemas", "id", "userName"}
    user_id = created.json["id"]
    excluded = scim.post("/Users?excludedAttributes=emails,name", entra_user("b@contoso.com"))
    assert "emails" not in excluded.json and "name" not in excluded.json
    assert excluded.json["userName"] == "b@contoso.com"
    put = scim.put(f"/Users/{user_id}?attributes=displayName", entra_user(displayName="Put"))
    assert put.status_code == 200 and set(put.json) == {"schemas", "id", "displayName"}
    patch = scim.patch(
        f"/Users/{user_id}?excludedAttributes=emails",
        [{"op": "Replace", "path": "title", "value": "Engineer"}],
    )
    assert patch.status_code == 200 and "emails" not in patch.json
    assert patch.json["title"] == "Engineer"


def test_count_zero_gives_the_total_and_no_resources(scim: Any) -> None:
    for index in range(3):
        scim.post("/Users", entra_user(f"user{index}@contoso.com"))
    page = scim.get("/Users?count=0").json
    assert page["totalResults"] == 3 and page["Resources"] == [] and page["itemsPerPage"] == 0


def test_start_index_past_the_end_is_an_empty_page(scim: Any) -> None:
    scim.post("/Users", entra_user())
    page = scim.get("/Users?startIndex=10&count=5").json
    assert page["totalResults"] == 1 and page["Resources"] == [] and page["startIndex"] == 10


def test_etag_header_and_meta_version_agree_and_change(scim: Any) -> None:
    created = scim.post("/Users", entra_user())
    user_id, version = created.json["id"], created.json["meta"]["version"]
    assert created.headers["ETag"] == version
    fetched = scim.get(f"/Users/{user_id}")
    assert fetched.headers["ETag"] == version == fetched.json["meta"]["version"]
    changed = scim.patch(f"/Users/{user_id}", [{"op": "Replace", "path": "title", "value": "x"}])
    assert changed.headers["ETag"] == changed.json["meta"]["version"] != version


def test_if_none_match_on_get_is_304_while_unchanged(scim: Any) -> None:
    created = scim.post("/Users", entra_user()).json
    path, version = f"/Users/{created['id']}", created["meta"]["version"]
    not_modified = scim.get(path, headers={"If-None-Match": version})
    assert not_modified.status_code == 304 and not_modified.get_data() == b""
    assert not_modified.headers["ETag"] == version
    scim.patch(path, [{"op": "Replace", "path": "title", "value": "x"}])
    assert scim.get(path, headers={"If-None-Match": version}).status_code == 200


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_if_match_with_a_stale_version_is_412_and_changes_nothing(scim: Any, method: str) -> None:
    created = scim.post("/Users", entra_user()).json
    path, stale = f"/Users/{created['id']}", created["meta"]["version"]
    scim.patch(path, [{"op": "Replace", "path": "title", "value": "newer"}])
    bodies = {
        "PUT": entra_user(displayName="Stale"),
        "PATCH": {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "Replace", "path": "title", "value": "stale"}],
        },
        "DELETE": None,
    }
    response = scim.request(method, path, bodies[method], headers={"If-Match": stale})
    assert response.status_code == 412 and response.json["status"] == "412"
    current = scim.get(path).json
    assert current["title"] == "newer" and current["displayName"] == "Jane Doe"
    fresh = scim.get(path).json["meta"]["version"]
    accepted = scim.request(method, path, bodies[method], headers={"If-Match": fresh})
    assert accepted.status_code in (200, 204)


def test_if_match_on_a_group_patch(make_bridge: Any) -> None:
    scim = make_bridge().scim
    group = scim.post("/Groups", {"displayName": "Ops"}).json
    path = f"/Groups/{group['id']}"
    rename = [{"op": "Replace", "path": "displayName", "value": "Ops 2"}]
    assert scim.patch(path, rename, headers={"If-Match": 'W/"999"'}).status_code == 412
    assert (
        scim.patch(path, rename, headers={"If-Match": group["meta"]["version"]}).status_code == 204
    )


def test_bulk_is_not_implemented_and_says_so(scim: Any) -> None:
    body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": []}
    response = scim.post("/Bulk", body)
    assert response.status_code == 501 and response.json["status"] == "501"
    assert scim.get("/ServiceProviderConfig").json["bulk"]["supported"] is False
