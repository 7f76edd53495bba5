"""GitLab access levels by name or number (reference/gitlab.md §1.10)."""

from __future__ import annotations

import pytest

from scim_bridge.gitlab.access import ACCESS_LEVELS
from scim_bridge.gitlab.access import VALID_LEVELS
from scim_bridge.gitlab.access import access_level_name
from scim_bridge.gitlab.access import parse_access_level

ALLOWED = (
    "use guest, planner, reporter, developer, maintainer, owner or 5, 10, 15, 20, 25, 30, 40, 50"
)


def test_names_and_numbers_are_gitlabs() -> None:
    assert dict(ACCESS_LEVELS) == {
        "guest": 10,
        "planner": 15,
        "reporter": 20,
        "developer": 30,
        "maintainer": 40,
        "owner": 50,
    }
    assert VALID_LEVELS == (5, 10, 15, 20, 25, 30, 40, 50)


@pytest.mark.parametrize(
    ("value", "level"),
    [
        ("guest", 10),
        ("Planner", 15),
        ("REPORTER", 20),
        ("developer", 30),
        (" maintainer ", 40),
        ("owner", 50),
        (5, 5),
        (25, 25),
        (50, 50),
        ("5", 5),
        ("30", 30),
        (" 40 ", 40),
    ],
)
def test_parse_accepts_names_in_any_case_and_numbers(value: str | int, level: int) -> None:
    assert parse_access_level(value) == level


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("dev", "'dev'"),
        ("", "''"),
        ("admin", "'admin'"),
        ("minimal access", "'minimal access'"),
        (0, "0"),
        (35, "35"),
        (60, "60"),
        ("-10", "'-10'"),
        ("3O", "'3O'"),
        ("٣٠", "'٣٠'"),  # Arabic-Indic digits are digits to str.isdigit, not to GitLab
        (True, "True"),
        (30.0, "30.0"),
        (None, "None"),
    ],
)
def test_parse_refuses_the_rest_and_lists_what_is_allowed(value: object, shown: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_access_level(value)  # type: ignore[arg-type]
    assert str(raised.value) == f"{shown} is not an access level; {ALLOWED}"


@pytest.mark.parametrize(
    ("level", "name"),
    [
        (5, "minimal access (5)"),
        (10, "guest (10)"),
        (15, "planner (15)"),
        (20, "reporter (20)"),
        (25, "security manager (25)"),
        (30, "developer (30)"),
        (40, "maintainer (40)"),
        (50, "owner (50)"),
        (35, "unknown (35)"),
    ],
)
def test_level_names_for_messages(level: int, name: str) -> None:
    assert access_level_name(level) == name


def test_every_name_round_trips() -> None:
    for name, level in ACCESS_LEVELS.items():
        assert access_level_name(parse_access_level(name)) == f"{name} ({level})"
