"""`scim-bridge reconcile [--apply]`: drift made by hand in GitLab is reported, then repaired."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from scim_bridge.gitlab.access import DEVELOPER
from scim_bridge.metrics.instruments import REGISTRY
from scim_bridge.provisioning import drift_repair
from scim_bridge.settings import GroupRule
from scim_bridge.store import audit
from tests.conftest import ADMIN_TOKEN
from tests.conftest import DEVELOPERS_RULE_TOML
from tests.conftest import cli_environment
from tests.conftest import entra_user
from tests.conftest import run_cli

RULE = GroupRule(
    external_id=None, display_name="GitLab Developers", gitlab_group="acme/dev", access_level=30
)


def account(gitlab: Any, username: str) -> dict[str, Any]:
    (found,) = [user for user in gitlab.users() if user["username"] == username]
    return found


def test_reconcile_reports_and_apply_repairs_hand_made_drift(
    make_bridge: Any, gitlab: Any, database_url: str, tmp_path: Path
) -> None:
    gitlab.add_group("acme")
    gitlab.add_group("acme/dev")
    bridge = make_bridge(gitlab, groups={"rules": (RULE,)})
    member = bridge.scim.post("/Users", entra_user("dev@contoso.com")).json["id"]
    leaver = bridge.scim.post("/Users", entra_user("leaver@contoso.com", active=False)).json["id"]
    group = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "GitLab Developers",
        "members": [{"value": member}, {"value": leaver}],
    }
    assert bridge.scim.post("/Groups", group).status_code == 201
    bridge.run_worker()
    dev, gone = account(gitlab, "dev"), account(gitlab, "leaver")
    # A blocked account keeps its memberships (DESIGN.md), so reactivation restores access.
    both = [
        {"user_id": dev["id"], "access_level": DEVELOPER},
        {"user_id": gone["id"], "access_level": DEVELOPER},
    ]
    assert sorted(gitlab.members("acme/dev"), key=str) == sorted(both, key=str)
    assert gone["state"] == "blocked"

    env = cli_environment(database_url)
    config = tmp_path / "bridge.toml"
    config.write_text(DEVELOPERS_RULE_TOML, encoding="utf-8")
    env |= {
        "SCIM_BRIDGE_GITLAB_URL": gitlab.url,
        "SCIM_BRIDGE_GITLAB_TOKEN": ADMIN_TOKEN,
        "SCIM_BRIDGE_CONFIG": str(config),
    }
    clean = run_cli(env, "reconcile")
    assert clean.returncode == 0 and "no drift" in clean.stdout

    # By hand, in GitLab: the membership removed, the deactivated account unblocked.
    gitlab.remove_member("acme/dev", dev["id"])
    gitlab.set_user_state(gone["id"], "active")
    report = run_cli(env, "reconcile", check=False)
    assert report.returncode == 1, report.stdout + report.stderr
    lines = report.stdout.splitlines()
    assert any("acme/dev / dev" in line and "developer" in line for line in lines), lines
    assert any("leaver" in line and "blocked" in line and "active" in line for line in lines)
    assert gitlab.members("acme/dev") == both[1:], "reporting changes nothing"

    repaired = run_cli(env, "reconcile", "--apply", check=False)
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert "repaired 2 of 2" in repaired.stdout
    assert sorted(gitlab.members("acme/dev"), key=str) == sorted(both, key=str)
    assert account(gitlab, "leaver")["state"] == "blocked"
    assert "no drift" in run_cli(env, "reconcile").stdout


def test_reconcile_in_dry_run_has_nothing_to_compare(database_url: str) -> None:
    result = run_cli(cli_environment(database_url), "reconcile")
    assert "dry-run" in result.stdout


def write_transactions() -> float:
    return REGISTRY.get_sample_value("scim_bridge_db_transactions_total", {"mode": "write"}) or 0.0


def test_a_drift_turn_audits_each_read_by_drift_and_writes_them_together(
    make_bridge: Any, gitlab: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scheduled turn (provisioning/drift_repair.py) audits every GitLab read it makes, as the
    actor drift, but not in a transaction each: a turn without drift writes one, and its events
    go EVENTS_PER_TRANSACTION at a time."""
    gitlab.add_group("acme")
    gitlab.add_group("acme/dev")
    bridge = make_bridge(gitlab, groups={"rules": (RULE,)})
    members = [
        bridge.scim.post("/Users", entra_user(f"dev{i}@contoso.com")).json["id"] for i in range(3)
    ]
    group = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "GitLab Developers",
        "members": [{"value": member} for member in members],
    }
    assert bridge.scim.post("/Groups", group).status_code == 201
    bridge.run_worker()
    drift = bridge.bridge.drift_repair()
    assert drift is not None

    def reads() -> list[dict[str, Any]]:
        events = audit.events(bridge.bridge.db, action_prefix="gitlab.call")
        return [event for event in events if event["actor"] == "drift"]

    before = write_transactions()
    assert drift.repair() == []
    first = reads()
    assert len(first) >= 4, "three accounts and the group's members, at least"
    assert write_transactions() - before == 1

    monkeypatch.setattr(drift_repair, "EVENTS_PER_TRANSACTION", 2)
    before = write_transactions()
    assert drift.repair() == []
    made = len(reads()) - len(first)
    assert made == len(first), "the same reads again"
    assert write_transactions() - before == math.ceil(made / 2)
