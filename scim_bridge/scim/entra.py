"""Rewrites of Entra's request shapes that no ScimPolicy setting covers (entra.md §1.3, §1.5, §6).

They run on the raw JSON before validation, so the models stay strict about everything else.
"""

from __future__ import annotations

import re
from typing import Any

from scim_bridge.scim.models import ENTERPRISE_USER_URN

MANAGER_PATH = f"{ENTERPRISE_USER_URN}:manager"
_COMPARE = r"(?:eq|ne|co|sw|ew|gt|ge|lt|le)"
# `externalId eq jyoung`: Entra's documented example leaves values unquoted (an objectId too).
_BARE_VALUE = re.compile(
    rf"(?P<head>\b{_COMPARE}\s+)(?P<value>[^\s\"()\[\]]+)",
    re.IGNORECASE,
)
# What stays bare: JSON literals and numbers (RFC 7644 §3.4.2.2 compValue).
_JSON_SCALAR = re.compile(r"true|false|null|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?", re.IGNORECASE)


def quote_bare_filter_values(expression: str) -> str:
    """Quote bare words after comparison operators; a filter that parses is left as it is."""

    def quote(match: re.Match[str]) -> str:
        value = match["value"]
        if _JSON_SCALAR.fullmatch(value):
            return match[0]
        return f'{match["head"]}"{value}"'

    return _BARE_VALUE.sub(quote, expression)


def normalize_user_patch(body: Any) -> Any:
    """Fold Entra's user PATCH shapes into ones the PATCH engine applies.

    - ``path: "manager"`` (legacy Example 5) targets the enterprise manager;
    - ``remove`` of the manager with a value, or with a value filter, removes it;
    - a value of ``""``, or a ``replace`` without a value, clears the attribute: a removal
      (Entra never sends null; Microsoft's SCIM_Null_Update test sends ``""`` then null), also
      for the keys of a path-less object.
    """
    if not isinstance(body, dict):
        return body
    operations = operations_of(body)
    if not isinstance(operations, list):
        return body
    normalized: list[Any] = []
    for operation in operations:
        if isinstance(operation, dict):
            normalized.extend(_normalize(operation))
        else:
            normalized.append(operation)
    operations[:] = normalized
    return body


def _normalize(operation: dict[str, Any]) -> list[dict[str, Any]]:
    path = operation.get("path")
    if path is None:
        return _split_cleared_keys(operation)
    if not isinstance(path, str):
        return [operation]
    folded = path.strip()
    lowered = folded.lower()
    if lowered == "manager" or lowered.startswith("manager["):
        folded = MANAGER_PATH + folded[len("manager") :]
        lowered = folded.lower()
    if lowered.startswith(MANAGER_PATH.lower()):
        operation["path"] = MANAGER_PATH
        op = str(operation.get("op", "")).lower()
        if op == "remove" or (op in {"replace", "add"} and operation.get("value") in _EMPTY):
            operation["op"] = "remove"
            operation.pop("value", None)
    elif _clears(operation):
        operation["op"] = "remove"
        operation.pop("value", None)
    return [operation]


def _split_cleared_keys(operation: dict[str, Any]) -> list[dict[str, Any]]:
    """``{"op": "replace", "value": {"title": "", "displayName": "B"}}`` → a remove and a replace."""
    value = operation.get("value")
    op = str(operation.get("op", "")).lower()
    if op not in {"add", "replace"} or not isinstance(value, dict):
        return [operation]
    cleared = [key for key, item in value.items() if item == ""]
    removals = [{"op": "remove", "path": key} for key in cleared]
    kept = {key: item for key, item in value.items() if key not in cleared}
    return [*removals, {**operation, "value": kept}] if kept else removals


_EMPTY: tuple[Any, ...] = (None, "", [], {})


def _clears(operation: dict[str, Any]) -> bool:
    op = str(operation.get("op", "")).lower()
    if op == "replace" and "value" not in operation:
        return True
    return op in {"add", "replace"} and operation.get("value") == ""


def values_written_to(body: Any, names: tuple[str, ...]) -> list[Any]:
    """The values a PATCH body writes to an attribute, by path or inside a path-less value.

    ``names`` are the attribute's spellings, lower case (bare and URN-qualified).
    """
    operations = operations_of(body) if isinstance(body, dict) else None
    if not isinstance(operations, list):
        return []
    found: list[Any] = []
    for operation in operations:
        if not isinstance(operation, dict) or str(operation.get("op", "")).lower() == "remove":
            continue
        path, value = operation.get("path"), operation.get("value")
        if isinstance(path, str) and path.strip().lower() in names:
            found.append(value)
        elif path is None and isinstance(value, dict):
            found.extend(item for key, item in value.items() if key.lower() in names)
    return found


def has_no_operations(body: Any) -> bool:
    """A PATCH body whose ``Operations`` list is present and empty."""
    return isinstance(body, dict) and operations_of(body) == []


def operations_of(body: dict[str, Any]) -> Any:
    """The ``Operations`` of a PATCH body, its key spelled in any case."""
    for key, value in body.items():
        if key.lower() == "operations":
            return value
    return None
