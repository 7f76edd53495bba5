"""The operator's settings: a TOML file, overridden by ``SCIM_BRIDGE_*`` environment variables.

Every key is validated with marshmallow at start-up, so a typo or a wrong value stops the bridge
with a message that names the key, instead of surfacing later as a surprising provisioning run.
The names are part of the operator interface in DESIGN.md: extend them, never rename them.
"""

from __future__ import annotations

import os
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

ENV_PREFIX = "SCIM_BRIDGE_"
DEFAULT_DATABASE_URL = "sqlite:///scim-bridge.db"


class SettingsError(ValueError):
    """Invalid settings; the message names the offending key and where it came from."""


class _Section(Schema):
    class Meta:
        unknown = RAISE


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


class ServerSchema(_Section):
    host = fields.String(load_default="127.0.0.1")
    port = fields.Integer(load_default=8000, validate=validate.Range(min=0, max=65535))
    workers = fields.Integer(load_default=2, validate=validate.Range(min=1, max=64))


SECTIONS: dict[str, type[Schema]] = {
    "database": DatabaseSchema,
    "gitlab": GitLabSchema,
    "users": UsersSchema,
    "reconcile": ReconcileSchema,
    "server": ServerSchema,
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


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 2


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    auto_migrate: bool = True
    gitlab: GitLabSettings = field(default_factory=GitLabSettings)
    users: UsersSettings = field(default_factory=UsersSettings)
    reconcile: ReconcileSettings = field(default_factory=ReconcileSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    config_path: str | None = None


def _env_name(section: str, key: str) -> str:
    return f"{ENV_PREFIX}{section.upper()}_{key.upper()}"


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
        if raw is None:
            continue
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
        if key == "_schema":
            key = "?"
        text = "; ".join(_flatten(problems))
        if text == "Unknown field.":
            text = f"unknown key (known keys: {', '.join(sorted(schema.fields))})"
        raise SettingsError(f"{_describe(section, key, key in overrides, path)}: {text}") from None
    return loaded


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
    known = {*SECTIONS, "groups", "auth", "audit"}
    for section in document:
        if section not in known:
            raise SettingsError(
                f"[{section}] in {path}: unknown section (known: {', '.join(sorted(known))})"
            )
    loaded = {
        section: _load_section(section, document.get(section), environ, path)
        for section in SECTIONS
    }
    gitlab = loaded["gitlab"]
    token = environ.get(f"{ENV_PREFIX}GITLAB_TOKEN") or None
    return Settings(
        database_url=loaded["database"]["url"],
        auto_migrate=loaded["database"]["auto_migrate"],
        gitlab=GitLabSettings(
            url=(gitlab["url"] or None) and gitlab["url"].rstrip("/"),
            token=token,
            identity_provider=gitlab["identity_provider"],
            dry_run=gitlab["dry_run"],
            timeout_seconds=gitlab["timeout_seconds"],
        ),
        users=UsersSettings(
            on_deactivate=loaded["users"]["on_deactivate"],
            on_delete=loaded["users"]["on_delete"],
            link_existing=loaded["users"]["link_existing"],
            protected_usernames=tuple(loaded["users"]["protected_usernames"]),
        ),
        reconcile=ReconcileSettings(**loaded["reconcile"]),
        server=ServerSettings(**loaded["server"]),
        config_path=path,
    )
