"""The OpenAPI description (openapi/openapi.yaml) against the app it describes.

Three checks: the document is valid OpenAPI 3.1; it documents exactly the (method, path) pairs the
Flask app routes; and live responses, for a representative request of every documented operation
and every documented status the public surface can provoke, have a documented status, the
documented media type and headers, and a body valid against the documented schema.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import openapi_spec_validator
import pytest
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from scim_bridge.app import create_app
from scim_bridge.bridge import Bridge
from tests.conftest import SCIM_JSON
from tests.conftest import BridgeUnderTest
from tests.conftest import entra_user

DOCUMENT_PATH = Path(__file__).resolve().parents[1] / "openapi" / "openapi.yaml"
DOCUMENT_URI = "https://scim-bridge.invalid/openapi.yaml"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
SCIM = "/scim/v2"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
# The schema URI Entra adds to the groups it creates (entra.md §1.8).
MS_GROUP = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"

# Flask rules that are not endpoints of the app: Flask's static files, and the blueprint's
# catch-all, which only turns unknown paths and methods into SCIM 404 and 405 errors.
IGNORED_RULE_ENDPOINTS = frozenset({"static", "scim.fallback"})
IGNORED_METHODS = frozenset({"HEAD", "OPTIONS"})
# Flask placeholders, as the document names them.
PLACEHOLDERS = {"resource_id": "id"}
# Documented statuses no request through the public surface can provoke.
UNPROVOKABLE_STATUSES = frozenset({"500"})


def _pointer(*segments: str) -> str:
    return "".join("/" + segment.replace("~", "~0").replace("/", "~1") for segment in segments)


class OpenApi:
    """The document, and what a live response must look like according to it."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        resource = DRAFT202012.create_resource(document)
        self.registry: Registry[Any] = Registry().with_resource(DOCUMENT_URI, resource)

    def operations(self) -> set[tuple[str, str]]:
        return {
            (method.upper(), path)
            for path, item in self.document["paths"].items()
            for method in item
            if method in HTTP_METHODS
        }

    def responses(self, method: str, template: str) -> dict[str, Any]:
        return self._at(_pointer("paths", template, method.lower(), "responses"))

    def problems(
        self,
        method: str,
        template: str,
        response: Any,
        request_body: Any = None,
        request_type: str | None = None,
    ) -> list[str]:
        """What is wrong with a live response to ``method template``; nothing if it conforms."""
        where = f"{method} {template} -> {response.status_code}"
        operation = _pointer("paths", template, method.lower())
        status = str(response.status_code)
        if status not in self._at(operation)["responses"]:
            documented = sorted(self._at(operation)["responses"])
            return [f"{where}: status not documented (documented: {documented})"]
        pointer, documented_response = self._follow(operation + _pointer("responses", status))
        problems = []
        for name in documented_response.get("headers", {}):
            header_pointer, header = self._follow(pointer + _pointer("headers", name))
            value = response.headers.get(name)
            if value is None:
                if header.get("required"):
                    problems.append(f"{where}: required header {name} missing")
                continue
            problems += self.validate(value, header_pointer + "/schema", f"{where} {name}")
        body = response.get_data()
        content = documented_response.get("content")
        if not content:
            if body:
                problems.append(f"{where}: documented without a body, got {body[:100]!r}")
            if "Content-Type" in response.headers:
                problems.append(f"{where}: no body, yet Content-Type {response.content_type}")
        elif (media_type := _documented_media_type(content, response)) is None:
            problems.append(f"{where}: media type {response.content_type} not in {sorted(content)}")
        elif not _is_json(media_type):
            schema = pointer + _pointer("content", media_type, "schema")
            problems += self.validate(response.get_data(as_text=True), schema, where)
        else:
            try:
                payload = json.loads(body)
            except ValueError:
                problems.append(f"{where}: body is not JSON: {body[:100]!r}")
            else:
                schema = pointer + _pointer("content", media_type, "schema")
                problems += self.validate(payload, schema, where)
        if request_body is not None and 200 <= response.status_code < 300:
            problems += self._request_problems(operation, request_body, request_type, where)
        return problems

    def validate(self, instance: Any, pointer: str, where: str) -> list[str]:
        """Validate ``instance`` against the schema at ``pointer`` (JSON Schema 2020-12)."""
        validator = Draft202012Validator(
            {"$ref": f"{DOCUMENT_URI}#{pointer}"}, registry=self.registry
        )
        return [
            f"{where}: {error.json_path}: {error.message[:300]} "
            f"(schema {'/'.join(map(str, error.absolute_schema_path))})"
            for error in validator.iter_errors(instance)
        ]

    def _request_problems(
        self, operation: str, body: Any, media_type: str | None, where: str
    ) -> list[str]:
        """An accepted request body must be one the document describes."""
        pointer, request = self._follow(operation + "/requestBody")
        media_type = (media_type or "").partition(";")[0].strip()
        if media_type not in request.get("content", {}):
            return [f"{where}: request media type {media_type!r} not documented"]
        schema = pointer + _pointer("content", media_type, "schema")
        return self.validate(body, schema, f"{where} (request body)")

    def _at(self, pointer: str) -> Any:
        node: Any = self.document
        for segment in pointer.split("/")[1:]:
            key = segment.replace("~1", "/").replace("~0", "~")
            node = node[int(key)] if isinstance(node, list) else node[key]
        return node

    def _follow(self, pointer: str) -> tuple[str, Any]:
        """The object at ``pointer``, through the document's local ``$ref``s, and where it is."""
        node = self._at(pointer)
        while isinstance(node, dict) and "$ref" in node:
            pointer = node["$ref"].removeprefix("#")
            node = self._at(pointer)
        return pointer, node


