"""`scim-bridge check`: the pre-flight checks, as findings the CLI prints one per line.

Each check says what it found and, when something is wrong, what to do. Nothing here writes:
no migration, no audit event, no GitLab change, so `check` is safe to run at any time, even
against an unmigrated database or the production GitLab.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scim_bridge.checks.findings import Finding
from scim_bridge.checks.findings import Level
from scim_bridge.checks.findings import problems
from scim_bridge.checks.instance import check_gitlab
from scim_bridge.checks.local import check_credentials
from scim_bridge.checks.local import check_database
from scim_bridge.checks.local import check_settings
from scim_bridge.checks.local import database_ready
from scim_bridge.checks.token_storage import check_token_storage
from scim_bridge.gitlab.client import GitLab
from scim_bridge.store.gitlab_token import GitLabTokenStore

if TYPE_CHECKING:
    from scim_bridge.bridge import Bridge


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
            settings.auth.entra,
        )
    config = settings.gitlab
    token = config.token or ""
    if database_ready(database) and not config.planned_only:
        source = check_token_storage(config, bridge.token_vault, GitLabTokenStore(bridge.db).read())
        findings += source.findings
        token = source.token
    findings += check_gitlab(
        config,
        settings.groups,
        # Not `bridge.gitlab`: its calls are audited, and a pre-flight check writes nothing.
        lambda: GitLab(config.url or "", token, timeout=config.timeout_seconds),
        protected_usernames=settings.users.protected_usernames,
        links=bridge.links.all if database_ready(database) else None,
    )
    return findings


__all__ = ["Finding", "Level", "check_gitlab", "problems", "run_all"]
