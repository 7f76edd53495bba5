"""Checks of GitLab: reachable, the token an administrator's with the right scopes, the rules'
groups there, the access levels the edition has. Reads only: GET requests, no audit hook."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from typing import TypeVar

from scim_bridge import clock
from scim_bridge.checks.findings import Finding
from scim_bridge.checks.findings import Level
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
from scim_bridge.gitlab_token import TokenState
from scim_bridge.gitlab_token import expiry_date
from scim_bridge.gitlab_token import expiry_warning
from scim_bridge.provisioning.protection import resolve
from scim_bridge.settings import GitLabSettings
from scim_bridge.settings import GroupRule
from scim_bridge.settings import GroupsSettings
from scim_bridge.store.links import OPERATOR
from scim_bridge.store.links import UserLink

T = TypeVar("T")

#: The scopes the bridge's token needs (gitlab.md §1.1): `api` for writes, `admin_mode` for
#: admin calls once Admin Mode is on.
TOKEN_ADVICE = (
    "use a personal access token of an administrator with the scopes api and admin_mode "
    "in SCIM_BRIDGE_GITLAB_TOKEN"
)
#: The extern_uid of the admin probe: the identity lookup the bridge makes before every create.
PROBE_EXTERN_UID = "scim-bridge-check"
#: Planner (15) is new in GitLab 17.7 (gitlab.md §1.10).
PLANNER_SINCE = (17, 7)


def check_gitlab(
    config: GitLabSettings,
    groups: GroupsSettings,
    connect: Callable[[], GitLab],
    *,
    protected_usernames: tuple[str, ...] = (),
    links: Callable[[], list[UserLink]] | None = None,
) -> list[Finding]:
    """Reachable, the token valid and an admin's with the right scopes, the rules' groups there,
    and the accounts the bridge must never write (DESIGN.md, Ownership).

    `connect` is only called when GitLab is configured (not in dry-run); `links` reads the
    stored links when the database is ready.
    """
    if config.planned_only:
        findings = [_dry_run(config)]
        if groups.rules or groups.unmapped == "create":
            findings.append(Finding(Level.INFO, "groups", "GitLab groups not checked (dry-run)"))
        return [*findings, *check_identity_provider(config.identity_provider)]
    gitlab = connect()
    try:
        findings = _GitLabChecks(gitlab, config, groups, protected_usernames, links).run()
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

    def __init__(
        self,
        gitlab: GitLab,
        config: GitLabSettings,
        groups: GroupsSettings,
        protected_usernames: tuple[str, ...] = (),
        links: Callable[[], list[UserLink]] | None = None,
    ) -> None:
        self.gitlab = gitlab
        self.config = config
        self.groups = groups
        self.protected_usernames = protected_usernames
        self.links = links
        self.findings: list[Finding] = []
        self.enterprise: bool | None = None
        self.version: tuple[int, int] | None = None

    def add(self, level: Level, subject: str, message: str) -> None:
        self.findings.append(Finding(level, subject, message))

    def _token_name(self) -> str:
        return "the stored GitLab token" if self.config.stored_token else "SCIM_BRIDGE_GITLAB_TOKEN"

    def run(self) -> list[Finding]:
        try:
            self.instance()
            scopes = self.scopes()
            if self.admin(scopes):
                self.protection()
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
                f"GitLab refused {self._token_name()} ({_said(error)}): it is wrong, "
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
        self._warn_expiry(info)
        return scopes

    def _warn_expiry(self, info: dict[str, Any]) -> None:
        warning = expiry_warning(
            TokenState.from_api(info), clock.now().date(), stored=self.config.stored_token
        )
        if warning is not None:
            self.add(Level.WARN, "token", warning)

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

    def protection(self) -> None:
        """Resolve administrators and protected usernames to ids, as the worker does; report the
        names no account holds and the links the worker will turn into operator links."""
        try:
            resolution = self.ask(
                "owners", lambda: resolve(self.gitlab, self.protected_usernames, [])
            )
        except GitLabError as error:
            self.add(Level.FAIL, "owners", f"cannot list the administrators: {_said(error)}")
            return
        named: dict[int, list[str]] = {}
        for account in resolution.accounts:
            named.setdefault(account.gitlab_user_id, []).append(account.username)
        shown = ", ".join(f"{names[0]} (id {user_id})" for user_id, names in sorted(named.items()))
        self.add(
            Level.OK,
            "owners",
            f"never written by the bridge (administrators and [users] protected_usernames): "
            f"{shown or 'none'}",
        )
        for name in resolution.missing:
            self.add(
                Level.WARN,
                "owners",
                f"[users] protected_usernames: no GitLab account is named {name!r}; the name is "
                "still never given to an account the bridge creates",
            )
        if self.links is None:
            return
        stale = [
            link
            for link in self.links()
            if link.gitlab_user_id in named and link.origin != OPERATOR and link.retired_at is None
        ]
        for link in stale:
            self.add(
                Level.WARN,
                "owners",
                f"the {link.origin} link to {link.gitlab_username} (id {link.gitlab_user_id}) "
                "points at an administrator or a protected account: the bridge no longer writes "
                "it, and the worker makes it an operator link at its next start",
            )

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


def _expiry(value: Any) -> str:
    expires = expiry_date(value)
    return f"expires {expires.isoformat()}" if expires else "no expiry date"