def _documented_media_type(content: dict[str, Any], response: Any) -> str | None:
    """The documented media type of a response: its type, with every documented parameter
    (``text/plain; version=0.0.4``) at the documented value."""
    for media_type in content:
        base, _, parameters = media_type.partition(";")
        wanted = dict(
            (part.partition("=")[0].strip(), part.partition("=")[2].strip())
            for part in parameters.split(";")
            if part.strip()
        )
        if base.strip() == response.mimetype and all(
            response.mimetype_params.get(name) == value for name, value in wanted.items()
        ):
            return media_type
    return None


def _is_json(media_type: str) -> bool:
    base = media_type.partition(";")[0].strip()
    return base == "application/json" or base.endswith("+json")


@pytest.fixture(scope="module")
def api() -> OpenApi:
    return OpenApi(yaml.safe_load(DOCUMENT_PATH.read_text(encoding="utf-8")))


def test_document_is_valid_openapi_3_1(api: OpenApi) -> None:
    assert api.document["openapi"].startswith("3.1.")
    openapi_spec_validator.validate(api.document)


def _served_operations(bridge: BridgeUnderTest) -> set[tuple[str, str]]:
    """(method, documented path) of every route of the app, read from its url_map.

    The generic ``<resource_endpoint>`` rules serve each resource type the app lists at
    /ResourceTypes.
    """
    types = bridge.scim.get("/ResourceTypes")
    assert types.status_code == 200, types.get_data(as_text=True)
    endpoints = [resource_type["endpoint"] for resource_type in types.json["Resources"]]
    assert endpoints, "no resource type served"
    served = set()
    for rule in bridge.app.url_map.iter_rules():
        if rule.endpoint in IGNORED_RULE_ENDPOINTS:
            continue
        if "/<resource_endpoint>" in rule.rule:
            paths = [rule.rule.replace("/<resource_endpoint>", endpoint) for endpoint in endpoints]
        else:
            paths = [rule.rule]
        for path in paths:
            documented = re.sub(
                r"<(?:[^:<>]+:)?([^:<>]+)>",
                lambda match: "{" + PLACEHOLDERS.get(match[1], match[1]) + "}",
                path,
            )
            served |= {(method, documented) for method in rule.methods - IGNORED_METHODS}
    return served


def test_every_route_is_documented_and_every_documented_operation_is_served(
    make_bridge: Any, api: OpenApi
) -> None:
    served = _served_operations(make_bridge())
    documented = api.operations()
    assert sorted(served - documented) == [], "served but not documented"
    assert sorted(documented - served) == [], "documented but not served"


