"""A filter scim2-models parsed, translated to one SQL condition (RFC 7644 §3.4.2.2).

:class:`FilterSql` walks the filter tree and gives one SQL condition that keeps exactly the rows
for which ``ScimFilter.match`` holds on the resource the store returns. The meaning is
scim2-models' in-memory evaluator (``scim2_models/path/visitor.py``), read rule by rule:

- Attribute names are resolved by scim2-models itself (``scim2_adapter.py``): case-insensitive,
  URN-qualified core and extension attributes, sub-attributes, and a comparison on a multi-valued
  complex attribute (``emails co "x"``) meaning its ``value`` sub-attribute.
- A comparison on a multi-valued attribute holds when one of its values satisfies it (``EXISTS``
  over the JSON array); an absent attribute is a single ``None``. ``ne`` is exactly ``not eq``
  (scim2-models reads it as "no value equals"), and is translated so.
- ``None`` equals only ``None``; every other operator is false against it. Values of different
  types never compare (a string attribute against a number, a complex attribute against anything).
- Strings compare by ``default_comparison_key``: NFC, then lower case and NFC again unless the
  attribute is ``caseExact``; ordering is by code point; ``co``/``sw``/``ew`` match the operand
  literally (``%``, ``_`` and ``\\`` are not wildcards). ``pr`` is "not None, not an empty string,
  and for a complex value one of its sub-attributes present". Booleans compare by value, binary
  values by their stored base64 form, ``meta.created``/``meta.lastModified`` as instants (an
  operand without an offset compares to no instant, as in Python).

Refused, with ``InvalidFilterException``: ``meta.location`` (the server derives it from its base
URL, which the store does not know: filter on ``id``), dateTime attributes inside the document
(none in the served schemas: dates live in columns), and a custom ``ScimPolicy.comparison_key``.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from datetime import UTC
from datetime import datetime
from decimal import Decimal
from inspect import isclass
from typing import Any

from pydantic import EmailStr
from pydantic import TypeAdapter
from scim2_models import BaseModel
from scim2_models import Extension
from scim2_models import InvalidFilterException
from scim2_models import ScimPolicy
from scim2_models import SearchRequest
from scim2_models import default_comparison_key
from scim2_models.path import AttributeBinding
from scim2_models.path import AttrPath
from scim2_models.path import CompareOperator
from scim2_models.path import Comparison
from scim2_models.path import FilterVisitor
from scim2_models.path import LogicalExpr
from scim2_models.path import LogicalOperator
from scim2_models.path import Not
from scim2_models.path import Present
from scim2_models.path import ValuePath
from scim2_models.path import coerce_value
from sqlalchemy import ColumnElement
from sqlalchemy import and_
from sqlalchemy import false
from sqlalchemy import func
from sqlalchemy import not_
from sqlalchemy import or_
from sqlalchemy import true

from scim_bridge.store.filters.dialects import SqlDialect
from scim_bridge.store.filters.folding import comparison_key
from scim_bridge.store.filters.scim2_adapter import bind_path
from scim_bridge.store.filters.scim2_adapter import validate_operator
from scim_bridge.store.filters.scim2_adapter import validate_value_selection
from scim_bridge.store.filters.values import Condition
from scim_bridge.store.filters.values import Value
from scim_bridge.store.filters.values import definite

# -- Attributes -------------------------------------------------------------------------------

STRING, BOOLEAN, NUMBER, DATETIME, BINARY, COMPLEX = (
    "string",
    "boolean",
    "number",
    "datetime",
    "binary",
    "complex",
)


def kind_of(type_: Any) -> str:
    """How values of a Python attribute type compare."""
    if isclass(type_):
        if issubclass(type_, bool):
            return BOOLEAN
        if issubclass(type_, bytes):
            return BINARY
        if issubclass(type_, datetime):
            return DATETIME
        if issubclass(type_, int | float | Decimal):
            return NUMBER
        if issubclass(type_, BaseModel):
            return COMPLEX
        if issubclass(type_, str) or type_ is EmailStr:
            return STRING
    raise InvalidFilterException(detail=f"attributes of type {type_!r} cannot be searched")


def json_key(model: type[BaseModel], field_name: str) -> str:
    """The key a field has in the stored document (its SCIM name, e.g. ``$ref``)."""
    field = model.model_fields[field_name]
    return field.serialization_alias or field.alias or field_name


def _field_type(binding: AttributeBinding) -> Any:
    return binding.sub_field_type if binding.sub_field_name else binding.field_type


class LogicSql(FilterVisitor[Condition]):
    """``not``, ``and`` and ``or``: the same SQL over a resource and over one plain list entry."""

    def visit_not(self, node: Not) -> Condition:
        return not_(self.visit(node.expr))

    def visit_logical_expr(self, node: LogicalExpr) -> Condition:
        terms = [self.visit(term) for term in node.terms]
        return and_(*terms) if node.op == LogicalOperator.and_ else or_(*terms)


class FilterSql(LogicSql):
    """A bound filter tree to one SQL condition over a resource (or one element of a list).

    :param model: the model the filter's names are resolved against: the resource type, or the
        complex type of the list a value path selects in.
    :param root: the resource (or element) as a :class:`Value`.
    :param columns: resource attributes kept in columns, by Python field name (``id``, ``meta``,
        ``user_name``, ``members``, ``groups``); the others are read from ``root``.
    :param strict: raise on an unknown attribute (a filter bound to one resource type); a filter
        bound to several types (a root search) has it match nothing instead (RFC 7644 §3.4.2.1).
    """

    def __init__(
        self,
        dialect: SqlDialect,
        model: type[BaseModel],
        root: Value,
        columns: Mapping[str, Value] | None = None,
        *,
        strict: bool = True,
        policy: ScimPolicy | None = None,
    ) -> None:
        if policy is not None and policy.comparison_key is not default_comparison_key:
            raise InvalidFilterException(detail="a custom comparison key cannot be searched in SQL")
        self.dialect = dialect
        self.model = model
        self.root = root
        self.columns = dict(columns or {})
        self.strict = strict

    # -- Reading ------------------------------------------------------------------------

    def resolve(self, path: AttrPath, *, comparison: bool = False) -> AttributeBinding | None:
        """The attribute a filter's path names, bound as ``ScimFilter.match`` binds it."""
        return bind_path(self.model, path, strict=self.strict, comparison=comparison)

    def head(self, binding: AttributeBinding) -> Value:
        """The attribute a binding names (before its sub-attribute)."""
        if binding.model is self.model and binding.field_name in self.columns:
            return self.columns[binding.field_name]
        host = self.root
        if isclass(binding.model) and issubclass(binding.model, Extension):
            host = host.child(str(binding.model.__schema__))
        return host.child(json_key(binding.model, binding.field_name))

    def sub_key(self, binding: AttributeBinding) -> str:
        assert binding.sub_field_name is not None
        model = binding.field_type
        assert isclass(model) and issubclass(model, BaseModel)
        return json_key(model, binding.sub_field_name)

    # -- Comparisons ----------------------------------------------------------------------

    def visit_comparison(self, node: Comparison) -> Condition:
        binding = self.resolve(node.attr_path, comparison=True)
        if binding is None:
            return false()
        validate_operator(binding, node.op)
        expected = coerce_value(binding, node.value, node.op)
        if node.op == CompareOperator.ne:
            # match() reads "ne" on a list as "no value equals": the negation of "eq" everywhere.
            return not_(self._attribute(binding, CompareOperator.eq, expected))
        return self._attribute(binding, node.op, expected)

    def _attribute(
        self, binding: AttributeBinding, op: CompareOperator, expected: Any
    ) -> Condition:
        head = self.head(binding)
        if not binding.is_multivalued:
            value = head.child(self.sub_key(binding)) if binding.sub_field_name else head
            return self.compare(value, binding, op, expected)
        elements = head.elements()
        matched: Condition = false()
        if elements is not None:
            item = elements.item
            if binding.sub_field_name:
                value = item.child(self.sub_key(binding))
                compared = and_(not_(item.absent()), self.compare(value, binding, op, expected))
            else:
                compared = self.compare(item, binding, op, expected)
            matched = elements.exists(compared)
        if op == CompareOperator.eq and expected is None:
            # An absent list is one None, which equals null; an empty list has no value at all.
            return or_(matched, not_(head.is_list()))
        return matched

    def compare(
        self, value: Value, binding: AttributeBinding, op: CompareOperator, expected: Any
    ) -> Condition:
        """One value against the operand, as scim2-models' ``_compare`` does (never NULL)."""
        kind = kind_of(binding.target_type)
        case_exact = binding.case_exact
        if expected is None:
            return value.absent() if op == CompareOperator.eq else false()
        if kind == STRING:
            if not isinstance(expected, str):
                return false()
            key = value.key(self.dialect, case_exact)
            operand = comparison_key(expected, case_exact)
            condition = self._strings(key, op, operand)
            return condition if value.never_null else definite(condition)
        if kind == BOOLEAN:
            if op == CompareOperator.eq and isinstance(expected, bool):
                return value.is_bool(expected)
            return false()
        if kind == NUMBER:
            if isinstance(expected, bool) or not isinstance(expected, int | float | Decimal):
                return false()
            if op not in _ORDERINGS:
                return false()
            return definite(_ORDERINGS[op](value.number(), expected))
        if kind == DATETIME:
            return self._instants(value, op, expected)
        if kind == BINARY:
            if op != CompareOperator.eq or not isinstance(expected, bytes):
                raise InvalidFilterException(detail=f"binary values only compare with eq/ne: {op}")
            # Equal bytes are equal stored (base64) forms: compare what model_dump writes.
            stored = TypeAdapter(_field_type(binding)).dump_python(expected, mode="json")
            return definite(value.text() == str(stored))
        return false()  # a complex value equals no operand but null

    def _strings(self, key: ColumnElement[Any], op: CompareOperator, operand: str) -> Any:
        dialect = self.dialect
        if op == CompareOperator.co:
            return dialect.contains(key, operand)
        if op == CompareOperator.sw:
            return dialect.startswith(key, operand)
        if op == CompareOperator.ew:
            return dialect.endswith(key, operand)
        if op == CompareOperator.eq:
            return key == operand  # equality is the same in every deterministic collation
        return _ORDERINGS[op](dialect.ordered(key), operand)

    def _instants(self, value: Value, op: CompareOperator, expected: Any) -> Condition:
        if not isinstance(expected, datetime) or op not in _ORDERINGS:
            return false()  # co/sw/ew on a dateTime: not a string, never matches
        instant = value.instant()
        if expected.tzinfo is None or expected.utcoffset() is None:
            return false()  # Python compares no naive datetime with an aware one
        try:
            bound = self.dialect.instant(expected.astimezone(UTC))
        except OverflowError:  # before 0001-01-01 or after 9999-12-31 in UTC: beyond every row
            if expected.year == 1:
                holds = op in (CompareOperator.gt, CompareOperator.ge)
            else:
                holds = op in (CompareOperator.lt, CompareOperator.le)
            return not_(value.absent()) if holds else false()
        return definite(_ORDERINGS[op](instant, bound))

    # -- Presence -----------------------------------------------------------------------

    def visit_present(self, node: Present) -> Condition:
        binding = self.resolve(node.attr_path)
        if binding is None:
            return false()
        head = self.head(binding)
        type_ = _field_type(binding)
        if not binding.is_multivalued:
            value = head.child(self.sub_key(binding)) if binding.sub_field_name else head
            return self.present(value, type_)
        elements = head.elements()
        if elements is None:
            return false()
        item = elements.item
        if binding.sub_field_name:
            value = item.child(self.sub_key(binding))
            return elements.exists(and_(not_(item.absent()), self.present(value, type_)))
        return elements.exists(self.present(item, binding.field_type))

    def present(self, value: Value, type_: Any) -> Condition:
        """``pr`` on one value: not None, not "", and a complex value with a present part."""
        if value.always_present:
            return true()
        kind = kind_of(_unwrap(type_))
        if kind in (STRING, BINARY):
            return definite(func.length(value.text()) > 0)
        if kind != COMPLEX:
            return not_(value.absent())
        model = _unwrap(type_)
        parts: list[Condition] = []
        for name in model.model_fields:
            part = value.child(json_key(model, name))
            part_type = model.get_field_root_type(name)
            if model.get_field_multiplicity(name):
                elements = part.elements()
                if elements is not None:
                    parts.append(elements.exists(self.present(elements.item, part_type)))
            else:
                parts.append(self.present(part, part_type))
        return or_(false(), *parts)

    # -- Value paths ----------------------------------------------------------------------

    def visit_value_path(self, node: ValuePath) -> Condition:
        """``emails[type eq "work"]``: one element satisfies the inner filter."""
        binding = self.resolve(node.attr_path)
        if binding is None:
            return false()
        validate_value_selection(binding)
        elements = self.head(binding).elements()
        if elements is None:
            return false()
        model = binding.field_type
        if isclass(model) and issubclass(model, BaseModel):
            inner: FilterVisitor[Condition] = FilterSql(
                self.dialect, model, elements.item, strict=self.strict
            )
        else:
            inner = ItemSql(self, elements.item, binding)
        return elements.exists(inner.visit(node.val_filter))


