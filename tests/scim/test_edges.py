"""Entra's and RFC 7644's edges over HTTP (issue 11): addresses GitLab accepts, Entra's bare
extension names, input no database can hold, non-SCIM methods, and a strict ``active``."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import SCIM_JSON
from tests.conftest import entra_user
from tests.conftest import incompressible
from tests.scim.test_users_api import ENTERPRISE
from tests.scim.test_users_api import assert_error
from tests.scim.test_users_api import create

GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


# -- Addresses -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    ["p2@x.test", "p4@localhost", "ann@corp.local", "bo@dc01.internal", "cy@example.invalid"],
)
def test_an_address_gitlab_accepts_is_accepted(scim: Any, address: str) -> None:
    created = create(scim, address)
    assert created["emails"][0]["value"] == address
    assert scim.get(f"/Users/{created['id']}").json["emails"][0]["value"] == address


def test_a_work_address_patched_to_a_special_use_domain_is_kept(scim: Any) -> None:
    user = create(scim)
    path = 'emails[type eq "work"].value'
    response = scim.patch(
        f"/Users/{user['id']}", [{"op": "replace", "path": path, "value": "new@x.test"}]
    )
    assert response.status_code == 200, response.json
    assert response.json["emails"][0]["value"] == "new@x.test"


@pytest.mark.parametrize(
    "address", ["no-at-sign", "two@@x.test", "a b@x.test", "a@b@c", "@x", "x@"]
)
def test_an_address_gitlab_refuses_is_invalid_value_naming_the_attribute(
    scim: Any, address: str
) -> None:
    body = entra_user(emails=[{"type": "work", "primary": True, "value": address}])
    response = scim.post("/Users", body)
    assert_error(response, 400, "invalidValue")
    assert "emails" in response.json["detail"]
    user = create(scim)
    path = 'emails[type eq "work"].value'
    patched = scim.patch(
        f"/Users/{user['id']}", [{"op": "replace", "path": path, "value": address}]
    )
    assert_error(patched, 400, "invalidValue")
    assert "emails" in patched.json["detail"]
    assert "\n" not in patched.json["detail"], "one line, as POST answers it"
    assert scim.get(f"/Users/{user['id']}").json["emails"] == user["emails"]


# -- Bare extension attributes ---------------------------------------------------------------


def _with_manager(scim: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    boss = create(scim, "boss@contoso.com")
    report = create(scim, **{ENTERPRISE: {"manager": boss["id"], "department": "Sales"}})
    return boss, report


def test_entras_reference_check_finds_the_user_when_the_manager_matches(scim: Any) -> None:
    boss, report = _with_manager(scim)
    query = f'/Users?filter=id eq "{report["id"]}" and manager eq "{boss["id"]}"&attributes=id'
    response = scim.get(query)
    assert response.status_code == 200, response.json
    assert response.json["totalResults"] == 1
    assert response.json["Resources"] == [
        {"schemas": response.json["Resources"][0]["schemas"], "id": report["id"]}
    ]


def test_entras_reference_check_is_an_empty_list_when_the_manager_differs(scim: Any) -> None:
    _, report = _with_manager(scim)
    other = f'/Users?filter=id eq "{report["id"]}" and manager eq "{report["id"]}"&attributes=id'
    response = scim.get(other)
    assert response.status_code == 200, response.json
    assert response.json["totalResults"] == 0
    assert response.json["Resources"] == []


def test_bare_extension_names_work_in_attributes_excluded_sort_and_filters(scim: Any) -> None:
    boss, report = _with_manager(scim)
    only = scim.get(f"/Users/{report['id']}?attributes=department").json
    assert only[ENTERPRISE] == {"department": "Sales"}
    assert "userName" not in only
    without = scim.get(f"/Users/{report['id']}?excludedAttributes=employeeNumber,manager").json
    assert without[ENTERPRISE] == {"department": "Sales"}
    assert without["userName"] == report["userName"]
    found = scim.get('/Users?filter=department eq "sales"&sortBy=employeeNumber').json
    assert [user["id"] for user in found["Resources"]] == [report["id"]]
    present = scim.get('/Users?filter=manager pr and manager.value sw "' + boss["id"][:8] + '"')
    assert [user["id"] for user in present.json["Resources"]] == [report["id"]]
    searched = scim.post(
        "/Users/.search",
        {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
            "filter": f'manager eq "{boss["id"]}"',
            "attributes": ["department"],
        },
    )
    assert searched.status_code == 200, searched.json
    assert searched.json["Resources"][0][ENTERPRISE] == {"department": "Sales"}


def test_a_bare_extension_name_in_a_patch_path_writes_the_extension(scim: Any) -> None:
    _, report = _with_manager(scim)
    response = scim.patch(
        f"/Users/{report['id']}",
        [
            {"op": "replace", "path": "department", "value": "Finance"},
            {"op": "add", "path": "employeeNumber", "value": "42"},
            {"op": "remove", "path": "manager"},
        ],
    )
    assert response.status_code == 200, response.json
    assert response.json[ENTERPRISE] == {"department": "Finance", "employeeNumber": "42"}
    assert "department" not in response.json


def test_a_core_attribute_is_never_taken_for_an_extensions(scim: Any) -> None:
    user = create(scim, title="Engineer")
    found = scim.get('/Users?filter=title eq "engineer"&attributes=title').json
    assert [item["title"] for item in found["Resources"]] == ["Engineer"]
    assert found["Resources"][0]["id"] == user["id"]


# -- Input no database can hold -------------------------------------------------------------


@pytest.mark.parametrize("parameter", ["startIndex", "count"])
@pytest.mark.parametrize("value", ["99999999999999999999", "-99999999999999999999", "9" * 400])
def test_paging_numbers_of_any_size_are_clamped(scim: Any, parameter: str, value: str) -> None:
    create(scim)
    response = scim.get(f"/Users?{parameter}={value}")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json["totalResults"] == 1


@pytest.mark.parametrize(
    "expression",
    [
        'externalId eq "\\u0000"',
        'userName sw "a\\u0000"',
        'emails[value eq "\\u0000"]',
        'displayName eq "\\ud800"',
        'not (externalId eq "\\u0000")',
    ],
)
def test_a_nul_or_lone_surrogate_escaped_in_a_filter_is_invalid_filter(
    scim: Any, expression: str
) -> None:
    response = scim.get("/Users", query_string={"filter": expression})
    assert_error(response, 400, "invalidFilter")


def test_a_nul_escaped_in_a_patch_path_filter_is_refused(scim: Any) -> None:
    user = create(scim)
    path = 'emails[value eq "\\u0000"].type'
    response = scim.patch(f"/Users/{user['id']}", [{"op": "replace", "path": path, "value": "x"}])
    assert response.status_code == 400, response.json


@pytest.mark.parametrize("escaped", ["\\u0000", "\\ud800", "\\uDFFF"])
def test_a_nul_or_lone_surrogate_in_a_body_is_a_400(scim: Any, escaped: str) -> None:
    body = (
        f'{{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "a{escaped}"}}'
    )
    response = scim.request("POST", "/Users", data=body, headers={"Content-Type": SCIM_JSON})
    assert_error(response, 400)
    # A NUL is a value no database holds; a lone surrogate is not even JSON text (RFC 8259 §8.2).
    assert response.json["scimType"] in ("invalidValue", "invalidSyntax")


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("endpoint", ["Users", "Groups"])
def test_an_id_longer_than_any_id_is_a_404(scim: Any, method: str, endpoint: str) -> None:
    body: Any = None
    if method == "PATCH":
        body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": []}
    elif method == "PUT":
        body = entra_user() if endpoint == "Users" else {"displayName": "G"}
    response = scim.request(method, f"/{endpoint}/{'a' * 37}", body)
    assert_error(response, 404)


@pytest.mark.parametrize(
    ("endpoint", "attribute"),
    [("Users", "userName"), ("Users", "externalId"), ("Groups", "displayName")],
)
def test_a_value_too_long_for_its_index_is_invalid_value_and_stores_nothing(
    scim: Any, endpoint: str, attribute: str
) -> None:
    """Indexed text has a ceiling (a b-tree entry); a value over it is the client's error."""
    too_long = incompressible(10_000)
    if endpoint == "Users":
        body = entra_user("long@contoso.com", **{attribute: too_long})
        made = create(scim, "kept@contoso.com")
    else:
        body = {"schemas": [GROUP], "displayName": too_long}
        made = scim.post("/Groups", {"schemas": [GROUP], "displayName": "Kept"}).json
    assert_error(scim.post(f"/{endpoint}", body), 400)
    assert scim.post(f"/{endpoint}", body).json["scimType"] == "invalidValue"
    response = scim.patch(
        f"/{endpoint}/{made['id']}", [{"op": "replace", "path": attribute, "value": too_long}]
    )
    assert_error(response, 400)
    assert attribute in response.json["detail"]
    assert scim.get(f"/{endpoint}").json["totalResults"] == 1, "nothing was stored"
    # Up to the limit, a long value is kept.
    fits = incompressible(2_000)[:1_900]
    response = scim.patch(
        f"/{endpoint}/{made['id']}", [{"op": "replace", "path": attribute, "value": fits}]
    )
    assert response.status_code in (200, 204), response.get_data(as_text=True)


