"""The operator's settings: TOML file, environment overrides, and start-up errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from scim_bridge.settings import SettingsError
from scim_bridge.settings import load_settings


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "scim-bridge.toml"
    path.write_text(text)
    return str(path)


def test_defaults_need_nothing() -> None:
    settings = load_settings({})
    assert settings.database_url == "sqlite:///scim-bridge.db"
    assert settings.gitlab.planned_only  # no GitLab configured: dry-run
    assert settings.users.on_deactivate == "block"
    assert settings.users.on_delete == "block"
    assert settings.users.link_existing == "email"
    assert settings.users.protected_usernames == ("root",)
    assert settings.reconcile.inline_deadline_seconds == 20.0
    assert (settings.server.host, settings.server.port) == ("127.0.0.1", 8000)


def test_file_then_environment_wins(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[gitlab]
url = "https://gitlab.example.com/"
identity_provider = "saml"

[users]
on_delete = "delete"
protected_usernames = ["root", "ops-bot"]
""",
    )
    settings = load_settings(
        {
            "SCIM_BRIDGE_CONFIG": path,
            "SCIM_BRIDGE_GITLAB_TOKEN": "glpat-x",
            "SCIM_BRIDGE_USERS_ON_DELETE": "hard_delete",
            "SCIM_BRIDGE_USERS_PROTECTED_USERNAMES": "root, alice ,bob",
            "SCIM_BRIDGE_DATABASE_URL": "postgresql+psycopg://db/bridge",
            "SCIM_BRIDGE_GITLAB_DRY_RUN": "true",
        }
    )
    assert settings.gitlab.url == "https://gitlab.example.com"
    assert settings.gitlab.identity_provider == "saml"
    assert settings.gitlab.token == "glpat-x"
    assert settings.gitlab.dry_run and settings.gitlab.planned_only
    assert settings.users.on_delete == "hard_delete"
    assert settings.users.protected_usernames == ("root", "alice", "bob")
    assert settings.database_url == "postgresql+psycopg://db/bridge"
    assert "glpat-x" not in repr(settings)


def test_gitlab_configured_is_not_dry_run() -> None:
    settings = load_settings(
        {"SCIM_BRIDGE_GITLAB_URL": "https://gl", "SCIM_BRIDGE_GITLAB_TOKEN": "t"}
    )
    assert not settings.gitlab.planned_only


@pytest.mark.parametrize(
    ("environ", "file_text", "message"),
    [
        (
            {"SCIM_BRIDGE_USERS_ON_DELETE": "shred"},
            None,
            "SCIM_BRIDGE_USERS_ON_DELETE: Must be one of",
        ),
        ({}, '[users]\non_deactivate = "freeze"\n', "[users] on_deactivate in"),
        ({}, '[users]\nprotected_usernamez = ["root"]\n', "[users] protected_usernamez in"),
        ({}, '[gitlab]\ntoken = "glpat-in-file"\n', "read only from SCIM_BRIDGE_GITLAB_TOKEN"),
        ({}, "[gitlb]\n", "[gitlb] in"),
        ({}, "[users\n", "is not valid TOML"),
        (
            {"SCIM_BRIDGE_GITLAB_DRY_RUN": "perhaps"},
            None,
            "SCIM_BRIDGE_GITLAB_DRY_RUN: Not a valid boolean",
        ),
        ({"SCIM_BRIDGE_RECONCILE_INLINE_DEADLINE_SECONDS": "90"}, None, "INLINE_DEADLINE_SECONDS"),
    ],
)
def test_invalid_settings_name_the_key(
    tmp_path: Path, environ: dict[str, str], file_text: str | None, message: str
) -> None:
    if file_text is not None:
        environ = {**environ, "SCIM_BRIDGE_CONFIG": write(tmp_path, file_text)}
    with pytest.raises(SettingsError) as raised:
        load_settings(environ)
    assert message in str(raised.value)
    assert "glpat-in-file" not in str(raised.value)


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"SCIM_BRIDGE_CONFIG: file .* does not exist"):
        load_settings({"SCIM_BRIDGE_CONFIG": str(tmp_path / "absent.toml")})