class Tour:
    """Sends requests to the app and checks each response against the document."""

    def __init__(self, api: OpenApi, bridge: BridgeUnderTest, tmp_path: Path) -> None:
        self.api = api
        self.bridge = bridge
        self.tmp_path = tmp_path
        self.http = bridge.app.test_client()
        self.problems: list[str] = []
        self.exercised: set[tuple[str, str, str]] = set()

    def __call__(
        self,
        method: str,
        template: str,
        expect: int | None,
        *,
        path: str | None = None,
        body: Any = None,
        data: bytes | None = None,
        content_type: str | None = None,
        auth: bool | str = True,
        headers: dict[str, str] | None = None,
        http: Any = None,
    ) -> Any:
        """Send ``method path`` (``template`` unless given), documented as ``method template``.

        ``expect`` None accepts any documented status.
        ``auth`` is True for the bridge's valid token, False for none, or an Authorization value.
        """
        all_headers = {}
        if auth:
            all_headers["Authorization"] = f"Bearer {self.bridge.token}" if auth is True else auth
        if body is not None:
            data = json.dumps(body).encode()
            content_type = content_type or f"{SCIM_JSON}; charset=utf-8"
        if content_type:
            all_headers["Content-Type"] = content_type
        all_headers.update(headers or {})
        response = (http or self.http).open(
            path or template, method=method, data=data, headers=all_headers
        )
        self.exercised.add((method, template, str(response.status_code)))
        if expect is not None and response.status_code != expect:
            self.problems.append(
                f"{method} {path or template}: expected {expect}, got {response.status_code}: "
                f"{response.get_data(as_text=True)[:200]}"
            )
        self.problems += self.api.problems(method, template, response, body, content_type)
        return response

    def create(self, user_name: str, **overrides: Any) -> dict[str, Any]:
        response = self("POST", f"{SCIM}/Users", 201, body=entra_user(user_name, **overrides))
        return response.json

    def create_group(self, display_name: str, **overrides: Any) -> dict[str, Any]:
        body = entra_group(display_name, **overrides)
        response = self("POST", f"{SCIM}/Groups", 201, body=body)
        return response.json


