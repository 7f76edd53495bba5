"""The operator's settings: a TOML file, overridden by ``SCIM_BRIDGE_*`` environment variables.

Every key is validated with marshmallow at start-up, so a typo or a wrong value stops the bridge
with a message that names the key, instead of surfacing later as a surprising provisioning run.
The names are part of the operator interface in DESIGN.md: extend them, never rename them.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

from marshmallow import RAISE
from marshmallow import Schema
from marshmallow import ValidationError
from marshmallow import fields
from marshmallow import validate
from marshmallow import validates_schema

from scim_bridge.gitlab.access import ALLOWED as ALLOWED_ACCESS_LEVELS
from scim_bridge.gitlab.access import GUEST
from scim_bridge.gitlab.access import parse_access_level

ENV_PREFIX = "SCIM_BRIDGE_"
DEFAULT_DATABASE_URL = "sqlite:///scim-bridge.db"
MIN_RATE_LIMIT_PER_SECOND = 50.0
# The audience of Entra's tokens for every non-gallery app (entra.md §3.2).
ENTRA_NON_GALLERY_AUDIENCE = "8adf8e6e-67b2-4cf2-a259-e3dc5476c621"
ENTRA_JWKS_URL = "https://login.microsoftonline.com/common/discovery/keys"


class SettingsError(ValueError):
    """Invalid settings; the message names the offending key and where it came from."""


class _Section(Schema):
    class Meta:
        unknown = RAISE


def _ip_network(value: str) -> None:
    """An address or a CIDR block: ``10.0.0.5``, ``172.18.0.0/16``, ``::1``."""
    try:
        ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise ValidationError(
            f"{value!r} is not an IP address or CIDR block (e.g. 10.0.0.5 or 172.18.0.0/16)"
        ) from None


class DatabaseSchema(_Section):
    url = fields.String(load_default=DEFAULT_DATABASE_URL, validate=validate.Length(min=1))
    auto_migrate = fields.Boolean(load_default=True)


class GitLabSchema(_Section):
    url = fields.String(load_default=None, allow_none=True)
    identity_provider = fields.String(
        load_default="openid_connect", validate=validate.Length(min=1)
    )
    dry_run = fields.Boolean(load_default=False)
    timeout_seconds = fields.Float(load_default=10.0, validate=validate.Range(min=0.1, max=300))


class UsersSchema(_Section):
    on_deactivate = fields.String(
        load_default="block", validate=validate.OneOf(["block", "deactivate", "ban"])
    )
    on_delete = fields.String(
        load_default="block", validate=validate.OneOf(["block", "delete", "hard_delete"])
    )
    link_existing = fields.String(load_default="email", validate=validate.OneOf(["email", "never"]))
    protected_usernames = fields.List(fields.String(), load_default=lambda: ["root"])


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


class ServerSchema(_Section):
    host = fields.String(load_default="127.0.0.1")
    port = fields.Integer(load_default=8000, validate=validate.Range(min=0, max=65535))
    workers = fields.Integer(load_default=2, validate=validate.Range(min=1, max=64))
    # Larger bodies are refused with 413 before they are read (Entra's largest is a PATCH of a
    # few hundred members: well under this).
    max_body_bytes = fields.Integer(
        load_default=1024 * 1024, validate=validate.Range(min=64 * 1024, max=64 * 1024 * 1024)
    )
    # Per caller and per process; never below 50/s, so Entra (25/s at most) is never throttled.
    rate_limit_per_second = fields.Float(
        load_default=100.0, validate=validate.Range(min=MIN_RATE_LIMIT_PER_SECOND)
    )
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


class AccessLevel(fields.Field):
    """A GitLab access level by name or number, loaded as its number."""

    default_error_messages = {"required": f"missing; {ALLOWED_ACCESS_LEVELS}"}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        try:
            return parse_access_level(value)
        except ValueError as error:
            raise ValidationError(str(error)) from None


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


NEITHER_MATCH_KEY = "external_id or display_name"
BOTH_MATCH_KEYS = "external_id and display_name"


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


class GroupsSchema(_Section):
    unmapped = fields.String(load_default="ignore", validate=validate.OneOf(["ignore", "create"]))
    parent = fields.String(load_default="entra", validate=_group_path)
    default_access_level = AccessLevel(load_default=GUEST)
    rules = fields.List(
        fields.Nested(GroupRuleSchema), load_default=list, metadata={"file_only": True}
    )


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
    entra = fields.Raw(load_default=None, metadata={"subsection": True})


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


class AuditSchema(_Section):
    # Keep which attributes changed but not their values (the values stay in the store).
    redact_values = fields.Boolean(load_default=False)


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


@dataclass(frozen=True)
class GitLabSettings:
    url: str | None = None
    token: str | None = field(default=None, repr=False)
    identity_provider: str = "openid_connect"
    dry_run: bool = False
    timeout_seconds: float = 10.0

    @property
    def planned_only(self) -> bool:
        """GitLab calls are only planned when asked to, or when no GitLab is configured."""
        return self.dry_run or not self.url or not self.token


@dataclass(frozen=True)
class UsersSettings:
    on_deactivate: str = "block"
    on_delete: str = "block"
    link_existing: str = "email"
    protected_usernames: tuple[str, ...] = ("root",)


@dataclass(frozen=True)
class ReconcileSettings:
    inline_deadline_seconds: float = 20.0
    worker_poll_seconds: float = 1.0
    backoff_base_seconds: float = 2.0
    backoff_max_seconds: float = 600.0
    max_attempts: int = 20
    member_deletions_per_minute: int = 60


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 2
    max_body_bytes: int = 1024 * 1024
    rate_limit_per_second: float = 100.0
    rate_limit_burst: int = 200
    proxy_hops: int = 0
    trusted_proxies: tuple[str, ...] = ()
    trust_forwarded_host: bool = False
    max_connections_per_address: int = 16


@dataclass(frozen=True)
class EntraAuthSettings:
    tenant_ids: tuple[str, ...] = ()
    app_ids: tuple[str, ...] = ()
    audiences: tuple[str, ...] = (ENTRA_NON_GALLERY_AUDIENCE,)
    jwks_url: str = ENTRA_JWKS_URL
    leeway_seconds: int = 60
    jwks_refresh_floor_seconds: float = 300.0
    jwks_cache_seconds: float = 86400.0

    @property
    def enabled(self) -> bool:
        """Entra-issued JWTs are accepted only from tenants the operator named."""
        return bool(self.tenant_ids)


@dataclass(frozen=True)
class AuthSettings:
    access_token_minutes: int = 60
    client_secret_days: int = 365
    failure_floor_ms: int = 200
    failures_per_minute: int = 60
    public_url: str | None = None
    oauth_scopes: tuple[str, ...] = ("scim",)
    entra: EntraAuthSettings = field(default_factory=EntraAuthSettings)


@dataclass(frozen=True)
class AuditSettings:
    redact_values: bool = False


@dataclass(frozen=True)
class GroupRule:
    """Entra group (by ``external_id`` or by ``display_name``, exactly one) → GitLab group."""

    external_id: str | None
    display_name: str | None
    gitlab_group: str
    access_level: int


@dataclass(frozen=True)
class GroupsSettings:
    unmapped: str = "ignore"
    parent: str = "entra"
    default_access_level: int = GUEST
    rules: tuple[GroupRule, ...] = ()


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    auto_migrate: bool = True
    gitlab: GitLabSettings = field(default_factory=GitLabSettings)
    users: UsersSettings = field(default_factory=UsersSettings)
    reconcile: ReconcileSettings = field(default_factory=ReconcileSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    groups: GroupsSettings = field(default_factory=GroupsSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    audit: AuditSettings = field(default_factory=AuditSettings)
    config_path: str | None = None


def _env_name(section: str, key: str) -> str:
    """``auth.entra`` + ``tenant_ids`` → ``SCIM_BRIDGE_AUTH_ENTRA_TENANT_IDS``."""
    return f"{ENV_PREFIX}{section.replace('.', '_').upper()}_{key.upper()}"


def _read_file(path: str) -> dict[str, Any]:
    try:
        with Path(path).open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise SettingsError(f"SCIM_BRIDGE_CONFIG: file {path!r} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"SCIM_BRIDGE_CONFIG: {path!r} is not valid TOML: {error}") from None


def _env_overrides(section: str, schema: Schema, environ: Mapping[str, str]) -> dict[str, Any]:
    """Environment values for one section; lists are comma-separated."""
    values: dict[str, Any] = {}
    for key, schema_field in schema.fields.items():
        raw = environ.get(_env_name(section, key))
        if raw is None or schema_field.metadata.get("subsection"):
            continue
        if schema_field.metadata.get("file_only"):
            raise SettingsError(
                f"{_env_name(section, key)}: [[{section}.{key}]] is read only from the file "
                "named by SCIM_BRIDGE_CONFIG, never from the environment"
            )
        if isinstance(schema_field, fields.List):
            values[key] = [item.strip() for item in raw.split(",") if item.strip()]
        else:
            values[key] = raw
    return values


def _describe(section: str, key: str, from_env: bool, path: str | None) -> str:
    if from_env:
        return _env_name(section, key)
    where = f" in {path}" if path else ""
    return f"[{section}] {key}{where}"


def _load_section(
    section: str, file_values: Any, environ: Mapping[str, str], path: str | None
) -> dict[str, Any]:
    if file_values is None:
        file_values = {}
    if not isinstance(file_values, dict):
        raise SettingsError(f"[{section}] in {path}: must be a table")
    if section == "gitlab" and "token" in file_values:
        raise SettingsError(
            f"[gitlab] token in {path}: the GitLab token is read only from SCIM_BRIDGE_GITLAB_TOKEN, "
            "never from the file"
        )
    schema = SECTIONS[section]()
    overrides = _env_overrides(section, schema, environ)
    merged = {**file_values, **overrides}
    try:
        loaded: dict[str, Any] = schema.load(merged)
    except ValidationError as error:
        messages = error.normalized_messages()
        assert isinstance(messages, dict)
        key, problems = next(iter(messages.items()))
        if key in schema.fields and schema.fields[key].metadata.get("file_only"):
            raise _rules_error(section, key, problems, merged[key], path) from None
        if key == "_schema":
            key = "?"
        text = "; ".join(_flatten(problems))
        if text == "Unknown field.":
            text = f"unknown key (known keys: {', '.join(sorted(schema.fields))})"
        raise SettingsError(f"{_describe(section, key, key in overrides, path)}: {text}") from None
    return loaded


def _rules_error(
    section: str, key: str, problems: Any, raw: Any, path: str | None
) -> SettingsError:
    """``[[groups.rules]] #2 (display_name = "Devs") in PATH: access_level: ...``."""
    where = f" in {path}" if path else ""
    if not isinstance(raw, list):
        return SettingsError(
            f"[{section}] {key}{where}: must be an array of tables, each written as a "
            f"[[{section}.{key}]] section, not {_toml_kind(raw)}"
        )
    for number, rule in enumerate(raw, start=1):
        if not isinstance(rule, dict):
            return SettingsError(
                f"[[{section}.{key}]] #{number}{where}: must be a table, each written as a "
                f"[[{section}.{key}]] section, not {_toml_kind(rule)}"
            )
    index, rule_problems = next(iter(problems.items()))
    return SettingsError(
        f"[[{section}.{key}]] #{index + 1}{_rule_label(raw[index])}{where}: "
        f"{_first_rule_problem(rule_problems)}"
    )


