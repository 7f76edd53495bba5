"""Microsoft's 2026 gallery validation (the Logic App, entra.md §4.3), one test per SCIM check.

The requests and pass criteria follow the Logic App's workflows
(AzureAD/SCIMReferenceCode, ``Microsoft.SCIM.LogicAppValidationTemplate/StandardLogicApp/
SCIMTests_Workflow.json`` and ``SCIM-Validation-Test-Overview.md``), with Entra's default
attribute mappings (entra.md §5.2) standing in for the app's provisioning schema:

- ``SCIM_Null_Update_Test``: PATCH ``""`` into every optional mapped attribute, then ``null``;
- ``SCIM_User_Pagination_Test`` and ``SCIM_Group_Pagination_Test``: ``startIndex`` pages of 5;
- ``SCIM_Update_Manager_Test``: set, change and remove the enterprise manager;
- ``Restore_User_Test`` (its soft-delete form): disable, then enable again;
- ``Schema_Discoverability_Test``: every mapped attribute discoverable in ``/Schemas``;
- and the gallery requirement that ``/Bulk`` is refused while the service says it has no bulk.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

import pytest

from tests.conformance.conftest import scim_json
from tests.conftest import BridgeUnderTest
from tests.conftest import entra_user

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
MANAGER = f"{ENTERPRISE}:manager"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
PATCH_OK = (200, 204)

# Entra's default user mappings (entra.md §5.2): Microsoft's documented example table, then the
# out-of-the-box non-gallery ("customappsso") table. Sub-attribute case is Microsoft's own.
DOCUMENTED_USER_TARGETS = [
    "active",
    f"{ENTERPRISE}:department",
    "displayName",
    f"{ENTERPRISE}:employeeNumber",
    'phoneNumbers[type eq "fax"].value',
    "name.givenName",
    "title",
    'emails[type eq "work"].value',
    "externalId",
    MANAGER,
    'phoneNumbers[type eq "mobile"].value',
    'addresses[type eq "work"].postalCode',
    'emails[type eq "other"].Value',
    'addresses[type eq "other"].Formatted',
    'addresses[type eq "work"].streetAddress',
    "name.familyName",
    'phoneNumbers[type eq "work"].value',
    "userName",
]
CUSTOMAPPSSO_USER_TARGETS = [
    "userName",
    "active",
    "displayName",
    "title",
    'emails[type eq "work"].value',
    "preferredLanguage",
    "name.givenName",
    "name.familyName",
    "name.formatted",
    'addresses[type eq "work"].formatted',
    'addresses[type eq "work"].streetAddress',
    'addresses[type eq "work"].locality',
    'addresses[type eq "work"].region',
    'addresses[type eq "work"].postalCode',
    'addresses[type eq "work"].country',
    'phoneNumbers[type eq "work"].value',
    'phoneNumbers[type eq "mobile"].value',
    'phoneNumbers[type eq "fax"].value',
    "externalId",
    f"{ENTERPRISE}:employeeNumber",
    f"{ENTERPRISE}:department",
    MANAGER,
    "roles",
]
GROUP_TARGETS = ["displayName", "externalId", "members"]

# What the null update writes: the customappsso targets, less those the Logic App leaves out
# (matching attribute userName, active, externalId, roles, reference-typed manager) and less the
# attributes the bridge's /Schemas marks required (checked in the test).
NULL_UPDATE_EXCLUDED = {"userName", "active", "externalId", "roles", MANAGER}
NULL_UPDATE_TARGETS = [t for t in CUSTOMAPPSSO_USER_TARGETS if t not in NULL_UPDATE_EXCLUDED]


@pytest.fixture
def bridge(live_bridge: BridgeUnderTest) -> BridgeUnderTest:
    """Microsoft validates a deployment: here, the bridge provisioning the GitLab double."""
    return live_bridge


def _unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def _create_user(bridge: BridgeUnderTest, body: dict[str, Any]) -> dict[str, Any]:
    response = bridge.scim.post("/Users", body)
    assert response.status_code == 201, response.get_data(as_text=True)
    created: dict[str, Any] = scim_json(response)
    assert created.get("id"), created
    return created


def _get(bridge: BridgeUnderTest, path: str) -> Any:
    response = bridge.scim.get(path)
    assert response.status_code == 200, (
        f"GET {path}: {response.status_code} {response.get_data(as_text=True)}"
    )
    return scim_json(response)


def _patch(bridge: BridgeUnderTest, path: str, operations: list[dict[str, Any]]) -> Any:
    response = bridge.scim.patch(path, operations)
    assert response.status_code in PATCH_OK, (
        f"PATCH {path} -> {response.status_code} {response.get_data(as_text=True)}\n"
        f"  Operations: {operations}"
    )
    return response


def _filter(attribute: str, value: str) -> str:
    return quote(f'{attribute} eq "{value}"')


# -- SCIM_Null_Update_Test ------------------------------------------------------------


def _full_user(user_name: str) -> dict[str, Any]:
    """A user with every default-mapped attribute set, as the Logic App's create body has them."""
    return {
        "schemas": [CORE_USER, ENTERPRISE],
        "userName": user_name,
        "active": True,
        "externalId": str(uuid.uuid4()),
        "displayName": "Null Test",
        "title": "Engineer",
        "preferredLanguage": "en-US",
        "name": {"givenName": "Null", "familyName": "Test", "formatted": "Null Test"},
        "emails": [{"type": "work", "primary": True, "value": user_name}],
        "addresses": [
            {
                "type": "work",
                "primary": True,
                "formatted": "1 Main St, Springfield",
                "streetAddress": "1 Main St",
                "locality": "Springfield",
                "region": "IL",
                "postalCode": "62701",
                "country": "US",
            }
        ],
        "phoneNumbers": [
            {"type": "work", "primary": True, "value": "+1 555 0100"},
            {"type": "mobile", "primary": False, "value": "+1 555 0101"},
            {"type": "fax", "primary": False, "value": "+1 555 0102"},
        ],
        ENTERPRISE: {"employeeNumber": "1001", "department": "Engineering"},
    }


