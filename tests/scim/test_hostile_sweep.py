"""One hostile sweep over the SCIM surface: whatever a client sends, the answer is never a 5xx.

Overflowing integers, escapes no database holds, overlong ids and deep nesting, in paths, query
parameters, headers and bodies, on SQLite and PostgreSQL (RFC 7644 §3.12: bad input is the client's
error). Each answer must also be the SCIM Error JSON when it is an error.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from tests.conftest import SCIM_JSON
from tests.conftest import entra_user
from tests.conftest import incompressible
from tests.scim.test_users_api import create

ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
HUGE = "99999999999999999999"
LONG = "x" * 10_000
NOISE = incompressible(10_000)
DEEP = 2_000


def _patch(*operations: Any) -> dict[str, Any]:
    return {"schemas": [PATCH], "Operations": list(operations)}


def _group(**overrides: Any) -> dict[str, Any]:
    return {"schemas": [GROUP], "displayName": overrides.pop("displayName", "Sweep"), **overrides}


def _requests(user_id: str, group_id: str) -> Iterator[tuple[str, str, Any, dict[str, str]]]:
    """(method, path, body, headers): a body that is a str is sent as it is."""
    # Overflowing and odd integers.
    for parameter in ("startIndex", "count"):
        for value in (HUGE, f"-{HUGE}", "9" * 5000, "1e400", "NaN", "0x10", "", " 1"):
            yield "GET", f"/Users?{parameter}={value}", None, {}
            yield "GET", f"/Groups?{parameter}={value}", None, {}
            yield "GET", f"/?{parameter}={value}", None, {}
    search = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]}
    for value in (int(HUGE), -int(HUGE), 10**400, 1e308, "abc", None, [1], {"a": 1}):
        yield "POST", "/Users/.search", {**search, "startIndex": value, "count": value}, {}
    yield "GET", f"/Users/{user_id}", None, {"If-None-Match": f'W/"{HUGE}"'}
    yield "PUT", f"/Users/{user_id}", entra_user(), {"If-Match": f'W/"{HUGE}"'}
    yield "PATCH", f"/Groups/{group_id}", _patch(), {"If-Match": f'W/"{"9" * 5000}"'}
    # Escapes no database holds: in filters, PATCH paths and bodies.
    for escaped in ("\\u0000", "\\ud800", "\\udfff", "\\uD83D"):
        for expression in (
            f'externalId eq "{escaped}"',
            f'userName sw "{escaped}"',
            f'id eq "{escaped}"',
            f'emails[value eq "{escaped}"]',
            f'meta.created gt "{escaped}"',
            f'members[value eq "{escaped}"]',
            f'displayName eq "{escaped}" or members eq "{escaped}"',
        ):
            yield "GET", "/Users?" + _query(filter=expression), None, {}
            yield "GET", "/Groups?" + _query(filter=expression), None, {}
            yield "GET", "/?" + _query(filter=expression), None, {}
        raw_user = f'{{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "a{escaped}", "externalId": "{escaped}"}}'
        yield "POST", "/Users", raw_user, {}
        yield "PUT", f"/Users/{user_id}", raw_user, {}
        raw_group = f'{{"schemas": ["{GROUP}"], "displayName": "g{escaped}", "members": [{{"value": "{escaped}"}}]}}'
        yield "POST", "/Groups", raw_group, {}
        path = f'members[value eq \\"{escaped}\\"]'
        raw_patch = (
            f'{{"schemas": ["{PATCH}"], "Operations": [{{"op": "remove", "path": "{path}"}}]}}'
        )
        yield "PATCH", f"/Groups/{group_id}", raw_patch, {}
        path = f'emails[value eq \\"{escaped}\\"].type'
        raw_patch = f'{{"schemas": ["{PATCH}"], "Operations": [{{"op": "replace", "path": "{path}", "value": "x"}}]}}'
        yield "PATCH", f"/Users/{user_id}", raw_patch, {}
    # Overlong ids and values.
    for long_id in ("x" * 37, "x" * 65, "x" * 513, LONG, NOISE):
        yield "GET", f"/Users/{long_id}", None, {}
        yield "DELETE", f"/Groups/{long_id}", None, {}
        yield (
            "PATCH",
            f"/Users/{long_id}",
            _patch({"op": "replace", "path": "active", "value": False}),
            {},
        )
        yield "PUT", f"/Groups/{long_id}", _group(), {}
        yield (
            "GET",
            "/Users?" + _query(filter=f'id eq "{long_id}" or externalId eq "{long_id}"'),
            None,
            {},
        )
        yield "GET", "/Groups?" + _query(filter=f'members eq "{long_id}"'), None, {}
        yield (
            "POST",
            "/Groups",
            _group(displayName=f"g{len(long_id)}", members=[{"value": long_id}]),
            {},
        )
        yield (
            "PATCH",
            f"/Groups/{group_id}",
            _patch({"op": "add", "path": "members", "value": [{"value": long_id}]}),
            {},
        )
        yield (
            "PATCH",
            f"/Groups/{group_id}",
            _patch({"op": "remove", "path": "members", "value": [{"value": long_id}]}),
            {},
        )
        yield (
            "PATCH",
            f"/Groups/{group_id}",
            _patch({"op": "remove", "path": f'members[value eq "{long_id}"]'}),
            {},
        )
        yield "PUT", f"/Groups/{group_id}", _group(members=[{"value": long_id}]), {}
        yield "POST", "/Users", entra_user(f"{long_id}@contoso.com", externalId=long_id), {}
        yield (
            "PATCH",
            f"/Users/{user_id}",
            _patch({"op": "replace", "path": "externalId", "value": long_id}),
            {},
        )
        yield (
            "GET",
            f"/Users?attributes={long_id}&excludedAttributes={long_id}&sortBy={long_id}",
            None,
            {},
        )
    yield "GET", f"/Users/{user_id}", None, {"client-request-id": LONG}
    # Values too long for an index, in every indexed column a client writes.
    yield "POST", "/Groups", _group(displayName=NOISE), {}
    yield "POST", "/Groups", _group(displayName="noise", externalId=NOISE), {}
    yield "PUT", f"/Groups/{group_id}", _group(displayName=NOISE), {}
    yield (
        "PATCH",
        f"/Groups/{group_id}",
        _patch({"op": "replace", "path": "displayName", "value": NOISE}),
        {},
    )
    yield (
        "PATCH",
        f"/Users/{user_id}",
        _patch({"op": "replace", "path": "userName", "value": NOISE}),
        {},
    )
    # Deep nesting: filters, PATCH paths and JSON bodies.
    nested = "(" * DEEP + 'userName eq "a"' + ")" * DEEP
    yield "GET", "/Users?" + _query(filter=nested), None, {}
    yield "GET", "/Users?" + _query(filter=" and ".join(['userName eq "a"'] * DEEP)), None, {}
    yield (
        "GET",
        "/Users?" + _query(filter="not (" * DEEP + 'userName eq "a"' + ")" * DEEP),
        None,
        {},
    )
    yield "PATCH", f"/Groups/{group_id}", _patch({"op": "remove", "path": f"members[{nested}]"}), {}
    deep_json = '{"schemas": ["' + PATCH + '"], "Operations": ' + "[" * DEEP + "]" * DEEP + "}"
    yield "PATCH", f"/Users/{user_id}", deep_json, {}
    yield "POST", "/Users", '{"a": ' * DEEP + "1" + "}" * DEEP, {}
    yield (
        "POST",
        "/Groups",
        json.dumps(_group(displayName="deep", members=[{"value": [[[[[]]]]]}])),
        {},
    )
    # Wrong shapes.
    for members in (
        "abc",
        ["abc"],
        [None],
        [{"value": 5}],
        [{"value": {"a": 1}}],
        [{"display": "x"}],
        {"value": user_id},
    ):
        yield (
            "PATCH",
            f"/Groups/{group_id}",
            _patch({"op": "add", "path": "members", "value": members}),
            {},
        )
        yield "POST", "/Groups", _group(displayName="shapes", members=members), {}
    for operations in (None, "x", [None], [1], [{"op": 5}], [{"op": "add", "path": 5, "value": 1}]):
        yield "PATCH", f"/Users/{user_id}", {"schemas": [PATCH], "Operations": operations}, {}
        yield "PATCH", f"/Groups/{group_id}", {"schemas": [PATCH], "Operations": operations}, {}
    yield "POST", "/Users", [], {}
    yield "POST", "/Users", "null", {}
    yield "POST", "/Users", "\xff\xfe", {}


def _query(**parameters: str) -> str:
    from urllib.parse import urlencode

    return urlencode(parameters)


def test_no_input_gets_a_5xx(make_bridge: Any) -> None:
    bridge = make_bridge()
    scim = bridge.scim
    user_id = create(scim, "sweep@contoso.com")["id"]
    group = scim.post("/Groups", _group(displayName="Target", members=[{"value": user_id}]))
    assert group.status_code == 201, group.json
    group_id = group.json["id"]
    failures: list[str] = []
    count = 0
    for method, path, body, headers in _requests(user_id, group_id):
        count += 1
        if isinstance(body, str):
            data = body.encode("utf-8", "surrogatepass")
            response = scim.request(
                method, path, data=data, headers={"Content-Type": SCIM_JSON, **headers}
            )
        else:
            response = scim.request(method, path, body, headers=headers)
        label = f"{method} {path[:120]} {str(body)[:120]!r}"
        if response.status_code >= 500:
            failures.append(
                f"{response.status_code} {label}: {response.get_data(as_text=True)[:200]}"
            )
        elif response.status_code >= 400 and (
            not response.headers.get("Content-Type", "").startswith(SCIM_JSON)
            or response.json.get("schemas") != [ERROR]
            or response.json.get("status") != str(response.status_code)
        ):
            failures.append(f"not a SCIM error {response.status_code} {label}")
    assert count > 250
    assert not failures, "\n".join(failures)
    # The sweep changed nothing it should not have: the user and its membership are whole.
    assert scim.get(f"/Users/{user_id}").status_code == 200
