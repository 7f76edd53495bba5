"""What ``store/filters/scim2_adapter.py`` takes from scim2-models, pinned by known answers.

The SQL translation binds names and refuses operators by calling scim2-models, so that it reads a
filter exactly as ``ScimFilter.match`` does: two private functions (``_validate_operator``,
``_validate_value_selection``) and the public ``ScimFilter.resolve``/``resolve_comparison``
reached through a carrier filter. Each test gives one adapted function a known input and checks
the known answer. When scim2-models is upgraded and one of them fails, its message names the
function and what it answers now: that is the place to adapt.
"""

from __future__ import annotations

from datetime import datetime
from importlib.metadata import version
from typing import Any

import pytest
from scim2_models import Email
from scim2_models import EnterpriseUser
from scim2_models import Group
from scim2_models import InvalidFilterException
from scim2_models import User
from scim2_models.path import AttributeBinding
from scim2_models.path import AttrPath
from scim2_models.path import CompareOperator

from scim_bridge.store.filters import comparison_key
from scim_bridge.store.filters.scim2_adapter import bind_path
from scim_bridge.store.filters.scim2_adapter import validate_operator
from scim_bridge.store.filters.scim2_adapter import validate_value_selection

SCIM2_MODELS = f"scim2-models {version('scim2-models')}"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
Person = User[EnterpriseUser]


def described(binding: AttributeBinding | None) -> tuple[Any, ...] | None:
    """What the translation reads off a binding."""
    if binding is None:
        return None
    return (
        binding.model.__name__,
        binding.field_name,
        binding.sub_field_name,
        binding.is_multivalued,
        binding.case_exact,
        binding.urn,
        binding.target_type,
    )


def changed(
    function: str, given: str, now: Any, expected: Any, where: str = "scim2_adapter.py"
) -> str:
    return (
        f"{SCIM2_MODELS} changed {function}: given {given}, it answers {now!r} where the SQL "
        f"translation expects {expected!r} (adapt scim_bridge/store/filters/{where})"
    )


def refusal(function: str, call: Any, given: str, detail: str) -> None:
    """``call()`` must raise InvalidFilterException whose detail contains ``detail``."""
    try:
        answer = call()
    except InvalidFilterException as error:
        assert detail in str(error.detail), changed(function, given, error.detail, detail)
        return
    raise AssertionError(
        changed(function, given, answer, f"InvalidFilterException containing {detail!r}")
    )


def accepted(function: str, call: Any, given: str) -> None:
    try:
        call()
    except InvalidFilterException as error:
        raise AssertionError(changed(function, given, error.detail, "no error")) from error


# -- bind_path (ScimFilter.resolve / resolve_comparison) -----------------------------------


@pytest.mark.parametrize(
    ("model", "path", "comparison", "expected"),
    [
        (
            Person,
            AttrPath("USERNAME"),
            False,
            ("User[EnterpriseUser]", "user_name", None, False, False, f"{CORE_USER}:userName", str),
        ),
        (
            Person,
            AttrPath("emails"),
            False,
            ("User[EnterpriseUser]", "emails", None, True, False, f"{CORE_USER}:emails", Email),
        ),
        (
            Group,
            AttrPath("members"),
            True,
            (
                "Group",
                "members",
                "value",
                True,
                True,
                "urn:ietf:params:scim:schemas:core:2.0:Group:members.value",
                str,
            ),
        ),
        (
            Person,
            AttrPath("employeeNumber", None, ENTERPRISE),
            False,
            (
                "EnterpriseUser",
                "employee_number",
                None,
                False,
                False,
                f"{ENTERPRISE}:employeeNumber",
                str,
            ),
        ),
        (
            Person,
            AttrPath("meta", "created"),
            False,
            (
                "User[EnterpriseUser]",
                "meta",
                "created",
                False,
                False,
                f"{CORE_USER}:meta.created",
                datetime,
            ),
        ),
    ],
    ids=[
        "case-insensitive",
        "multi-valued",
        "comparison-means-value",
        "extension",
        "sub-attribute",
    ],
)
def test_bind_path(model: Any, path: AttrPath, comparison: bool, expected: tuple[Any, ...]) -> None:
    given = f"{model.__name__}, {path}, comparison={comparison}"
    now = described(bind_path(model, path, strict=True, comparison=comparison))
    assert now == expected, changed("bind_path (ScimFilter.resolve)", given, now, expected)