class ItemSql(LogicSql):
    """The inner filter of a value path over a list of plain values (``schemas[value eq "x"]``).

    As in scim2-models, ``value`` names the entry itself, compared without coercion; any other
    name matches nothing.
    """

    def __init__(self, outer: FilterSql, item: Value, binding: AttributeBinding) -> None:
        self.outer = outer
        self.item = item
        self.binding = binding

    def _is_self(self, path: AttrPath) -> bool:
        return path.attr.lower() == "value" and not path.sub_attr

    def visit_comparison(self, node: Comparison) -> Condition:
        if not self._is_self(node.attr_path):
            return false()
        if node.op == CompareOperator.ne:
            return not_(self.outer.compare(self.item, self.binding, CompareOperator.eq, node.value))
        return self.outer.compare(self.item, self.binding, node.op, node.value)

    def visit_present(self, node: Present) -> Condition:
        if not self._is_self(node.attr_path):
            return false()
        return self.outer.present(self.item, self.binding.field_type)

    def visit_value_path(self, node: ValuePath) -> Condition:
        return false()  # a value path nested in another (the errata forbid it)


_ORDERINGS: dict[CompareOperator, Callable[[Any, Any], Any]] = {
    CompareOperator.eq: lambda left, right: left == right,
    CompareOperator.gt: lambda left, right: left > right,
    CompareOperator.ge: lambda left, right: left >= right,
    CompareOperator.lt: lambda left, right: left < right,
    CompareOperator.le: lambda left, right: left <= right,
}


def _unwrap(type_: Any) -> Any:
    metadata = getattr(type_, "__metadata__", None)
    return type_.__args__[0] if metadata else type_


# -- Entry points -----------------------------------------------------------------------------


def filter_condition(
    search_request: SearchRequest[Any],
    translator: FilterSql,
) -> Condition:
    """The WHERE condition of a search; all rows without a filter."""
    if search_request.filter is None:
        return true()
    return translator.visit(search_request.filter.ast)
