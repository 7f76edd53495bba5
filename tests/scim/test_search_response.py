"""A search answers the ListResponse scim2-server would build, and the total it would count.

The bridge builds the ListResponse as the JSON scim2-server dumps it to (without validating each
resource back into the message), and counts the total only when the page cannot tell it. Both are
shortcuts: these tests hold them to scim2-server's own answer and to a counted total.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from scim2_server.service import ScimService
from scim2_server.storage import search_page

from tests.conftest import entra_user

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
QUERIES: list[dict[str, str]] = [
    {},
    {"filter": 'userName eq "user2@contoso.com"'},
    {"filter": 'displayName eq "Team 1"'},
    {"filter": 'externalId eq "nobody"'},
    {"startIndex": "2", "count": "2"},
    {"startIndex": "4", "count": "3"},
    {"startIndex": "50"},
    {"count": "0"},
    {"sortBy": "externalId", "sortOrder": "descending"},
    {"attributes": "userName,groups"},
    {"excludedAttributes": "groups,emails,members"},
    {"attributes": f"{ENTERPRISE}:employeeNumber"},
]


@pytest.fixture
def tenant(bridge: Any) -> Any:
    """Five users (one with the enterprise extension) and two groups with members."""
    ids = []
    for i in range(5):
        body = entra_user(f"user{i}@contoso.com", externalId=f"oid-{i}")
        if i == 1:
            body["schemas"].append(ENTERPRISE)
            body[ENTERPRISE] = {"employeeNumber": "42", "department": "R&D"}
        response = bridge.scim.post("/Users", body)
        assert response.status_code == 201, response.json
        ids.append(response.json["id"])
    for n, members in ((1, ids[:3]), (2, ids[2:])):
        group = {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": f"Team {n}",
            "externalId": f"team-{n}",
            "members": [{"value": member} for member in members],
        }
        assert bridge.scim.post("/Groups", group).status_code == 201
    return bridge


@pytest.mark.parametrize("endpoint", ["/Users", "/Groups"])
@pytest.mark.parametrize("query", QUERIES, ids=lambda q: "&".join(f"{k}={v}" for k, v in q.items()))
def test_the_list_response_is_scim2_servers_own(
    tenant: Any, endpoint: str, query: dict[str, str]
) -> None:
    handler = tenant.bridge.scim_endpoints().handler
    service, storage = handler.service, handler.storage
    types = service.searched_types(endpoint)
    if "filter" in query and "userName" in query["filter"] and endpoint == "/Groups":
        pytest.skip("a Group has no userName: 400, not a list")
    base_url = "https://bridge.example/scim/v2"
    with tenant.bridge.db.transaction(write=False):
        search_request, position = service.read_search_query(types, query)
        page = search_page(storage, types, search_request, position=position)
        ours = service.search_response(base_url, types, page, search_request)
        theirs = ScimService.search_response(service, base_url, types, page, search_request)
    assert ours.status == theirs.status
    assert json.dumps(ours.body) == json.dumps(theirs.body)  # same keys, same order


@pytest.mark.parametrize(
    ("query", "listed"),
    [
        ("", 5),
        ("?count=5", 5),  # a full page: the next may hold more, so the total is counted
        ("?count=2", 2),
        ("?startIndex=4&count=2", 2),  # a full last page
        ("?startIndex=5&count=2", 1),
        ("?startIndex=6", 0),  # past the end: an empty page tells nothing, counted
        ("?startIndex=60&count=2", 0),
        ("?count=0", 0),
        ('?filter=userName sw "user"&startIndex=2', 4),
        ('?filter=userName eq "user3@contoso.com"', 1),
    ],
)
def test_the_total_is_every_match_whatever_the_page(tenant: Any, query: str, listed: int) -> None:
    expected = 1 if "eq" in query else 5
    body = tenant.scim.get(f"/Users{query}").json
    assert body["totalResults"] == expected
    assert body["itemsPerPage"] == len(body["Resources"]) == listed


def test_an_empty_search_counts_nothing(bridge: Any) -> None:
    body = bridge.scim.get("/Users?startIndex=3").json
    assert (body["totalResults"], body["itemsPerPage"], body["Resources"]) == (0, 0, [])
