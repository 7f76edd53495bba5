"""GitLab usernames derived from Entra userNames (DESIGN.md, Users)."""

from __future__ import annotations

import itertools

import pytest

from scim_bridge.provisioning.usernames import base_username
from scim_bridge.provisioning.usernames import candidates


@pytest.mark.parametrize(
    ("user_name", "expected"),
    [
        ("Jane.Doe@contoso.com", "Jane.Doe"),
        ("jane doe@contoso.com", "jane_doe"),
        ("josé.garcía@contoso.com", "jos_.garc_a"),
        ("_.-weird-._@x", "weird"),
        ("+alias@x", "alias"),
        ("project.git@x", "project_git"),
        ("feed.atom", "feed_atom"),
        ("a.git.git@x", "a.git_git"),
        ("no-at-sign", "no-at-sign"),
        ("@@@", "user"),
        ("###@x", "user"),
    ],
)
def test_base_username(user_name: str, expected: str) -> None:
    assert base_username(user_name) == expected


def test_candidates_append_1_2_3() -> None:
    assert list(itertools.islice(candidates("jdoe@x"), 4)) == ["jdoe", "jdoe1", "jdoe2", "jdoe3"]