def _rule_label(rule: dict[str, Any]) -> str:
    """`` (display_name = "GitLab Developers")``: how the operator finds the rule in the file."""
    shown = [
        f"{name} = {json.dumps(rule[name], ensure_ascii=False, default=str)}"
        for name in ("external_id", "display_name")
        if name in rule
    ]
    return f" ({', '.join(shown)})" if shown else ""


_RULE_PROBLEM_ORDER = (
    NEITHER_MATCH_KEY,
    BOTH_MATCH_KEYS,
    *GroupRuleSchema().fields,
)


def _first_rule_problem(problems: dict[str, Any]) -> str:
    """Unknown keys (typos) first, as they explain the rest; then in the order of the keys."""
    key = min(
        problems,
        key=lambda name: _RULE_PROBLEM_ORDER.index(name) if name in _RULE_PROBLEM_ORDER else -1,
    )
    text = "; ".join(_flatten(problems[key]))
    if text == "Unknown field.":
        known = sorted(GroupRuleSchema().fields)
        text = f"unknown key (known keys: {', '.join(known)})"
        close = difflib.get_close_matches(key, known, n=1)
        if close:
            text += f"; did you mean {close[0]}?"
    return f"{key}: {text}"


def _toml_kind(value: Any) -> str:
    kinds = (
        (bool, "a boolean"),
        (int, "an integer"),
        (float, "a float"),
        (str, "a string"),
        (dict, "a table"),
        (list, "an array"),
    )
    return next((kind for type_, kind in kinds if isinstance(value, type_)), "a date or time")


