"""`scim-bridge access report`, end to end: SCIM requests provision the double, then the report,
run as the operator runs it, names each membership's level, reason and since when, and the
orphans and manual members; it reads GitLab only."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest

from scim_bridge.gitlab.access import DEVELOPER
from scim_bridge.gitlab.access import OWNER
from scim_bridge.gitlab.access import REPORTER
from scim_bridge.provisioning.access_report import DRY_RUN_NOTICE
from scim_bridge.settings import GroupRule
from scim_bridge.store import audit
from tests.conftest import ADMIN_TOKEN
from tests.conftest import BridgeUnderTest
from tests.conftest import cli_environment
from tests.conftest import entra_user
from tests.conftest import run_cli

PROVIDER = "openid_connect"
RULES = (
    GroupRule(None, "Eng Readers", "acme/eng", REPORTER),
    GroupRule(None, "Eng Leads", "acme/eng", 40),
    GroupRule(None, "Ops", "acme/ops", DEVELOPER),
)
RULES_TOML = """
[[groups.rules]]
display_name = "Eng Readers"
gitlab_group = "acme/eng"
access_level = "reporter"

[[groups.rules]]
display_name = "Eng Leads"
gitlab_group = "acme/eng"
access_level = "maintainer"

[[groups.rules]]
display_name = "Ops"
gitlab_group = "acme/ops"
access_level = "developer"
"""
READERS = 'Entra group "Eng Readers" (rule 1) → reporter'
LEADS = 'Entra group "Eng Leads" (rule 2) → maintainer'
OPS = 'Entra group "Ops" (rule 3) → developer'
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def scim_group(bridge: BridgeUnderTest, name: str, members: list[str]) -> None:
    body = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": name,
        "members": [{"value": member} for member in members],
    }
    assert bridge.scim.post("/Groups", body).status_code == 201


def user(bridge: BridgeUnderTest, name: str) -> str:
    response = bridge.scim.post("/Users", entra_user(f"{name}@contoso.com"))
    assert response.status_code == 201, response.json
    return str(response.json["id"])


def parse_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def by_kind(rows: list[dict[str, str]], kind: str) -> dict[str, dict[str, str]]:
    """The rows of one kind, by GitLab username (each appears once per kind here)."""
    chosen = [row for row in rows if row["kind"] == kind]
    found = {row["gitlab_user"]: row for row in chosen}
    assert len(found) == len(chosen), chosen
    return found


@pytest.fixture
def tenant(make_bridge: Any, gitlab: Any, database_url: str, tmp_path: Path) -> dict[str, Any]:
    """Two Entra groups mapped to acme/eng (reporter, maintainer), one to acme/ops; a member in
    place at reporter that a rule raises, one in place at owner that a rule grants less, a
    manual member, and two orphaned accounts with an identity (one never linked, one whose
    SCIM user was deleted and whose account was unblocked by hand)."""
    gitlab.add_group("acme")
    gitlab.add_group("acme/eng")
    gitlab.add_group("acme/ops")
    carol = gitlab.add_user("carol", "carol@contoso.com", name="Carol")
    gitlab.add_member("acme/eng", carol["id"], REPORTER)
    dave = gitlab.add_user("dave", "dave@contoso.com", name="Dave")
    gitlab.add_member("acme/eng", dave["id"], OWNER)
    mallory = gitlab.add_user("mallory", "mallory@example.com", name="Mallory")
    gitlab.add_member("acme/eng", mallory["id"], DEVELOPER)
    gitlab.add_user("ghost", "ghost@example.com", identities=[(PROVIDER, "oid-ghost")])
    gitlab.add_user("local", "local@example.com")  # no identity: not an orphan

    bridge = make_bridge(gitlab, groups={"rules": RULES})
    ids = {name: user(bridge, name) for name in ("alice", "bob", "carol", "dave", "erin", "frank")}
    scim_group(bridge, "Eng Readers", [ids["alice"], ids["bob"], ids["dave"]])
    scim_group(bridge, "Eng Leads", [ids["bob"], ids["carol"]])
    scim_group(bridge, "Ops", [ids["frank"]])
    bridge.run_worker()
    assert bridge.scim.delete(f"/Users/{ids['erin']}").status_code == 204
    bridge.run_worker()
    erin = gitlab.user_by_username("erin")
    assert erin is not None and erin["state"] == "blocked"
    gitlab.set_user_state(erin["id"], "active")  # by hand

    config = tmp_path / "bridge.toml"
    config.write_text(RULES_TOML, encoding="utf-8")
    env = cli_environment(database_url) | {
        "SCIM_BRIDGE_GITLAB_URL": gitlab.url,
        "SCIM_BRIDGE_GITLAB_TOKEN": ADMIN_TOKEN,
        "SCIM_BRIDGE_CONFIG": str(config),
    }
    gitlab.clear_requests()
    return {"env": env, "ids": ids, "bridge": bridge, "gitlab": gitlab}


def membership_since(bridge: BridgeUnderTest, username: str, path: str) -> str:
    """When the bridge set the account's membership (the store's, which its
    `reconcile.memberships` event of that moment names too), to the second, as the report says."""
    account = next(u for u in bridge.bridge.links.all() if u.gitlab_username == username)
    assert account.gitlab_user_id is not None
    managed = bridge.bridge.gitlab_memberships.everyone(path).managed[account.gitlab_user_id]
    assert managed.since is not None
    events = [
        event
        for event in audit.events(bridge.bridge.db, action_prefix="reconcile.memberships")
        if event["target"] == path
        and any(
            change["gitlab_user_id"] == account.gitlab_user_id
            for change in event["detail"]["changes"]
        )
    ]
    assert events, "the membership's setting is in the audit trail"
    return managed.since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_the_csv_report_names_levels_reasons_orphans_and_manual_members(
    tenant: dict[str, Any],
) -> None:
    gitlab, ids, bridge = tenant["gitlab"], tenant["ids"], tenant["bridge"]
    result = run_cli(tenant["env"], "access", "report", "--format", "csv", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = parse_csv(result.stdout)
    assert list(rows[0]) == [
        "kind",
        "scim_user",
        "scim_id",
        "gitlab_user",
        "gitlab_group",
        "level",
        "reason",
        "since",
    ]
    # The sections follow one another: memberships, then orphans, then unexplained members.
    kinds = [row["kind"] for row in rows]
    assert kinds == sorted(kinds, key=["membership", "orphan", "manual"].index), kinds

    memberships = {
        (r["gitlab_group"], r["gitlab_user"]): r for r in rows if r["kind"] == "membership"
    }
    expected = {
        ("acme/eng", "alice"): ("alice@contoso.com", "reporter", READERS),
        ("acme/eng", "bob"): ("bob@contoso.com", "maintainer", f"{LEADS}; {READERS}"),
        ("acme/eng", "carol"): (
            "carol@contoso.com",
            "maintainer",
            f"raised from reporter by {LEADS}",
        ),
        ("acme/eng", "dave"): (
            "dave@contoso.com",
            "owner",
            f"in place before the bridge (level kept); {READERS}",
        ),
        ("acme/ops", "frank"): ("frank@contoso.com", "developer", OPS),
    }
    assert {
        key: (row["scim_user"], row["level"], row["reason"]) for key, row in memberships.items()
    } == expected
    for (_, username), row in memberships.items():
        assert row["scim_id"] == ids[username]
        assert ISO.match(row["since"]), row
    # Set by the bridge: since its audit event. Found in place (dave): since GitLab made it.
    assert memberships[("acme/eng", "alice")]["since"] == membership_since(
        bridge, "alice", "acme/eng"
    )
    assert memberships[("acme/eng", "carol")]["since"] == membership_since(
        bridge, "carol", "acme/eng"
    )

    orphans = by_kind(rows, "orphan")
    assert set(orphans) == {"ghost", "erin"}
    assert orphans["ghost"]["scim_user"] == "" and orphans["ghost"]["gitlab_group"] == ""
    assert orphans["ghost"]["reason"] == (
        f'identity {PROVIDER} "oid-ghost"; no SCIM user was ever linked to it'
    )
    erin = orphans["erin"]
    assert (erin["scim_user"], erin["scim_id"]) == ("erin@contoso.com (deleted)", ids["erin"])
    assert erin["reason"].endswith('"; its SCIM user was deleted'), erin
    assert ISO.match(erin["since"]) and ISO.match(orphans["ghost"]["since"])

    manual = by_kind(rows, "manual")
    assert set(manual) == {"mallory"}
    assert manual["mallory"]["gitlab_group"] == "acme/eng"
    assert manual["mallory"]["level"] == "developer"
    assert manual["mallory"]["reason"] == "manual: no rule explains it"
    assert manual["mallory"]["scim_user"] == ""

    # The report reads GitLab, and only reads it.
    assert gitlab.requests, "GitLab was read"
    assert {request.method for request in gitlab.requests} == {"GET"}
    reads = [
        event
        for event in audit.events(bridge.bridge.db, action_prefix="gitlab.call")
        if event["actor"] == "access-report"
    ]
    assert len(reads) == len(gitlab.requests)
    assert all(event["target"].startswith("GET ") for event in reads)
    assert ADMIN_TOKEN not in result.stdout + result.stderr


def test_the_report_narrows_to_a_gitlab_group(tenant: dict[str, Any]) -> None:
    ops = parse_csv(
        run_cli(
            tenant["env"], "access", "report", "--format", "csv", "--gitlab-group", "acme/ops"
        ).stdout
    )
    assert [(r["kind"], r["gitlab_user"], r["gitlab_group"], r["level"]) for r in ops] == [
        ("membership", "frank", "acme/ops", "developer")
    ]
    eng = parse_csv(
        run_cli(
            tenant["env"], "access", "report", "--format", "csv", "--gitlab-group", "ACME/Eng"
        ).stdout
    )
    assert sorted((r["kind"], r["gitlab_user"]) for r in eng) == [
        ("manual", "mallory"),
        ("membership", "alice"),
        ("membership", "bob"),
        ("membership", "carol"),
        ("membership", "dave"),
    ], "no orphans: they belong to no group"
    unknown = run_cli(tenant["env"], "access", "report", "--gitlab-group", "acme/x", check=False)
    assert unknown.returncode == 2
    assert "acme/x is not a mapped GitLab group" in unknown.stderr


def test_the_report_narrows_to_a_user_as_jsonl(tenant: dict[str, Any]) -> None:
    ids = tenant["ids"]
    result = run_cli(tenant["env"], "access", "report", "--format", "jsonl", "--user", "bob")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 1
    row = rows[0]
    assert row == {
        "kind": "membership",
        "scim_user": "bob@contoso.com",
        "scim_id": ids["bob"],
        "gitlab_user": "bob",
        "gitlab_group": "acme/eng",
        "level": "maintainer",
        "reason": f"{LEADS}; {READERS}",
        "since": row["since"],
    }
    assert ISO.match(row["since"])
    # By SCIM userName too; and a manual member or an orphan by GitLab username.
    by_scim_name = run_cli(
        tenant["env"], "access", "report", "--format", "jsonl", "--user", "BOB@contoso.com"
    )
    assert [json.loads(line) for line in by_scim_name.stdout.splitlines()] == rows
    mallory = run_cli(tenant["env"], "access", "report", "--format", "jsonl", "--user", "mallory")
    assert [
        (r["kind"], r["gitlab_group"], r["level"])
        for r in map(json.loads, mallory.stdout.splitlines())
    ] == [("manual", "acme/eng", "developer")]
    ghost = run_cli(tenant["env"], "access", "report", "--format", "jsonl", "--user", "ghost")
    assert [(r["kind"], r["gitlab_user"]) for r in map(json.loads, ghost.stdout.splitlines())] == [
        ("orphan", "ghost")
    ]
    assert {request.method for request in tenant["gitlab"].requests} == {"GET"}


def table_rows(text: str) -> dict[str, list[list[str]]]:
    """The table's sections: each title's rows, cut at the fixed column widths."""
    widths = [10, 28, 20, 24, 10, 20]
    sections: dict[str, list[list[str]]] = {}
    current: list[list[str]] = []
    for line in text.splitlines():
        if line.endswith(":") and not line.startswith(" "):
            current = sections.setdefault(line[:-1], [])
            continue
        if not line or line.startswith("KIND ") or line == "  none":
            continue
        cells, start = [], 0
        for width in widths:
            cells.append(line[start : start + width].strip())
            start += width + 1
        cells.append(line[start:])
        current.append(cells)
    return sections


def test_the_table_prints_each_section_in_fixed_columns(tenant: dict[str, Any]) -> None:
    result = run_cli(tenant["env"], "access", "report")
    sections = table_rows(result.stdout)
    assert list(sections) == ["memberships", "orphans", "unexplained members"]
    bob = next(row for row in sections["memberships"] if row[2] == "bob")
    assert bob[:5] == ["membership", "bob@contoso.com", "bob", "acme/eng", "maintainer"]
    assert ISO.match(bob[5]) and bob[6] == f"{LEADS}; {READERS}"
    assert sorted(row[2] for row in sections["orphans"]) == ["erin", "ghost"]
    assert [row[:5] for row in sections["unexplained members"]] == [
        ["manual", "-", "mallory", "acme/eng", "developer"]
    ]


def test_in_dry_run_the_report_shows_the_bridges_side_and_says_so(
    make_bridge: Any, database_url: str, tmp_path: Path
) -> None:
    bridge = make_bridge(groups={"rules": RULES})
    ids = {name: user(bridge, name) for name in ("alice", "bob")}
    scim_group(bridge, "Eng Readers", [ids["alice"], ids["bob"]])
    scim_group(bridge, "Eng Leads", [ids["bob"]])
    bridge.run_worker()
    config = tmp_path / "bridge.toml"
    config.write_text(RULES_TOML, encoding="utf-8")
    env = cli_environment(database_url) | {"SCIM_BRIDGE_CONFIG": str(config)}

    rows = parse_csv(run_cli(env, "access", "report", "--format", "csv").stdout)
    assert rows[0]["kind"] == "notice" and rows[0]["reason"] == DRY_RUN_NOTICE
    assert sorted(
        (r["kind"], r["scim_user"], r["gitlab_group"], r["level"], r["reason"]) for r in rows[1:]
    ) == [
        ("membership", "alice@contoso.com", "acme/eng", "reporter", READERS),
        ("membership", "bob@contoso.com", "acme/eng", "maintainer", f"{LEADS}; {READERS}"),
    ]
    table = run_cli(env, "access", "report").stdout
    assert table.splitlines()[0] == DRY_RUN_NOTICE
    assert "could not be read" in DRY_RUN_NOTICE and "orphans" in DRY_RUN_NOTICE
    assert "orphans:" not in table and "unexplained members:" not in table


def test_the_report_waits_out_gitlab_slowing_it_down(tenant: dict[str, Any]) -> None:
    """A 429 and a 503 on its reads cost the report a wait, not its answer."""
    gitlab = tenant["gitlab"]
    undisturbed = run_cli(tenant["env"], "access", "report", "--format", "csv", check=False)
    assert undisturbed.returncode == 0, undisturbed.stderr
    gitlab.clear_requests()
    gitlab.faults.add(method="GET", path_pattern="/members", status=429, retry_after=1, times=1)
    gitlab.faults.add(method="GET", path_pattern="/users", status=503, times=1)

    result = run_cli(tenant["env"], "access", "report", "--format", "csv", check=False)

    assert result.returncode == 0, result.stderr
    assert result.stdout == undisturbed.stdout
    assert result.stderr.count("sending it again") == 2
    assert {429, 503} <= {request.status for request in gitlab.requests}
    assert {request.method for request in gitlab.requests} == {"GET"}


def test_the_report_gives_up_when_gitlab_asks_for_more_than_its_max_wait(
    tenant: dict[str, Any],
) -> None:
    gitlab = tenant["gitlab"]
    gitlab.faults.add(method="GET", path_pattern="/members", status=429, retry_after=120)

    result = run_cli(
        tenant["env"], "access", "report", "--format", "csv", "--max-wait", "2", check=False
    )

    assert result.returncode == 2
    assert "cannot read GitLab" in result.stderr
    refused = [request for request in gitlab.requests if request.status == 429]
    assert len(refused) == 1, "no read sent while GitLab asked for quiet"
    assert {request.method for request in gitlab.requests} == {"GET"}
