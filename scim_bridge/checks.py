"""`scim-bridge check`: the pre-flight checks, as findings the CLI prints one per line.

Each check says what it found and, when something is wrong, what to do. Nothing here writes:
no migration, no audit event, no GitLab change, so `check` is safe to run at any time, even
against an unmigrated database or the production GitLab.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any
from typing import TypeVar

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url

from scim_bridge import clock
from scim_bridge.gitlab.access import MINIMAL_ACCESS
from scim_bridge.gitlab.access import PLANNER
from scim_bridge.gitlab.access import SECURITY_MANAGER
from scim_bridge.gitlab.access import access_level_name
from scim_bridge.gitlab.client import GitLab
from scim_bridge.gitlab.errors import AuthenticationError
from scim_bridge.gitlab.errors import ForbiddenError
from scim_bridge.gitlab.errors import GitLabError
from scim_bridge.gitlab.errors import NotFoundError
from scim_bridge.gitlab.errors import TransientError
from scim_bridge.gitlab.types import GitLabGroup
from scim_bridge.settings import GitLabSettings
from scim_bridge.settings import GroupRule
from scim_bridge.settings import GroupsSettings
from scim_bridge.settings import Settings
from scim_bridge.store import migrate
from scim_bridge.store.db import Database

if TYPE_CHECKING:
    from scim_bridge.bridge import Bridge

T = TypeVar("T")

#: The scopes the bridge's token needs (gitlab.md §1.1): `api` for writes, `admin_mode` for
#: admin calls once Admin Mode is on.
TOKEN_ADVICE = (
    "use a personal access token of an administrator with the scopes api and admin_mode "
    "in SCIM_BRIDGE_GITLAB_TOKEN"
)
#: The extern_uid of the admin probe: the identity lookup the bridge makes before every create.
PROBE_EXTERN_UID = "scim-bridge-check"
#: A GitLab token expiring within this many days is worth a warning.
EXPIRY_WARNING_DAYS = 30
#: Planner (15) is new in GitLab 17.7 (gitlab.md §1.10).
PLANNER_SINCE = (17, 7)


class Level(StrEnum):
    OK = "OK"
    INFO = "INFO"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Finding:
    """One line of the report. Only FAIL makes `check` fail; WARN is worth a look."""

    level: Level
    subject: str
    message: str


def problems(findings: Iterable[Finding]) -> int:
    return sum(1 for finding in findings if finding.level is Level.FAIL)


def run_all(bridge: Bridge) -> list[Finding]:
    """Every check, in the order an operator fixes things: settings, database, GitLab."""
    settings = bridge.settings
    findings = check_settings(settings)
    database = check_database(bridge.db)
    findings += database
    if database_ready(database):
        findings += check_credentials(
            sum(1 for token in bridge.tokens.list() if token.status == "active"),
            sum(1 for client in bridge.clients.list() if client.status == "active"),
            len(settings.auth.entra.tenant_ids),
        )
    config = settings.gitlab
    findings += check_gitlab(
        config,
        settings.groups,
        # Not `bridge.gitlab`: its calls are audited, and a pre-flight check writes nothing.
        lambda: GitLab(config.url or "", config.token or "", timeout=config.timeout_seconds),
    )
    return findings


# -- settings and database ------------------------------------------------------------------


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
    shown = make_url(db.url).render_as_string(hide_password=True)
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


def check_credentials(active_tokens: int, active_clients: int, entra_tenants: int) -> list[Finding]:
    """Entra needs one way in: a bearer token, an OAuth2 client, or its own JWTs."""
    ways = []
    if active_tokens:
        ways.append(f"{active_tokens} bearer token(s)")
    if active_clients:
        ways.append(f"{active_clients} OAuth2 client(s)")
    if entra_tenants:
        ways.append(f"Entra-issued tokens from {entra_tenants} tenant(s)")
    if ways:
        return [Finding(Level.OK, "entra", f"credentials: {', '.join(ways)}")]
    return [
        Finding(
            Level.WARN,
            "entra",
            "no credentials yet, so Entra cannot call the bridge: run `scim-bridge clients "
            "create entra` (OAuth2 client credentials) or `scim-bridge tokens create entra`",
        )
    ]


def _missing_sqlite_file(db: Database) -> Path | None:
    """Connecting would create an empty SQLite file; a pre-flight check must not."""
    url = make_url(db.url)
    if not db.is_sqlite or url.query.get("uri") or url.database in (None, "", ":memory:"):
        return None
    path = Path(url.database or "")
    return None if path.exists() else path.resolve()


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


# -- GitLab -----------------------------------------------------------------------------------


def check_gitlab(
    config: GitLabSettings, groups: GroupsSettings, connect: Callable[[], GitLab]
) -> list[Finding]:
    """Reachable, the token valid and an admin's with the right scopes, the rules' groups there.

    `connect` is only called when GitLab is configured (not in dry-run).
    """
    if config.planned_only:
        findings = [_dry_run(config)]
        if groups.rules or groups.unmapped == "create":
            findings.append(Finding(Level.INFO, "groups", "GitLab groups not checked (dry-run)"))
        return [*findings, *check_identity_provider(config.identity_provider)]
    gitlab = connect()
    try:
        findings = _GitLabChecks(gitlab, config, groups).run()
    finally:
        gitlab.close()
    return [*findings, *check_identity_provider(config.identity_provider)]


def check_identity_provider(provider: str) -> list[Finding]:
    """GitLab has no API listing its OmniAuth providers: say where the name must match."""
    findings = [
        Finding(
            Level.INFO,
            "identity",
            f"provider {provider!r} ([gitlab] identity_provider): it must be the name of an "
            "OmniAuth provider in gitlab.rb gitlab_rails['omniauth_providers'], or SSO sign-ins "
            "miss the provisioned accounts (GitLab has no API to list them: not checked)",
        )
    ]
    if provider.lower() == "scim":
        findings.append(
            Finding(
                Level.WARN,
                "identity",
                "provider 'scim': on GitLab Premium `provider=scim` searches GitLab's own SCIM "
                "identities instead; use the SSO provider's name ([gitlab] identity_provider)",
            )
        )
    return findings


def _dry_run(config: GitLabSettings) -> Finding:
    if config.dry_run:
        return Finding(
            Level.INFO,
            "gitlab",
            "dry-run ([gitlab] dry_run = true): GitLab calls are planned and audited, not made",
        )
    if config.url or config.token:
        given, absent = (
            ("[gitlab] url", "SCIM_BRIDGE_GITLAB_TOKEN")
            if config.url
            else ("SCIM_BRIDGE_GITLAB_TOKEN", "[gitlab] url (SCIM_BRIDGE_GITLAB_URL)")
        )
        return Finding(
            Level.WARN,
            "gitlab",
            f"dry-run: {given} is set but {absent} is not, so GitLab calls are only planned "
            "and audited; set both to provision GitLab",
        )
    return Finding(
        Level.INFO,
        "gitlab",
        "dry-run (no GitLab configured): GitLab calls are planned and audited, not made; set "
        "SCIM_BRIDGE_GITLAB_URL and SCIM_BRIDGE_GITLAB_TOKEN to provision GitLab",
    )


class _Stop(Exception):
    """A GitLab answer after which the later checks would only repeat the same failure."""


class _GitLabChecks:
    """The checks in order; each may stop the rest (unreachable, bad token)."""

    def __init__(self, gitlab: GitLab, config: GitLabSettings, groups: GroupsSettings) -> None:
        self.gitlab = gitlab
        self.config = config
        self.groups = groups
        self.findings: list[Finding] = []
        self.enterprise: bool | None = None
        self.version: tuple[int, int] | None = None

    def add(self, level: Level, subject: str, message: str) -> None:
        self.findings.append(Finding(level, subject, message))

    def run(self) -> list[Finding]:
        try:
            self.instance()
            scopes = self.scopes()
            if self.admin(scopes):
                self.rule_groups()
            else:
                self.add(
                    Level.INFO,
                    "groups",
                    "GitLab groups not checked: only an administrator's token sees them all",
                )
        except _Stop:
            pass
        return self.findings

    def ask(self, subject: str, call: Callable[[], T]) -> T:
        """`call()`; a bad token or an unreachable GitLab is one FAIL and ends the checks.

        Other GitLab errors are the caller's to explain.
        """
        try:
            return call()
        except AuthenticationError as error:
            self.add(
                Level.FAIL,
                "token",
                f"GitLab refused SCIM_BRIDGE_GITLAB_TOKEN ({_said(error)}): it is wrong, "
                f"expired or revoked; {TOKEN_ADVICE}",
            )
        except TransientError as error:
            if error.status is None:
                self.add(
                    Level.FAIL,
                    "gitlab",
                    f"{self.gitlab.url}: {error.message}; check "
                    "[gitlab] url (SCIM_BRIDGE_GITLAB_URL), the network and "
                    "[gitlab] timeout_seconds",
                )
            else:
                self.add(
                    Level.FAIL,
                    subject,
                    f"GitLab at {self.gitlab.url} is not answering normally ({_said(error)}): "
                    "try again once it is back",
                )
        raise _Stop

    def instance(self) -> None:
        """`GET /metadata`: reachable, and which version and edition (gitlab.md §6)."""
        try:
            meta = self.ask("gitlab", self.gitlab.metadata)
        except ForbiddenError as error:
            self.add(
                Level.FAIL,
                "token",
                f"GitLab refuses the token's user ({_said(error)}): {TOKEN_ADVICE}",
            )
            raise _Stop from error
        except NotFoundError as error:
            self.add(
                Level.FAIL,
                "gitlab",
                f"{self.gitlab.url} has no GitLab API (GET /api/v4/metadata: {_said(error)}): set "
                "[gitlab] url to the instance's root URL, without /api/v4",
            )
            raise _Stop from error
        except GitLabError as error:
            self.add(
                Level.FAIL,
                "gitlab",
                f"{self.gitlab.url} does not answer like GitLab's API ({_said(error)}): check [gitlab] "
                "url (SCIM_BRIDGE_GITLAB_URL)",
            )
            raise _Stop from error
        version = str(meta.get("version") or "unknown")
        self.version = _major_minor(version)
        self.enterprise = bool(meta.get("enterprise"))
        edition = "Enterprise Edition (EE)" if self.enterprise else "Community Edition (CE)"
        revision = meta.get("revision") or "unknown"
        self.add(
            Level.OK,
            "gitlab",
            f"{self.gitlab.url} reachable: GitLab {version} (revision {revision}), {edition}",
        )

    def scopes(self) -> list[str] | None:
        """`GET /personal_access_tokens/self`: `api` is needed; unknown on old GitLab."""
        try:
            info = self.ask("token", self.gitlab.token_info)
        except GitLabError as error:  # 404 or 403 on an older GitLab, or not a PAT
            self.add(
                Level.WARN,
                "token",
                f"cannot read the token's scopes (GET /personal_access_tokens/self: {_said(error)}; "
                "an older GitLab, or not a personal access token): make sure it has the api "
                "scope",
            )
            return None
        scopes = [str(scope) for scope in info.get("scopes") or []]
        listed = ", ".join(scopes) or "none"
        if "api" not in scopes:
            self.add(
                Level.FAIL,
                "token",
                f"the token lacks the api scope (it has: {listed}): the bridge creates and "
                f"blocks users and sets memberships; {TOKEN_ADVICE}",
            )
        else:
            self.add(Level.OK, "token", f"scopes {listed}; {_expiry(info.get('expires_at'))}")
        self._warn_expiry(info.get("expires_at"))
        return scopes

    def _warn_expiry(self, expires_at: Any) -> None:
        expires = _date(expires_at)
        if expires is None:
            return
        days = (expires - clock.now().date()).days
        if days <= EXPIRY_WARNING_DAYS:
            self.add(
                Level.WARN,
                "token",
                f"the token expires on {expires.isoformat()} (in {days} day(s)): rotate it and "
                "update SCIM_BRIDGE_GITLAB_TOKEN before then",
            )

    def admin(self, scopes: list[str] | None) -> bool:
        """`GET /user` `is_admin`, then one admin-only read to see admin rights really work."""
        try:
            user = self.ask("token", self.gitlab.current_user)
        except GitLabError as error:
            self.add(
                Level.FAIL, "token", f"cannot read the token's user (GET /user: {_said(error)})"
            )
            return False
        if not user.is_admin:
            self.add(
                Level.FAIL,
                "token",
                f"the token's user {user.username} is not an administrator: creating and "
                f"blocking users needs an admin token; {TOKEN_ADVICE}",
            )
            return False
        try:
            # The identity lookup the bridge makes before every create; admin only (gitlab.md §1.1).
            self.ask(
                "token",
                lambda: self.gitlab.users.find_by_identity(
                    self.config.identity_provider, PROBE_EXTERN_UID
                ),
            )
        except ForbiddenError as error:
            if scopes is not None and "admin_mode" in scopes:
                advice = " although the token has the admin_mode scope: check the user's rights"
            else:
                advice = ": Admin Mode is on, so the token needs the admin_mode scope; add it"
            self.add(
                Level.FAIL,
                "token",
                f"the token's user {user.username} is an administrator, but GitLab refuses "
                f"admin calls ({_said(error)}){advice}",
            )
            return False
        except GitLabError as error:
            self.add(Level.FAIL, "token", f"the admin identity lookup failed: {_said(error)}")
            return False
        self.add(Level.OK, "token", f"the token's user {user.username} is an administrator")
        if scopes is not None and "admin_mode" not in scopes:
            self.add(
                Level.WARN,
                "token",
                "the token lacks the admin_mode scope: fine while Admin Mode is off, but once it "
                "is on every admin call answers 403; add the scope",
            )
        return True

    def rule_groups(self) -> None:
        """Each rule's GitLab group exists (`GET /groups/:path`), and its level is available."""
        found: dict[str, GitLabGroup | None] = {}
        for number, rule in enumerate(self.groups.rules, start=1):
            label = f"[[groups.rules]] #{number}{_rule_label(rule)}"
            group = self.group(rule.gitlab_group, found, label)
            if group is None:
                continue
            self.level(
                label,
                f"→ {group.full_path} as {access_level_name(rule.access_level)}",
                rule.access_level,
            )
        if self.groups.unmapped == "create":
            label = f'[groups] parent = "{self.groups.parent}"'
            parent = self.group(self.groups.parent, found, label)
            if parent is not None:
                level = self.groups.default_access_level
                self.level(
                    label,
                    'exists: unmapped Entra groups become its subgroups (unmapped = "create"), '
                    f"members as {access_level_name(level)}",
                    level,
                )
        if not self.groups.rules and self.groups.unmapped != "create":
            self.add(
                Level.INFO,
                "groups",
                'no [[groups.rules]] and [groups] unmapped = "ignore": Entra groups are kept '
                "but grant no GitLab membership",
            )

    def group(
        self, path: str, found: dict[str, GitLabGroup | None], label: str
    ) -> GitLabGroup | None:
        if path not in found:
            try:
                found[path] = self.ask("groups", lambda: self.gitlab.groups.find(path))
            except GitLabError as error:
                self.add(Level.FAIL, "groups", f"{label}: cannot look up {path}: {_said(error)}")
                return None
        group = found[path]
        if group is None:
            self.add(
                Level.FAIL,
                "groups",
                f"{label}: the GitLab group {path} does not exist: create it, or correct the "
                "path (the group's full path, as in its URL)",
            )
        return group

    def level(self, label: str, what: str, level: int) -> None:
        """Levels some GitLab editions or versions lack (gitlab.md §1.1, §1.10)."""
        if level == MINIMAL_ACCESS and self.enterprise is False:
            self.add(
                Level.FAIL,
                "groups",
                f"{label} {what}: minimal access exists only in GitLab Premium and Ultimate, "
                "and this is the Community Edition",
            )
        elif level == PLANNER and self.version is not None and self.version < PLANNER_SINCE:
            self.add(
                Level.FAIL,
                "groups",
                f"{label} {what}: planner is new in GitLab 17.7, and this is "
                f"{self.version[0]}.{self.version[1]}",
            )
        elif level == SECURITY_MANAGER:
            self.add(
                Level.WARN,
                "groups",
                f"{label} {what}: security manager exists only in recent GitLab versions "
                "(behind a feature flag at first); make sure this instance has it",
            )
        else:
            self.add(Level.OK, "groups", f"{label} {what}")


def _said(error: GitLabError) -> str:
    """`403 Forbidden`, not `403: 403 Forbidden`: GitLab's messages often start with the status."""
    if error.status is None or error.message.startswith(str(error.status)):
        return error.message or str(error.status)
    return str(error)


def _rule_label(rule: GroupRule) -> str:
    """`` (display_name = "GitLab Developers")``, as the rule is written in the file."""
    if rule.external_id is not None:
        return f' (external_id = "{rule.external_id}")'
    if rule.display_name is not None:
        return f' (display_name = "{rule.display_name}")'
    return ""


def _major_minor(version: str) -> tuple[int, int] | None:
    """`18.6.0-ee` → (18, 6)."""
    match = re.match(r"(\d+)\.(\d+)", version)
    return (int(match[1]), int(match[2])) if match else None


def _date(value: Any) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def _expiry(value: Any) -> str:
    expires = _date(value)
    return f"expires {expires.isoformat()}" if expires else "no expiry date"
