"""The operator's settings: TOML file, environment overrides, and start-up errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from scim_bridge.server.admission import threads_per_address
from scim_bridge.settings import GroupRule
from scim_bridge.settings import GroupsSettings
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


def test_drift_interval_from_the_file_then_the_environment_and_zero_turns_it_off(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "[reconcile]\ndrift_interval_minutes = 15\n")
    assert load_settings({"SCIM_BRIDGE_CONFIG": path}).reconcile.drift_interval_minutes == 15
    environ = {"SCIM_BRIDGE_CONFIG": path, "SCIM_BRIDGE_RECONCILE_DRIFT_INTERVAL_MINUTES": "0"}
    assert load_settings(environ).reconcile.drift_interval_minutes == 0


def test_worker_concurrency_from_the_file_then_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "[reconcile]\nworker_concurrency = 4\n")
    assert load_settings({"SCIM_BRIDGE_CONFIG": path}).reconcile.worker_concurrency == 4
    environ = {"SCIM_BRIDGE_CONFIG": path, "SCIM_BRIDGE_RECONCILE_WORKER_CONCURRENCY": "16"}
    assert load_settings(environ).reconcile.worker_concurrency == 16


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
        ({"SCIM_BRIDGE_RECONCILE_WORKER_CONCURRENCY": "0"}, None, "WORKER_CONCURRENCY"),
        ({}, "[reconcile]\nworker_concurrency = 65\n", "[reconcile] worker_concurrency in"),
        ({"SCIM_BRIDGE_RECONCILE_DRIFT_INTERVAL_MINUTES": "-1"}, None, "DRIFT_INTERVAL_MINUTES"),
        (
            {"SCIM_BRIDGE_RECONCILE_MEMBER_DELETION_WINDOW_SECONDS": "0.5"},
            None,
            "MEMBER_DELETION_WINDOW_SECONDS",
        ),
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


# [groups] and [[groups.rules]] ------------------------------------------------------------------

ALLOWED_LEVELS = (
    "use guest, planner, reporter, developer, maintainer, owner or 5, 10, 15, 20, 25, 30, 40, 50"
)
DEVS_ID = "0b3c6f5e-8f0c-4a36-9c4e-2f6a1d7e9b10"


def test_groups_default_to_ignoring_unmapped_groups() -> None:
    groups = load_settings({}).groups
    assert groups == GroupsSettings(
        unmapped="ignore", parent="entra", default_access_level=10, rules=()
    )


def test_groups_rules_by_display_name_and_external_id(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
[groups]
unmapped = "create"
parent = "acme/entra"
default_access_level = "Reporter"

[[groups.rules]]
display_name = "GitLab Developers"
gitlab_group = "acme/engineering"
access_level = "developer"

[[groups.rules]]
external_id = "{DEVS_ID}"
gitlab_group = "acme/engineering.tools"
access_level = 40

[[groups.rules]]
display_name = "Security"
gitlab_group = "acme/sec_ops-2"
access_level = 25
""",
    )
    groups = load_settings({"SCIM_BRIDGE_CONFIG": path}).groups
    assert (groups.unmapped, groups.parent, groups.default_access_level) == (
        "create",
        "acme/entra",
        20,
    )
    assert groups.rules == (
        GroupRule(None, "GitLab Developers", "acme/engineering", 30),
        GroupRule(DEVS_ID, None, "acme/engineering.tools", 40),
        GroupRule(None, "Security", "acme/sec_ops-2", 25),
    )


