"""GitLab usernames from Entra userNames, as properties (DESIGN.md, Users).

``test_usernames.py`` pins examples; this file states what holds for every userName: a valid GitLab
username comes out, it depends only on the part before ``@``, and the collision candidates are the
base with ``1`` to ``50`` appended, all different. "Every" is every string up to three characters
over the characters that matter, plus the endings GitLab refuses: exhaustive, and fast.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator

import pytest

from scim_bridge.provisioning.usernames import MAX_SUFFIX
from scim_bridge.provisioning.usernames import base_username
from scim_bridge.provisioning.usernames import candidates

# GitLab: letters, digits, '_', '.', '-'; no special first or last; never ending in .git/.atom.
VALID_USERNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_.\-]*[A-Za-z0-9])?")
# A letter, a digit, each special, the '@', a character GitLab refuses, one outside the BMP.
ALPHABET = "aZ9_.-@ é😀"
ENDINGS = ("", ".git", ".atom", ".GIT", ".git.atom", "..git", "-.git")


def user_names() -> Iterator[str]:
    for length in range(4):
        for characters in itertools.product(ALPHABET, repeat=length):
            text = "".join(characters)
            for ending in ENDINGS:
                yield text + ending


USER_NAMES = list(user_names())


def is_valid(username: str) -> bool:
    return bool(VALID_USERNAME.fullmatch(username)) and not username.lower().endswith(
        (".git", ".atom")
    )


def test_every_user_name_gives_a_valid_username() -> None:
    invalid = [(u, base_username(u)) for u in USER_NAMES if not is_valid(base_username(u))]
    assert not invalid, invalid[:5]


def test_a_valid_username_is_kept_as_it_is() -> None:
    for user_name in USER_NAMES:
        base = base_username(user_name)
        assert base_username(base) == base, user_name


def test_only_the_part_before_the_first_at_sign_counts() -> None:
    for user_name in USER_NAMES:
        local = user_name.split("@", 1)[0]
        assert base_username(user_name) == base_username(local), user_name
        assert base_username(f"{local}@other.example") == base_username(local), user_name


def test_each_character_gitlab_refuses_becomes_one_underscore() -> None:
    assert base_username("a  b@x") == "a__b"  # one for one, not one per run
    assert base_username("a😀b@x") == "a_b"
    assert base_username("Jane.Doe@x") == "Jane.Doe"  # case is kept


@pytest.mark.parametrize("user_name", ["Jane.Doe@contoso.com", "project.git@x", "@@@"])
def test_collision_candidates_are_the_base_then_the_base_with_1_to_50(user_name: str) -> None:
    base = base_username(user_name)
    expected = [base] + [f"{base}{suffix}" for suffix in range(1, MAX_SUFFIX + 1)]
    assert list(candidates(user_name)) == expected


def test_every_collision_candidate_is_valid_and_different() -> None:
    for user_name in USER_NAMES[::40]:
        names = list(candidates(user_name))
        assert all(is_valid(name) for name in names), names
        assert len({name.lower() for name in names}) == len(names) == MAX_SUFFIX + 1, names
