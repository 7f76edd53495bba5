"""GitLab access levels (reference/gitlab.md §1.10): by name or by number.

Operators write levels by name (``guest``, ``planner``, ``reporter``, ``developer``,
``maintainer``, ``owner``) or by number, which also reaches 5 (minimal access) and 25 (security
manager) where the GitLab edition has them. Environment variables give numbers as strings of
digits, so those are accepted too.

Levels 15 (planner) and 25 (security manager) are not strictly ordered by permission, but the
highest number wins, as in GitLab's own SAML/LDAP/SCIM group sync.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

MINIMAL_ACCESS = 5
GUEST = 10
PLANNER = 15
REPORTER = 20
SECURITY_MANAGER = 25
DEVELOPER = 30
MAINTAINER = 40
OWNER = 50

#: The names an operator may write, lower-case, and their levels.
ACCESS_LEVELS: Mapping[str, int] = MappingProxyType(
    {
        "guest": GUEST,
        "planner": PLANNER,
        "reporter": REPORTER,
        "developer": DEVELOPER,
        "maintainer": MAINTAINER,
        "owner": OWNER,
    }
)

#: Every level the bridge grants, with the name used in messages.
LEVEL_NAMES: Mapping[int, str] = MappingProxyType(
    {
        MINIMAL_ACCESS: "minimal access",
        GUEST: "guest",
        PLANNER: "planner",
        REPORTER: "reporter",
        SECURITY_MANAGER: "security manager",
        DEVELOPER: "developer",
        MAINTAINER: "maintainer",
        OWNER: "owner",
    }
)

VALID_LEVELS: tuple[int, ...] = tuple(sorted(LEVEL_NAMES))

#: What a message offers instead of a wrong level.
ALLOWED = f"use {', '.join(ACCESS_LEVELS)} or {', '.join(str(level) for level in VALID_LEVELS)}"


def parse_access_level(value: str | int) -> int:
    """The level for a name (any case) or a number (an int, or a string of digits).

    :raises ValueError: ``'dev' is not an access level; use guest, ... or 5, 10, ...``.
    """
    level: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        level = value
    elif isinstance(value, str):
        text = value.strip()
        level = int(text) if text.isascii() and text.isdigit() else ACCESS_LEVELS.get(text.lower())
    if level is None or level not in LEVEL_NAMES:
        raise ValueError(f"{value!r} is not an access level; {ALLOWED}")
    return level


def access_level_name(level: int) -> str:
    """``developer (30)``, for messages; ``unknown (35)`` for a level GitLab does not have."""
    return f"{LEVEL_NAMES.get(level, 'unknown')} ({level})"
