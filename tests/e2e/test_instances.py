"""Two `scim-bridge serve` instances on one PostgreSQL database, as behind a load balancer.

Sixteen PATCHes, each adding a different member to the same group, arrive at once, alternately at
each instance: all sixteen land in the store and in GitLab, and each member is added once.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from scim_bridge.gitlab.access import DEVELOPER
from tests.conftest import DEVELOPERS_RULE_TOML
from tests.conftest import SCIM_JSON
from tests.conftest import entra_user
from tests.conftest import run_cli
from tests.e2e.live_server import Server

pytestmark = pytest.mark.slow

PATCHES = 16


def test_two_instances_take_concurrent_patches_to_one_group(
    environment: dict[str, str],
    servers: list[Server],
    database_url: str,
    gitlab: Any,
    tmp_path: Path,
) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("several instances share PostgreSQL")
    gitlab.add_group("acme")
    gitlab.add_group("acme/dev")
    config = tmp_path / "bridge.toml"
    config.write_text(DEVELOPERS_RULE_TOML, encoding="utf-8")
    env = {**environment, "SCIM_BRIDGE_CONFIG": str(config)}
    token = run_cli(env, "tokens", "create", "entra").stdout.split("token: ")[1].strip()
    for _ in range(2):
        server = Server(env, tmp_path)
        servers.append(server)
    for server in servers:
        server.start()
    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {token}", "Content-Type": SCIM_JSON})
    first, second = (f"{server.base}/scim/v2" for server in servers)

    user_ids = []
    for i in range(PATCHES):
        body = entra_user(f"dev{i:02d}@contoso.com", displayName=f"Dev {i}")
        response = session.post(f"{first}/Users", json=body, timeout=60)
        assert response.status_code == 201, response.text
        user_ids.append(response.json()["id"])
    group = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "GitLab Developers",
    }
    group_id = session.post(f"{second}/Groups", json=group, timeout=60).json()["id"]
    gitlab.clear_requests()

    def add(index: int) -> int:
        base = (first, second)[index % 2]
        patch = {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "add", "path": "members", "value": [{"value": user_ids[index]}]}],
        }
        return requests.patch(
            f"{base}/Groups/{group_id}",
            json=patch,
            headers=dict(session.headers),
            timeout=60,
        ).status_code

    with ThreadPoolExecutor(PATCHES) as pool:
        statuses = list(pool.map(add, range(PATCHES)))
    assert statuses == [204] * PATCHES

    stored = session.get(f"{first}/Groups/{group_id}", timeout=60).json()
    assert sorted(member["value"] for member in stored["members"]) == sorted(user_ids)
    accounts = {u["id"] for u in gitlab.users() if u["username"].startswith("dev")}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        members = {m["user_id"]: m["access_level"] for m in gitlab.members("acme/dev")}
        if set(members) == accounts:
            break
        time.sleep(0.2)
    assert members == dict.fromkeys(accounts, DEVELOPER)
    added: list[int] = []
    for call in gitlab.requests:
        if call.method == "POST" and call.path.endswith("/members") and call.status < 300:
            sent = (call.json or {}).get("user_id") or call.query.get("user_id") or ""
            added += [int(part) for part in str(sent).split(",") if part]
    assert sorted(added) == sorted(accounts), "each member added once"
