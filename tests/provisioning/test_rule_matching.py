"""Which rules match an Entra group, exhaustively (DESIGN.md, Groups; README, "Map Entra groups").

``test_rules.py`` pins examples. Here every set of up to three rules from a small pool is asked
about every Entra group of a small pool, against an oracle from the documented rules: an
``external_id`` rule matches the object id exactly; a ``display_name`` rule matches the display
name ignoring case and Unicode composition, nothing else; several grants of one GitLab group (whose
paths GitLab compares case-insensitively) give the highest level.
"""

from __future__ import annotations

import itertools
import unicodedata
from dataclasses import replace

from scim_bridge.provisioning.rules import GroupMapper
from scim_bridge.settings import GroupRule
from tests.provisioning.test_rules import DEFAULT_GROUPS
from tests.provisioning.test_rules import DEVS_ID
from tests.provisioning.test_rules import OPS_ID
from tests.provisioning.test_rules import by_id
from tests.provisioning.test_rules import by_name

CAFE_COMPOSED = "Caf\u00e9 Team"
CAFE_DECOMPOSED = "CAFE\u0301 team"

RULE_POOL = (
    by_name("GitLab Developers", "acme/engineering", 30),
    by_name("GITLAB DEVELOPERS", "Acme/Engineering", 40),
    by_name("GitLab Developers", "acme/handbook", 20),
    by_name(CAFE_COMPOSED, "acme/engineering", 10),
    by_name("Ops", "acme/ops", 20),
    by_id(DEVS_ID, "acme/engineering", 50),
    by_id(DEVS_ID, "acme/ops", 10),
    by_id(OPS_ID, "ACME/OPS", 40),
)
RULE_SETS = [rules for size in range(4) for rules in itertools.combinations(RULE_POOL, size)]
DISPLAY_NAMES = (
    None,
    "",
    "GitLab Developers",
    "gitlab developers",
    "GitLab Developers ",  # a trailing space is another name
    "GitLab  Developers",
    CAFE_DECOMPOSED,
    "Cafe Team",  # without the accent: another name
    "ops",
    DEVS_ID,  # an object id given as a display name matches no external_id rule
)
EXTERNAL_IDS = (None, "", DEVS_ID, DEVS_ID.upper(), OPS_ID, "GitLab Developers")


def same_display_name(rule_name: str, name: str) -> bool:
    """Equal once case and Unicode composition are set aside (SCIM's displayName comparison)."""
    return unicodedata.normalize("NFD", rule_name.lower()) == unicodedata.normalize(
        "NFD", name.lower()
    )


def expected_targets(
    rules: tuple[GroupRule, ...], display_name: str | None, external_id: str | None
) -> dict[str, int]:
    levels: dict[str, int] = {}
    spellings: dict[str, list[str]] = {}
    for rule in rules:
        matches = (bool(external_id) and rule.external_id == external_id) or (
            bool(display_name)
            and rule.display_name is not None
            and same_display_name(rule.display_name, display_name or "")
        )
        if matches:
            key = rule.gitlab_group.lower()
            levels[key] = max(levels.get(key, 0), rule.access_level)
            spellings.setdefault(key, []).append(rule.gitlab_group)
    return {sorted(spellings[key])[0]: level for key, level in levels.items()}


def test_rule_matching_over_every_small_rule_set_and_entra_group() -> None:
    checked = matched = 0
    for rules in RULE_SETS:
        mapper = GroupMapper(replace(DEFAULT_GROUPS, rules=rules))
        for display_name, external_id in itertools.product(DISPLAY_NAMES, EXTERNAL_IDS):
            expected = expected_targets(rules, display_name, external_id)
            where = (rules, display_name, external_id)
            assert mapper.targets(display_name, external_id) == expected, where
            assert mapper.mapped(display_name, external_id) is bool(expected), where
            checked += 1
            matched += bool(expected)
    assert checked == len(RULE_SETS) * len(DISPLAY_NAMES) * len(EXTERNAL_IDS)
    assert 0 < matched < checked


def test_a_display_name_rule_matches_whatever_case_and_composition_either_side_has() -> None:
    mapper = GroupMapper(
        replace(DEFAULT_GROUPS, rules=(by_name(CAFE_DECOMPOSED, "acme/cafe", 20),))
    )
    assert mapper.targets(CAFE_COMPOSED, None) == {"acme/cafe": 20}
    assert mapper.targets(CAFE_COMPOSED.upper(), None) == {"acme/cafe": 20}


def test_only_case_and_composition_are_set_aside() -> None:
    mapper = GroupMapper(
        replace(DEFAULT_GROUPS, rules=(by_name("GitLab Developers", "acme/eng", 30),))
    )
    for other in (
        "GitLab Developers ",
        " GitLab Developers",
        "GitLab  Developers",
        "GitLab-Developers",
    ):
        assert mapper.targets(other, None) == {}, other


def test_a_display_name_rule_is_not_matched_by_an_object_id_equal_to_it() -> None:
    mapper = GroupMapper(
        replace(DEFAULT_GROUPS, rules=(by_name("GitLab Developers", "acme/eng", 30),))
    )
    assert mapper.targets(None, "GitLab Developers") == {}


def test_rules_of_both_kinds_add_up_across_gitlab_groups() -> None:
    rules = (by_id(OPS_ID, "acme/ops", 40), by_name("Ops", "acme/handbook", 20))
    mapper = GroupMapper(replace(DEFAULT_GROUPS, rules=rules))
    assert mapper.targets("ops", OPS_ID) == {"acme/ops": 40, "acme/handbook": 20}
