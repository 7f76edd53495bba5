"""Case folding as scim2-models compares strings, in Python for SQLite and for operands.

SQLite has no Unicode lower-casing of its own: ``db.py`` registers :data:`SQLITE_FUNCTIONS` on
every connection, so a folded column or JSON string is folded by the same code as the operand.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Any

from scim2_models import default_comparison_key


class _Folded:
    """An attribute with caseExact=false, as ``default_comparison_key`` reads one."""

    case_exact = False


class _Exact:
    """An attribute with caseExact=true."""

    case_exact = True


def comparison_key(value: str, case_exact: bool) -> str:
    """The string comparisons use for ``value``: NFC, and lower-cased unless case-exact."""
    return default_comparison_key(_Exact if case_exact else _Folded, value)


def fold(value: Any) -> str | None:
    """``scim_fold(x)`` on SQLite: the comparison key of a caseExact=false string."""
    return comparison_key(value, case_exact=False) if isinstance(value, str) else None


def nfc(value: Any) -> str | None:
    """``scim_nfc(x)`` on SQLite: the comparison key of a caseExact string."""
    return unicodedata.normalize("NFC", value) if isinstance(value, str) else None


# Registered on each SQLite connection by ``db.py`` (deterministic: usable in indexes and plans).
SQLITE_FUNCTIONS: dict[str, Callable[[Any], str | None]] = {"scim_fold": fold, "scim_nfc": nfc}
