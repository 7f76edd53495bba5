"""`scim-bridge check`, run as the operator runs it: a new process, against the GitLab double."""

from __future__ import annotations

import datetime as dt
import socket
import time
from pathlib import Path

from scim_bridge.checks import Level
from scim_bridge.checks import check_gitlab
from scim_bridge.gitlab.access import MINIMAL_ACCESS
from scim_bridge.gitlab.access import PLANNER
from scim_bridge.gitlab.client import GitLab
from scim_bridge.settings import settings_from_toml
from scim_bridge.store import migrate
from scim_bridge.store.db import Database
from tests.conftest import ADMIN_TOKEN
from tests.conftest import cli_environment
from tests.conftest import run_cli
from tests.gitlab_double import GitLabDouble

OPS_GROUP_ID = "5f0c7a2e-1b3d-4e8f-9a6b-2c4d6e8f0a1b"
CONFIG = f"""
[groups]
unmapped = "create"
parent = "entra"

[[groups.rules]]
display_name = "GitLab Developers"
gitlab_group = "acme/engineering"
access_level = "developer"

[[groups.rules]]
external_id = "{OPS_GROUP_ID}"
gitlab_group = "acme/ops"
access_level = "maintainer"
"""


def environment(
    database_url: str,
    tmp_path: Path,
    gitlab_url: str | None = None,
    token: str | None = ADMIN_TOKEN,
) -> dict[str, str]:
    """The operator's environment: the database, the rules file, GitLab when given."""
    config = tmp_path / "scim-bridge.toml"
    config.write_text(CONFIG)
    env = cli_environment(database_url)
    env["SCIM_BRIDGE_CONFIG"] = str(config)
    env["SCIM_BRIDGE_GITLAB_TIMEOUT_SECONDS"] = "2"
    if gitlab_url is not None:
        env["SCIM_BRIDGE_GITLAB_URL"] = gitlab_url
    if token is not None:
        env["SCIM_BRIDGE_GITLAB_TOKEN"] = token
    return env


def migrated(database_url: str) -> None:
    db = Database(database_url)
    migrate.upgrade(db)
    db.engine.dispose()


def revision(database_url: str) -> str | None:
    db = Database(database_url)
    try:
        return migrate.current_revision(db)
    finally:
        db.engine.dispose()


def seed_groups(gitlab: GitLabDouble, *paths: str) -> None:
    for path in paths:
        gitlab.add_group(path)


def check(env: dict[str, str]) -> tuple[int, list[str], str]:
    """Exit code, stdout lines, and everything printed (to look for leaked secrets)."""
    done = run_cli(env, "check", check=False)
    return done.returncode, done.stdout.splitlines(), done.stdout + done.stderr


def test_passes_with_an_admin_token_and_fails_naming_why_with_a_non_admin_one(
    gitlab: GitLabDouble, database_url: str, tmp_path: Path
) -> None:
    migrated(database_url)
    seed_groups(gitlab, "acme", "acme/engineering", "acme/ops", "entra")
    env = environment(database_url, tmp_path, gitlab.url)

    code, lines, printed = check(env)
    assert code == 0, printed
    assert lines[-1] == "check passed"
    assert not [line for line in lines if line.startswith("FAIL")]
    assert any(
        line.startswith("OK   gitlab")
        and "GitLab 18.6.0-ee (revision abc), Enterprise Edition (EE)" in line
        for line in lines
    )
    assert "OK   token    scopes api, admin_mode; no expiry date" in lines
    assert "OK   token    the token's user root is an administrator" in lines
    assert any(
        line.startswith("OK   groups")
        and 'rules]] #1 (display_name = "GitLab Developers") → acme/engineering' in line
        for line in lines
    )
    assert any(f'(external_id = "{OPS_GROUP_ID}") → acme/ops' in line for line in lines)
    assert any(line.startswith('OK   groups   [groups] parent = "entra" exists') for line in lines)
    assert any(line.startswith("INFO identity provider 'openid_connect'") for line in lines)
    # No Entra credential yet: worth a warning, not a failure.
    assert any(line.startswith("WARN entra") for line in lines)
    assert ADMIN_TOKEN not in printed
    assert revision(database_url) == migrate.head_revision()

    alice = gitlab.add_user("alice", "alice@example.com")
    gitlab.add_token("glpat-alice-never-print-me", alice["id"], ("api",))
    env["SCIM_BRIDGE_GITLAB_TOKEN"] = "glpat-alice-never-print-me"
    code, lines, printed = check(env)
    assert code == 1, printed
    assert [line for line in lines if line.startswith("FAIL")] == [
        "FAIL token    the token's user alice is not an administrator: creating and blocking "
        "users needs an admin token; use a personal access token of an administrator with the "
        "scopes api and admin_mode in SCIM_BRIDGE_GITLAB_TOKEN"
    ]
    assert lines[-1] == "check failed: 1 problem(s)"
    assert "glpat-alice-never-print-me" not in printed
    # A check is a read: no user, group or member was written.
    assert not [r for r in gitlab.requests if r.method != "GET"]


