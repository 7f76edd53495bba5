"""Searches answered without Flask's dispatch (``scim.lookup_path``) answer exactly as Flask does.

``GET /scim/v2/Users?…`` takes the light path; ``GET /scim/v2/Users/?…`` (a trailing slash) is
routed by Flask to the same search. Every answer, refusals and errors included, must be the same
status, headers and body either way: Entra cannot tell which path served it.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy import text

from tests.conftest import entra_user

LOOKUPS = [
    '/Users?filter=userName eq "Jane.Doe@contoso.com"',
    '/Users?filter=userName eq "nobody@contoso.com"',
    '/Users?filter=USERNAME EQ "jane.doe@CONTOSO.com"',
    '/Users?filter=externalId eq "jane-external"',
    '/Users?filter=userName eq "Jane.Doe@contoso.com"&attributes=userName',
    "/Users",
    "/Users?startIndex=1&count=1",
    '/Groups?filter=displayName eq "Engineering"&excludedAttributes=members',
    '/Groups?filter=displayName eq "Engineering"',
    "/Groups",
    "/Users?filter=userName zz 1",  # 400 invalidFilter
    "/Users?count=-x",
    "/Users?filter=userName%20eq%20%22a%00b%22",  # NUL: 400, never a 500
]


def _both(bridge: Any, path: str, headers: dict[str, str] | None = None) -> tuple[Any, Any]:
    """The same request, on the light path and through Flask's routing."""
    collection, _, query = path.partition("?")
    flask_path = f"{collection}/" + (f"?{query}" if query else "")
    sent = {"X-Request-Id": "lookup-1", **(headers or {})}
    return bridge.scim.get(path, headers=sent), bridge.scim.get(flask_path, headers=sent)


def _same(light: Any, routed: Any) -> None:
    assert light.status_code == routed.status_code
    assert sorted(light.headers.items()) == sorted(routed.headers.items())
    assert light.get_data() == routed.get_data()


@pytest.fixture
def populated(make_bridge: Any) -> Any:
    bridge = make_bridge()
    user = entra_user("Jane.Doe@contoso.com", externalId="jane-external")
    user_id = bridge.scim.post("/Users", user).json["id"]
    group = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "Engineering",
        "members": [{"value": user_id}],
    }
    assert bridge.scim.post("/Groups", group).status_code == 201
    return bridge


@pytest.mark.parametrize("path", LOOKUPS)
def test_a_search_answers_the_same_without_flask(populated: Any, path: str) -> None:
    light, routed = _both(populated, path)
    _same(light, routed)
    assert light.status_code in (200, 400)
    assert light.headers["X-Request-Id"] == "lookup-1"


@pytest.mark.parametrize("authorization", [None, "Bearer not-a-token", "Basic eDp5"])
def test_a_refused_credential_is_refused_the_same(populated: Any, authorization: Any) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    client = populated.app.test_client()
    path = '/scim/v2/Users?filter=userName eq "Jane.Doe@contoso.com"'
    light = client.get(path, headers={"X-Request-Id": "r", **headers})
    routed = client.get(path.replace("Users?", "Users/?"), headers={"X-Request-Id": "r", **headers})
    assert light.status_code == 401
    assert light.json["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert "Jane" not in light.get_data(as_text=True)
    _same(light, routed)


def test_the_rate_limit_applies_to_the_light_path(make_bridge: Any) -> None:
    bridge = make_bridge(server={"rate_limit_per_second": 0.01, "rate_limit_burst": 2})
    answers = [bridge.scim.get('/Users?filter=userName eq "a@contoso.com"') for _ in range(3)]
    assert [answer.status_code for answer in answers] == [200, 200, 429]
    refused = answers[-1]
    assert refused.json["status"] == "429"
    assert int(refused.headers["Retry-After"]) >= 1
    # Flask's path draws on the same bucket: empty for both.
    assert bridge.scim.get("/Users/").status_code == 429


def test_the_light_path_skips_flask_and_nothing_else_does(make_bridge: Any) -> None:
    bridge = make_bridge()
    dispatched: list[str] = []
    bridge.app.before_request(lambda: dispatched.append("x") and None)
    assert bridge.scim.get('/Users?filter=userName eq "a@contoso.com"').status_code == 200
    assert bridge.scim.get('/Groups?filter=displayName eq "a"').status_code == 200
    assert dispatched == []
    for path in ("/Users/", "/Users/some-id", "/Schemas"):
        bridge.scim.get(path)
    bridge.scim.request("HEAD", "/Users")
    bridge.app.test_client().get("/healthz")
    assert len(dispatched) == 5


def test_an_unexpected_failure_is_a_scim_500_without_a_trace(
    populated: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with populated.bridge.db.transaction(write=True) as tx:
        tx.connection.execute(text("ALTER TABLE api_tokens RENAME TO api_tokens_gone"))
    with caplog.at_level(logging.ERROR):
        light, routed = _both(populated, '/Users?filter=userName eq "Jane.Doe@contoso.com"')
    assert light.status_code == 500
    assert light.json["status"] == "500"
    assert light.json["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    body = light.get_data(as_text=True)
    assert "api_tokens" not in body and "Traceback" not in body
    assert routed.status_code == 500 and routed.get_data() == light.get_data()
    assert any("api_tokens" in str(record.exc_info) for record in caplog.records)
