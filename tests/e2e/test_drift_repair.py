"""Continuous drift repair (scim_bridge/provisioning/drift_repair.py), with `scim-bridge serve`:
a managed membership removed by hand in GitLab is back after an interval, recorded in the audit
trail by the actor `drift` and counted in /metrics; with two instances on PostgreSQL, one repair.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from scim_bridge.gitlab.access import DEVELOPER
from tests.conftest import DEVELOPERS_RULE_TOML
from tests.conftest import SCIM_JSON
from tests.conftest import entra_user
from tests.conftest import run_cli
from tests.e2e.live_server import Server
from tests.e2e.live_server import until

pytestmark = pytest.mark.slow

# 0.6 s: turns come often enough for a test, each repair's job runs well within the next one.
INTERVAL_MINUTES = "0.01"


def drift_environment(environment: dict[str, str], tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "bridge.toml"
    config.write_text(DEVELOPERS_RULE_TOML, encoding="utf-8")
    return {
        **environment,
        "SCIM_BRIDGE_CONFIG": str(config),
        "SCIM_BRIDGE_RECONCILE_DRIFT_INTERVAL_MINUTES": INTERVAL_MINUTES,
    }


def provision_member(env: dict[str, str], base: str, gitlab: Any) -> int:
    """A user in the mapped group, through SCIM; its GitLab account's id once it is a member."""
    gitlab.add_group("acme")
    gitlab.add_group("acme/dev")
    token = run_cli(env, "tokens", "create", "entra").stdout.split("token: ")[1].strip()
    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {token}", "Content-Type": SCIM_JSON})
    user = session.post(f"{base}/scim/v2/Users", json=entra_user("dev@contoso.com"), timeout=60)
    assert user.status_code == 201, user.text
    group = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "GitLab Developers",
        "members": [{"value": user.json()["id"]}],
    }
    assert session.post(f"{base}/scim/v2/Groups", json=group, timeout=60).status_code == 201
    (account,) = [u for u in gitlab.users() if u["username"] == "dev"]
    member = [{"user_id": account["id"], "access_level": DEVELOPER}]
    assert until(lambda: gitlab.members("acme/dev") == member), gitlab.members("acme/dev")
    return int(account["id"])


def drift_events(env: dict[str, str]) -> list[dict[str, Any]]:
    lines = run_cli(env, "audit", "export").stdout.splitlines()
    return [event for event in map(json.loads, lines) if event["actor"] == "drift"]


def repairs_counted(base: str, kind: str) -> float:
    text = requests.get(f"{base}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "scim_bridge_drift_repairs_total" and sample.labels == {"kind": kind}:
                return sample.value
    return 0.0


def test_a_member_removed_by_hand_is_back_after_an_interval_audited_by_drift_and_counted(
    environment: dict[str, str], servers: list[Server], gitlab: Any, tmp_path: Path
) -> None:
    env = drift_environment(environment, tmp_path)
    server = Server(env, tmp_path)
    servers.append(server)
    server.start()
    account = provision_member(env, server.base, gitlab)
    assert repairs_counted(server.base, "membership") == 0

    gitlab.remove_member("acme/dev", account)
    member = [{"user_id": account, "access_level": DEVELOPER}]
    assert until(lambda: gitlab.members("acme/dev") == member), "the member never came back"

    events = drift_events(env)
    repairs = [event for event in events if event["action"] == "drift.repair"]
    assert len(repairs) == 1, repairs
    assert repairs[0]["target"] == "acme/dev"
    assert repairs[0]["detail"]["kind"] == "membership"
    assert repairs[0]["detail"]["desired"] == "developer (30)"
    assert repairs[0]["detail"]["actual"] == "no member"
    # The re-add itself is the group job's, queued by the repair: it names the drift too.
    assert any(
        event["action"] == "gitlab.call" and event["target"].startswith("POST /groups/")
        for event in events
    ), [event["action"] for event in events]
    assert until(lambda: repairs_counted(server.base, "membership") == 1)


def test_two_instances_on_postgresql_repair_once(
    environment: dict[str, str],
    servers: list[Server],
    database_url: str,
    gitlab: Any,
    tmp_path: Path,
) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("several instances share PostgreSQL")
    env = drift_environment(environment, tmp_path)
    for _ in range(2):
        servers.append(Server(env, tmp_path))
    for server in servers:
        server.start()
    account = provision_member(env, servers[0].base, gitlab)
    gitlab.clear_requests()

    gitlab.remove_member("acme/dev", account)
    member = [{"user_id": account, "access_level": DEVELOPER}]
    assert until(lambda: gitlab.members("acme/dev") == member), "the member never came back"
    time.sleep(3)  # several more turns: none may repair again what was repaired
    repairs = [event for event in drift_events(env) if event["action"] == "drift.repair"]
    assert len(repairs) == 1, repairs
    readds = [
        call
        for call in gitlab.requests
        if call.method == "POST" and call.path.endswith("/members") and call.status < 300
    ]
    assert len(readds) == 1, readds
    counted = sum(repairs_counted(server.base, "membership") for server in servers)
    assert counted == 1