def _read(resource: dict[str, Any], target: str) -> Any:
    """The value at a mapping target in a returned resource, as the Logic App reads it."""

    def key(mapping: Any, name: str) -> Any:
        if not isinstance(mapping, dict):
            return None
        for candidate, value in mapping.items():
            if candidate.lower() == name.lower():
                return value
        return None

    if "[type eq" in target:
        attribute = target.split("[", 1)[0]
        wanted = target.split('"')[1].lower()
        sub = target.rsplit("].", 1)[1] if "]." in target else "value"
        entries = [
            e for e in key(resource, attribute) or [] if str(key(e, "type")).lower() == wanted
        ]
        return key(entries[0], sub) if entries else None
    if target.startswith("urn:"):
        schema, _, name = target.rpartition(":")
        return key(key(resource, schema), name)
    if "." in target:
        parent, _, name = target.partition(".")
        return key(key(resource, parent), name)
    return key(resource, target)


def _null_update_operations(targets: list[str], value: Any, dialect: str) -> list[dict[str, Any]]:
    """One op per path (isVerbosePatchSupported, the default), or Entra's batched form:
    value-path ops alone and one path-less replace whose keys are the other paths."""
    if dialect == "verbose":
        return [{"op": "replace", "path": target, "value": value} for target in targets]
    filtered = [t for t in targets if "[" in t]
    batched = {t: value for t in targets if "[" not in t}
    return [{"op": "replace", "path": t, "value": value} for t in filtered] + [
        {"op": "replace", "value": batched}
    ]