def test_a_token_expiring_in_29_days_warns_and_one_with_31_does_not(
    gitlab: GitLabDouble, database_url: str, tmp_path: Path
) -> None:
    migrated(database_url)
    seed_groups(gitlab, "acme", "acme/engineering", "acme/ops", "entra")
    env = environment(database_url, tmp_path, gitlab.url)
    today = dt.datetime.now(dt.UTC).date()
    soon = today + dt.timedelta(days=29)
    gitlab.set_token_expiry(ADMIN_TOKEN, soon)

    code, lines, printed = check(env)
    assert code == 0, printed
    assert (
        f"WARN token    the GitLab token expires on {soon.isoformat()} (in 29 day(s)): rotate "
        "it and update SCIM_BRIDGE_GITLAB_TOKEN before then"
    ) in lines
    assert f"OK   token    scopes api, admin_mode; expires {soon.isoformat()}" in lines

    gitlab.set_token_expiry(ADMIN_TOKEN, today + dt.timedelta(days=31))
    code, lines, printed = check(env)
    assert code == 0, printed
    assert not [line for line in lines if "expires on" in line]


def test_a_wrong_token_and_an_unmigrated_database_are_both_reported(
    gitlab: GitLabDouble, database_url: str, tmp_path: Path
) -> None:
    if database_url.startswith("sqlite:///"):
        Path(database_url.removeprefix("sqlite:///")).touch()  # an empty database
    env = environment(database_url, tmp_path, gitlab.url, token="glpat-wrong-never-print-me")

    code, lines, printed = check(env)
    assert code == 1, printed
    failures = [line for line in lines if line.startswith("FAIL")]
    assert len(failures) == 2 and lines[-1] == "check failed: 2 problem(s)"
    assert failures[0].startswith("FAIL database")
    assert "not migrated (no schema yet): run `scim-bridge db upgrade`" in failures[0]
    assert failures[1].startswith("FAIL token    GitLab refused SCIM_BRIDGE_GITLAB_TOKEN (401")
    assert "glpat-wrong-never-print-me" not in printed and ADMIN_TOKEN not in printed
    assert revision(database_url) is None  # `check` never migrates


def test_a_token_without_api_scope_a_missing_group_and_admin_mode_fail(
    gitlab: GitLabDouble, database_url: str, tmp_path: Path
) -> None:
    migrated(database_url)
    seed_groups(gitlab, "acme", "acme/engineering", "entra")
    gitlab.set_token_scopes(ADMIN_TOKEN, ["read_user", "admin_mode"])
    env = environment(database_url, tmp_path, gitlab.url)

    code, lines, printed = check(env)
    assert code == 1, printed
    failures = [line for line in lines if line.startswith("FAIL")]
    assert failures == [
        "FAIL token    the token lacks the api scope (it has: read_user, admin_mode): the bridge "
        "creates and blocks users and sets memberships; use a personal access token of an "
        "administrator with the scopes api and admin_mode in SCIM_BRIDGE_GITLAB_TOKEN",
        f'FAIL groups   [[groups.rules]] #2 (external_id = "{OPS_GROUP_ID}"): the GitLab group '
        "acme/ops does not exist: create it, or correct the path (the group's full path, as in "
        "its URL)",
    ]
    assert lines[-1] == "check failed: 2 problem(s)"

    gitlab.settings.admin_mode = True
    gitlab.set_token_scopes(ADMIN_TOKEN, ["api"])
    code, lines, printed = check(env)
    assert code == 1, printed
    (failure,) = [line for line in lines if line.startswith("FAIL")]
    assert failure.startswith("FAIL token    the token's user root is an administrator, but ")
    assert "needs the admin_mode scope; add it" in failure
    assert ADMIN_TOKEN not in printed


def test_an_unreachable_gitlab_fails_quickly(database_url: str, tmp_path: Path) -> None:
    migrated(database_url)
    with socket.socket() as probe:  # a port nothing listens on once it is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = environment(database_url, tmp_path, f"http://127.0.0.1:{port}")
    env["SCIM_BRIDGE_GITLAB_TIMEOUT_SECONDS"] = "1"

    started = time.monotonic()
    code, lines, printed = check(env)
    assert code == 1, printed
    assert time.monotonic() - started < 15
    (failure,) = [line for line in lines if line.startswith("FAIL")]
    assert failure.startswith(f"FAIL gitlab   http://127.0.0.1:{port}: cannot reach GitLab")
    assert "SCIM_BRIDGE_GITLAB_URL" in failure
    assert lines[-1] == "check failed: 1 problem(s)"
    assert ADMIN_TOKEN not in printed


