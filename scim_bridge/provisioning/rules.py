"""Which GitLab groups an Entra group grants, at which level (DESIGN.md, Groups).

Pure functions over :class:`~scim_bridge.settings.GroupsSettings`: no I/O, no GitLab calls.

- A rule matches an Entra group by ``external_id`` (its object id, compared exactly) or by
  ``display_name`` (compared as SCIM compares ``displayName``: NFC, lower-cased).
- When several rules grant the same GitLab group, the highest level wins (GitLab's own rule).
- An Entra group no rule matches is *unmapped*: :meth:`GroupMapper.targets` returns ``{}`` and the
  caller decides, from ``unmapped``, whether to ignore it or create a group for it under
  ``parent``, at the path :func:`created_group_path` gives.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterator

from scim_bridge.settings import GroupRule
from scim_bridge.settings import GroupsSettings

_NOT_ALLOWED = re.compile(r"[^a-z0-9_.\-]+")
_SPECIALS = "-_."
_FORBIDDEN_ENDINGS = (".git", ".atom")
FALLBACK_PATH = "group"
MAX_SUFFIX = 50
MAX_PATH_LENGTH = 255  # GitLab's limit for a namespace path
_SUFFIX_ROOM = len(f"-{MAX_SUFFIX}")


def normalize_display_name(display_name: str) -> str:
    """The form display names are compared in: NFC, lower-cased."""
    return unicodedata.normalize("NFC", display_name).lower()


class GroupMapper:
    """The ``[[groups.rules]]`` as a lookup from an Entra group to GitLab groups and levels."""

    def __init__(self, settings: GroupsSettings) -> None:
        self.settings = settings
        self._by_external_id: dict[str, list[int]] = {}
        self._by_display_name: dict[str, list[int]] = {}
        for index, rule in enumerate(settings.rules):
            if rule.external_id is not None:
                self._by_external_id.setdefault(rule.external_id, []).append(index)
            if rule.display_name is not None:
                key = normalize_display_name(rule.display_name)
                self._by_display_name.setdefault(key, []).append(index)

    @property
    def creates_unmapped(self) -> bool:
        """Unmapped Entra groups get a GitLab group of their own under ``parent``."""
        return self.settings.unmapped == "create"

    def matching_rules(self, display_name: str | None, external_id: str | None) -> list[GroupRule]:
        """Every rule that matches the Entra group, in the order of the file."""
        matched: list[int] = []
        if external_id:
            matched += self._by_external_id.get(external_id, [])
        if display_name:
            matched += self._by_display_name.get(normalize_display_name(display_name), [])
        return [self.settings.rules[index] for index in sorted(matched)]

    def targets(self, display_name: str | None, external_id: str | None) -> dict[str, int]:
        """GitLab group full path → access level; ``{}`` for an unmapped group.

        GitLab compares group paths case-insensitively, so two rules naming ``Acme/Eng`` and
        ``acme/eng`` grant one group: at the higher level, under the first spelling in sort order.
        """
        granted: dict[str, tuple[str, int]] = {}
        for rule in self.matching_rules(display_name, external_id):
            key = rule.gitlab_group.lower()
            spelling, level = granted.get(key, (rule.gitlab_group, rule.access_level))
            granted[key] = (min(spelling, rule.gitlab_group), max(level, rule.access_level))
        return dict(granted.values())

    def mapped(self, display_name: str | None, external_id: str | None) -> bool:
        """Whether any rule matches the Entra group."""
        return bool(self.matching_rules(display_name, external_id))

    def fingerprint(self) -> str:
        """A stable hash of the rules and ``unmapped``/``parent``/``default_access_level``."""
        return fingerprint(self.settings)


def fingerprint(settings: GroupsSettings) -> str:
    """Hex SHA-256 of what decides the mapping; the order of the rules does not matter."""
    rules = [
        _canonical([rule.external_id, rule.display_name, rule.gitlab_group, rule.access_level])
        for rule in settings.rules
    ]
    document = {
        "version": 1,
        "unmapped": settings.unmapped,
        "parent": settings.parent,
        "default_access_level": settings.default_access_level,
        "rules": sorted(rules),
    }
    return hashlib.sha256(_canonical(document).encode()).hexdigest()


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def created_group_path(display_name: str) -> str:
    """The path (relative to ``parent``) of the GitLab group created for an unmapped group.

    The display name lower-cased, runs of other characters than ``[a-z0-9_.-]`` turned into
    ``-``, ``-``/``_``/``.`` trimmed at both ends, never ending in ``.git`` or ``.atom``; ``group``
    when nothing is left.
    """
    path = _NOT_ALLOWED.sub("-", display_name.lower())
    path = path[: MAX_PATH_LENGTH - _SUFFIX_ROOM].strip(_SPECIALS)
    while path.endswith(_FORBIDDEN_ENDINGS):
        head, _, tail = path.rpartition(".")
        path = f"{head}-{tail}"
    return path or FALLBACK_PATH


def created_group_candidates(display_name: str) -> Iterator[str]:
    """:func:`created_group_path`, then ``path-1``, ``path-2``, ... up to ``MAX_SUFFIX``."""
    path = created_group_path(display_name)
    yield path
    for suffix in range(1, MAX_SUFFIX + 1):
        yield f"{path}-{suffix}"


def full_path(parent: str, slug: str) -> str:
    """``entra`` + ``gitlab-developers`` → ``entra/gitlab-developers``."""
    parent = parent.strip("/")
    return f"{parent}/{slug}" if parent else slug