@pytest.mark.parametrize("dialect", ["verbose", "batched"])
def test_null_update(bridge: BridgeUnderTest, dialect: str) -> None:
    """``""`` empties every optional mapped attribute; ``null`` then leaves it absent."""
    required = {
        attribute["name"].lower()
        for schema in _get(bridge, "/Schemas")["Resources"]
        if schema["id"] in (CORE_USER, ENTERPRISE)
        for attribute in schema["attributes"]
        if attribute.get("required")
    }
    targets = [
        target
        for target in NULL_UPDATE_TARGETS
        if target.rpartition(":")[2].split("[")[0].split(".")[0].lower() not in required
    ]
    user = _create_user(bridge, _full_user(f"{_unique('scnull')}@contoso.com"))
    at = f"/Users/{user['id']}"
    before = _get(bridge, at)
    assert [t for t in targets if _read(before, t) in (None, "")] == [], "create lost attributes"

    _patch(bridge, at, _null_update_operations(targets, "", dialect))
    emptied = _get(bridge, at)
    not_emptied = {t: _read(emptied, t) for t in targets if _read(emptied, t) not in (None, "")}
    assert not_emptied == {}, f'after PATCH "": attributes still set: {not_emptied}'

    _patch(bridge, at, _null_update_operations(targets, None, dialect))
    nulled = _get(bridge, at)
    # Phase 2 of the Logic App: every target but a value path must now read null (be absent).
    present = {
        t: _read(nulled, t) for t in targets if "[" not in t and _read(nulled, t) is not None
    }
    assert present == {}, f"after PATCH null: attributes still present: {present}"


# -- SCIM_User_Pagination_Test / SCIM_Group_Pagination_Test ----------------------------


def _pages(bridge: BridgeUnderTest, endpoint: str) -> list[dict[str, Any]]:
    """Walk ``startIndex`` pages of 5 as the Logic App does (at most 10 pages)."""
    pages: list[dict[str, Any]] = []
    requested: int | None = 1
    while requested is not None and len(pages) < 10:
        url = f"{endpoint}?startIndex={requested}&count=5"
        response = bridge.scim.get(url)
        body = scim_json(response) if response.status_code == 200 else {}
        resources = body.get("Resources") or []
        pages.append(
            {
                "url": url,
                "status": response.status_code,
                "startIndex": body.get("startIndex"),
                "requested": requested,
                "expected": len(pages) * 5 + 1,
                "totalResults": body.get("totalResults"),
                "ids": [resource.get("id") for resource in resources],
            }
        )
        start = body.get("startIndex") or 1
        total = body.get("totalResults") or 0
        following = start + len(resources)
        requested = following if resources and following <= total else None
    return pages


def _check_pages(pages: list[dict[str, Any]], created: list[str]) -> None:
    bad = [
        p
        for p in pages
        if p["status"] != 200 or not p["startIndex"] == p["requested"] == p["expected"]
    ]
    assert len(pages) >= 2, f"fewer than 2 pages: {pages}"
    assert bad == [], f"pages with a status other than 200 or an unexpected startIndex: {bad}"
    assert [len(p["ids"]) for p in pages] == [5, 5, len(created) - 10], pages
    listed = [resource_id for page in pages for resource_id in page["ids"]]
    assert sorted(listed) == sorted(created), "the pages do not list every resource exactly once"


def test_user_pagination(bridge: BridgeUnderTest) -> None:
    """12 users in pages of 5: every page 200 at the requested startIndex, each user once."""
    created = [
        _create_user(
            bridge, entra_user(f"{_unique('paguser')}@contoso.com", displayName=_unique("PagUser "))
        )["id"]
        for _ in range(12)
    ]
    _check_pages(_pages(bridge, "/Users"), created)


def test_group_pagination(bridge: BridgeUnderTest) -> None:
    """12 groups in pages of 5: every page 200 at the requested startIndex, each group once."""
    created = []
    for _ in range(12):
        body = {
            "schemas": [CORE_GROUP],
            "displayName": _unique("PagGroup-"),
            "externalId": str(uuid.uuid4()),
        }
        response = bridge.scim.post("/Groups", body)
        assert response.status_code == 201, response.get_data(as_text=True)
        created.append(scim_json(response)["id"])
    _check_pages(_pages(bridge, "/Groups"), created)