def patch_op(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def entra_group(display_name: str, **overrides: Any) -> dict[str, Any]:
    """A group as Entra creates it (entra.md §1.8)."""
    return {
        "schemas": [CORE_GROUP, MS_GROUP],
        "externalId": str(uuid.uuid4()),
        "displayName": display_name,
        "meta": {"resourceType": "Group"},
        **overrides,
    }


def probes(tour: Tour) -> None:
    tour("GET", "/healthz", 200, auth=False)
    tour("GET", "/readyz", 200, auth=False)
    metrics = tour("GET", "/metrics", 200, auth=False).get_data(as_text=True)
    assert 'route="/readyz",status="200"' in metrics
    empty = tour.tmp_path / "empty.db"
    unmigrated = Bridge(
        replace(tour.bridge.settings, database_url=f"sqlite:///{empty}"), migrate=False
    )
    try:
        http = create_app(bridge=unmigrated).test_client()
        tour("GET", "/readyz", 503, auth=False, http=http)
    finally:
        unmigrated.db.dispose()


def users(tour: Tour) -> None:
    """A user's life as Entra drives it, plus PUT and the conditional requests."""
    users, one = f"{SCIM}/Users", f"{SCIM}/Users/{{id}}"
    tour("GET", users, 200, path=f'{users}?filter=userName+eq+"nobody@contoso.com"')
    user = tour.create(
        "Jane.Doe@contoso.com",
        password="Sup3r-secret!",
        **{
            ENTERPRISE: {"employeeNumber": "1001", "manager": "mgr-1"},
            "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User:tag": "T1",
        },
    )
    at = f"{users}/{user['id']}"
    tour("POST", users, 201, body=entra_user("plain@contoso.com"), content_type="application/json")
    tour("GET", users, 200, path=f'{users}?filter=externalId eq "{user["externalId"]}"')
    tour("GET", users, 200, path=f"{users}?startIndex=2&count=1&attributes=id")
    tour("GET", users, 200, path=f"{users}?excludedAttributes=emails")
    for query in (
        'title eq "Engineer" or not (active eq false)',
        'emails[type eq "work" and value ew "@contoso.com"] and name.givenName pr',
        f'{ENTERPRISE}:employeeNumber ge "1000" and meta.created lt "2999-01-01T00:00:00Z"',
        'userName co "doe" and (displayName sw "J" or userName ne "x")',
    ):
        assert tour("GET", users, 200, path=f"{users}?filter={query}").json["totalResults"] >= 1
    listed = tour("GET", users, 200, path=f"{users}?sortBy=userName&sortOrder=descending").json
    names = [resource["userName"] for resource in listed["Resources"]]
    assert names == sorted(names, key=str.lower, reverse=True)
    projected = tour(
        "POST", users, 201, path=f"{users}?attributes=userName", body=entra_user("p@x.io")
    )
    assert set(projected.json) == {"schemas", "id", "userName"}
    tour("GET", one, 200, path=at)
    tour("GET", one, 200, path=f"{at}?attributes=userName")
    patched = tour(  # a User PATCH answers 200 with the resource, unlike a Group's
        "PATCH",
        one,
        200,
        path=at,
        body={
            "schemas": [PATCH_OP],
            "Operations": [
                {"op": "Replace", "path": "displayName", "value": "Pvlo"},
                {"op": "Add", "path": 'phoneNumbers[type eq "work"].value', "value": "+1 555"},
                {"op": "Replace", "path": "active", "value": "False"},
                {"op": "remove", "path": f"{ENTERPRISE}:manager"},
                {"op": "replace", "value": {"name.givenName": "Kkom"}},
            ],
        },
    )
    assert patched.json["displayName"] == "Pvlo" and patched.json["active"] is False
    cleared = tour(
        "PATCH", one, 200, path=at, body=patch_op({"op": "replace", "path": "title", "value": ""})
    )
    assert "title" not in cleared.json
    etag = patched.headers["ETag"]
    tour("GET", one, 304, path=at, headers={"If-None-Match": etag})
    tour("GET", one, 412, path=at, headers={"If-Match": 'W/"no-such-version"'})
    replacement = entra_user("Jane.Doe@contoso.com", externalId=user["externalId"])
    tour("PUT", one, 200, path=at, body=replacement, headers={"If-Match": etag})
    tour("PUT", one, 412, path=at, body=replacement, headers={"If-Match": etag})
    patch = {"schemas": [PATCH_OP], "Operations": []}
    tour("PATCH", one, 412, path=at, body=patch, headers={"If-None-Match": "*"})
    tour("DELETE", one, 412, path=at, headers={"If-Match": etag})
    tour("DELETE", one, 204, path=at)
    tour("GET", one, 404, path=at)
    tour("PUT", one, 404, path=at, body=replacement)
    tour("PATCH", one, 404, path=at, body=patch)
    tour("DELETE", one, 404, path=at)
    tour("DELETE", one, 400, path=f"{users}/a%00b")


def user_errors(tour: Tour) -> None:
    users, one = f"{SCIM}/Users", f"{SCIM}/Users/{{id}}"
    user = tour.create("Error.Case@contoso.com")
    tour.create("taken@contoso.com")
    at = f"{users}/{user['id']}"
    tour("POST", users, 409, body=entra_user("ERROR.case@contoso.com"))
    tour("POST", users, 400, data=b"{not json", content_type=SCIM_JSON)
    without_user_name = entra_user("x@contoso.com")
    del without_user_name["userName"]
    tour("POST", users, 400, body=without_user_name)
    tour("POST", users, 415, data=b"{}", content_type="text/plain")
    tour("GET", users, 400, path=f'{users}?filter=nickname eq "x" and bogus eq "Engineer"')
    tour("GET", users, 400, path=f'{users}?filter=title eq "Engineer" and')
    tour("GET", users, 400, path=f"{users}?count=many")
    tour("GET", users, 400, path=f"{users}?sortBy=members")
    tour("GET", users, 501, path=f"{users}?cursor=abc")
    tour("GET", users, 400, path=f'{users}?filter=userName eq "a%00b"')
    tour("POST", users, 400, body=entra_user("nul\u0000@contoso.com"))
    tour("GET", one, 400, path=f"{at}?attributes=userName&excludedAttributes=emails")
    taken = entra_user("TAKEN@contoso.com", externalId=user["externalId"])
    tour("PUT", one, 409, path=at, body=taken)
    tour("PUT", one, 400, path=at, body=without_user_name)
    tour("PUT", one, 415, path=at, data=b"{}", content_type="text/plain")
    rename = [{"op": "replace", "path": "userName", "value": "Taken@Contoso.com"}]
    tour("PATCH", one, 409, path=at, body={"schemas": [PATCH_OP], "Operations": rename})
    unname = patch_op({"op": "replace", "path": "userName", "value": ""})
    assert tour("PATCH", one, 400, path=at, body=unname).json["scimType"] == "mutability"
    move = [{"op": "Move", "path": "title", "value": "x"}]
    tour("PATCH", one, 400, path=at, body={"schemas": [PATCH_OP], "Operations": move})
    tour("PATCH", one, 415, path=at, data=b"{}", content_type="text/plain")


def groups(tour: Tour) -> None:
    """A group's life as Entra drives it (entra.md §1.8), plus PUT and the conditional requests."""
    groups, one = f"{SCIM}/Groups", f"{SCIM}/Groups/{{id}}"
    lookup = f"{groups}?excludedAttributes=members&filter=displayName eq"
    assert tour("GET", groups, 200, path=f'{lookup} "Developers"').json["totalResults"] == 0
    member, other = (tour.create(f"{name}@contoso.com")["id"] for name in ("member", "other"))
    group = tour.create_group("Developers", members=[{"value": member, "$ref": None}])
    assert group["schemas"] == [CORE_GROUP], "Entra's schema URI is not echoed"
    at = f"{groups}/{group['id']}"
    tour("POST", groups, 201, body=entra_group("Plain"), content_type="application/json")

    def members() -> list[str]:
        found = tour("GET", one, 200, path=at).json
        for entry in found.get("members", []):
            assert entry["type"] == "User" and entry["$ref"].endswith(f"/Users/{entry['value']}")
        return sorted(entry["value"] for entry in found.get("members", []))

    found = tour("GET", groups, 200, path=f'{lookup} "DEVELOPERS"').json
    assert [resource["id"] for resource in found["Resources"]] == [group["id"]]
    assert "members" not in found["Resources"][0]
    by_external_id = f'{groups}?filter=externalId eq "{group["externalId"]}"'
    assert tour("GET", groups, 200, path=by_external_id).json["totalResults"] == 1
    for user, hits in ((member, 1), (other, 0)):
        for check in (
            f'id eq "{group["id"]}" and members eq "{user}"',
            f'members.value eq "{user}" and id eq "{group["id"]}"',
        ):
            query = f"{groups}?filter={check}&excludedAttributes=members"
            assert tour("GET", groups, 200, path=query).json["totalResults"] == hits, check
    tour("GET", groups, 200, path=f"{groups}?startIndex=2&count=1&attributes=displayName")
    for query in (
        'displayName co "velo"',
        f'id eq "nothing" or members[value eq "{member}"]',
        'not (displayName ew "n") and meta.lastModified gt "2000-01-01T00:00:00Z"',
    ):
        assert tour("GET", groups, 200, path=f"{groups}?filter={query}").json["totalResults"] == 1
    tour("GET", groups, 200, path=f"{groups}?sortBy=displayName&sortOrder=descending")
    # Members are Users: a group is refused as one (nested groups), and nothing is created.
    nested = tour("POST", groups, 400, body=entra_group("Nested", members=[{"value": group["id"]}]))
    assert nested.json["scimType"] == "invalidValue" and group["id"] in nested.json["detail"]
    lean = tour(
        "POST",
        groups,
        201,
        path=f"{groups}?excludedAttributes=members,meta",
        body=entra_group("Lean", members=[{"value": member}]),
    )
    assert "members" not in lean.json and "meta" not in lean.json
    assert members() == [member]
    assert "members" not in tour("GET", one, 200, path=f"{at}?excludedAttributes=members").json
    tour("GET", one, 200, path=f"{at}?attributes=members")

    def patch(*operations: dict[str, Any], query: str = "") -> Any:
        """Entra's PATCH: 204, no body, the new version in ETag."""
        response = tour("PATCH", one, 204, path=at + query, body=patch_op(*operations))
        assert response.get_data() == b"", "a group PATCH answers 204 without a body"
        assert response.headers["ETag"] == tour("GET", one, 200, path=at).json["meta"]["version"]
        return response

    # Both of Entra's member dialects, and a path-less replace with members in it.
    patch({"op": "Add", "path": "members", "value": [{"$ref": None, "value": other}]})
    assert members() == sorted([member, other])
    patch({"op": "Remove", "path": "members", "value": [{"$ref": None, "value": other}]})
    assert members() == [member]
    patch({"op": "remove", "path": f'members[value eq "{member}"]'}, query="?aadOptscim062020")
    assert members() == []
    patch({"op": "replace", "value": {"displayName": "Renamed", "members": [{"value": other}]}})
    assert members() == [other]
    etag = patch().headers["ETag"]

    def rename(name: str) -> dict[str, Any]:
        return patch_op({"op": "Replace", "path": "displayName", "value": name})

    # Asked for attributes, a group PATCH answers 200 with them.
    asked = tour("PATCH", one, 200, path=f"{at}?attributes=displayName", body=rename("Developers"))
    assert asked.json == {"schemas": [CORE_GROUP], "id": group["id"], "displayName": "Developers"}
    assert asked.headers["ETag"] != etag
    excluded_members = f"{at}?excludedAttributes=members"
    excluded = tour("PATCH", one, 200, path=excluded_members, body=rename("GitLab Developers"))
    assert excluded.json["displayName"] == "GitLab Developers" and "members" not in excluded.json
    etag = excluded.headers["ETag"]
    tour("GET", one, 304, path=at, headers={"If-None-Match": etag})
    tour("GET", one, 412, path=at, headers={"If-Match": 'W/"no-such-version"'})
    replacement = entra_group("GitLab Developers", externalId=group["externalId"])
    replacement["members"] = [{"value": member}]
    tour("PUT", one, 200, path=at, body=replacement, headers={"If-Match": etag})
    assert members() == [member]
    tour("PUT", one, 412, path=at, body=replacement, headers={"If-Match": etag})
    empty = patch_op()
    tour("PATCH", one, 412, path=at, body=empty, headers={"If-None-Match": "*"})
    tour("DELETE", one, 412, path=at, headers={"If-Match": etag})
    tour("DELETE", one, 204, path=at)
    tour("GET", f"{SCIM}/Users/{{id}}", 200, path=f"{SCIM}/Users/{member}")
    tour("GET", one, 404, path=at)
    tour("PUT", one, 404, path=at, body=replacement)
    tour("PATCH", one, 404, path=at, body=empty)
    tour("DELETE", one, 404, path=at)


def group_errors(tour: Tour) -> None:
    groups, one = f"{SCIM}/Groups", f"{SCIM}/Groups/{{id}}"
    group = tour.create_group("Operators")
    tour.create_group("Taken")
    at = f"{groups}/{group['id']}"
    duplicate = tour("POST", groups, 409, body=entra_group("OPERATORS"))
    assert duplicate.json["scimType"] == "uniqueness"
    tour("POST", groups, 400, data=b"{not json", content_type=SCIM_JSON)
    without_name = entra_group("x")
    del without_name["displayName"]
    tour("POST", groups, 400, body=without_name)
    tour("POST", groups, 400, body=entra_group("Elsewhere", schemas=[MS_GROUP]))
    tour("POST", groups, 415, data=b"{}", content_type="text/plain")
    tour("GET", groups, 400, path=f'{groups}?filter=userName eq "Op"')
    tour("GET", groups, 400, path=f'{groups}?filter=id eq "a" or (id eq "b"')
    tour("GET", groups, 400, path=f"{groups}?count=many")
    tour("GET", groups, 400, path=f"{groups}?sortOrder=sideways")
    tour("GET", groups, 501, path=f"{groups}?cursor=abc")
    tour("DELETE", one, 400, path=f"{groups}/a%00b")
    tour("GET", one, 400, path=f"{at}?attributes=displayName&excludedAttributes=members")
    taken = entra_group("taken", externalId=group["externalId"])
    tour("PUT", one, 409, path=at, body=taken)
    tour("PUT", one, 400, path=at, body=without_name)
    tour("PUT", one, 415, path=at, data=b"{}", content_type="text/plain")
    rename = patch_op({"op": "Replace", "path": "displayName", "value": "TAKEN"})
    tour("PATCH", one, 409, path=at, body=rename)
    unname = patch_op({"op": "remove", "path": "displayName"})
    assert tour("PATCH", one, 400, path=at, body=unname).json["scimType"] == "mutability"
    move = patch_op({"op": "Move", "path": "displayName", "value": "x"})
    tour("PATCH", one, 400, path=at, body=move)
    phantom = patch_op({"op": "Add", "path": "members", "value": [{"value": "fake-member-id"}]})
    refused = tour("PATCH", one, 400, path=at, body=phantom).json
    assert refused["scimType"] == "invalidValue" and "fake-member-id" in refused["detail"]
    tour("PATCH", one, 415, path=at, data=b"{}", content_type="text/plain")


def searches(tour: Tour) -> None:
    tour.create("Search.Me@contoso.com")
    tour.create_group("Searchers", members=[{"value": tour.create("m@contoso.com")["id"]}])
    found_user = {"schemas": [SEARCH_REQUEST], "filter": 'userName eq "search.me@contoso.com"'}
    found_group = {"schemas": [SEARCH_REQUEST], "filter": 'displayName eq "SEARCHERS"'}
    for template, found in (
        (f"{SCIM}/Users/.search", found_user),
        (f"{SCIM}/Groups/.search", found_group),
    ):
        assert tour("POST", template, 200, body=found).json["totalResults"] == 1
        tour("POST", template, 200, body={**found, "attributes": ["id"], "count": 1})
        assert tour("POST", template, 200, body={"filter": 'id co "x"'}).json["totalResults"] == 0
        tour("POST", template, 400, body={"filter": 'nosuchattribute co "x"'})
        tour("POST", template, 415, data=b"{}", content_type="text/plain")
        tour("POST", template, 200, body={**found, "sortBy": "id", "sortOrder": "descending"})
        tour("POST", template, 501, body={"cursor": ""})
    lean = {**found_group, "excludedAttributes": ["members"]}
    listed = tour("POST", f"{SCIM}/Groups/.search", 200, body=lean).json["Resources"]
    assert len(listed) == 1 and "members" not in listed[0]
    # At the service root a search spans Users and Groups, in creation order; no sorting.
    root_search = f"{SCIM}/.search"
    for body in (found_user, found_group):
        assert tour("POST", root_search, 200, body=body).json["totalResults"] == 1
    assert tour("POST", root_search, 200, body={}).json["totalResults"] >= 3
    tour("POST", root_search, 200, body={"startIndex": 2, "count": 1, "attributes": ["id"]})
    tour("POST", root_search, 501, body={"sortBy": "userName"})
    tour("POST", root_search, 400, body={"filter": "userName eq"})
    tour("POST", root_search, 400, body={"filter": 'nosuchattribute eq "x"'})
    tour("POST", root_search, 400, body={"filter": 'userName eq "\u0000"'})
    tour("POST", root_search, 400, data=b"{not json", content_type=SCIM_JSON)
    tour("POST", root_search, 415, data=b"{}", content_type="text/plain")
    root = f"{SCIM}/"
    found = tour("GET", root, 200, path=f'{root}?filter=userName eq "search.me@contoso.com"').json
    assert [resource["userName"] for resource in found["Resources"]] == ["Search.Me@contoso.com"]
    everything = tour("GET", root, 200).json["Resources"]
    assert {resource["meta"]["resourceType"] for resource in everything} == {"User", "Group"}
    created = [datetime.fromisoformat(resource["meta"]["created"]) for resource in everything]
    assert created == sorted(created), "the root pages by creation time"
    tour("GET", root, 200, path=f"{root}?sortOrder=descending&excludedAttributes=members")
    tour("GET", root, 501, path=f"{root}?sortBy=userName")
    tour("GET", root, 400, path=f"{root}?filter=userName eq")
    tour("GET", root, 400, path=f"{root}?count=many")


def discovery(tour: Tour) -> None:
    listed = {
        f"{SCIM}/ResourceTypes": f"{SCIM}/ResourceTypes/{{id}}",
        f"{SCIM}/Schemas": f"{SCIM}/Schemas/{{id}}",
    }
    for collection, one in listed.items():
        resources = tour("GET", collection, 200).json["Resources"]
        for resource in resources:
            tour("GET", one, 200, path=f"{collection}/{resource['id']}")
        tour("GET", one, 404, path=f"{collection}/nothing")
        tour("GET", collection, 403, path=f'{collection}?filter=id eq "User"')
        tour("GET", collection, 400, path=f"{collection}?x=%00")
        tour("GET", one, 400, path=f"{collection}/a%00b")
        tour("GET", one, 403, path=f'{collection}/{resources[0]["id"]}?filter=id eq "User"')
    for core in (CORE_USER, CORE_GROUP):
        schema = tour("GET", f"{SCIM}/Schemas/{{id}}", 200, path=f"{SCIM}/Schemas/{core}").json
        assert "externalId" in {attribute["name"] for attribute in schema["attributes"]}
    configuration = f"{SCIM}/ServiceProviderConfig"
    assert tour("GET", configuration, 200).json["sort"] == {"supported": True}
    tour("GET", configuration, 400, path=f"{configuration}?x=%00")
    tour("GET", configuration, 403, path=f'{configuration}?filter=id eq "x"')


def unsupported(tour: Tour) -> None:
    bulk = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": []}
    tour("POST", f"{SCIM}/Bulk", 501, body=bulk)
    for method in ("GET", "PUT", "PATCH", "DELETE", "POST"):
        body = None if method in ("GET", "DELETE") else entra_user()
        tour(method, f"{SCIM}/Me", 501, body=body)
        tour(method, f"{SCIM}/Me", 400, path=f"{SCIM}/Me?x=%00", body=body)
    tour("POST", f"{SCIM}/Bulk", 400, path=f"{SCIM}/Bulk?x=%00", body=bulk)


def unauthenticated(tour: Tour) -> None:
    """Every SCIM operation, without a token or with a bad one."""
    for method, template in sorted(tour.api.operations()):
        if template.startswith(SCIM):
            path = template.replace("{id}", "anything")
            tour(method, template, 401, path=path, auth=False)
            tour(method, template, 401, path=path, auth="Bearer not-a-token")


def _guarded(tour: Tour) -> BridgeUnderTest:
    """A second bridge on the same database, at the lowest rate limit the settings allow, whose
    limiter's clock stands still: its burst runs out after 50 requests however slowly they come
    (a loaded 2-core machine cannot be relied on to send faster than the refill)."""
    server = replace(tour.bridge.settings.server, rate_limit_per_second=50, rate_limit_burst=50)
    guarded = BridgeUnderTest(replace(tour.bridge.settings, server=server))
    guarded.bridge.limiter.monotonic = lambda: 0.0
    return guarded


def _until(tour: Tour, status: int, send: Callable[[], Any], attempts: int = 200) -> None:
    """Send until ``status`` comes back (past the guarded bridge's burst), then check that answer."""
    for _ in range(attempts):
        if send().status_code == status:
            return
    tour.problems.append(f"no {status} after {attempts} requests")


def guards(tour: Tour) -> None:
    """413 for a body past the limit; 429 with Retry-After for a burst past the rate limit."""
    big = entra_user("big@contoso.com", displayName="x" * (2 * 1024 * 1024))
    tour("POST", f"{SCIM}/Users", 413, body=big)
    guarded = _guarded(tour)
    try:
        http = guarded.app.test_client()
        auth = f"Bearer {guarded.token}"
        _until(tour, 429, lambda: tour("GET", f"{SCIM}/Users", None, auth=auth, http=http))
    finally:
        guarded.close()


def oauth2(tour: Tour) -> None:
    """The token endpoint: a token, each error, and the rate limit."""
    token = "/oauth2/token"
    client = tour.bridge.bridge.clients.create("entra-oauth")
    form = "application/x-www-form-urlencoded"
    grant = f"grant_type=client_credentials&client_id={client.client_id}"
    good = f"{grant}&client_secret={client.client_secret}".encode()

    def post(expect: int | None, data: bytes, content_type: str = form, http: Any = None) -> Any:
        return tour(
            "POST", token, expect, data=data, content_type=content_type, auth=False, http=http
        )

    issued = post(200, good + b"&scope=scim").json
    tour("GET", f"{SCIM}/Users", 200, auth=f"Bearer {issued['access_token']}")
    post(400, b'{"grant_type": "client_credentials"}', content_type="application/json")
    post(400, good.replace(b"client_credentials", b"password"))
    post(400, good + b"&scope=admin")
    post(400, b"client_id=x")
    post(401, f"{grant}&client_secret=sbs_0000_wrong".encode())
    post(401, b"grant_type=client_credentials")
    guarded = _guarded(tour)
    try:
        http = guarded.app.test_client()
        _until(tour, 429, lambda: post(None, b"grant_type=password", http=http))
    finally:
        guarded.close()


SCENARIOS: list[Callable[[Tour], None]] = [
    guards,
    oauth2,
    probes,
    users,
    user_errors,
    groups,
    group_errors,
    searches,
    discovery,
    unsupported,
    unauthenticated,
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.__name__ for s in SCENARIOS])
def test_live_responses_conform_to_the_document(
    make_bridge: Any, api: OpenApi, tmp_path: Path, scenario: Callable[[Tour], None]
) -> None:
    tour = Tour(api, make_bridge(), tmp_path)
    scenario(tour)
    assert tour.problems == []


def test_every_documented_response_is_exercised(
    make_bridge: Any, api: OpenApi, tmp_path: Path
) -> None:
    """The scenarios reach every documented operation and status, so all of them are checked."""
    tour = Tour(api, make_bridge(), tmp_path)
    for scenario in SCENARIOS:
        scenario(tour)
    assert tour.problems == []
    documented = {
        (method, template, status)
        for method, template in api.operations()
        for status in api.responses(method, template)
        if status not in UNPROVOKABLE_STATUSES
    }
    assert sorted(documented - tour.exercised) == []