def test_groups_scalars_from_the_environment_win(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[groups]
unmapped = "ignore"
parent = "entra"
default_access_level = "guest"

[[groups.rules]]
display_name = "Ops"
gitlab_group = "acme/ops"
access_level = "maintainer"
""",
    )
    groups = load_settings(
        {
            "SCIM_BRIDGE_CONFIG": path,
            "SCIM_BRIDGE_GROUPS_UNMAPPED": "create",
            "SCIM_BRIDGE_GROUPS_PARENT": "acme/from-entra",
            "SCIM_BRIDGE_GROUPS_DEFAULT_ACCESS_LEVEL": "30",
        }
    ).groups
    assert (groups.unmapped, groups.parent, groups.default_access_level) == (
        "create",
        "acme/from-entra",
        30,
    )
    assert groups.rules == (GroupRule(None, "Ops", "acme/ops", 40),)
    named = load_settings({"SCIM_BRIDGE_GROUPS_DEFAULT_ACCESS_LEVEL": "Planner"}).groups
    assert named.default_access_level == 15


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"SCIM_BRIDGE_GROUPS_RULES": "Devs=acme/eng:developer"},
            "SCIM_BRIDGE_GROUPS_RULES: [[groups.rules]] is read only from the file named by "
            "SCIM_BRIDGE_CONFIG, never from the environment",
        ),
        (
            {"SCIM_BRIDGE_GROUPS_UNMAPPED": "mirror"},
            "SCIM_BRIDGE_GROUPS_UNMAPPED: Must be one of: ignore, create.",
        ),
        (
            {"SCIM_BRIDGE_GROUPS_DEFAULT_ACCESS_LEVEL": "35"},
            f"SCIM_BRIDGE_GROUPS_DEFAULT_ACCESS_LEVEL: '35' is not an access level; {ALLOWED_LEVELS}",
        ),
        (
            {"SCIM_BRIDGE_GROUPS_PARENT": "entra/"},
            "SCIM_BRIDGE_GROUPS_PARENT: 'entra/' is not a GitLab group full path; use segments of "
            "letters, digits, '_', '.' and '-' joined by single '/', e.g. \"acme/engineering\"",
        ),
    ],
)
def test_invalid_groups_environment_is_named(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(environ)
    assert str(raised.value) == message


GOOD_RULE = """
[[groups.rules]]
external_id = "0b3c6f5e-8f0c-4a36-9c4e-2f6a1d7e9b10"
gitlab_group = "acme/ops"
access_level = "maintainer"
"""
PATH_HINT = (
    "is not a GitLab group full path; use segments of letters, digits, '_', '.' and '-' "
    "joined by single '/', e.g. \"acme/engineering\""
)


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (
            'display_name = "GitLab Developers"\ngitlab_group = "acme/eng"\naccess_level = "dev"',
            '#2 (display_name = "GitLab Developers") in {path}: access_level: '
            f"'dev' is not an access level; {ALLOWED_LEVELS}",
        ),
        (
            'display_name = "GitLab Developers"\ngitlab_group = "acme/eng"\naccess_level = 35',
            '#2 (display_name = "GitLab Developers") in {path}: access_level: '
            f"35 is not an access level; {ALLOWED_LEVELS}",
        ),
        (
            'display_name = "GitLab Developers"\ngitlab_group = "acme/eng"',
            '#2 (display_name = "GitLab Developers") in {path}: access_level: '
            f"missing; {ALLOWED_LEVELS}",
        ),
        (
            'display_name = "GitLab Developers"\naccess_level = "developer"',
            '#2 (display_name = "GitLab Developers") in {path}: gitlab_group: '
            'missing; set the GitLab group full path, e.g. "acme/engineering"',
        ),
        (
            'display_name = "Devs"\ngitlab_grop = "acme/eng"\naccess_level = "developer"',
            '#2 (display_name = "Devs") in {path}: gitlab_grop: unknown key (known keys: '
            "access_level, display_name, external_id, gitlab_group); did you mean gitlab_group?",
        ),
        (
            'external_id = "e-1"\ndisplay_name = "Devs"\ngitlab_group = "acme"\naccess_level = 30',
            '#2 (external_id = "e-1", display_name = "Devs") in {path}: external_id and '
            "display_name: both are set; a rule matches an Entra group by exactly one of them",
        ),
        (
            'gitlab_group = "acme/eng"\naccess_level = "developer"',
            "#2 in {path}: external_id or display_name: missing; a rule matches an Entra group "
            "by exactly one of them (external_id: its object id, or display_name)",
        ),
        (
            'display_name = "  "\ngitlab_group = "acme/eng"\naccess_level = "developer"',
            '#2 (display_name = "  ") in {path}: display_name: must not be empty',
        ),
        (
            'external_id = 42\ngitlab_group = "acme/eng"\naccess_level = "developer"',
            "#2 (external_id = 42) in {path}: external_id: Not a valid string.",
        ),
        *(
            (
                f'display_name = "Devs"\ngitlab_group = "{bad}"\naccess_level = "developer"',
                f"#2 (display_name = \"Devs\") in {{path}}: gitlab_group: '{bad}' {PATH_HINT}",
            )
            for bad in ["/acme/eng", "acme/eng/", "acme//eng", "acme eng", "acme/..", "", "äcme"]
        ),
    ],
)
def test_invalid_group_rules_name_the_rule_and_key(tmp_path: Path, rule: str, message: str) -> None:
    path = write(tmp_path, f"{GOOD_RULE}\n[[groups.rules]]\n{rule}\n")
    with pytest.raises(SettingsError) as raised:
        load_settings({"SCIM_BRIDGE_CONFIG": path})
    assert str(raised.value) == "[[groups.rules]] " + message.format(path=path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[groups.rules]\ndisplay_name = "Devs"\n',
            "[groups] rules in {path}: must be an array of tables, each written as a "
            "[[groups.rules]] section, not a table",
        ),
        (
            '[groups]\nrules = "Devs=acme/eng"\n',
            "[groups] rules in {path}: must be an array of tables, each written as a "
            "[[groups.rules]] section, not a string",
        ),
        (
            f'[groups]\nrules = [{{ external_id = "{DEVS_ID}", gitlab_group = "a", '
            'access_level = 10 }, "Devs"]\n',
            "[[groups.rules]] #2 in {path}: must be a table, each written as a "
            "[[groups.rules]] section, not a string",
        ),
        (
            '[groups]\nunmaped = "create"\n',
            "[groups] unmaped in {path}: unknown key "
            "(known keys: default_access_level, parent, rules, unmapped)",
        ),
        (
            '[groups]\ndefault_access_level = "admin"\n',
            f"[groups] default_access_level in {{path}}: 'admin' is not an access level; "
            f"{ALLOWED_LEVELS}",
        ),
    ],
)
def test_invalid_groups_section_is_named(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SettingsError) as raised:
        load_settings({"SCIM_BRIDGE_CONFIG": path})
    assert str(raised.value) == message.format(path=path)


def test_first_invalid_rule_is_reported_with_its_index(tmp_path: Path) -> None:
    rules = [
        GOOD_RULE,
        GOOD_RULE,
        '[[groups.rules]]\ndisplay_name = "Third"\ngitlab_group = "x"\naccess_level = "dev"\n',
        '[[groups.rules]]\ndisplay_name = "Fourth"\n',
    ]
    path = write(tmp_path, "\n".join(rules))
    with pytest.raises(
        SettingsError, match=r'^\[\[groups\.rules\]\] #3 \(display_name = "Third"\)'
    ):
        load_settings({"SCIM_BRIDGE_CONFIG": path})


# Pinned before settings were declared once (issue 12): every default and the exact messages. ----


def test_every_default_is_pinned() -> None:
    settings = load_settings({})
    assert (settings.database_url, settings.auto_migrate, settings.config_path) == (
        "sqlite:///scim-bridge.db",
        True,
        None,
    )
    gitlab = settings.gitlab
    assert (gitlab.url, gitlab.token, gitlab.identity_provider) == (None, None, "openid_connect")
    assert (gitlab.dry_run, gitlab.timeout_seconds) == (False, 10.0)
    assert vars(settings.users) == {
        "on_deactivate": "block",
        "on_delete": "block",
        "link_existing": "email",
        "protected_usernames": ("root",),
    }
    assert vars(settings.reconcile) == {
        "inline_deadline_seconds": 20.0,
        "worker_poll_seconds": 1.0,
        "backoff_base_seconds": 2.0,
        "backoff_max_seconds": 600.0,
        "max_attempts": 20,
        "member_deletions_per_minute": 60,
        "member_deletion_window_seconds": 60.0,
        "worker_concurrency": 8,
        "drift_interval_minutes": 60.0,
    }
    assert vars(settings.server) == {
        "host": "127.0.0.1",
        "port": 8000,
        "workers": 4,
        "threads": 32,
        "max_body_bytes": 1024 * 1024,
        "rate_limit_per_second": 1000.0,
        "rate_limit_burst": 200,
        "proxy_hops": 0,
        "trusted_proxies": (),
        "trust_forwarded_host": False,
        "max_connections_per_address": 16,
    }
    auth = vars(settings.auth)
    entra = auth.pop("entra")
    assert auth == {
        "access_token_minutes": 60,
        "client_secret_days": 365,
        "failure_floor_ms": 200,
        "failures_per_minute": 60,
        "public_url": None,
        "oauth_scopes": ("scim",),
    }
    assert vars(entra) == {
        "tenant_ids": (),
        "app_ids": (),
        "audiences": ("8adf8e6e-67b2-4cf2-a259-e3dc5476c621",),
        "jwks_url": "https://login.microsoftonline.com/common/discovery/keys",
        "leeway_seconds": 60,
        "jwks_refresh_floor_seconds": 300.0,
        "jwks_cache_seconds": 86400.0,
    }
    assert not entra.enabled
    assert vars(settings.audit) == {"redact_values": False}
    assert vars(settings.groups) == {
        "unmapped": "ignore",
        "parent": "entra",
        "default_access_level": 10,
        "rules": (),
    }


def test_values_are_normalised_as_loaded(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[auth]
public_url = "https://scim.example.com/"
oauth_scopes = ["scim", "write"]

[auth.entra]
tenant_ids = ["t-1"]
leeway_seconds = 5

[server]
trusted_proxies = [" 10.0.0.1", "172.18.0.0/16 "]
proxy_hops = 1
""",
    )
    settings = load_settings(
        {
            "SCIM_BRIDGE_CONFIG": path,
            "SCIM_BRIDGE_GITLAB_URL": "https://gl.example.com//",
            "SCIM_BRIDGE_AUTH_ENTRA_APP_IDS": "a-1, ,a-2 ",
            "SCIM_BRIDGE_AUTH_ENTRA_LEEWAY_SECONDS": "7",
            "SCIM_BRIDGE_DATABASE_AUTO_MIGRATE": "false",
        }
    )
    assert settings.config_path == path
    assert settings.auto_migrate is False
    assert settings.gitlab.url == "https://gl.example.com"
    assert settings.gitlab.planned_only  # no token
    assert settings.auth.public_url == "https://scim.example.com"
    assert settings.auth.oauth_scopes == ("scim", "write")
    entra = settings.auth.entra
    assert (entra.tenant_ids, entra.app_ids, entra.leeway_seconds) == (("t-1",), ("a-1", "a-2"), 7)
    assert entra.enabled
    assert settings.server.trusted_proxies == ("10.0.0.1", "172.18.0.0/16")
    assert settings.server.proxy_hops == 1
    assert load_settings({"SCIM_BRIDGE_GITLAB_URL": ""}).gitlab.url is None


