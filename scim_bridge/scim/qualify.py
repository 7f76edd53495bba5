"""Bare extension attribute names, resolved the way Entra writes them.

RFC 7644 §3.10 lets clients omit the URN of core attributes only, but Entra names the enterprise
extension's attributes bare: its manager reference check is
``filter=id eq "<id>" and manager eq "<managerId>"&attributes=id`` (entra.md §1.4). So a bare name
in a filter, ``attributes``, ``excludedAttributes``, ``sortBy`` or a PATCH path resolves against
the core schema first, then against the declared extensions when exactly one defines it; when
several do, the request is ambiguous and refused, naming the candidates.

A comparison on a single-valued complex attribute that has a ``value`` sub-attribute compares that
``value`` (``manager eq "id"`` means ``manager.value eq "id"``), as RFC 7643 §2.4 reads a
comparison on a multi-valued one.

Every filter read here is also checked for what no database can take: a NUL or a lone surrogate
reached through a JSON escape (``"\\u0000"``) is refused with a 400 before any SQL sees it, and
so is a filter of more than ``MAX_TERMS`` comparisons (SQLite refuses an expression deeper than
1000; Entra sends two).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from collections.abc import Iterable
from inspect import isclass
from typing import Any

from scim2_models import BaseModel
from scim2_models import Extension
from scim2_models import InvalidFilterException
from scim2_models import InvalidPathException
from scim2_models import InvalidValueException
from scim2_models import Resource
from scim2_models import SCIMException
from scim2_models.path import AttrPath
from scim2_models.path import Comparison
from scim2_models.path import FilterNode
from scim2_models.path import LogicalExpr
from scim2_models.path import Not
from scim2_models.path import Path
from scim2_models.path import Present
from scim2_models.path import ScimFilter
from scim2_models.path import ValuePath

Models = tuple[type[Resource[Any]], ...]
MAX_TERMS = 200
Error = Callable[[str], SCIMException]


def unstorable(text: str) -> bool:
    """Whether a string holds what PostgreSQL text cannot: NUL, or a lone UTF-16 surrogate."""
    return "\x00" in text or any("\ud800" <= char <= "\udfff" for char in text)


def refuse_unstorable(value: Any) -> None:
    """Refuse a decoded JSON value holding a string no database can store (RFC 7644 §3.12)."""
    if isinstance(value, str):
        if unstorable(value):
            raise InvalidValueException(
                detail="NUL characters and unpaired surrogates are not allowed"
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            refuse_unstorable(key)
            refuse_unstorable(item)
    elif isinstance(value, list):
        for item in value:
            refuse_unstorable(item)


@functools.cache
def _names(model: type[BaseModel]) -> dict[str, str]:
    """The attribute names a model declares, lower-cased, to their Python field names."""
    names: dict[str, str] = {}
    for field_name, info in model.model_fields.items():
        root = model.get_field_root_type(field_name)
        if isclass(root) and issubclass(root, Extension):
            continue  # an extension is named by its URN, not as an attribute
        alias = info.serialization_alias or info.alias or field_name
        names[alias.lower()] = field_name
        names[field_name.replace("_", "").lower()] = field_name
    return names


def _declares(model: type[BaseModel], attribute: str) -> str | None:
    return _names(model).get(attribute.lower())


class Qualifier:
    """Qualifies bare extension attributes for the resource types a request is about."""

    def __init__(self, models: Iterable[type[Resource[Any]]]) -> None:
        self.models: Models = tuple(models)

    def _extensions(self, attribute: str) -> list[tuple[str, type[BaseModel]]]:
        found: dict[str, type[BaseModel]] = {}
        for model in self.models:
            for urn, extension in model.get_extension_models().items():
                if _declares(extension, attribute):
                    found[urn] = extension
        return sorted(found.items())

    def _holder(self, path: AttrPath) -> tuple[type[BaseModel], str] | None:
        """The model declaring a qualified or core attribute, and its field name."""
        uri = path.uri.lower() if path.uri else None
        for model in self.models:
            holders = [
                (str(model.__schema__).lower(), model),
                *model.get_extension_models().items(),
            ]
            for urn, holder in holders:
                own = uri is None and holder is model
                if (own or uri == urn.lower()) and (field_name := _declares(holder, path.attr)):
                    return holder, field_name
        return None

    def attribute(self, path: AttrPath, error: Error) -> AttrPath:
        """``path`` with the URN of the one extension that declares it, when it is bare."""
        if path.uri is not None:
            return path
        if any(_declares(model, path.attr) for model in self.models):
            return path  # the core schema comes first
        candidates = self._extensions(path.attr)
        if len(candidates) > 1:
            urns = ", ".join(f"{urn}:{path.attr}" for urn, _ in candidates)
            raise error(f"'{path.attr}' is declared by several extensions: {urns}")
        if not candidates:
            return path  # unknown: the usual resolution reports it
        return AttrPath(path.attr, path.sub_attr, candidates[0][0])

    def compared(self, path: AttrPath) -> AttrPath:
        """A comparison on a single-valued complex attribute compares its ``value``."""
        if path.sub_attr is not None or (holder := self._holder(path)) is None:
            return path
        model, field_name = holder
        field_type = model.get_field_root_type(field_name)
        if model.get_field_multiplicity(field_name) or not (
            isclass(field_type) and issubclass(field_type, BaseModel)
        ):
            return path
        if _declares(field_type, "value") is None:
            return path
        return AttrPath(path.attr, "value", path.uri)

    def node(self, node: FilterNode, error: Error) -> FilterNode:
        """A filter tree with its attributes qualified and its values checked."""
        if isinstance(node, Comparison):
            if isinstance(node.value, str) and unstorable(node.value):
                raise error("NUL characters and unpaired surrogates are not allowed")
            path = self.compared(self.attribute(node.attr_path, error))
            return node if path == node.attr_path else dataclasses.replace(node, attr_path=path)
        if isinstance(node, Present):
            path = self.attribute(node.attr_path, error)
            return node if path == node.attr_path else dataclasses.replace(node, attr_path=path)
        if isinstance(node, ValuePath):
            # The filter inside names sub-attributes of the selected one: only values are checked.
            _check_values(node.val_filter, error)
            path = self.attribute(node.attr_path, error)
            return node if path == node.attr_path else dataclasses.replace(node, attr_path=path)
        if isinstance(node, Not):
            inner = self.node(node.expr, error)
            return node if inner is node.expr else dataclasses.replace(node, expr=inner)
        if isinstance(node, LogicalExpr):
            terms = tuple(self.node(term, error) for term in node.terms)
            changed = any(a is not b for a, b in zip(terms, node.terms, strict=True))
            return dataclasses.replace(node, terms=terms) if changed else node
        return node

    def filter(self, expression: str) -> str:
        """A filter with bare extension attributes qualified; one that does not parse is kept."""
        try:
            tree = ScimFilter(expression).ast
        except SCIMException:
            return expression  # the search reports the syntax error itself
        if _terms(tree) > MAX_TERMS:
            raise InvalidFilterException(detail=f"the filter has more than {MAX_TERMS} comparisons")
        qualified = self.node(tree, _invalid_filter)
        return expression if qualified is tree else str(qualified)

    def path(self, path: str) -> str:
        """A PATCH path with its attribute qualified; one that does not parse is kept."""
        try:
            tree = Path(path).ast
        except SCIMException:
            return path
        if tree is None:
            return path
        if isinstance(tree, AttrPath):
            qualified: Any = self.attribute(tree, _invalid_path)
        else:
            qualified = self.node(tree, _invalid_path)
        return path if qualified is tree else str(qualified)

    def attribute_list(self, attributes: str) -> str:
        """``attributes``/``excludedAttributes``/``sortBy``: comma-separated attribute paths."""
        parts = [part.strip() for part in attributes.split(",")]
        qualified = [self.path(part) if part else part for part in parts]
        return attributes if qualified == parts else ",".join(qualified)


def _terms(node: FilterNode) -> int:
    """How many comparisons and presence tests a filter holds, value selections included."""
    if isinstance(node, Not):
        return _terms(node.expr)
    if isinstance(node, LogicalExpr):
        return sum(_terms(term) for term in node.terms)
    if isinstance(node, ValuePath):
        return _terms(node.val_filter)
    return 1


def _check_values(node: FilterNode, error: Error) -> None:
    if isinstance(node, Comparison):
        if isinstance(node.value, str) and unstorable(node.value):
            raise error("NUL characters and unpaired surrogates are not allowed")
    elif isinstance(node, Not):
        _check_values(node.expr, error)
    elif isinstance(node, LogicalExpr):
        for term in node.terms:
            _check_values(term, error)
    elif isinstance(node, ValuePath):
        _check_values(node.val_filter, error)


def _invalid_filter(detail: str) -> SCIMException:
    return InvalidFilterException(detail=detail)


def _invalid_path(detail: str) -> SCIMException:
    return InvalidPathException(detail=detail)
