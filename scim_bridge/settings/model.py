"""The typed settings the bridge runs on: frozen dataclasses, built only by the schemas.

No field has a default here: each default is declared once, in :mod:`scim_bridge.settings.schemas`,
so a setting the bridge runs on is always one the operator's start-up would have validated. The
exceptions are not settings keys: the GitLab token (only from ``SCIM_BRIDGE_GITLAB_TOKEN``), the key
it is stored under (only from ``SCIM_BRIDGE_GITLAB_TOKEN_KEY``) and the path of the file that was read.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field


class SettingsError(ValueError):
    """Invalid settings; the message names the offending key and where it came from."""


@dataclass(frozen=True)
class GitLabSettings:
    url: str | None
    identity_provider: str
    dry_run: bool
    timeout_seconds: float
    rotate_days_before_expiry: int = 0
    rotated_token_lifetime_days: int = 365
    # Never in the file: the loader sets it from SCIM_BRIDGE_GITLAB_TOKEN.
    token: str | None = field(default=None, repr=False)
    # Never in the file: SCIM_BRIDGE_GITLAB_TOKEN_KEY, the key the stored token is encrypted with
    # (``scim_bridge.token_vault``); with it, the token lives in the database and can be rotated.
    token_key: str | None = field(default=None, repr=False)

    @property
    def planned_only(self) -> bool:
        """GitLab calls are only planned when asked to, or when no GitLab is configured."""
        return self.dry_run or not self.url or not (self.token or self.token_key)

    @property
    def stored_token(self) -> bool:
        """The token lives in the database, encrypted, where a rotation can replace it."""
        return bool(self.token_key)


@dataclass(frozen=True)
class UsersSettings:
    on_deactivate: str
    on_delete: str
    link_existing: str
    protected_usernames: tuple[str, ...]


@dataclass(frozen=True)
class ReconcileSettings:
    inline_deadline_seconds: float
    worker_poll_seconds: float
    backoff_base_seconds: float
    backoff_max_seconds: float
    max_attempts: int
    member_deletions_per_minute: int
    member_deletion_window_seconds: float
    worker_concurrency: int
    drift_interval_minutes: float = 60.0


@dataclass(frozen=True)
class ServerSettings:
    host: str
    port: int
    workers: int
    threads: int
    max_body_bytes: int
    rate_limit_per_second: float
    rate_limit_burst: int
    proxy_hops: int
    trusted_proxies: tuple[str, ...]
    trust_forwarded_host: bool
    max_connections_per_address: int


@dataclass(frozen=True)
class EntraAuthSettings:
    tenant_ids: tuple[str, ...]
    app_ids: tuple[str, ...]
    audiences: tuple[str, ...]
    jwks_url: str
    leeway_seconds: int
    jwks_refresh_floor_seconds: float
    jwks_cache_seconds: float

    @property
    def enabled(self) -> bool:
        """Entra-issued JWTs are accepted only from tenants the operator named."""
        return bool(self.tenant_ids)


@dataclass(frozen=True)
class AuthSettings:
    access_token_minutes: int
    client_secret_days: int
    failure_floor_ms: int
    failures_per_minute: int
    public_url: str | None
    oauth_scopes: tuple[str, ...]
    entra: EntraAuthSettings


@dataclass(frozen=True)
class AuditSettings:
    redact_values: bool


@dataclass(frozen=True)
class GroupRule:
    """Entra group (by ``external_id`` or by ``display_name``, exactly one) → GitLab group."""

    external_id: str | None
    display_name: str | None
    gitlab_group: str
    access_level: int


@dataclass(frozen=True)
class GroupsSettings:
    """``[groups]``: which Entra groups reach GitLab, and as what (the rules only from the file)."""

    unmapped: str
    parent: str
    default_access_level: int
    rules: tuple[GroupRule, ...]


@dataclass(frozen=True)
class Settings:
    """What the bridge runs on: one field a table, but ``[database]``'s keys stand at the top."""

    database_url: str
    auto_migrate: bool
    gitlab: GitLabSettings
    users: UsersSettings
    reconcile: ReconcileSettings
    server: ServerSettings
    groups: GroupsSettings
    auth: AuthSettings
    audit: AuditSettings
    # The TOML file read, if any (SCIM_BRIDGE_CONFIG); not a settings key.
    config_path: str | None
