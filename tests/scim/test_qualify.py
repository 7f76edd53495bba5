"""Bare extension names when two extensions declare the same attribute (``scim/qualify.py``).

The served schemas have one extension, so the ambiguous case is proven on models built here.
"""

from __future__ import annotations

import pytest
from scim2_models import URN
from scim2_models import Extension
from scim2_models import InvalidFilterException
from scim2_models import InvalidPathException
from scim2_models import User

from scim_bridge.scim.qualify import MAX_TERMS
from scim_bridge.scim.qualify import Qualifier

HR = "urn:example:params:scim:schemas:extension:hr:2.0:User"
IT = "urn:example:params:scim:schemas:extension:it:2.0:User"


class Hr(Extension):
    __schema__ = URN(HR)
    department: str | None = None
    badge: str | None = None


class It(Extension):
    __schema__ = URN(IT)
    department: str | None = None


def test_an_attribute_two_extensions_declare_is_refused_naming_both() -> None:
    qualifier = Qualifier([User[Hr | It]])
    with pytest.raises(InvalidFilterException) as refused:
        qualifier.filter('department eq "x"')
    assert f"{HR}:department" in str(refused.value.detail)
    assert f"{IT}:department" in str(refused.value.detail)
    with pytest.raises(InvalidPathException):
        qualifier.path("department")
    with pytest.raises(InvalidPathException):
        qualifier.attribute_list("userName,department")


def test_an_attribute_one_extension_declares_is_qualified_and_core_wins() -> None:
    qualifier = Qualifier([User[Hr | It]])
    assert qualifier.filter('badge eq "7"') == f'{HR}:badge eq "7"'
    assert qualifier.path("badge") == f"{HR}:badge"
    assert qualifier.filter('title eq "x"') == 'title eq "x"'
    assert qualifier.filter(f'{IT}:department eq "x"') == f'{IT}:department eq "x"'
    assert qualifier.filter('nothing eq "x"') == 'nothing eq "x"', "left for the search to refuse"


def test_a_filter_of_too_many_comparisons_is_refused() -> None:
    qualifier = Qualifier([User[Hr]])
    fine = " or ".join(['userName eq "a"'] * MAX_TERMS)
    assert qualifier.filter(fine) == fine
    with pytest.raises(InvalidFilterException):
        qualifier.filter(fine + ' or userName eq "b"')