# -- SCIM_Update_Manager_Test ----------------------------------------------------------


def _manager_value(resource: dict[str, Any]) -> Any:
    manager = (resource.get(ENTERPRISE) or {}).get("manager")
    assert manager is None or isinstance(manager, dict), (
        f"manager must come back as an object with a value (entra.md §1.5), got {manager!r}"
    )
    return None if manager is None else manager.get("value")


@pytest.mark.parametrize("form", ["bare-id", "value-object"])
@pytest.mark.parametrize("removal", ["remove-without-value", "replace-with-empty"])
def test_update_manager(bridge: BridgeUnderTest, form: str, removal: str) -> None:
    """Set (Add), change (Replace) and remove the manager; each PATCH is 200/204, each GET agrees."""
    user = _create_user(bridge, entra_user(f"{_unique('scmgr-user-')}@contoso.com"))
    first = _create_user(bridge, entra_user(f"{_unique('scmgr-mgr-')}@contoso.com"))
    second = _create_user(bridge, entra_user(f"{_unique('scmgr-mgr2-')}@contoso.com"))
    at = f"/Users/{user['id']}"

    def manager(value: str) -> Any:
        return value if form == "bare-id" else {"value": value}

    _patch(bridge, at, [{"op": "Add", "path": MANAGER, "value": manager(first["id"])}])
    assert _manager_value(_get(bridge, at)) == first["id"], "manager not set"

    _patch(bridge, at, [{"op": "replace", "path": MANAGER, "value": manager(second["id"])}])
    assert _manager_value(_get(bridge, at)) == second["id"], "manager not changed"

    if removal == "remove-without-value":
        _patch(bridge, at, [{"op": "remove", "path": MANAGER}])
    else:
        _patch(bridge, at, [{"op": "replace", "path": MANAGER, "value": ""}])
    assert _manager_value(_get(bridge, at)) in (None, ""), "manager not removed"


# -- Restore_User_Test (soft delete, then restore) -------------------------------------

ACTIVE_FORMS = {
    # Entra without aadOptscim062020: capitalised op, string booleans (entra.md §1.6).
    "default": ("Replace", "False", "True"),
    # With aadOptscim062020: lower-case op, JSON booleans.
    "aadOptscim062020": ("replace", False, True),
}


@pytest.mark.parametrize("dialect", list(ACTIVE_FORMS))
def test_restore_user(bridge: BridgeUnderTest, dialect: str) -> None:
    """A disabled user is still returned, with ``active: false``; enabling it again reads true."""
    op, disable, enable = ACTIVE_FORMS[dialect]
    body = entra_user(f"{_unique('larestore')}@contoso.com")
    user = _create_user(bridge, body)
    at = f"/Users/{user['id']}"
    lookups = [
        at,
        f"/Users?filter={_filter('userName', body['userName'])}",
        f"/Users?filter={_filter('externalId', body['externalId'])}",
    ]

    def returned_active() -> list[Any]:
        found = []
        for path in lookups:
            answer = _get(bridge, path)
            if "Resources" in answer:
                assert answer["totalResults"] == 1, f"GET {path}: {answer}"
                answer = answer["Resources"][0]
            assert answer["id"] == user["id"], f"GET {path}: {answer}"
            found.append(answer.get("active"))
        return found

    response = _patch(bridge, at, [{"op": op, "path": "active", "value": disable}])
    if response.status_code == 200:
        assert scim_json(response)["active"] is False
    assert returned_active() == [False, False, False], "a disabled user must be returned, inactive"

    response = _patch(bridge, at, [{"op": op, "path": "active", "value": enable}])
    if response.status_code == 200:
        assert scim_json(response)["active"] is True
    assert returned_active() == [True, True, True], "the restored user must read active"


# -- Schema_Discoverability_Test -------------------------------------------------------


