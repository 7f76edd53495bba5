"""Checks of what is on this side: the settings, the database, the credentials Entra can use."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory

from scim_bridge.checks.findings import Finding
from scim_bridge.checks.findings import Level
from scim_bridge.settings import EntraAuthSettings
from scim_bridge.settings import Settings
from scim_bridge.store import migrate
from scim_bridge.store.db import Database
from scim_bridge.store.db import display_url


def check_settings(settings: Settings) -> list[Finding]:
    """Settings already loaded (an invalid one stops the CLI first): say where they came from."""
    source = (
        f"from {settings.config_path} and the environment"
        if settings.config_path
        else "from the environment (no SCIM_BRIDGE_CONFIG file)"
    )
    rules = len(settings.groups.rules)
    return [Finding(Level.OK, "settings", f"valid, {source}; {rules} group rule(s)")]


def check_database(db: Database) -> list[Finding]:
    """Reachable and at the newest schema revision; never migrates (that is `db upgrade`)."""
    shown = display_url(db.url)
    missing = _missing_sqlite_file(db)
    if missing is not None:
        return [
            Finding(
                Level.FAIL,
                "database",
                f"{shown}: the file {missing} does not exist: run `scim-bridge db upgrade` to "
                "create it (or correct SCIM_BRIDGE_DATABASE_URL)",
            )
        ]
    try:
        current = migrate.current_revision(db)
    except Exception as error:  # unreachable, refused, not a database: the driver's words
        return [Finding(Level.FAIL, "database", f"{shown}: cannot connect: {_first_line(error)}")]
    head = migrate.head_revision()
    if current == head:
        return [Finding(Level.OK, "database", f"{shown}: reachable, schema at {head} (current)")]
    if current is None:
        return [
            Finding(
                Level.FAIL,
                "database",
                f"{shown}: not migrated (no schema yet): run `scim-bridge db upgrade`",
            )
        ]
    if current not in _known_revisions():
        return [
            Finding(
                Level.FAIL,
                "database",
                f"{shown}: schema at {current}, which this version does not know (it needs "
                f"{head}): a newer scim-bridge wrote it; upgrade scim-bridge",
            )
        ]
    return [
        Finding(
            Level.FAIL,
            "database",
            f"{shown}: not migrated (schema at {current}, this version needs {head}): "
            "run `scim-bridge db upgrade`",
        )
    ]


def database_ready(findings: Iterable[Finding]) -> bool:
    """Whether the database checks passed, so the store can be read."""
    return all(f.level is not Level.FAIL for f in findings if f.subject == "database")


def check_credentials(
    active_tokens: int, active_clients: int, entra: EntraAuthSettings
) -> list[Finding]:
    """Entra needs one way in: a bearer token, an OAuth2 client, or its own JWTs.

    Entra-issued tokens need ``app_ids`` beside ``tenant_ids``: any app of the tenant can get a
    token for the shared non-gallery audience, and the bridge refuses them all without the list.
    """
    findings = []
    ways = []
    if active_tokens:
        ways.append(f"{active_tokens} bearer token(s)")
    if active_clients:
        ways.append(f"{active_clients} OAuth2 client(s)")
    if entra.tenant_ids and entra.app_ids:
        ways.append(
            f"Entra-issued tokens from {len(entra.tenant_ids)} tenant(s) and "
            f"{len(entra.app_ids)} app(s)"
        )
    elif entra.tenant_ids:
        findings.append(
            Finding(
                Level.FAIL,
                "entra",
                "[auth.entra] tenant_ids is set but [auth.entra] app_ids is empty, so every "
                "Entra-issued token is refused: set app_ids (SCIM_BRIDGE_AUTH_ENTRA_APP_IDS) to "
                "the calling app's id, which the bridge logs when it refuses a token "
                "(\"app '...' of tenant ... is not allowed\")",
            )
        )
    if ways:
        findings.append(Finding(Level.OK, "entra", f"credentials: {', '.join(ways)}"))
    else:
        findings.append(
            Finding(
                Level.WARN,
                "entra",
                "no credentials yet, so Entra cannot call the bridge: run `scim-bridge clients "
                "create entra` (OAuth2 client credentials) or `scim-bridge tokens create entra`",
            )
        )
    return findings


def _missing_sqlite_file(db: Database) -> Path | None:
    """Connecting would create an empty SQLite file; a pre-flight check must not."""
    path = db.sqlite_file
    return None if path is None or path.exists() else path.resolve()


def _known_revisions() -> set[str]:
    config = Config()
    config.set_main_option("script_location", str(migrate.MIGRATIONS))
    scripts = ScriptDirectory.from_config(config)
    return {script.revision for script in scripts.walk_revisions()}


def _first_line(error: BaseException) -> str:
    """The driver's own message (SQLAlchemy wraps it with the SQL and a help link)."""
    original = getattr(error, "orig", None) or error
    lines = [line.strip() for line in str(original).splitlines() if line.strip()]
    return lines[0] if lines else type(original).__name__
