"""SCIM /Users over HTTP as Entra uses it (entra.md §1-2), with no GitLab configured (dry-run)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import SCIM_JSON
from tests.conftest import entra_user

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


def create(scim: Any, user_name: str = "Jane.Doe@contoso.com", **overrides: Any) -> dict[str, Any]:
    response = scim.post("/Users", entra_user(user_name, **overrides))
    assert response.status_code == 201, response.json
    return response.json


def assert_error(response: Any, status: int, scim_type: str | None = None) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.headers["Content-Type"].startswith(SCIM_JSON)
    assert response.json["schemas"] == [ERROR]
    assert response.json["status"] == str(status)
    if scim_type:
        assert response.json["scimType"] == scim_type


def test_create_answers_201_with_location_and_the_whole_resource(scim: Any) -> None:
    body = entra_user()
    response = scim.post("/Users", body)
    assert response.status_code == 201
    created = response.json
    assert response.headers["Location"] == f"http://localhost/scim/v2/Users/{created['id']}"
    assert response.headers["Content-Type"].startswith(SCIM_JSON)
    assert response.headers["ETag"] == created["meta"]["version"]
    assert created["meta"]["resourceType"] == "User"
    assert created["meta"]["location"] == response.headers["Location"]
    assert created["meta"]["created"] and created["meta"]["lastModified"]
    for key in ("userName", "externalId", "displayName", "emails", "name", "active", ENTERPRISE):
        assert created[key] == body[key]
    assert ENTERPRISE in created["schemas"]


def test_get_returns_exactly_what_was_written(scim: Any) -> None:
    body = entra_user(
        title="Engineer",
        phoneNumbers=[{"type": "mobile", "value": "+33 6 00 00 00 00"}],
        addresses=[{"type": "work", "locality": "Paris", "country": "FR"}],
        **{"urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User:tag": "T1"},
    )
    created = scim.post("/Users", body).json
    fetched = scim.get(f"/Users/{created['id']}")
    assert fetched.status_code == 200
    document = fetched.json
    for key, value in body.items():
        if key in ("meta", "roles", "schemas"):
            continue
        assert document[key] == value, key


def test_manager_string_is_returned_as_a_complex_value(scim: Any) -> None:
    manager = create(scim, "boss@contoso.com")
    body = entra_user(**{ENTERPRISE: {"manager": manager["id"]}})
    created = scim.post("/Users", body).json
    assert created[ENTERPRISE]["manager"] == {"value": manager["id"]}


def test_password_is_never_stored_or_returned(scim: Any, bridge: Any) -> None:
    created = create(scim, password="Sup3r-secret!")
    assert "password" not in created
    assert "password" not in scim.get(f"/Users/{created['id']}").json
    assert "Sup3r-secret!" not in repr(bridge.bridge.users.data(created["id"]))


def test_filter_by_user_name_is_case_insensitive(scim: Any) -> None:
    created = create(scim)
    response = scim.get('/Users?filter=userName eq "JANE.DOE@CONTOSO.COM"')
    assert response.status_code == 200
    assert response.json["totalResults"] == 1
    assert response.json["Resources"][0]["id"] == created["id"]


def test_filter_that_matches_nothing_is_200_and_empty(scim: Any) -> None:
    create(scim)
    response = scim.get("/Users?filter=userName+eq+%223e59e27b-68ad-41f5-bb0e-dadf130e2ac8%22")
    assert response.status_code == 200
    assert response.json == {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": 0,
        "startIndex": 1,
        "itemsPerPage": 0,
        "Resources": [],
    }


def test_filter_by_external_id_and_id_joined_by_and(scim: Any) -> None:
    created = create(scim, externalId="0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef")
    create(scim, "other@contoso.com")
    found = scim.get('/Users?filter=externalId eq "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"').json
    assert [user["id"] for user in found["Resources"]] == [created["id"]]
    both = scim.get(
        f'/Users?filter=id eq "{created["id"]}" and userName eq "jane.doe@contoso.com"'
    ).json
    assert both["totalResults"] == 1
    none = scim.get(f'/Users?filter=id eq "{created["id"]}" and userName eq "other@contoso.com"')
    assert none.json["totalResults"] == 0
    # externalId is caseExact (RFC 7643): another case is another value.
    upper = scim.get('/Users?filter=externalId eq "0A21F0F2-8D2A-4F8E-BF98-7363C4AED4EF"')
    assert upper.json["totalResults"] == 0


@pytest.mark.parametrize("external_id", ["jyoung", "39650235-444f-4b2d-9e83-6d0f4c1b2a77"])
def test_unquoted_filter_value_from_entra_docs_is_accepted(scim: Any, external_id: str) -> None:
    create(scim, externalId=external_id)
    create(scim, "other@contoso.com", externalId="other")
    response = scim.get(f"/Users?filter=externalId eq {external_id}")
    assert response.status_code == 200, response.json
    assert [user["externalId"] for user in response.json["Resources"]] == [external_id]


@pytest.mark.parametrize(
    "expression",
    ['unknownAttribute eq "x"', "userName eq", 'userName eq "a" and', 'emails[type eq "work"'],
)
def test_unknown_or_malformed_filter_is_invalid_filter_never_match_all(
    scim: Any, expression: str
) -> None:
    create(scim)
    assert_error(scim.get("/Users", query_string={"filter": expression}), 400, "invalidFilter")


def test_paging_with_start_index_and_count(scim: Any) -> None:
    ids = [create(scim, f"user{index}@contoso.com")["id"] for index in range(7)]
    first = scim.get("/Users?startIndex=1&count=5").json
    second = scim.get("/Users?startIndex=6&count=5").json
    assert first["totalResults"] == second["totalResults"] == 7
    assert first["startIndex"] == 1 and second["startIndex"] == 6
    assert first["itemsPerPage"] == 5 and second["itemsPerPage"] == 2
    assert [u["id"] for u in first["Resources"] + second["Resources"]] == ids


def test_attributes_and_excluded_attributes(scim: Any) -> None:
    created = create(scim)
    only = scim.get(f"/Users/{created['id']}?attributes=userName").json
    assert set(only) == {"schemas", "id", "userName"}
    without = scim.get(f"/Users/{created['id']}?excludedAttributes=emails,name").json
    assert "emails" not in without and "name" not in without and without["userName"]
    listed = scim.get('/Users?filter=userName eq "jane.doe@contoso.com"&attributes=id').json
    assert set(listed["Resources"][0]) == {"schemas", "id"}


def test_user_name_uniqueness_is_case_insensitive(scim: Any) -> None:
    create(scim)
    response = scim.post("/Users", entra_user("JANE.doe@Contoso.com"))
    assert_error(response, 409, "uniqueness")


def test_put_replaces_the_resource(scim: Any) -> None:
    created = create(scim)
    replacement = entra_user(displayName="Janet Doe", externalId=created["externalId"])
    response = scim.put(f"/Users/{created['id']}", replacement)
    assert response.status_code == 200
    assert response.json["displayName"] == "Janet Doe"
    assert scim.get(f"/Users/{created['id']}").json["displayName"] == "Janet Doe"


def test_patch_default_dialect(scim: Any) -> None:
    """entra.md §1.5 "Default (no flag) multi-attribute replace", capitalised ops."""
    created = create(scim)
    response = scim.patch(
        f"/Users/{created['id']}",
        [
            {"op": "Replace", "path": "displayName", "value": "Pvlo"},
            {
                "op": "Replace",
                "path": 'emails[type eq "work"].value',
                "value": "TestBcwqnm@test.microsoft.com",
            },
            {"op": "Replace", "path": "name.givenName", "value": "Gtfd"},
            {"op": "Replace", "path": "name.familyName", "value": "Pkqf"},
            {"op": "Replace", "path": "externalId", "value": "Eqpj"},
            {"op": "Replace", "path": f"{ENTERPRISE}:employeeNumber", "value": "Eqpj"},
            {"op": "Add", "path": "nickName", "value": "Babs"},
        ],
    )
    assert response.status_code == 200
    user = response.json
    assert user["displayName"] == "Pvlo"
    assert user["emails"] == [
        {"value": "TestBcwqnm@test.microsoft.com", "type": "work", "primary": True}
    ]
    assert user["name"]["givenName"] == "Gtfd" and user["name"]["familyName"] == "Pkqf"
    assert user["externalId"] == "Eqpj"
    assert user[ENTERPRISE]["employeeNumber"] == "Eqpj"
    assert user["nickName"] == "Babs"
    assert scim.get(f"/Users/{created['id']}").json == user


def test_patch_flag_dialect_path_less_object_with_dotted_and_urn_keys(scim: Any) -> None:
    """entra.md §1.5 "With aadOptscim062020"."""
    created = create(scim)
    response = scim.patch(
        f"/Users/{created['id']}?aadOptscim062020",
        [
            {
                "op": "replace",
                "path": 'emails[type eq "work"].value',
                "value": "TestMhvaes@test.microsoft.com",
            },
            {
                "op": "replace",
                "value": {
                    "displayName": "Bjfe",
                    "name.givenName": "Kkom",
                    "name.familyName": "Unua",
                    f"{ENTERPRISE}:employeeNumber": "Aklq",
                },
            },
        ],
    )
    assert response.status_code == 200
    user = response.json
    assert user["displayName"] == "Bjfe"
    assert user["name"]["givenName"] == "Kkom" and user["name"]["familyName"] == "Unua"
    assert user[ENTERPRISE]["employeeNumber"] == "Aklq"
    assert "name.givenName" not in user
    assert user["emails"][0]["value"] == "TestMhvaes@test.microsoft.com"


def test_patch_value_path_creates_the_missing_entry(scim: Any) -> None:
    created = create(scim)
    response = scim.patch(
        f"/Users/{created['id']}",
        [
            {"op": "Replace", "path": 'phoneNumbers[type eq "work"].value', "value": "+1 555"},
            {"op": "Add", "path": 'addresses[type eq "work"].locality', "value": "Paris"},
            {"op": "Replace", "path": 'addresses[type eq "work"].formatted', "value": "18/2111"},
        ],
    )
    assert response.status_code == 200
    assert response.json["phoneNumbers"] == [{"value": "+1 555", "type": "work"}]
    assert response.json["addresses"] == [
        {"formatted": "18/2111", "locality": "Paris", "type": "work"}
    ]


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("Replace", "False", False),
        ("Replace", "false", False),
        ("Add", "False", False),
        ("replace", False, False),
    ],
)
def test_patch_active_in_every_spelling(scim: Any, op: str, value: Any, expected: bool) -> None:
    created = create(scim)
    response = scim.patch(f"/Users/{created['id']}", [{"op": op, "path": "active", "value": value}])
    assert response.status_code == 200
    assert response.json["active"] is expected
    enabled = scim.patch(
        f"/Users/{created['id']}", [{"op": "Replace", "path": "active", "value": "True"}]
    )
    assert enabled.json["active"] is True
    found = scim.get(f'/Users?filter=userName eq "{created["userName"]}"').json
    assert found["Resources"][0]["active"] is True


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "Add", "path": f"{ENTERPRISE}:manager", "value": "MGR"},
        {"op": "add", "path": f"{ENTERPRISE}:manager", "value": {"value": "MGR"}},
        {"op": "Add", "path": "manager", "value": [{"$ref": None, "value": "MGR"}]},
    ],
)
def test_patch_manager_forms_read_back_as_value(scim: Any, operation: dict[str, Any]) -> None:
    created = create(scim)
    operation = {**operation, "value": _swap(operation["value"], "MGR", "mgr-1")}
    response = scim.patch(f"/Users/{created['id']}", [operation])
    assert response.status_code == 200
    assert response.json[ENTERPRISE]["manager"] == {"value": "mgr-1"}


@pytest.mark.parametrize(
    "removal",
    [
        {"op": "remove", "path": f"{ENTERPRISE}:manager"},
        {"op": "Replace", "path": f"{ENTERPRISE}:manager", "value": ""},
        {"op": "Remove", "path": f"{ENTERPRISE}:manager", "value": [{"value": "mgr-1"}]},
        {"op": "Replace", "path": f"{ENTERPRISE}:manager"},
    ],
)
def test_patch_manager_removal_forms(scim: Any, removal: dict[str, Any]) -> None:
    created = create(scim, **{ENTERPRISE: {"manager": "mgr-1", "department": "R&D"}})
    response = scim.patch(f"/Users/{created['id']}", [removal])
    assert response.status_code == 200
    assert "manager" not in response.json[ENTERPRISE]
    assert response.json[ENTERPRISE]["department"] == "R&D"


def _swap(value: Any, old: str, new: str) -> Any:
    if value == old:
        return new
    if isinstance(value, dict):
        return {key: _swap(item, old, new) for key, item in value.items()}
    if isinstance(value, list):
        return [_swap(item, old, new) for item in value]
    return value


def test_patch_with_empty_operations_is_a_no_op(scim: Any) -> None:
    created = create(scim)
    response = scim.patch(f"/Users/{created['id']}", [])
    assert response.status_code == 200
    assert response.json["meta"]["version"] == created["meta"]["version"]


def test_patch_with_unknown_op_is_invalid_value(scim: Any) -> None:
    created = create(scim)
    response = scim.patch(
        f"/Users/{created['id']}", [{"op": "Move", "path": "title", "value": "x"}]
    )
    assert_error(response, 400)


def test_delete_then_404(scim: Any) -> None:
    created = create(scim)
    deleted = scim.delete(f"/Users/{created['id']}")
    assert deleted.status_code == 204
    assert deleted.get_data() == b"" and "Content-Type" not in deleted.headers
    assert_error(scim.get(f"/Users/{created['id']}"), 404)
    assert_error(scim.delete(f"/Users/{created['id']}"), 404)
    assert scim.get('/Users?filter=userName eq "jane.doe@contoso.com"').json["totalResults"] == 0


def test_requests_as_plain_json_without_accept_or_user_agent(bridge: Any) -> None:
    http = bridge.app.test_client()
    response = http.post(
        "/scim/v2/Users",
        data=__import__("json").dumps(entra_user()),
        headers={"Authorization": f"Bearer {bridge.token}", "Content-Type": "application/json"},
        environ_overrides={"HTTP_USER_AGENT": ""},
    )
    assert response.status_code == 201
    listed = http.get("/scim/v2/Users", headers={"Authorization": f"Bearer {bridge.token}"})
    assert listed.status_code == 200
    assert listed.headers["Content-Type"].startswith(SCIM_JSON)


def test_bad_json_is_invalid_syntax_not_500(scim: Any) -> None:
    response = scim.request(
        "POST", "/Users", headers={"Content-Type": SCIM_JSON}, data=b"{not json"
    )
    assert_error(response, 400, "invalidSyntax")


def test_missing_user_name_is_400(scim: Any) -> None:
    body = entra_user()
    del body["userName"]
    assert_error(scim.post("/Users", body), 400)


@pytest.mark.parametrize("authorization", [None, "Bearer", "Bearer nope", "Basic dXNlcjpwYXNz"])
def test_every_request_without_a_valid_token_is_401(bridge: Any, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    for path in ("/scim/v2/Users", "/scim/v2/ServiceProviderConfig", "/scim/v2/nowhere"):
        response = bridge.app.test_client().get(path, headers=headers)
        assert_error(response, 401)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_revoked_token_is_refused(bridge: Any) -> None:
    bridge.bridge.tokens.revoke("entra")
    assert_error(bridge.scim.get("/Users"), 401)


def test_request_id_is_echoed_from_client_request_id(scim: Any) -> None:
    response = scim.get("/Users", headers={"client-request-id": "abc-123"})
    assert response.headers["X-Request-Id"] == "abc-123"
    assert scim.get("/Users").headers["X-Request-Id"]


def test_discovery_describes_only_what_is_supported(scim: Any) -> None:
    config = scim.get("/ServiceProviderConfig").json
    assert config["patch"]["supported"] is True
    assert config["bulk"]["supported"] is False
    assert config["filter"]["supported"] is True
    assert config["sort"]["supported"] is True
    assert config["changePassword"]["supported"] is False
    assert config["authenticationSchemes"][0]["type"] == "oauthbearertoken"
    types = scim.get("/ResourceTypes").json
    assert [t["endpoint"] for t in types["Resources"]] == ["/Users", "/Groups"]
    schemas = scim.get("/Schemas").json
    ids = {schema["id"] for schema in schemas["Resources"]}
    assert ids == {
        "urn:ietf:params:scim:schemas:core:2.0:User",
        "urn:ietf:params:scim:schemas:core:2.0:Group",
        ENTERPRISE,
    }
    user_schema = scim.get("/Schemas/urn:ietf:params:scim:schemas:core:2.0:User").json
    user_name = next(a for a in user_schema["attributes"] if a["name"] == "userName")
    assert user_name["uniqueness"] == "server" and user_name["caseExact"] is False


def test_patch_cannot_blank_the_user_name(scim: Any) -> None:
    created = create(scim)
    response = scim.patch(
        f"/Users/{created['id']}", [{"op": "Replace", "path": "userName", "value": ""}]
    )
    # "" clears an attribute (Entra's null), and userName is required: RFC 7644 §3.5.2.2.
    assert_error(response, 400)
    assert response.json["scimType"] in ("mutability", "invalidValue")
    assert scim.get(f"/Users/{created['id']}").json["userName"] == created["userName"]
