"""Entra's lookup by the unique attribute answers what scim2-server's search would.

``scim/quick_search.py`` answers ``filter=userName eq "…"`` (Users) and ``filter=displayName eq
"…"`` (Groups, with or without ``excludedAttributes=members``) from the stored document; every
other search goes to scim2-server. Each query here is answered both ways over the same tenant, and
the answers are the same JSON (objects equal as JSON defines them, whatever the order of their
members: PostgreSQL's jsonb keeps none).
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

import pytest
from scim2_server.handler import ScimHandler
from scim2_server.requests import ScimRequest

from tests.conftest import entra_user

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
BASE_URL = "https://bridge.example/scim/v2"
JOSE = "José.Núñez@contoso.com"


@pytest.fixture
def tenant(bridge: Any) -> Any:
    """Users of every shape Entra sends, and groups with and without members."""
    full = entra_user("full@contoso.com", externalId="oid-full")
    full["schemas"].append(ENTERPRISE)
    full[ENTERPRISE] = {"employeeNumber": "42", "department": "R&D", "manager": {"value": "m-1"}}
    full["password"] = "Never-Returned-1"
    full["phoneNumbers"] = [{"value": "+1 555 0100", "type": "work"}]
    full["addresses"] = [{"type": "work", "locality": "Zürich", "primary": True}]
    full["title"] = "Engineer"
    bodies = [full, entra_user(JOSE, externalId="oid-jose"), entra_user("bare@contoso.com")]
    ids = []
    for body in bodies:
        response = bridge.scim.post("/Users", body)
        assert response.status_code == 201, response.json
        ids.append(response.json["id"])
    groups = [
        ("Engineering", [{"value": ids[0], "display": "Full"}, {"value": ids[1]}]),
        ("Ops Team", [{"value": ids[0]}]),
        ("Empty", []),
    ]
    for name, members in groups:
        body = {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": name,
            "externalId": f"g-{name}",
            "members": members,
        }
        assert bridge.scim.post("/Groups", body).status_code == 201
    return bridge


QUICK = [
    ("/Users", {"filter": 'userName eq "full@contoso.com"'}),
    ("/Users", {"filter": 'userName eq "FULL@Contoso.COM"'}),  # caseExact=false
    ("/Users", {"filter": 'USERNAME EQ "bare@contoso.com"'}),
    ("/Users", {"filter": f'userName eq "{JOSE}"'}),
    ("/Users", {"filter": f'userName eq "{unicodedata.normalize("NFD", JOSE)}"'}),
    ("/Users", {"filter": 'userName eq "nobody@contoso.com"'}),
    ("/Users", {"filter": ' userName  eq  "bare@contoso.com" '}),
    ("/Users", {"filter": 'userName eq "full@contoso.com"', "excludedAttributes": "groups"}),
    ("/Groups", {"filter": 'displayName eq "Engineering"'}),
    ("/Groups", {"filter": 'displayName eq "ops team"', "excludedAttributes": "members"}),
    ("/Groups", {"filter": 'displayName eq "Empty"', "excludedAttributes": "members"}),
    ("/Groups", {"filter": 'displayName eq "Empty"'}),
    ("/Groups", {"filter": 'displayName eq "Nope"'}),
]
ELSEWHERE = [
    ("/Users", {"filter": 'externalId eq "oid-full"'}),
    ("/Users", {"filter": 'userName eq "full@contoso.com" and active eq true'}),
    ("/Users", {"filter": 'userName eq "full\\"@contoso.com"'}),
    (
        "/Users",
        {"filter": 'urn:ietf:params:scim:schemas:core:2.0:User:userName eq "bare@contoso.com"'},
    ),
    ("/Users", {"filter": 'userName eq "full@contoso.com"', "attributes": "userName"}),
    ("/Users", {"filter": 'userName eq "full@contoso.com"', "excludedAttributes": "emails"}),
    ("/Users", {"filter": 'userName eq "full@contoso.com"', "count": "0"}),
    ("/Users", {"filter": 'userName eq "full@contoso.com"', "startIndex": "2"}),
    ("/Users", {"filter": 'displayName eq "Jane Doe"'}),
    ("/Groups", {"filter": 'displayName eq "Engineering"', "excludedAttributes": "externalId"}),
    ("/Groups", {"filter": 'displayName co "Eng"'}),
    ("/", {"filter": 'userName eq "full@contoso.com"'}),
]


def _request(endpoint: str, query: dict[str, str]) -> ScimRequest:
    return ScimRequest(
        method="GET", base_url=BASE_URL, path=endpoint, query=query, headers=[], body=b""
    )


def _both(tenant: Any, endpoint: str, query: dict[str, str]) -> tuple[Any, Any, Any]:
    handler = tenant.bridge.scim_endpoints().handler
    with tenant.bridge.db.transaction(write=False):
        quick = handler.quick.answer(_request(endpoint, query))
        ours = handler.search(_request(endpoint, query))
        theirs = ScimHandler.search(handler, _request(endpoint, query))
    return quick, ours, theirs


@pytest.mark.parametrize(("endpoint", "query"), QUICK, ids=lambda v: str(v))
def test_a_lookup_answers_as_scim2_server_does(tenant: Any, endpoint: str, query: Any) -> None:
    quick, ours, theirs = _both(tenant, endpoint, query)
    assert quick is not None, "this lookup is Entra's: answered from the stored document"
    assert (ours.status, ours.body) == (theirs.status, theirs.body)
    assert quick.body == theirs.body


@pytest.mark.parametrize(("endpoint", "query"), ELSEWHERE, ids=lambda v: str(v))
def test_any_other_search_is_scim2_servers(tenant: Any, endpoint: str, query: Any) -> None:
    quick, ours, theirs = _both(tenant, endpoint, query)
    assert quick is None
    assert (ours.status, ours.body) == (theirs.status, theirs.body)


def test_a_lookup_never_returns_the_password(tenant: Any) -> None:
    response = tenant.scim.get('/Users?filter=userName eq "full@contoso.com"')
    assert response.status_code == 200
    (user,) = response.json["Resources"]
    assert "password" not in json.dumps(response.json).lower()
    assert user["groups"][0]["$ref"].startswith("http://localhost/scim/v2/Groups/")
    assert user[ENTERPRISE]["employeeNumber"] == "42"


@pytest.mark.parametrize(
    "path",
    [
        '/Users?filter=userName eq "a\u0000b"',
        '/Users?filter=userName eq "a\\u0000b"',
    ],
)
def test_a_value_sql_cannot_hold_is_refused_as_before(scim: Any, path: str) -> None:
    response = scim.get(path)
    assert response.status_code == 400
    assert response.json["status"] == "400"


def test_a_lookup_still_needs_a_valid_credential(tenant: Any) -> None:
    response = tenant.app.test_client().get(
        '/scim/v2/Users?filter=userName eq "full@contoso.com"',
        headers={"Authorization": "Bearer scimb_nope_nope"},
    )
    assert response.status_code == 401
