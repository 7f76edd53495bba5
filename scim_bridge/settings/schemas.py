"""The settings keys, their defaults and their checks: one marshmallow schema per TOML table.

Each schema is the single declaration of its table: its ``load_default`` values are the bridge's
defaults, and its ``post_load`` returns the frozen dataclass of :mod:`scim_bridge.settings.model`,
so what the bridge runs on has always passed these checks. The names are the operator interface
of DESIGN.md: extend them, never rename them.
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING
from typing import Any

from marshmallow import RAISE
from marshmallow import Schema
from marshmallow import ValidationError
from marshmallow import fields
from marshmallow import post_load
from marshmallow import validate
from marshmallow import validates_schema

from scim_bridge.gitlab.access import ALLOWED as ALLOWED_ACCESS_LEVELS
from scim_bridge.gitlab.access import GUEST
from scim_bridge.gitlab.access import parse_access_level
from scim_bridge.settings.model import AuditSettings
from scim_bridge.settings.model import AuthSettings
from scim_bridge.settings.model import EntraAuthSettings
from scim_bridge.settings.model import GitLabSettings
from scim_bridge.settings.model import GroupRule
from scim_bridge.settings.model import GroupsSettings
from scim_bridge.settings.model import ReconcileSettings
from scim_bridge.settings.model import ServerSettings
from scim_bridge.settings.model import UsersSettings

if TYPE_CHECKING:
    _IntField = fields.Field[int]
else:  # marshmallow 3's Field is not subscriptable
    _IntField = fields.Field

DEFAULT_DATABASE_URL = "sqlite:///scim-bridge.db"
# Never below twice the 25 requests a second Microsoft asks gallery apps to hold (entra.md §2.6):
# a lower limit would throttle Entra into quarantine. Non-gallery apps have no Microsoft limit at
# all: Entra sends as fast as it is answered.
MIN_RATE_LIMIT_PER_SECOND = 50.0
# Per caller and process, above what one process can serve, so Entra is never refused by a bridge
# that could have served it. A caller's requests reach the limit only once on a thread (the front
# door queues the rest unread), so a process presents at most its own throughput to it; and a
# process runs Python on one core at a time, which bounds that throughput whatever the threads:
# the cheapest authenticated request costs about 3 ms of CPU (a filter GET 9 ms; measured on a
# 2-core machine), so no process serves one caller near 1000 a second.
DEFAULT_RATE_LIMIT_PER_SECOND = 1000.0
# Threads per gunicorn process: a SCIM write waits on GitLab, so throughput is threads / latency
# (Little's law). 32 lets one address (Entra) have 16 requests on threads in one process (half the
# threads, [server] max_connections_per_address), so a burst of 16 writes each waiting ~0.5 s on
# GitLab is not capped by threads even if every connection lands on the same process.
DEFAULT_THREADS = 32
# gunicorn processes. Threads share one interpreter lock per process: a request holding SQLite's
# writer lock waits for it behind the process's other threads, and every writer waits behind that
# one (benchmarks/load.py, 2-core machine: POST /Users p50 at GitLab 100 ms fell from 134 to 118 ms
# going from 2 to 4 processes; the filter GET did not lose). About 80 MB each.
DEFAULT_WORKERS = 4
# The audience of Entra's tokens for every non-gallery app (entra.md §3.2).
ENTRA_NON_GALLERY_AUDIENCE = "8adf8e6e-67b2-4cf2-a259-e3dc5476c621"
ENTRA_JWKS_URL = "https://login.microsoftonline.com/common/discovery/keys"
NEITHER_MATCH_KEY = "external_id or display_name"
BOTH_MATCH_KEYS = "external_id and display_name"


class _Section(Schema):
    class Meta:
        unknown = RAISE


def _frozen(data: dict[str, Any]) -> dict[str, Any]:
    """Arrays loaded as tuples: the settings are frozen, and shared between threads."""
    return {key: tuple(value) if isinstance(value, list) else value for key, value in data.items()}


def _ip_network(value: str) -> None:
    """An address or a CIDR block: ``10.0.0.5``, ``172.18.0.0/16``, ``::1``."""
    try:
        ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise ValidationError(
            f"{value!r} is not an IP address or CIDR block (e.g. 10.0.0.5 or 172.18.0.0/16)"
        ) from None


_GROUP_PATH = re.compile(r"[A-Za-z0-9_.\-]+(?:/[A-Za-z0-9_.\-]+)*")


def _group_path(value: str) -> None:
    """A GitLab group full path: ``acme/engineering``."""
    if not _GROUP_PATH.fullmatch(value) or any(not part.strip(".") for part in value.split("/")):
        raise ValidationError(
            f"{value!r} is not a GitLab group full path; use segments of letters, digits, "
            "'_', '.' and '-' joined by single '/', e.g. \"acme/engineering\""
        )


def _not_blank(value: str) -> None:
    if not value.strip():
        raise ValidationError("must not be empty")


def _not_blank_id(value: str) -> None:
    if not value.strip() or value != value.strip():
        raise ValidationError(f"{value!r}: must not be empty or padded with spaces")


class AccessLevel(_IntField):
    """A GitLab access level by name or number, loaded as its number."""

    default_error_messages = {"required": f"missing; {ALLOWED_ACCESS_LEVELS}"}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        try:
            return parse_access_level(value)
        except ValueError as error:
            raise ValidationError(str(error)) from None


class DatabaseSchema(_Section):
    """``[database]``: loaded as a dict, as its keys are top-level fields of ``Settings``."""

    url = fields.String(load_default=DEFAULT_DATABASE_URL, validate=validate.Length(min=1))
    auto_migrate = fields.Boolean(load_default=True)


class GitLabSchema(_Section):
    url = fields.String(load_default=None, allow_none=True)
    identity_provider = fields.String(
        load_default="openid_connect", validate=validate.Length(min=1)
    )
    dry_run = fields.Boolean(load_default=False)
    timeout_seconds = fields.Float(load_default=10.0, validate=validate.Range(min=0.1, max=300))
    # Rotate the stored token by itself this many days before it expires; 0: only on command.
    rotate_days_before_expiry = fields.Integer(
        load_default=0, validate=validate.Range(min=0, max=300)
    )
    # The lifetime a rotation asks for; GitLab refuses more than its maximum (365 by default).
    rotated_token_lifetime_days = fields.Integer(
        load_default=365, validate=validate.Range(min=2, max=3650)
    )

    @validates_schema
    def _rotation_before_lifetime(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("rotate_days_before_expiry", 0) >= data.get("rotated_token_lifetime_days", 365):
            raise ValidationError(
                "must be less than rotated_token_lifetime_days, or every reading would rotate",
                "rotate_days_before_expiry",
            )

    @post_load
    def _typed(self, data: dict[str, Any], **_: Any) -> GitLabSettings:
        url = data["url"]
        return GitLabSettings(**{**data, "url": (url or None) and url.rstrip("/")})


class UsersSchema(_Section):
    on_deactivate = fields.String(
        load_default="block", validate=validate.OneOf(["block", "deactivate", "ban"])
    )
    on_delete = fields.String(
        load_default="block", validate=validate.OneOf(["block", "delete", "hard_delete"])
    )
    link_existing = fields.String(load_default="email", validate=validate.OneOf(["email", "never"]))
    protected_usernames = fields.List(fields.String(), load_default=lambda: ["root"])

    @post_load
    def _typed(self, data: dict[str, Any], **_: Any) -> UsersSettings:
        return UsersSettings(**_frozen(data))


class ReconcileSchema(_Section):
    inline_deadline_seconds = fields.Float(
        load_default=20.0, validate=validate.Range(min=0, max=55)
    )
    worker_poll_seconds = fields.Float(load_default=1.0, validate=validate.Range(min=0.05, max=60))
    backoff_base_seconds = fields.Float(load_default=2.0, validate=validate.Range(min=0.01))
    backoff_max_seconds = fields.Float(load_default=600.0, validate=validate.Range(min=0.1))
    max_attempts = fields.Integer(load_default=20, validate=validate.Range(min=1))
    # GitLab's limit on member deletions per group (gitlab.md); 0 relies on its 429s alone.
    member_deletions_per_minute = fields.Integer(
        load_default=60, validate=validate.Range(min=0, max=10_000)
    )
    # The window GitLab counts them in (a minute); shared by every instance through the database.
    member_deletion_window_seconds = fields.Float(
        load_default=60.0, validate=validate.Range(min=1, max=3600)
    )
    # Jobs the background worker runs at once; never two for one entity (their lease).
    worker_concurrency = fields.Integer(load_default=8, validate=validate.Range(min=1, max=64))
    # GitLab compared with the store, and repaired, this often by one instance; 0 turns it off.
    drift_interval_minutes = fields.Float(
        load_default=60.0, validate=validate.Range(min=0, max=7 * 24 * 60)
    )

    @post_load
    def _typed(self, data: dict[str, Any], **_: Any) -> ReconcileSettings:
        return ReconcileSettings(**data)


class ServerSchema(_Section):
    host = fields.String(load_default="127.0.0.1")
    port = fields.Integer(load_default=8000, validate=validate.Range(min=0, max=65535))
    workers = fields.Integer(load_default=DEFAULT_WORKERS, validate=validate.Range(min=1, max=64))
    threads = fields.Integer(load_default=DEFAULT_THREADS, validate=validate.Range(min=1, max=512))
    # Larger bodies are refused with 413 before they are read (Entra's largest is a PATCH of a
    # few hundred members: well under this).
    max_body_bytes = fields.Integer(
        load_default=1024 * 1024, validate=validate.Range(min=64 * 1024, max=64 * 1024 * 1024)
    )
    # Per caller and per process (see DEFAULT_RATE_LIMIT_PER_SECOND); past it, 429 + Retry-After.
    rate_limit_per_second = fields.Float(
        load_default=DEFAULT_RATE_LIMIT_PER_SECOND,
        validate=validate.Range(min=MIN_RATE_LIMIT_PER_SECOND),
    )
    # At least ``threads`` (checked by the loader): every thread may start a request of one caller
    # at the same instant.
    rate_limit_burst = fields.Integer(load_default=200, validate=validate.Range(min=50))
    # How many proxies in front of the bridge set X-Forwarded-For/-Proto/-Host. Behind one
    # (docker-compose's nginx), 1: the caller's address then reaches the audit trail and the
    # rate limits. 0 ignores the headers, so a caller cannot claim another address.
    proxy_hops = fields.Integer(load_default=0, validate=validate.Range(min=0, max=5))
    # The proxies whose X-Forwarded-* headers are believed: addresses or CIDRs. From any other
    # peer the headers are ignored, so a caller cannot claim another address or scheme.
    trusted_proxies = fields.List(fields.String(validate=_ip_network), load_default=list)
    # X-Forwarded-Host/-Port name the host a token must be for; believed only when asked to.
    trust_forwarded_host = fields.Boolean(load_default=False)
    # Connections one address may have in service at once, per process; the rest wait unread, so
    # one address cannot take every thread. Trusted proxies are exempt (limit at the proxy).
    max_connections_per_address = fields.Integer(
        load_default=16, validate=validate.Range(min=1, max=10_000)
    )

    @post_load
    def _typed(self, data: dict[str, Any], **_: Any) -> ServerSettings:
        proxies = [item.strip() for item in data["trusted_proxies"]]
        return ServerSettings(**_frozen({**data, "trusted_proxies": proxies}))


class GroupRuleSchema(_Section):
    """One ``[[groups.rules]]`` entry: which Entra group, which GitLab group, which level."""

    external_id = fields.String(load_default=None, validate=_not_blank)
    display_name = fields.String(load_default=None, validate=_not_blank)
    gitlab_group = fields.String(
        required=True,
        validate=_group_path,
        error_messages={
            "required": 'missing; set the GitLab group full path, e.g. "acme/engineering"'
        },
    )
    access_level = AccessLevel(required=True)

    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def _exactly_one_match(self, data: Any, original_data: Any, **kwargs: Any) -> None:
        given = [key for key in ("external_id", "display_name") if key in original_data]
        if not given:
            raise ValidationError(
                "missing; a rule matches an Entra group by exactly one of them "
                "(external_id: its object id, or display_name)",
                field_name=NEITHER_MATCH_KEY,
            )
        if len(given) == 2:
            raise ValidationError(
                "both are set; a rule matches an Entra group by exactly one of them",
                field_name=BOTH_MATCH_KEYS,
            )

    @post_load
    def _typed(self, data: dict[str, Any], **_: Any) -> GroupRule:
        return GroupRule(**data)


class GroupsSchema(_Section):
    unmapped = fields.String(load_default="ignore", validate=validate.OneOf(["ignore", "create"]))
    parent = fields.String(load_default="entra", validate=_group_path)
    default_access_level = AccessLevel(load_default=GUEST)
    rules = fields.List(
        fields.Nested(GroupRuleSchema), load_default=list, metadata={"file_only": True}
    )

    @post_load
    def _typed(self, data: dict[str, Any], **_: Any) -> GroupsSettings:
        return GroupsSettings(**_frozen(data))


class EntraAuthSchema(_Section):
    """``[auth.entra]``: Entra-issued JWTs (blank Secret Token, entra.md §3.2); off without tenants."""

    tenant_ids = fields.List(fields.String(validate=_not_blank_id), load_default=list)
    # The calling applications (the token's appid/azp) accepted; none accepted without it.
    app_ids = fields.List(fields.String(validate=_not_blank_id), load_default=list)
    audiences = fields.List(
        fields.String(validate=_not_blank_id), load_default=lambda: [ENTRA_NON_GALLERY_AUDIENCE]
    )
    jwks_url = fields.String(load_default=ENTRA_JWKS_URL, validate=validate.URL(require_tld=False))
    leeway_seconds = fields.Integer(load_default=60, validate=validate.Range(min=0, max=600))
    # An unknown ``kid`` refetches the keys at most this often (a forged token cannot flood Entra).
    jwks_refresh_floor_seconds = fields.Float(
        load_default=300.0, validate=validate.Range(min=1, max=86400)
    )
    jwks_cache_seconds = fields.Float(
        load_default=86400.0, validate=validate.Range(min=60, max=7 * 86400)
    )

    @post_load
    def _typed(self, data: dict[str, Any], **_: Any) -> EntraAuthSettings:
        return EntraAuthSettings(**_frozen(data))


class AuthSchema(_Section):
    # RFC 6749 §4.4 access tokens: Entra's validator wants 60-360 minutes (entra.md §3.3).
    access_token_minutes = fields.Integer(load_default=60, validate=validate.Range(min=60, max=360))
    # OAuth2 client secrets expire; Entra's gallery rules ask for 1-3 years.
    client_secret_days = fields.Integer(load_default=365, validate=validate.Range(min=1, max=1095))
    # Every failed authentication takes at least this long, whatever was wrong (no timing oracle).
    failure_floor_ms = fields.Integer(load_default=200, validate=validate.Range(min=0, max=5000))
    # Failed authentications allowed per address and minute (a bucket of this size); beyond it the
    # address gets 429. Valid credentials are never counted nor refused by it.
    failures_per_minute = fields.Integer(
        load_default=60, validate=validate.Range(min=1, max=100_000)
    )
    # The public base URL (``https://scim.example.com``) when a proxy rewrites the host; it names
    # the issuer and audience of access tokens. By default, the URL the request came in on.
    public_url = fields.String(
        load_default=None, allow_none=True, validate=validate.URL(require_tld=False)
    )
    # What a token request may ask for in ``scope`` (Entra's optional "OAuth 2.0 scope" field).
    oauth_scopes = fields.List(fields.String(validate=_not_blank_id), load_default=lambda: ["scim"])
    # [auth.entra], a section of its own (SECTIONS): the loader loads it, with its environment
    # variables, and sets it here; loaded alone, this schema reads the table as given.
    entra = fields.Raw(load_default=None, metadata={"subsection": True})

    @post_load
    def _typed(self, data: dict[str, Any], **_: Any) -> AuthSettings:
        public_url = (data["public_url"] or "").rstrip("/") or None
        entra: EntraAuthSettings = EntraAuthSchema().load(data["entra"] or {})
        return AuthSettings(**_frozen({**data, "public_url": public_url, "entra": entra}))


class AuditSchema(_Section):
    # Keep which attributes changed but not their values (the values stay in the store).
    redact_values = fields.Boolean(load_default=False)

    @post_load
    def _typed(self, data: dict[str, Any], **_: Any) -> AuditSettings:
        return AuditSettings(**data)


# The tables of the file, in the order their problems are reported; ``a.b`` is table b inside a.
SECTIONS: dict[str, type[Schema]] = {
    "database": DatabaseSchema,
    "gitlab": GitLabSchema,
    "users": UsersSchema,
    "reconcile": ReconcileSchema,
    "server": ServerSchema,
    "groups": GroupsSchema,
    "auth": AuthSchema,
    "auth.entra": EntraAuthSchema,
    "audit": AuditSchema,
}
