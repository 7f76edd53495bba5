"""Entra's initial cycle for a hybrid tenant, replayed against the GitLab double (entra.md §1).

People whose only address is at a ``.local`` domain, a manager written after both users exist, and
Entra's reference check before and after (``id eq … and manager eq …&attributes=id``): the cycle
must end with every account in GitLab, and no request refused.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import entra_user

pytestmark = pytest.mark.slow

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def _reference_check(scim: Any, user_id: str, manager_id: str) -> list[dict[str, Any]]:
    response = scim.get(
        f'/Users?filter=id eq "{user_id}" and manager eq "{manager_id}"&attributes=id'
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    resources: list[dict[str, Any]] = response.json["Resources"]
    assert response.json["totalResults"] == len(resources)
    return resources


def test_a_hybrid_tenants_cycle_creates_every_account(make_bridge: Any, gitlab: Any) -> None:
    bridge = make_bridge(gitlab)
    scim = bridge.scim
    people = {
        "ann@corp.local": "Ann Local",
        "boss@corp.local": "Boss Local",
        "cy@contoso.com": "Cy Cloud",
    }
    ids: dict[str, str] = {}
    for user_name, display_name in people.items():
        # Entra looks the user up first, then creates it (entra.md §1.3).
        miss = scim.get(f'/Users?filter=userName eq "{user_name}"')
        assert miss.status_code == 200 and miss.json["totalResults"] == 0
        body = entra_user(user_name, displayName=display_name)
        body["emails"] = [{"type": "work", "primary": True, "value": user_name}]
        created = scim.post("/Users", body)
        assert created.status_code == 201, created.get_data(as_text=True)
        ids[user_name] = created.json["id"]
    ann, boss, cy = ids["ann@corp.local"], ids["boss@corp.local"], ids["cy@contoso.com"]

    # The manager comes in a later update, after Entra's reference check finds it missing.
    assert _reference_check(scim, ann, boss) == []
    manager = [{"op": "Add", "path": f"{ENTERPRISE}:manager", "value": boss}]
    assert scim.patch(f"/Users/{ann}", manager).status_code == 200
    found = _reference_check(scim, ann, boss)
    assert [resource["id"] for resource in found] == [ann]
    assert set(found[0]) == {"schemas", "id"}
    assert _reference_check(scim, ann, cy) == [], "another manager does not match"
    assert _reference_check(scim, cy, boss) == [], "nor does a user without one"

    # A change of address to another special-use domain, as Entra's default dialect sends it.
    moved = [
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "ann@dc01.internal"}
    ]
    assert scim.patch(f"/Users/{ann}", moved).status_code == 200

    bridge.run_worker()
    accounts = {account["username"]: account for account in gitlab.users()}
    assert accounts["ann"]["email"] == "ann@dc01.internal"
    assert accounts["ann"]["state"] == "active"
    assert accounts["boss"]["email"] == "boss@corp.local"
    assert accounts["cy"]["email"] == "cy@contoso.com"
    assert bridge.bridge.queue.list() == [], "nothing left to retry"
