"""Sort orders (RFC 7644 §3.4.2.3) as SQL: what ``SearchRequest.sort`` does, in ORDER BY.

The sort key is ``SearchRequest.sort_value`` read in SQL: the comparison key of a string (ordered
by code point), a boolean as 0/1, a number, an instant; for a multi-valued attribute, the value of
its primary entry, else of its first one. A resource without a value sorts as ``None`` does.
"""

from __future__ import annotations

from inspect import isclass
from typing import Any

from scim2_models import BaseModel
from scim2_models import InvalidFilterException
from scim2_models import InvalidPathException
from scim2_models import SearchRequest
from scim2_models.path import AttributeBinding
from sqlalchemy import ColumnElement
from sqlalchemy import case
from sqlalchemy import false
from sqlalchemy import null

from scim_bridge.store.filters.translation import BOOLEAN
from scim_bridge.store.filters.translation import DATETIME
from scim_bridge.store.filters.translation import NUMBER
from scim_bridge.store.filters.translation import STRING
from scim_bridge.store.filters.translation import FilterSql
from scim_bridge.store.filters.translation import json_key
from scim_bridge.store.filters.translation import kind_of
from scim_bridge.store.filters.values import Condition
from scim_bridge.store.filters.values import Value


def sort_clauses(
    search_request: SearchRequest[Any], translator: FilterSql, tie_breaker: ColumnElement[Any]
) -> list[Any] | None:
    """ORDER BY for ``sortBy``/``sortOrder``, or None without ``sortBy``.

    Ascending puts resources without a value last and descending first, as
    ``SearchRequest.sort`` does (RFC 7644 §3.4.2.3); equal values keep ``tie_breaker`` order.
    """
    if search_request.sort_by is None:
        return None
    binding = search_request.sort_binding(translator.model)
    if binding is None:
        return [tie_breaker]
    try:
        key = sort_key(translator, binding)
    except InvalidFilterException as error:
        raise InvalidPathException(detail=error.detail) from error
    if search_request.sort_order == SearchRequest.SortOrder.descending:
        return [key.desc().nulls_first(), tie_breaker]
    return [key.asc().nulls_last(), tie_breaker]


def sort_key(translator: FilterSql, binding: AttributeBinding) -> ColumnElement[Any]:
    """What ``SearchRequest.sort_value`` gives, as SQL: NULL where it is None."""
    kind = kind_of(binding.target_type)
    head = translator.head(binding)
    dialect = translator.dialect
    if not binding.is_multivalued:
        value = head.child(translator.sub_key(binding)) if binding.sub_field_name else head
        return _sortable(translator, value, kind, binding.case_exact)
    elements = head.elements()
    if elements is None:
        return null()
    item = elements.item
    entry_model = binding.field_type
    primary: Condition = false()
    if (
        isclass(entry_model)
        and issubclass(entry_model, BaseModel)
        and "primary" in entry_model.model_fields
    ):
        primary = item.child(json_key(entry_model, "primary")).is_bool(True)
    value = item.child(translator.sub_key(binding)) if binding.sub_field_name else item
    first = elements.first(
        _sortable(translator, value, kind, binding.case_exact, ordered=False), primary
    )
    return dialect.ordered(first) if kind == STRING else first


def _sortable(
    translator: FilterSql, value: Value, kind: str, case_exact: bool, *, ordered: bool = True
) -> ColumnElement[Any]:
    dialect = translator.dialect
    if kind == STRING:
        key = value.key(dialect, case_exact)
        return dialect.ordered(key) if ordered else key
    if kind == BOOLEAN:
        return case((value.is_bool(False), 0), (value.is_bool(True), 1))
    if kind == NUMBER:
        return value.number()
    if kind == DATETIME:
        return value.instant()
    raise InvalidPathException(detail=f"cannot sort on a {kind} attribute")