@pytest.mark.parametrize(
    ("environ", "file_text", "message"),
    [
        (
            {"SCIM_BRIDGE_RECONCILE_INLINE_DEADLINE_SECONDS": "90"},
            None,
            "SCIM_BRIDGE_RECONCILE_INLINE_DEADLINE_SECONDS: Must be greater than or equal to 0 "
            "and less than or equal to 55.",
        ),
        (
            {"SCIM_BRIDGE_SERVER_PORT": "eighty"},
            None,
            "SCIM_BRIDGE_SERVER_PORT: Not a valid integer.",
        ),
        (
            {"SCIM_BRIDGE_SERVER_PROXY_HOPS": "1"},
            None,
            "[server] proxy_hops = 1 needs [server] trusted_proxies: the addresses (or CIDR "
            "blocks) of those proxies, whose X-Forwarded-* headers are believed",
        ),
        (
            {"SCIM_BRIDGE_SERVER_TRUSTED_PROXIES": "10.0.0.1, nope"},
            None,
            "SCIM_BRIDGE_SERVER_TRUSTED_PROXIES: item 1: 'nope' is not an IP address or CIDR "
            "block (e.g. 10.0.0.5 or 172.18.0.0/16)",
        ),
        ({}, "auth = 3\n", "[auth] in {path}: must be a table"),
        ({}, "gitlab = 'x'\n", "[gitlab] in {path}: must be a table"),
        ({}, "[auth]\nentra = 3\n", "[auth.entra] in {path}: must be a table"),
        (
            {},
            "[auth.entra]\ntenant_id = ['x']\n",
            "[auth.entra] tenant_id in {path}: unknown key (known keys: app_ids, audiences, "
            "jwks_cache_seconds, jwks_refresh_floor_seconds, jwks_url, leeway_seconds, tenant_ids)",
        ),
        (
            {},
            "[auth]\nentra_tenant = 1\n",
            "[auth] entra_tenant in {path}: unknown key (known keys: access_token_minutes, "
            "client_secret_days, entra, failure_floor_ms, failures_per_minute, oauth_scopes, "
            "public_url)",
        ),
        (
            {},
            "[gitlab]\nurll = 'x'\n",
            "[gitlab] urll in {path}: unknown key (known keys: dry_run, identity_provider, "
            "rotate_days_before_expiry, rotated_token_lifetime_days, timeout_seconds, url)",
        ),
        (
            {},
            '[auth.entra]\napp_ids = [" a"]\n',
            "[auth.entra] app_ids in {path}: item 0: ' a': must not be empty or padded with spaces",
        ),
        (
            {"SCIM_BRIDGE_AUTH_ENTRA_JWKS_URL": "keys"},
            None,
            "SCIM_BRIDGE_AUTH_ENTRA_JWKS_URL: Not a valid URL.",
        ),
        (
            {"SCIM_BRIDGE_AUTH_PUBLIC_URL": "not a url"},
            None,
            "SCIM_BRIDGE_AUTH_PUBLIC_URL: Not a valid URL.",
        ),
        (
            {"SCIM_BRIDGE_AUTH_ACCESS_TOKEN_MINUTES": "30"},
            None,
            "SCIM_BRIDGE_AUTH_ACCESS_TOKEN_MINUTES: Must be greater than or equal to 60 and less "
            "than or equal to 360.",
        ),
        (
            {},
            "[server]\nrate_limit_per_second = 10\n",
            "[server] rate_limit_per_second in {path}: Must be greater than or equal to 50.0.",
        ),
        (
            {"SCIM_BRIDGE_SERVER_THREADS": "0"},
            None,
            "SCIM_BRIDGE_SERVER_THREADS: Must be greater than or equal to 1 and less than or "
            "equal to 512.",
        ),
        (
            {},
            "[server]\nthreads = 64\nrate_limit_burst = 50\n",
            "[server] rate_limit_burst = 50 is below [server] threads = 64: a caller's requests "
            "may start on every thread at once; raise rate_limit_burst to at least threads",
        ),
        ({}, "[database]\nurl = ''\n", "[database] url in {path}: Shorter than minimum length 1."),
        (
            {},
            "[audit]\nredact_values = 'perhaps'\n",
            "[audit] redact_values in {path}: Not a valid boolean.",
        ),
        (
            {"SCIM_BRIDGE_GITLAB_TIMEOUT_SECONDS": "0"},
            None,
            "SCIM_BRIDGE_GITLAB_TIMEOUT_SECONDS: Must be greater than or equal to 0.1 and less "
            "than or equal to 300.",
        ),
        (
            {},
            "[users]\nprotected_usernames = 'root'\n",
            "[users] protected_usernames in {path}: Not a valid list.",
        ),
        # Several problems: the first key in the schema's order, and unknown keys last.
        (
            {},
            "[server]\nmax_body_bytes = 1\nport = -1\n",
            "[server] port in {path}: Must be greater than or equal to 0 and less than or equal "
            "to 65535.",
        ),
        (
            {},
            "[server]\nwat = 1\nport = -1\n",
            "[server] port in {path}: Must be greater than or equal to 0 and less than or equal "
            "to 65535.",
        ),
        # Several sections: the first in the order of the reference; [auth] before [auth.entra].
        (
            {},
            "[groups]\nunmapped = 'x'\n[server]\nport = -1\n",
            "[server] port in {path}: Must be greater than or equal to 0 and less than or equal "
            "to 65535.",
        ),
        (
            {},
            "[auth]\nwat = 1\n[auth.entra]\nwat = 2\n",
            "[auth] wat in {path}: unknown key (known keys: access_token_minutes, "
            "client_secret_days, entra, failure_floor_ms, failures_per_minute, oauth_scopes, "
            "public_url)",
        ),
        (
            {"SCIM_BRIDGE_AUTH_ENTRA_LEEWAY_SECONDS": "-1"},
            "[audit]\nredact_values = 'perhaps'\n",
            "SCIM_BRIDGE_AUTH_ENTRA_LEEWAY_SECONDS: Must be greater than or equal to 0 and less "
            "than or equal to 600.",
        ),
        # The proxies are checked once every key is valid.
        (
            {"SCIM_BRIDGE_SERVER_PROXY_HOPS": "2"},
            "[audit]\nredact_values = 'perhaps'\n",
            "[audit] redact_values in {path}: Not a valid boolean.",
        ),
        # The environment wins over the file, even over an invalid value there.
        (
            {"SCIM_BRIDGE_SERVER_PORT": "70000"},
            "[server]\nport = 'x'\n",
            "SCIM_BRIDGE_SERVER_PORT: Must be greater than or equal to 0 and less than or equal "
            "to 65535.",
        ),
    ],
)
def test_invalid_settings_messages_are_pinned(
    tmp_path: Path, environ: dict[str, str], file_text: str | None, message: str
) -> None:
    path = write(tmp_path, file_text) if file_text is not None else ""
    if file_text is not None:
        environ = {**environ, "SCIM_BRIDGE_CONFIG": path}
    with pytest.raises(SettingsError) as raised:
        load_settings(environ)
    assert str(raised.value) == message.format(path=path)


def test_a_valid_environment_value_overrides_an_invalid_file_value(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nport = 'x'\n")
    assert (
        load_settings({"SCIM_BRIDGE_CONFIG": path, "SCIM_BRIDGE_SERVER_PORT": "81"}).server.port
        == 81
    )


def test_threads_come_from_the_file_or_the_environment(tmp_path: Path) -> None:
    """``[server] threads`` is the key; SCIM_BRIDGE_SERVER_THREADS, which gunicorn read, still works."""
    path = write(tmp_path, "[server]\nthreads = 48\n")
    assert load_settings({"SCIM_BRIDGE_CONFIG": path}).server.threads == 48
    environ = {"SCIM_BRIDGE_CONFIG": path, "SCIM_BRIDGE_SERVER_THREADS": "8"}
    assert load_settings(environ).server.threads == 8


def test_the_default_serve_gives_one_address_16_requests_on_threads_per_process() -> None:
    """Entra is one address: a 16-request burst fits on one process's threads (Little's law: 16
    writes each waiting 0.5 s on GitLab are 32 a second), even if all land on the same process."""
    server = load_settings({}).server
    per_address = min(server.max_connections_per_address, threads_per_address(server.threads))
    assert per_address >= 16
    assert server.rate_limit_burst >= server.threads
