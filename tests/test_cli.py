"""The operator's commands, run as an operator would (a new process, settings from the environment)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy import text

from scim_bridge.store import migrate
from tests.conftest import cli_environment
from tests.conftest import run_cli

run = run_cli


@pytest.fixture
def env(database_url: str) -> dict[str, str]:
    return cli_environment(database_url)


def test_tokens_create_prints_the_secret_once_and_stores_a_hash(
    env: dict[str, str], database_url: str
) -> None:
    created = run(env, "tokens", "create", "entra", "--expires-in-days", "30")
    (line,) = [line for line in created.stdout.splitlines() if line.startswith("token: ")]
    secret = line.removeprefix("token: ")
    assert secret.startswith("sbt_") and len(secret) > 40
    listed = run(env, "tokens", "list").stdout
    assert "entra" in listed and "active" in listed and secret not in listed
    engine = create_engine(database_url)
    with engine.connect() as connection:
        dump = repr(connection.execute(text("SELECT * FROM api_tokens")).all())
    engine.dispose()
    assert secret.split("_", 2)[2] not in dump
    duplicate = run(env, "tokens", "create", "entra", check=False)
    assert duplicate.returncode != 0 and "already exists" in duplicate.stderr
    run(env, "tokens", "revoke", "entra")
    assert "revoked" in run(env, "tokens", "list").stdout


def test_invalid_settings_stop_the_command_with_the_key(env: dict[str, str]) -> None:
    result = run({**env, "SCIM_BRIDGE_USERS_ON_DELETE": "shred"}, "tokens", "list", check=False)
    assert result.returncode == 2
    assert "SCIM_BRIDGE_USERS_ON_DELETE" in result.stderr
    assert "Traceback" not in result.stderr


def test_db_commands_and_jobs_listing(env: dict[str, str]) -> None:
    head = migrate.head_revision()
    assert f"needs: {head}" in run(env, "db", "current").stdout
    assert f"revision {head}" in run(env, "db", "upgrade").stdout
    assert "no pending or parked jobs" in run(env, "jobs").stdout
    assert "0 job(s)" in run(env, "jobs", "retry", "--all").stdout


def test_invalid_rules_stop_start_up_naming_the_rule_and_key(
    env: dict[str, str], tmp_path: Path
) -> None:
    config = tmp_path / "scim-bridge.toml"
    config.write_text(
        """
[[groups.rules]]
display_name = "GitLab Developers"
gitlab_group = "acme/engineering"
access_level = "developer"

[[groups.rules]]
external_id = "0b1e0000-0000-4000-8000-000000000002"
gitlab_group = "acme/ops"
access_level = "superuser"
"""
    )
    result = run({**env, "SCIM_BRIDGE_CONFIG": str(config)}, "serve", "--port", "0", check=False)
    assert result.returncode == 2
    assert "[[groups.rules]] #2" in result.stderr
    assert "access_level: 'superuser' is not an access level" in result.stderr
    assert "Traceback" not in result.stderr