def _flatten(problems: Any) -> list[str]:
    if isinstance(problems, str):
        return [problems]
    if isinstance(problems, dict):
        return [
            f"item {index}: {text}" for index, value in problems.items() for text in _flatten(value)
        ]
    return [text for value in problems for text in _flatten(value)]


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read the TOML file named by ``SCIM_BRIDGE_CONFIG`` (if any), then the environment.

    :raises SettingsError: naming the key, when a value is invalid or a key is unknown.
    """
    environ = os.environ if environ is None else environ
    path = environ.get(f"{ENV_PREFIX}CONFIG") or None
    document = _read_file(path) if path else {}
    _check_sections(document, path)
    loaded = {
        section: _load_section(section, _section_values(document, section, path), environ, path)
        for section in SECTIONS
    }
    return Settings(
        database_url=loaded["database"]["url"],
        auto_migrate=loaded["database"]["auto_migrate"],
        gitlab=_gitlab_settings(loaded["gitlab"], environ),
        users=_users_settings(loaded["users"]),
        reconcile=ReconcileSettings(**loaded["reconcile"]),
        server=_server_settings(loaded["server"]),
        groups=_groups_settings(loaded["groups"]),
        auth=_auth_settings(loaded["auth"], loaded["auth.entra"]),
        audit=AuditSettings(**loaded["audit"]),
        config_path=path,
    )


def _section_values(document: dict[str, Any], section: str, path: str | None) -> Any:
    """The table for ``section``; ``auth.entra`` is the ``entra`` table inside ``[auth]``."""
    parent, _, child = section.partition(".")
    values = document.get(parent)
    if not child:
        return values
    if values is not None and not isinstance(values, dict):
        raise SettingsError(f"[{parent}] in {path}: must be a table")
    return (values or {}).get(child)


def _check_sections(document: dict[str, Any], path: str | None) -> None:
    known = {section.partition(".")[0] for section in SECTIONS}
    for section in document:
        if section not in known:
            raise SettingsError(
                f"[{section}] in {path}: unknown section (known: {', '.join(sorted(known))})"
            )


def _gitlab_settings(gitlab: dict[str, Any], environ: Mapping[str, str]) -> GitLabSettings:
    return GitLabSettings(
        url=(gitlab["url"] or None) and gitlab["url"].rstrip("/"),
        token=environ.get(f"{ENV_PREFIX}GITLAB_TOKEN") or None,
        identity_provider=gitlab["identity_provider"],
        dry_run=gitlab["dry_run"],
        timeout_seconds=gitlab["timeout_seconds"],
    )


def _auth_settings(auth: dict[str, Any], entra: dict[str, Any]) -> AuthSettings:
    public_url = (auth["public_url"] or "").rstrip("/") or None
    return AuthSettings(
        access_token_minutes=auth["access_token_minutes"],
        client_secret_days=auth["client_secret_days"],
        failure_floor_ms=auth["failure_floor_ms"],
        failures_per_minute=auth["failures_per_minute"],
        public_url=public_url,
        oauth_scopes=tuple(auth["oauth_scopes"]),
        entra=EntraAuthSettings(
            tenant_ids=tuple(entra["tenant_ids"]),
            app_ids=tuple(entra["app_ids"]),
            audiences=tuple(entra["audiences"]),
            jwks_url=entra["jwks_url"],
            leeway_seconds=entra["leeway_seconds"],
            jwks_refresh_floor_seconds=entra["jwks_refresh_floor_seconds"],
            jwks_cache_seconds=entra["jwks_cache_seconds"],
        ),
    )


def _server_settings(server: dict[str, Any]) -> ServerSettings:
    values = dict(server)
    values["trusted_proxies"] = tuple(item.strip() for item in server["trusted_proxies"])
    if values["proxy_hops"] and not values["trusted_proxies"]:
        raise SettingsError(
            f"[server] proxy_hops = {values['proxy_hops']} needs [server] trusted_proxies: the "
            "addresses (or CIDR blocks) of those proxies, whose X-Forwarded-* headers are believed"
        )
    return ServerSettings(**values)


def _users_settings(users: dict[str, Any]) -> UsersSettings:
    return UsersSettings(
        on_deactivate=users["on_deactivate"],
        on_delete=users["on_delete"],
        link_existing=users["link_existing"],
        protected_usernames=tuple(users["protected_usernames"]),
    )


def _groups_settings(groups: dict[str, Any]) -> GroupsSettings:
    return GroupsSettings(
        unmapped=groups["unmapped"],
        parent=groups["parent"],
        default_access_level=groups["default_access_level"],
        rules=tuple(GroupRule(**rule) for rule in groups["rules"]),
    )
