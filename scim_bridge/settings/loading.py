"""From the TOML file and the environment to :class:`Settings`, or to a message naming the key.

Each table is merged with its ``SCIM_BRIDGE_<SECTION>_<KEY>`` variables (the environment wins) and
loaded by its schema, in the order of ``SECTIONS``: the first problem found stops the bridge, with
a message that says where the value came from (the variable, or the key in the file).
"""

from __future__ import annotations

import difflib
import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from marshmallow import Schema
from marshmallow import ValidationError
from marshmallow import fields

from scim_bridge.settings.model import ServerSettings
from scim_bridge.settings.model import Settings
from scim_bridge.settings.model import SettingsError
from scim_bridge.settings.schemas import BOTH_MATCH_KEYS
from scim_bridge.settings.schemas import NEITHER_MATCH_KEY
from scim_bridge.settings.schemas import SECTIONS
from scim_bridge.settings.schemas import GroupRuleSchema
from scim_bridge.token_vault import key_problem

ENV_PREFIX = "SCIM_BRIDGE_"
GITLAB_TOKEN_VARIABLE = f"{ENV_PREFIX}GITLAB_TOKEN"
GITLAB_TOKEN_KEY_VARIABLE = f"{ENV_PREFIX}GITLAB_TOKEN_KEY"
CONFIG_VARIABLE = f"{ENV_PREFIX}CONFIG"


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read the TOML file named by ``SCIM_BRIDGE_CONFIG`` (if any), then the environment.

    :raises SettingsError: naming the key, when a value is invalid or a key is unknown.
    """
    environ = os.environ if environ is None else environ
    path = environ.get(CONFIG_VARIABLE) or None
    document = _read_file(path) if path else {}
    return settings_from_toml(document, environ, path)


def settings_from_toml(
    document: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
    config_path: str | None = None,
) -> Settings:
    """The settings of a TOML document (as ``tomllib`` reads the file), overridden by ``environ``.

    :func:`load_settings` without the file: the tests build their settings here, so they run on
    the defaults and checks the operator's start-up uses.

    :raises SettingsError: naming the key, when a value is invalid or a key is unknown.
    """
    environ = environ or {}
    _check_sections(document, config_path)
    loaded = {
        section: _load_section(
            section, _section_values(document, section, config_path), environ, config_path
        )
        for section in SECTIONS
    }
    _require_a_usable_key(environ.get(GITLAB_TOKEN_KEY_VARIABLE))
    _require_trusted_proxies(loaded["server"])
    _require_burst_for_threads(loaded["server"])
    database = loaded["database"]
    return Settings(
        database_url=database["url"],
        auto_migrate=database["auto_migrate"],
        gitlab=replace(
            loaded["gitlab"],
            token=environ.get(GITLAB_TOKEN_VARIABLE) or None,
            token_key=environ.get(GITLAB_TOKEN_KEY_VARIABLE) or None,
        ),
        users=loaded["users"],
        reconcile=loaded["reconcile"],
        server=loaded["server"],
        groups=loaded["groups"],
        auth=replace(loaded["auth"], entra=loaded["auth.entra"]),
        audit=loaded["audit"],
        config_path=config_path,
    )


def _require_a_usable_key(keys: str | None) -> None:
    """``SCIM_BRIDGE_GITLAB_TOKEN_KEY``, when set, must be keys the vault can encrypt with."""
    if keys is None or keys == "":
        return
    problem = key_problem(keys)
    if problem is not None:
        raise SettingsError(problem)


def _env_name(section: str, key: str) -> str:
    """``auth.entra`` + ``tenant_ids`` → ``SCIM_BRIDGE_AUTH_ENTRA_TENANT_IDS``."""
    return f"{ENV_PREFIX}{section.replace('.', '_').upper()}_{key.upper()}"


def _read_file(path: str) -> dict[str, Any]:
    try:
        with Path(path).open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise SettingsError(f"{CONFIG_VARIABLE}: file {path!r} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"{CONFIG_VARIABLE}: {path!r} is not valid TOML: {error}") from None


def _check_sections(document: Mapping[str, Any], path: str | None) -> None:
    known = {section.partition(".")[0] for section in SECTIONS}
    for section in document:
        if section not in known:
            raise SettingsError(
                f"[{section}] in {path}: unknown section (known: {', '.join(sorted(known))})"
            )


def _section_values(document: Mapping[str, Any], section: str, path: str | None) -> Any:
    """The table for ``section``; ``auth.entra`` is the ``entra`` table inside ``[auth]``."""
    parent, _, child = section.partition(".")
    values = document.get(parent)
    if not child:
        return values
    if values is not None and not isinstance(values, dict):
        raise SettingsError(f"[{parent}] in {path}: must be a table")
    return (values or {}).get(child)


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
                f"named by {CONFIG_VARIABLE}, never from the environment"
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
) -> Any:
    """The section's typed settings (its schema's ``post_load``); a subsection is left out, as it
    is a section of its own."""
    if file_values is None:
        file_values = {}
    if not isinstance(file_values, dict):
        raise SettingsError(f"[{section}] in {path}: must be a table")
    if section == "gitlab" and "token" in file_values:
        raise SettingsError(
            f"[gitlab] token in {path}: the GitLab token is read only from "
            f"{GITLAB_TOKEN_VARIABLE}, never from the file"
        )
    if section == "gitlab" and "token_key" in file_values:
        raise SettingsError(
            f"[gitlab] token_key in {path}: the key is read only from "
            f"{GITLAB_TOKEN_KEY_VARIABLE}, never from the file"
        )
    schema = SECTIONS[section]()
    overrides = _env_overrides(section, schema, environ)
    merged = {**file_values, **overrides}
    for key, schema_field in schema.fields.items():
        if schema_field.metadata.get("subsection"):
            merged.pop(key, None)
    try:
        return schema.load(merged)
    except ValidationError as error:
        messages = error.messages
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


def _require_trusted_proxies(server: ServerSettings) -> None:
    """Checked once every key is valid: the proxies' addresses are needed to believe them."""
    if server.proxy_hops and not server.trusted_proxies:
        raise SettingsError(
            f"[server] proxy_hops = {server.proxy_hops} needs [server] trusted_proxies: the "
            "addresses (or CIDR blocks) of those proxies, whose X-Forwarded-* headers are believed"
        )


def _require_burst_for_threads(server: ServerSettings) -> None:
    """Every thread of a process may start a request of the same caller at one instant (through a
    trusted proxy, one caller can hold them all): a smaller burst would refuse requests the process
    was serving anyway."""
    if server.rate_limit_burst < server.threads:
        raise SettingsError(
            f"[server] rate_limit_burst = {server.rate_limit_burst} is below [server] threads = "
            f"{server.threads}: a caller's requests may start on every thread at once; raise "
            "rate_limit_burst to at least threads"
        )


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