def test_bind_path_comparison_on_emails_means_their_value() -> None:
    binding = bind_path(Person, AttrPath("emails"), strict=True, comparison=True)
    now = binding and (binding.field_name, binding.sub_field_name)
    assert now == ("emails", "value"), changed(
        "bind_path (ScimFilter.resolve_comparison)", "emails, comparison", now, ("emails", "value")
    )


def test_bind_path_unknown_attribute() -> None:
    loose = bind_path(Person, AttrPath("nickName", "x"), strict=False)
    assert loose is None, changed("bind_path", "nickName.x, strict=False", loose, None)
    loose = bind_path(Person, AttrPath("nope"), strict=False)
    assert loose is None, changed("bind_path", "nope, strict=False", loose, None)
    refusal(
        "bind_path (ScimFilter.resolve)",
        lambda: bind_path(Person, AttrPath("nope"), strict=True),
        "nope, strict=True",
        "nope",
    )


# -- validate_operator (scim2_models.path.resolution._validate_operator) -------------------


def bound(path: AttrPath, comparison: bool = True) -> AttributeBinding:
    binding = bind_path(Person, path, strict=True, comparison=comparison)
    assert binding is not None
    return binding


@pytest.mark.parametrize(
    ("path", "op", "detail"),
    [
        (AttrPath("active"), CompareOperator.gt, "boolean"),
        (AttrPath("active"), CompareOperator.co, "boolean"),
        (AttrPath("x509Certificates", "value"), CompareOperator.sw, "binary"),
        (AttrPath("password"), CompareOperator.co, "write-only"),
        (AttrPath("password"), CompareOperator.gt, "write-only"),
    ],
)
def test_validate_operator_refuses(path: AttrPath, op: CompareOperator, detail: str) -> None:
    refusal(
        "validate_operator (_validate_operator)",
        lambda: validate_operator(bound(path), op),
        f"{path} {op.value}",
        detail,
    )


@pytest.mark.parametrize(
    ("path", "op"),
    [
        (AttrPath("active"), CompareOperator.eq),
        (AttrPath("active"), CompareOperator.ne),
        (AttrPath("x509Certificates", "value"), CompareOperator.eq),
        (AttrPath("password"), CompareOperator.eq),
        (AttrPath("password"), CompareOperator.ne),
        (AttrPath("userName"), CompareOperator.co),
        (AttrPath("userName"), CompareOperator.le),
        (AttrPath("meta", "created"), CompareOperator.gt),
    ],
)
def test_validate_operator_accepts(path: AttrPath, op: CompareOperator) -> None:
    accepted(
        "validate_operator (_validate_operator)",
        lambda: validate_operator(bound(path), op),
        f"{path} {op.value}",
    )


# -- validate_value_selection (scim2_models.path.resolution._validate_value_selection) -----


def test_validate_value_selection_refuses_a_single_value() -> None:
    refusal(
        "validate_value_selection (_validate_value_selection)",
        lambda: validate_value_selection(bound(AttrPath("userName"), comparison=False)),
        "userName[...]",
        "not multi-valued",
    )


@pytest.mark.parametrize("path", [AttrPath("emails"), AttrPath("schemas")], ids=str)
def test_validate_value_selection_accepts_a_list(path: AttrPath) -> None:
    accepted(
        "validate_value_selection (_validate_value_selection)",
        lambda: validate_value_selection(bound(path, comparison=False)),
        f"{path}[...]",
    )


# -- comparison_key (default_comparison_key, given an object with case_exact) -------------


@pytest.mark.parametrize(
    ("value", "case_exact", "expected"),
    [
        ("BJensen", False, "bjensen"),
        ("BJensen", True, "BJensen"),
        ("E\u0301COLE", False, "\u00e9cole"),  # NFC, then lower case
        ("e\u0301", True, "\u00e9"),  # NFC only
        ("\u0130", False, "i\u0307"),  # full lower-casing, as PostgreSQL's ICU does
    ],
)
def test_comparison_key(value: str, case_exact: bool, expected: str) -> None:
    now = comparison_key(value, case_exact)
    given = f"{value!r}, case_exact={case_exact}"
    assert now == expected, changed(
        "comparison_key (default_comparison_key)", given, now, expected, "folding.py"
    )