# -- Every answer under /scim/v2 is SCIM ------------------------------------------------------


@pytest.mark.parametrize("method", ["TRACE", "OPTIONS", "CONNECT", "PROPFIND"])
@pytest.mark.parametrize("path", ["/Users", "/Users/abc", "/Groups", "/ServiceProviderConfig", ""])
def test_an_unsupported_method_is_a_scim_405(scim: Any, method: str, path: str) -> None:
    response = scim.request(method, path)
    assert_error(response, 405)
    assert response.headers["Allow"]
    assert method not in response.headers["Allow"]


def test_unknown_paths_and_too_large_bodies_are_scim_errors(make_bridge: Any) -> None:
    scim = make_bridge(server={"max_body_bytes": 1000}).scim
    assert_error(scim.get("/Nothing/here"), 404)
    too_large = scim.post("/Users", entra_user(displayName="x" * 2000))
    assert_error(too_large, 413)
    wrong_type = scim.request("POST", "/Users", data="{}", headers={"Content-Type": "text/plain"})
    assert_error(wrong_type, 415)


def test_head_answers_as_get_without_a_body(scim: Any) -> None:
    user = create(scim)
    response = scim.request("HEAD", f"/Users/{user['id']}")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith(SCIM_JSON)
    assert response.get_data() == b""