def _flatten_attributes(attributes: list[dict[str, Any]]) -> list[str]:
    """The Logic App's flattening of one schema's attributes (Flatten_User_Attrs_Loop)."""
    names: list[str] = []
    for attribute in attributes:
        name = attribute.get("name", "")
        subs = attribute.get("subAttributes") or []
        if name in ("manager", "members"):
            names.append(name)
        elif attribute.get("type") == "complex" and attribute.get("multiValued"):
            types = [sub for sub in subs if sub.get("name") == "type"]
            canonical = (types[0].get("canonicalValues") or []) if types else []
            if canonical:
                for value in canonical:
                    names += [
                        f'{name}[type eq "{value}"].{sub["name"]}'
                        for sub in subs
                        if sub.get("name") not in ("type", "primary")
                    ]
            else:
                names += [
                    f'{name}[primary eq "True"].{sub["name"]}'
                    for sub in subs
                    if sub.get("name") != "primary"
                ]
            # Not in the Logic App: a multi-valued attribute mapped whole (roles, through
            # AppRoleAssignmentsComplex) is discoverable by its own name.
            names.append(name)
        elif attribute.get("type") == "complex":
            names += [
                f"{name}.{sub['name']}"
                for sub in subs
                if sub.get("type") not in ("complex", "reference")
            ]
        elif attribute.get("type") != "reference":
            names.append(name)
    return names


def test_schema_discoverability(bridge: BridgeUnderTest) -> None:
    """Every attribute of Entra's default mappings is found in the flattened /Schemas."""
    response = bridge.scim.get("/Schemas")
    assert response.status_code == 200, response.get_data(as_text=True)
    resources = scim_json(response).get("Resources") or []
    by_id = {schema.get("id"): schema for schema in resources}
    assert CORE_USER in by_id, "no core User schema"
    assert CORE_GROUP in by_id, "no core Group schema: the Logic App fails every group test"

    user_names = _flatten_attributes(by_id[CORE_USER].get("attributes") or [])
    for schema_id, schema in by_id.items():
        if schema_id not in (CORE_USER, CORE_GROUP):  # ForEach_User_Extension_Schema
            user_names += [f"{schema_id}:{a.get('name')}" for a in schema.get("attributes") or []]
    group_names = _flatten_attributes(by_id[CORE_GROUP].get("attributes") or [])

    discoverable_users = {name.lower() for name in user_names}
    discoverable_groups = {name.lower() for name in group_names}
    targets = list(dict.fromkeys(DOCUMENTED_USER_TARGETS + CUSTOMAPPSSO_USER_TARGETS))
    missing_users = [t for t in targets if t != "id" and t.lower() not in discoverable_users]
    missing_groups = [t for t in GROUP_TARGETS if t.lower() not in discoverable_groups]
    assert (missing_users, missing_groups) == ([], []), (
        f"missing user attributes: {missing_users}; missing group attributes: {missing_groups}\n"
        f"flattened user attributes: {sorted(user_names)}\n"
        f"flattened group attributes: {sorted(group_names)}"
    )


# -- Bulk ------------------------------------------------------------------------------


def test_bulk_is_refused_and_announced_unsupported(bridge: BridgeUnderTest) -> None:
    """``/Bulk`` answers 501 (a SCIM error) and applies nothing; ``bulk.supported`` is false."""
    config = _get(bridge, "/ServiceProviderConfig")
    assert config["bulk"]["supported"] is False, config["bulk"]

    request = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [
            {
                "method": "POST",
                "path": "/Users",
                "bulkId": "one",
                "data": entra_user(f"{_unique('bulk')}@contoso.com"),
            }
        ],
    }
    response = bridge.scim.post("/Bulk", request)
    assert response.status_code == 501, response.get_data(as_text=True)
    error = scim_json(response)
    assert error["schemas"] == [ERROR] and error["status"] == "501", error
    assert _get(bridge, "/Users")["totalResults"] == 0, "a refused bulk request created a user"
