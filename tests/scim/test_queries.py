"""Filters and sorting over HTTP (RFC 7644 §3.4.2.2-3.4.2.3, §3.4.3), as a SCIM client sends them."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import SCIM_JSON
from tests.conftest import entra_user

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


@pytest.fixture
def scim(make_bridge: Any) -> Any:
    scim = make_bridge().scim
    people = [
        ("Ann.Lee@contoso.com", "Lee", "Engineer", True, "1001", "work"),
        ("bob@contoso.com", "Brown", "50% Manager", False, "0042", "home"),
        ("Carla_x@fabrikam.com", "Ávila", None, True, None, "work"),
        ("dave@contoso.com", "brown", "Engineer", True, "7", None),
    ]
    for user_name, family, title, active, number, email_type in people:
        email: dict[str, Any] = {"value": user_name.lower(), "primary": True}
        if email_type:
            email["type"] = email_type
        body = entra_user(
            user_name,
            name={"familyName": family, "givenName": user_name[:3]},
            active=active,
            emails=[email],
            **{ENTERPRISE: {"employeeNumber": number} if number else {}},
        )
        if title:
            body["title"] = title
        response = scim.post("/Users", body)
        assert response.status_code == 201, response.json
    return scim


def user_names(response: Any) -> list[str]:
    assert response.status_code == 200, response.json
    assert response.json["totalResults"] >= len(response.json["Resources"])
    return [user["userName"] for user in response.json["Resources"]]


def search(scim: Any, expression: str, **query: Any) -> list[str]:
    return sorted(user_names(scim.get("/Users", query_string={"filter": expression, **query})))


def assert_error(response: Any, status: int, scim_type: str) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.headers["Content-Type"].startswith(SCIM_JSON)
    assert response.json["schemas"] == [ERROR]
    assert response.json["scimType"] == scim_type


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('title eq "engineer"', ["Ann.Lee@contoso.com", "dave@contoso.com"]),
        ('title ne "Engineer"', ["bob@contoso.com", "Carla_x@fabrikam.com"]),
        ('userName co "_"', ["Carla_x@fabrikam.com"]),
        ('title co "%"', ["bob@contoso.com"]),
        ('userName sw "ANN."', ["Ann.Lee@contoso.com"]),
        (
            'userName ew "@CONTOSO.com"',
            ["Ann.Lee@contoso.com", "bob@contoso.com", "dave@contoso.com"],
        ),
        ("title pr", ["Ann.Lee@contoso.com", "bob@contoso.com", "dave@contoso.com"]),
        ("not (title pr)", ["Carla_x@fabrikam.com"]),
        ('name.familyName eq "BROWN"', ["bob@contoso.com", "dave@contoso.com"]),
        ('name.familyName eq "avila"', []),
        ('name.familyName eq "ávila"', ["Carla_x@fabrikam.com"]),
        ("active eq false", ["bob@contoso.com"]),
        ('userName eq "bob@contoso.com" or active eq false', ["bob@contoso.com"]),
        (
            'title eq "Engineer" and (name.familyName sw "b" or userName sw "a")',
            ["Ann.Lee@contoso.com", "dave@contoso.com"],
        ),
        ('emails[type eq "work" and value co "@contoso"]', ["Ann.Lee@contoso.com"]),
        ('emails.type eq "home" or not (emails.type pr)', ["bob@contoso.com", "dave@contoso.com"]),
        (f'{ENTERPRISE}:employeeNumber gt "1"', ["dave@contoso.com", "Ann.Lee@contoso.com"]),
        (f"not ({ENTERPRISE}:employeeNumber pr)", ["Carla_x@fabrikam.com"]),
        ('meta.created gt "2000-01-01T00:00:00+02:00"', None),
        ('meta.resourceType eq "User"', None),
    ],
)
def test_filters(scim: Any, expression: str, expected: list[str] | None) -> None:
    everyone = sorted(user_names(scim.get("/Users")))
    assert search(scim, expression) == sorted(expected if expected is not None else everyone)


def test_sort_by_sort_order_and_paging(scim: Any) -> None:
    by_family = user_names(scim.get("/Users", query_string={"sortBy": "name.familyName"}))
    # Case-insensitive: "Brown" and "brown" tie (in id order), "Ávila" sorts after ASCII letters.
    assert by_family[:2] in (
        ["bob@contoso.com", "dave@contoso.com"],
        ["dave@contoso.com", "bob@contoso.com"],
    )
    assert by_family[2:] == ["Ann.Lee@contoso.com", "Carla_x@fabrikam.com"]
    by_title = user_names(
        scim.get("/Users", query_string={"sortBy": "title", "sortOrder": "descending"})
    )
    assert by_title[0] == "Carla_x@fabrikam.com"  # no title: first when descending
    assert by_title[-1] == "bob@contoso.com"  # "50% manager" < "engineer"
    ascending = user_names(scim.get("/Users", query_string={"sortBy": "title"}))
    assert ascending[-1] == "Carla_x@fabrikam.com"  # no title: last when ascending
    page = scim.get(
        "/Users",
        query_string={"sortBy": "userName", "sortOrder": "descending", "startIndex": 2, "count": 2},
    )
    assert user_names(page) == ["Carla_x@fabrikam.com", "bob@contoso.com"]
    assert page.json["totalResults"] == 4 and page.json["startIndex"] == 2


def test_post_search_with_a_filter_and_a_sort(scim: Any) -> None:
    body = {
        "schemas": [SEARCH_REQUEST],
        "filter": 'emails co "contoso" and active eq true',
        "sortBy": "emails",
        "sortOrder": "descending",
        "attributes": ["userName"],
        "count": 10,
    }
    response = scim.post("/Users/.search", body)
    assert user_names(response) == ["dave@contoso.com", "Ann.Lee@contoso.com"]
    assert response.json["totalResults"] == 2
    assert set(response.json["Resources"][0]) == {"schemas", "id", "userName"}


def test_groups_filter_on_members_and_sort(scim: Any) -> None:
    ids = {user["userName"]: user["id"] for user in scim.get("/Users").json["Resources"]}
    groups = [
        ("Developers", [ids["Ann.Lee@contoso.com"], ids["bob@contoso.com"]]),
        ("designers", [ids["bob@contoso.com"]]),
        ("Empty", []),
    ]
    for name, members in groups:
        body = {
            "schemas": [CORE_GROUP],
            "displayName": name,
            "members": [{"value": member} for member in members],
        }
        assert scim.post("/Groups", body).status_code == 201
    query = {
        "filter": f'members[value eq "{ids["bob@contoso.com"]}"] or members eq null',
        "sortBy": "displayName",
        "sortOrder": "descending",
        "excludedAttributes": "members",
    }
    found = scim.get("/Groups", query_string=query).json
    assert [group["displayName"] for group in found["Resources"]] == [
        "Empty",
        "Developers",
        "designers",
    ]
    assert all("members" not in group for group in found["Resources"])


@pytest.mark.parametrize(
    "expression",
    [
        'nickname2 eq "x"',  # no such attribute: never a silent match-all
        f'{ENTERPRISE}:nope eq "x"',
        'emails[nope eq "x"]',
        "userName eq",  # malformed
        'userName eq "a" and',
        "(userName pr",
        "active gt true",  # ordering a boolean
        'meta.location co "Users"',  # derived by the server: not searchable
    ],
)
def test_unknown_attribute_or_malformed_filter_is_invalid_filter(
    scim: Any, expression: str
) -> None:
    assert_error(scim.get("/Users", query_string={"filter": expression}), 400, "invalidFilter")
    body = {"schemas": [SEARCH_REQUEST], "filter": expression}
    assert_error(scim.post("/Users/.search", body), 400, "invalidFilter")


def test_sort_by_an_unknown_or_unsortable_attribute_is_refused(scim: Any) -> None:
    for sort_by in ("nope", "name", "password"):
        response = scim.get("/Users", query_string={"sortBy": sort_by})
        assert_error(response, 400, "invalidPath")


def test_sort_is_announced(scim: Any) -> None:
    assert scim.get("/ServiceProviderConfig").json["sort"]["supported"] is True