# -- active -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "stored"), [(True, True), ("True", True), ("FALSE", False), ("false", False)]
)
def test_active_is_a_boolean_or_entras_true_false_strings(
    scim: Any, sent: Any, stored: bool
) -> None:
    user = create(scim, active=sent)
    assert user["active"] is stored
    patched = scim.patch(
        f"/Users/{user['id']}", [{"op": "replace", "path": "active", "value": str(not stored)}]
    )
    assert patched.json["active"] is (not stored)


@pytest.mark.parametrize("sent", ["yes", "no", "1", 0, 1, "", "on", [True], {"value": True}])
def test_any_other_active_is_invalid_value_in_post_put_and_patch(scim: Any, sent: Any) -> None:
    assert_error(scim.post("/Users", entra_user(active=sent)), 400, "invalidValue")
    user = create(scim)
    replaced = scim.put(f"/Users/{user['id']}", entra_user(active=sent))
    assert_error(replaced, 400, "invalidValue")
    # In a PATCH, "" is Entra's way to clear an attribute (entra.md §6, SCIM_Null_Update).
    operations = (
        []
        if sent == ""
        else [
            {"op": "replace", "path": "active", "value": sent},
            {
                "op": "add",
                "path": "urn:ietf:params:scim:schemas:core:2.0:User:active",
                "value": sent,
            },
            {"op": "replace", "value": {"active": sent}},
        ]
    )
    for operation in operations:
        assert_error(scim.patch(f"/Users/{user['id']}", [operation]), 400, "invalidValue")
    assert scim.get(f"/Users/{user['id']}").json["active"] is True