def test_dry_run_passes_and_invalid_settings_exit_2(database_url: str, tmp_path: Path) -> None:
    migrated(database_url)
    env = environment(database_url, tmp_path, token=None)

    code, lines, printed = check(env)
    assert code == 0, printed
    assert any(line.startswith("INFO gitlab   dry-run (no GitLab configured)") for line in lines)
    assert "INFO groups   GitLab groups not checked (dry-run)" in lines
    assert lines[-1] == "check passed"

    env["SCIM_BRIDGE_GITLAB_TIMEOUT_SECONDS"] = "soon"
    done = run_cli(env, "check", check=False)
    assert done.returncode == 2
    assert "SCIM_BRIDGE_GITLAB_TIMEOUT_SECONDS" in done.stderr


def test_levels_the_instance_lacks_a_missing_parent_and_a_scim_provider_are_named() -> None:
    """In process (no database involved): the edition and version checks of the rules."""
    with GitLabDouble(admin_token=ADMIN_TOKEN) as double:
        double.settings.enterprise = False
        double.settings.version = "17.6.2"
        seed_groups(double, "acme")
        settings = settings_from_toml(
            {
                "gitlab": {"url": double.url, "identity_provider": "scim", "timeout_seconds": 2.0},
                "groups": {
                    "unmapped": "create",
                    "parent": "entra",
                    "rules": [
                        {
                            "display_name": "Planners",
                            "gitlab_group": "acme",
                            "access_level": PLANNER,
                        },
                        {
                            "external_id": "7d1e",
                            "gitlab_group": "acme",
                            "access_level": MINIMAL_ACCESS,
                        },
                    ],
                },
            },
            {"SCIM_BRIDGE_GITLAB_TOKEN": ADMIN_TOKEN},
        )
        findings = check_gitlab(
            settings.gitlab, settings.groups, lambda: GitLab(double.url, ADMIN_TOKEN, timeout=2)
        )
        assert double.internal_errors == []
    failures = [f.message for f in findings if f.level is Level.FAIL]
    assert failures == [
        '[[groups.rules]] #1 (display_name = "Planners") → acme as planner (15): planner is new '
        "in GitLab 17.7, and this is 17.6",
        '[[groups.rules]] #2 (external_id = "7d1e") → acme as minimal access (5): minimal access '
        "exists only in GitLab Premium and Ultimate, and this is the Community Edition",
        '[groups] parent = "entra": the GitLab group entra does not exist: create it, or correct '
        "the path (the group's full path, as in its URL)",
    ]
    assert any(f.level is Level.WARN and "provider 'scim'" in f.message for f in findings)
    assert any("Community Edition (CE)" in f.message for f in findings if f.level is Level.OK)


def test_entra_tenants_without_app_ids_fail_naming_the_key(
    database_url: str, tmp_path: Path
) -> None:
    migrated(database_url)
    env = environment(database_url, tmp_path, token=None)
    env["SCIM_BRIDGE_AUTH_ENTRA_TENANT_IDS"] = "aaaabbbb-0000-cccc-1111-dddd2222eeee"

    code, lines, printed = check(env)
    assert code == 1, printed
    failures = [line for line in lines if line.startswith("FAIL")]
    assert len(failures) == 1 and failures[0].startswith("FAIL entra"), printed
    assert "[auth.entra] app_ids" in failures[0]
    assert "SCIM_BRIDGE_AUTH_ENTRA_APP_IDS" in failures[0]
    assert lines[-1] == "check failed: 1 problem(s)"

    env["SCIM_BRIDGE_AUTH_ENTRA_APP_IDS"] = "1e9ab15c-5e0a-4bd6-9a2a-7c4b4a2a5b9f"
    code, lines, printed = check(env)
    assert code == 0, printed
    assert any(
        line.startswith("OK   entra")
        and "Entra-issued tokens from 1 tenant(s) and 1 app(s)" in line
        for line in lines
    )


def test_check_resolves_the_protected_accounts_and_names_links_to_them(
    gitlab: GitLabDouble, database_url: str, tmp_path: Path
) -> None:
    from scim_bridge.store.links import LinkStore
    from scim_bridge.store.links import UserLink

    migrated(database_url)
    seed_groups(gitlab, "acme", "acme/engineering", "acme/ops", "entra")
    alice = gitlab.add_user("alice", "alice@example.com", is_admin=True)
    deploy = gitlab.add_user("deploy", "deploy@example.com")
    db = Database(database_url)
    # A link an earlier version made by email to an administrator.
    LinkStore(db).save(UserLink("u1", alice["id"], "alice", "alice@example.com", "adopted"))
    db.dispose()
    env = environment(database_url, tmp_path, gitlab.url)
    env["SCIM_BRIDGE_USERS_PROTECTED_USERNAMES"] = "root,deploy,ci-runner"

    code, lines, printed = check(env)
    assert code == 0, printed
    (owners,) = [line for line in lines if line.startswith("OK   owners")]
    assert f"root (id 1), alice (id {alice['id']}), deploy (id {deploy['id']})" in owners
    warnings = [line for line in lines if line.startswith("WARN owners")]
    assert any("no GitLab account is named 'ci-runner'" in line for line in warnings)
    assert any(f"adopted link to alice (id {alice['id']})" in line for line in warnings)
    assert not [r for r in gitlab.requests if r.method != "GET"], "a check only reads"
