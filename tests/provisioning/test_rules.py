"""Entra group → GitLab groups and levels: matching, created-group paths, the fingerprint."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from scim_bridge.provisioning.rules import MAX_PATH_LENGTH
from scim_bridge.provisioning.rules import GroupMapper
from scim_bridge.provisioning.rules import created_group_candidates
from scim_bridge.provisioning.rules import created_group_path
from scim_bridge.provisioning.rules import fingerprint
from scim_bridge.provisioning.rules import full_path
from scim_bridge.provisioning.rules import normalize_display_name
from scim_bridge.settings import GroupRule
from scim_bridge.settings import GroupsSettings
from scim_bridge.settings import settings_from_toml

# [groups] as the schema declares its defaults; tests set their rules over it.
DEFAULT_GROUPS = settings_from_toml({}).groups
DEVS_ID = "0b3c6f5e-8f0c-4a36-9c4e-2f6a1d7e9b10"
OPS_ID = "5d2a7c1b-3e4f-4a5b-8c6d-7e8f9a0b1c2d"

# GitLab: letters, digits, '_', '-', '.'; not starting or ending with a special; no .git/.atom end.
VALID_SLUG = re.compile(r"[a-z0-9](?:[a-z0-9_.\-]*[a-z0-9])?")


def by_name(name: str, group: str, level: int) -> GroupRule:
    return GroupRule(external_id=None, display_name=name, gitlab_group=group, access_level=level)


def by_id(external_id: str, group: str, level: int) -> GroupRule:
    return GroupRule(
        external_id=external_id, display_name=None, gitlab_group=group, access_level=level
    )


RULES = (
    by_name("GitLab Developers", "acme/engineering", 30),
    by_id(DEVS_ID, "acme/engineering", 40),
    by_name("GitLab Developers", "acme/handbook", 20),
    by_id(OPS_ID, "acme/ops", 40),
    by_name("Café Ops", "acme/ops", 20),
)


@pytest.fixture
def mapper() -> GroupMapper:
    return GroupMapper(replace(DEFAULT_GROUPS, rules=RULES))


def test_display_name_rules_match_case_insensitively(mapper: GroupMapper) -> None:
    expected = {"acme/engineering": 30, "acme/handbook": 20}
    assert mapper.targets("GitLab Developers", None) == expected
    assert mapper.targets("gitlab DEVELOPERS", None) == expected
    assert mapper.targets("GitLab Developers", "some-other-object-id") == expected
    assert mapper.mapped("GITLAB developers", None)


def test_display_names_compare_in_nfc() -> None:
    decomposed = "Cafe\u0301 OPS"  # "e" + combining acute accent
    assert normalize_display_name(decomposed) == normalize_display_name("Café Ops") == "café ops"
    mapper = GroupMapper(replace(DEFAULT_GROUPS, rules=RULES))
    assert mapper.targets(decomposed, None) == {"acme/ops": 20}


def test_external_id_rules_match_exactly(mapper: GroupMapper) -> None:
    assert mapper.targets(None, OPS_ID) == {"acme/ops": 40}
    assert mapper.targets("Renamed in Entra", OPS_ID) == {"acme/ops": 40}
    assert mapper.targets(None, OPS_ID.upper()) == {}
    assert not mapper.mapped(None, OPS_ID.upper())
    assert mapper.targets(DEVS_ID, None) == {}  # an object id is not a display name


def test_highest_level_wins_for_the_same_gitlab_group(mapper: GroupMapper) -> None:
    # display_name grants developer (30), external_id maintainer (40) on acme/engineering.
    assert mapper.targets("GitLab Developers", DEVS_ID) == {
        "acme/engineering": 40,
        "acme/handbook": 20,
    }
    assert mapper.targets("café ops", OPS_ID) == {"acme/ops": 40}


def test_highest_level_wins_whatever_the_order_and_spelling() -> None:
    rules = (
        by_name("Devs", "Acme/Engineering", 40),
        by_name("devs", "acme/engineering", 15),
        by_name("DEVS", "acme/engineering", 25),
    )
    for ordered in (rules, rules[::-1]):
        targets = GroupMapper(replace(DEFAULT_GROUPS, rules=ordered)).targets("Devs", None)
        assert targets == {"Acme/Engineering": 40}  # GitLab paths are case-insensitive


def test_unmapped_groups_map_to_nothing(mapper: GroupMapper) -> None:
    assert mapper.targets("Marketing", "ffffffff-0000-0000-0000-000000000000") == {}
    assert mapper.targets(None, None) == {}
    assert mapper.targets("", "") == {}
    assert not mapper.mapped("Marketing", None)
    assert GroupMapper(DEFAULT_GROUPS).targets("GitLab Developers", DEVS_ID) == {}


def test_matching_rules_keep_the_file_order(mapper: GroupMapper) -> None:
    assert mapper.matching_rules("GitLab Developers", DEVS_ID) == list(RULES[:3])


def test_creates_unmapped_follows_the_setting() -> None:
    assert not GroupMapper(DEFAULT_GROUPS).creates_unmapped
    assert GroupMapper(
        settings_from_toml({"groups": {"unmapped": "create"}}).groups
    ).creates_unmapped


@pytest.mark.parametrize(
    ("display_name", "path"),
    [
        ("GitLab Developers", "gitlab-developers"),
        ("  R&D / Ops  ", "r-d-ops"),
        ("Ünïcode Team", "n-code-team"),
        ("...", "group"),
        ("", "group"),
        ("&&&", "group"),
        ("x.git", "x-git"),
        ("X.GIT", "x-git"),
        ("feeds.atom", "feeds-atom"),
        ("a.git.git", "a.git-git"),
        ("_Team_.", "team"),
        ("release.2024_q1-ops", "release.2024_q1-ops"),
        ("a  --  b", "a----b"),  # "-" is allowed: only the runs of spaces become "-"
        ("Team 😀 Rocket", "team-rocket"),
    ],
)
def test_created_group_paths(display_name: str, path: str) -> None:
    assert created_group_path(display_name) == path
    assert VALID_SLUG.fullmatch(path)


def test_created_group_paths_are_always_valid() -> None:
    for display_name in ["Ünïcode Team", "-.-", ".git", "x.atom.", "日本語チーム", "a" * 400 + "!"]:
        path = created_group_path(display_name)
        assert VALID_SLUG.fullmatch(path), (display_name, path)
        assert not path.endswith((".git", ".atom"))
        for candidate in created_group_candidates(display_name):
            assert len(candidate) <= MAX_PATH_LENGTH


def test_candidates_suffix_on_collision() -> None:
    candidates = list(created_group_candidates("GitLab Developers"))
    assert candidates[:3] == ["gitlab-developers", "gitlab-developers-1", "gitlab-developers-2"]
    assert candidates[-1] == "gitlab-developers-50"
    assert len(candidates) == 51
    assert len(set(candidates)) == 51


def test_full_path_joins_parent_and_slug() -> None:
    assert full_path("entra", "gitlab-developers") == "entra/gitlab-developers"
    assert full_path("acme/entra", "ops-1") == "acme/entra/ops-1"
    assert full_path("", "ops") == "ops"


BASE = GroupsSettings(unmapped="create", parent="entra", default_access_level=10, rules=RULES)


def test_fingerprint_is_stable() -> None:
    assert fingerprint(BASE) == fingerprint(replace(BASE, rules=tuple(RULES)))
    assert GroupMapper(BASE).fingerprint() == fingerprint(BASE)
    assert re.fullmatch(r"[0-9a-f]{64}", fingerprint(BASE))
    # The order of the rules decides nothing, so reordering them is not a change.
    assert fingerprint(replace(BASE, rules=RULES[::-1])) == fingerprint(BASE)


@pytest.mark.parametrize(
    "changed",
    [
        replace(BASE, unmapped="ignore"),
        replace(BASE, parent="entra/groups"),
        replace(BASE, default_access_level=20),
        replace(BASE, rules=RULES[:-1]),
        replace(BASE, rules=(*RULES, RULES[0])),
        replace(BASE, rules=(replace(RULES[0], access_level=40), *RULES[1:])),
        replace(BASE, rules=(replace(RULES[0], gitlab_group="acme/eng"), *RULES[1:])),
        replace(BASE, rules=(replace(RULES[0], display_name="GitLab Devs"), *RULES[1:])),
        replace(BASE, rules=(*RULES[:1], replace(RULES[1], external_id=OPS_ID), *RULES[2:])),
        # The same value as a display name rather than an external id is another rule.
        replace(BASE, rules=(by_id("GitLab Developers", "acme/engineering", 30), *RULES[1:])),
    ],
)
def test_fingerprint_changes_with_any_rule_or_setting(changed: GroupsSettings) -> None:
    assert fingerprint(changed) != fingerprint(BASE)
