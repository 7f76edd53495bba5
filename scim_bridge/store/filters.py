"""SCIM filters (RFC 7644 §3.4.2.2) and sort orders (§3.4.2.3) as SQL over the document tables.

A resource is a row: a few columns (``id``, the folded ``userName``/``displayName``, ``created``,
``last_modified``, ``version``) and the rest of the resource as a JSON document (``data``); a
group's members are rows of ``group_members``, and a user's groups are read from the same rows.
:class:`FilterSql` walks a filter that scim2-models parsed and bound to the resource model, and
gives one SQL condition that keeps exactly the rows for which ``ScimFilter.match`` holds on the
resource the store returns. Nothing is filtered in Python and nothing is left out: a filter this
module cannot translate raises ``InvalidFilterException`` (400 invalidFilter), never a condition
that matches everything.

The meaning is scim2-models' in-memory evaluator (``scim2_models/path/visitor.py``), read rule by
rule:

- Attribute names are resolved by scim2-models itself: case-insensitive, URN-qualified core and
  extension attributes, sub-attributes, and a comparison on a multi-valued complex attribute
  (``emails co "x"``) meaning its ``value`` sub-attribute.
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

Case folding in SQL (the documents are stored as written, not folded):

- SQLite calls Python: ``db.py`` registers ``scim_fold`` and ``scim_nfc`` (``SQLITE_FUNCTIONS``) on
  every connection, so SQLite folds exactly as scim2-models does.
- PostgreSQL folds with ``normalize(lower(normalize(x, NFC) COLLATE "und-x-icu"), NFC)``: ICU's
  full, context-sensitive lower-casing (final sigma, ``İ`` to ``i̇``), which agreed with Python for
  every code point and for 150,000 random mixed strings on PostgreSQL 15 with ICU 72. It needs a
  UTF-8 database built with ICU; without ICU the database's own ``lower()`` is used, which depends
  on its ctype (glibc's C.UTF-8 differs from Python on ``İ`` only; the "C" ctype folds ASCII only).
  Ordering uses ``COLLATE "C"`` (code point order, as Python compares strings).

Refused, with ``InvalidFilterException``: ``meta.location`` (the server derives it from its base
URL, which the store does not know: filter on ``id``), dateTime attributes inside the document
(none in the served schemas: dates live in columns), and a custom ``ScimPolicy.comparison_key``.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
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
from scim2_models import InvalidPathException
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

# scim2-models is pinned exactly (pyproject.toml): these are the functions its own evaluator uses
# to bind a path and check an operator, so the translation resolves names exactly as match() does.
from scim2_models.path.resolution import _resolve_filter_path
from scim2_models.path.resolution import _validate_operator
from scim2_models.path.resolution import _validate_value_selection
from sqlalchemy import Boolean
from sqlalchemy import ColumnElement
from sqlalchemy import FromClause
from sqlalchemy import Numeric
from sqlalchemy import Table
from sqlalchemy import Text
from sqlalchemy import and_
from sqlalchemy import case
from sqlalchemy import cast
from sqlalchemy import column
from sqlalchemy import false
from sqlalchemy import func
from sqlalchemy import literal
from sqlalchemy import literal_column
from sqlalchemy import not_
from sqlalchemy import null
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy import text as sql_text
from sqlalchemy import true
from sqlalchemy import type_coerce
from sqlalchemy.dialects.postgresql import JSONB

Condition = ColumnElement[bool]

# -- Case folding -----------------------------------------------------------------------------


class _Folded:
    case_exact = False


class _Exact:
    case_exact = True


def fold(value: Any) -> str | None:
    """``scim_fold(x)`` on SQLite: the comparison key of a caseExact=false string."""
    return default_comparison_key(_Folded, value) if isinstance(value, str) else None


def nfc(value: Any) -> str | None:
    """``scim_nfc(x)`` on SQLite: the comparison key of a caseExact string."""
    return unicodedata.normalize("NFC", value) if isinstance(value, str) else None


# Registered on each SQLite connection by ``db.py`` (deterministic: usable in indexes and plans).
SQLITE_FUNCTIONS: dict[str, Callable[[Any], str | None]] = {"scim_fold": fold, "scim_nfc": nfc}

ICU_COLLATION = "und-x-icu"


# -- Dialects ---------------------------------------------------------------------------------


class SqlDialect:
    """What differs between SQLite and PostgreSQL: JSON access, folding, ordering, substrings."""

    def document(self, data: ColumnElement[Any]) -> Value:
        raise NotImplementedError

    def fold(self, text: ColumnElement[Any]) -> ColumnElement[Any]:
        raise NotImplementedError

    def nfc(self, text: ColumnElement[Any]) -> ColumnElement[Any]:
        raise NotImplementedError

    def ordered(self, text: ColumnElement[Any]) -> ColumnElement[Any]:
        """The expression compared by code point (what Python's ``<`` on str does)."""
        return text

    def contains(self, text: ColumnElement[Any], part: str) -> Condition:
        raise NotImplementedError

    def startswith(self, text: ColumnElement[Any], part: str) -> Condition:
        raise NotImplementedError

    def endswith(self, text: ColumnElement[Any], part: str) -> Condition:
        raise NotImplementedError

    def instant(self, value: datetime) -> Any:
        """A timezone-aware datetime as the dialect binds it against a DateTime column."""
        return value


class SqliteDialect(SqlDialect):
    """JSON1 (``json_type``/``json_extract``/``json_each``) and the Python functions of db.py.

    ``LIKE`` is not used: SQLite's is case-insensitive for ASCII, which a caseExact comparison must
    not be. ``instr``/``substr`` count characters and have no wildcards at all.
    """

    def document(self, data: ColumnElement[Any]) -> Value:
        return SqliteJson(self, data, "$")

    def fold(self, text: ColumnElement[Any]) -> ColumnElement[Any]:
        return func.scim_fold(text, type_=Text)

    def nfc(self, text: ColumnElement[Any]) -> ColumnElement[Any]:
        return func.scim_nfc(text, type_=Text)

    def contains(self, text: ColumnElement[Any], part: str) -> Condition:
        return func.instr(text, part) > 0

    def startswith(self, text: ColumnElement[Any], part: str) -> Condition:
        return func.substr(text, 1, len(part)) == part

    def endswith(self, text: ColumnElement[Any], part: str) -> Condition:
        if not part:
            return text.is_not(None)
        return and_(func.length(text) >= len(part), func.substr(text, -len(part)) == part)

    def instant(self, value: datetime) -> Any:
        # SQLAlchemy keeps SQLite datetimes as naive UTC text ("YYYY-MM-DD HH:MM:SS.ffffff").
        return value.astimezone(UTC).replace(tzinfo=None)


class PostgresDialect(SqlDialect):
    """``jsonb`` operators, ICU lower-casing and ``LIKE`` with escaped operands."""

    def __init__(self, *, icu: bool = True) -> None:
        self.icu = icu

    def document(self, data: ColumnElement[Any]) -> Value:
        return PostgresJson(self, type_coerce(data, JSONB))

    def fold(self, text: ColumnElement[Any]) -> ColumnElement[Any]:
        composed = func.normalize(text, literal_column("NFC"), type_=Text)
        if self.icu:
            composed = composed.collate(ICU_COLLATION)
        return func.normalize(func.lower(composed), literal_column("NFC"), type_=Text)

    def nfc(self, text: ColumnElement[Any]) -> ColumnElement[Any]:
        return func.normalize(text, literal_column("NFC"), type_=Text)

    def ordered(self, text: ColumnElement[Any]) -> ColumnElement[Any]:
        return text.collate("C")

    # LIKE with the operand escaped ('/' escapes '/', '%' and '_'): it matches literally.
    def contains(self, text: ColumnElement[Any], part: str) -> Condition:
        return self.ordered(text).contains(part, autoescape=True)

    def startswith(self, text: ColumnElement[Any], part: str) -> Condition:
        return self.ordered(text).startswith(part, autoescape=True)

    def endswith(self, text: ColumnElement[Any], part: str) -> Condition:
        return self.ordered(text).endswith(part, autoescape=True)


def dialect_of(connection: Any) -> SqlDialect:
    """The dialect of a connection; on PostgreSQL, whether ICU can fold as Python does."""
    if connection.dialect.name == "sqlite":
        return SqliteDialect()
    if connection.dialect.name == "postgresql":
        found = connection.execute(
            sql_text("SELECT 1 FROM pg_catalog.pg_collation WHERE collname = :name"),
            {"name": ICU_COLLATION},
        ).first()
        return PostgresDialect(icu=found is not None)
    raise NotImplementedError(f"filters are not translated for {connection.dialect.name}")


# -- Values -----------------------------------------------------------------------------------


def definite(condition: Any) -> Condition:
    """A condition that is never NULL: a NULL comparison is false, so ``not`` stays its negation."""
    return func.coalesce(condition, false(), type_=Boolean)


@dataclass(frozen=True)
class Elements:
    """The values of a multi-valued attribute, as rows to look through with ``EXISTS``."""

    source: FromClause
    item: Value
    ordinal: ColumnElement[Any]
    where: tuple[Condition, ...] = ()

    def exists(self, condition: Condition) -> Condition:
        statement = select(literal_column("1")).select_from(self.source)
        return statement.where(*self.where, condition).exists()

    def first(self, value: ColumnElement[Any], primary: Condition) -> ColumnElement[Any]:
        """``value`` of the primary entry if there is one, else of the first (RFC 7644 §3.4.2.3)."""
        statement = select(value).select_from(self.source).where(*self.where)
        statement = statement.order_by(case((primary, 0), else_=1), self.ordinal).limit(1)
        return statement.scalar_subquery()


class Value:
    """One value of a resource as SQL reads it: a JSON node, a column, or nothing at all.

    ``absent`` is where Python would see ``None``; ``text``/``number`` are NULL unless the value
    has that JSON type; ``child`` and ``elements`` go into complex and multi-valued values.
    """

    always_present = False
    # A NOT NULL column: its comparisons are never NULL, and stay bare so that its index serves.
    never_null = False

    def absent(self) -> Condition:
        raise NotImplementedError

    def text(self) -> ColumnElement[Any]:
        return null()

    def key(self, dialect: SqlDialect, case_exact: bool) -> ColumnElement[Any]:
        """The comparison key of a string value (``default_comparison_key`` in SQL)."""
        return dialect.nfc(self.text()) if case_exact else dialect.fold(self.text())

    def is_bool(self, value: bool) -> Condition:
        return false()

    def number(self) -> ColumnElement[Any]:
        return null()

    def instant(self) -> ColumnElement[Any]:
        raise InvalidFilterException(detail="dateTime attributes are only searchable in meta")

    def child(self, key: str) -> Value:
        return Nothing()

    def is_list(self) -> Condition:
        return false()

    def elements(self) -> Elements | None:
        return None


class Nothing(Value):
    """A value the resource never has (a member's ``type``)."""

    def absent(self) -> Condition:
        return true()


class SqliteJson(Value):
    """A node of a JSON document on SQLite: ``json_type``/``json_extract`` at a path.

    An element of ``json_each`` is its own row: its type and value are columns, and only an object
    element is a document to look into (``json_extract`` on a string element would fail).
    """

    def __init__(
        self,
        dialect: SqliteDialect,
        doc: ColumnElement[Any],
        path: str,
        *,
        json_type: ColumnElement[Any] | None = None,
        atom: ColumnElement[Any] | None = None,
    ) -> None:
        self.dialect = dialect
        self.doc = doc
        self.path = path
        self._type = json_type
        self._atom = atom

    def type(self) -> ColumnElement[Any]:
        if self._type is not None:
            return self._type
        return func.json_type(self.doc, self.path, type_=Text)

    def _value(self) -> ColumnElement[Any]:
        if self._atom is not None:
            return self._atom
        return func.json_extract(self.doc, self.path)

    def absent(self) -> Condition:
        return func.coalesce(self.type(), "null") == "null"

    def text(self) -> ColumnElement[Any]:
        return case((self.type() == "text", self._value()))

    def is_bool(self, value: bool) -> Condition:
        return definite(self.type() == ("true" if value else "false"))

    def number(self) -> ColumnElement[Any]:
        return case((self.type().in_(("integer", "real")), self._value()))

    def child(self, key: str) -> Value:
        if '"' in key:
            raise InvalidFilterException(detail=f"attribute name {key!r} cannot be searched")
        if self._atom is not None:  # an element: only an object has members
            return SqliteJson(
                self.dialect, case((self.type() == "object", self._atom)), f'$."{key}"'
            )
        return SqliteJson(self.dialect, self.doc, f'{self.path}."{key}"')

    def is_list(self) -> Condition:
        return definite(self.type() == "array")

    def elements(self) -> Elements:
        if self._atom is not None:
            each = func.json_each(case((self.type() == "array", self._atom)))
        else:
            each = func.json_each(self.doc, self.path)
        rows = each.table_valued("key", "value", "type").alias()
        item = SqliteJson(self.dialect, rows.c.value, "$", json_type=rows.c.type, atom=rows.c.value)
        return Elements(rows, item, rows.c.key, (self.is_list(),))


class PostgresJson(Value):
    """A ``jsonb`` node on PostgreSQL: ``->`` into objects, ``jsonb_array_elements`` for lists."""

    def __init__(self, dialect: PostgresDialect, node: ColumnElement[Any]) -> None:
        self.dialect = dialect
        self.node = node

    def type(self) -> ColumnElement[Any]:
        return func.jsonb_typeof(self.node, type_=Text)

    def _scalar(self) -> ColumnElement[Any]:
        return self.node.op("#>>", return_type=Text)(literal_column("'{}'"))

    def absent(self) -> Condition:
        return func.coalesce(self.type(), "null") == "null"

    def text(self) -> ColumnElement[Any]:
        return case((self.type() == "string", self._scalar()))

    def is_bool(self, value: bool) -> Condition:
        return definite(
            and_(self.type() == "boolean", self._scalar() == ("true" if value else "false"))
        )

    def number(self) -> ColumnElement[Any]:
        return case((self.type() == "number", cast(self._scalar(), Numeric)))

    def child(self, key: str) -> Value:
        return PostgresJson(self.dialect, self.node.op("->", return_type=JSONB)(literal(key, Text)))

    def is_list(self) -> Condition:
        return definite(self.type() == "array")

    def elements(self) -> Elements:
        array = case((self.type() == "array", self.node), else_=cast(literal("[]"), JSONB))
        rows = (
            func.jsonb_array_elements(array)
            .table_valued(column("value", JSONB), with_ordinality="ordinality")
            .alias()
        )
        return Elements(rows, PostgresJson(self.dialect, rows.c.value), rows.c.ordinality)


class _ColumnValue(Value):
    """A value held in one column (or expression): NULL is absent."""

    def __init__(self, expression: ColumnElement[Any]) -> None:
        self.expression = expression

    def absent(self) -> Condition:
        return definite(self.expression.is_(None))


class Column(_ColumnValue):
    """A text column (or expression)."""

    def text(self) -> ColumnElement[Any]:
        return self.expression


class Identifier(Column):
    """The ``id`` column, compared as it stands so that its index serves.

    Ids are the bridge's own UUIDs: ASCII, so NFC leaves them as they are (id is caseExact).
    """

    never_null = True

    def key(self, dialect: SqlDialect, case_exact: bool) -> ColumnElement[Any]:
        return self.expression if case_exact else dialect.fold(self.expression)


class KeyColumn(Column):
    """A column that holds the folded form already (``user_name_key``): indexed and exact."""

    never_null = True

    def key(self, dialect: SqlDialect, case_exact: bool) -> ColumnElement[Any]:
        assert not case_exact, "a folded column answers for caseExact=false attributes only"
        return self.expression


class Constant(Column):
    def __init__(self, value: str) -> None:
        super().__init__(literal(value, Text))


class Instant(_ColumnValue):
    """A ``DateTime(timezone=True)`` column."""

    def instant(self) -> ColumnElement[Any]:
        return self.expression


class MetaColumns(Value):
    """``meta``: always there, its sub-attributes derived from the row."""

    always_present = True

    def __init__(self, table: Table, resource_type: str) -> None:
        version = literal('W/"', Text) + cast(table.c.version, Text) + literal('"', Text)
        self.children: dict[str, Value] = {
            "resourceType": Constant(resource_type),
            "created": Instant(table.c.created),
            "lastModified": Instant(table.c.last_modified),
            "version": Column(version),
        }

    def absent(self) -> Condition:
        return false()

    def child(self, key: str) -> Value:
        if key not in self.children:
            raise InvalidFilterException(
                detail=f"meta.{key} is not stored (meta.location follows from id: filter on id)"
            )
        return self.children[key]


class RelatedRows(Value):
    """A multi-valued attribute read from a join table, never from the stored document.

    The resource has the attribute when at least one joined row exists (never an empty list);
    its elements are the rows, ordered as GET returns them. Subclasses say which rows and what
    each element's sub-attributes are.
    """

    def _rows(self) -> tuple[FromClause, Condition, Any, Value]:
        """The joined source, the condition tying it to the resource, the order, one element."""
        raise NotImplementedError

    def absent(self) -> Condition:
        return not_(self.is_list())

    def is_list(self) -> Condition:
        source, of_resource, _order, _element = self._rows()
        return select(literal_column("1")).select_from(source).where(of_resource).exists()

    def elements(self) -> Elements:
        source, of_resource, order, element = self._rows()
        return Elements(source, element, order, (of_resource,))


class RelatedRow(Value):
    """One element of :class:`RelatedRows`: its ``value`` is always there, so it is present."""

    always_present = True

    def __init__(self, fields: dict[str, Value]) -> None:
        self.fields = fields

    def absent(self) -> Condition:
        return false()

    def child(self, key: str) -> Value:
        return self.fields.get(key, Nothing())


class MemberRows(RelatedRows):
    """A group's ``members``: rows of ``group_members``, ordered by member id as GET returns them.

    This mirrors ``GroupStore._members``: members are the rows whose User exists (joined with
    ``users``); each has its id as ``value``, its display name if not empty, ``type`` "User", and
    a ``$ref`` the service completes with its base URL (so ``$ref`` is present, but not compared
    in SQL).
    """

    def __init__(self, groups: Table, members: Table, users: Table) -> None:
        self.groups = groups
        self.members = members
        self.users = users

    def _rows(self) -> tuple[FromClause, Condition, Any, Value]:
        rows = self.members.alias()
        people = self.users.alias()
        source = rows.join(people, people.c.id == rows.c.member_id)
        element = RelatedRow(
            {
                "value": Column(rows.c.member_id),
                "display": Column(func.nullif(rows.c.display, "")),
                "type": Constant("User"),
                "$ref": Derived("members.$ref"),
            }
        )
        return source, rows.c.group_id == self.groups.c.id, rows.c.member_id, element


class GroupRows(RelatedRows):
    """A user's ``groups`` (RFC 7643 §4.1.2): the groups whose ``group_members`` rows name it.

    This mirrors ``UserStore._groups``: each entry has the group's id as ``value`` (in id order,
    as GET returns them), its displayName as ``display``, ``type`` "direct" (groups are not
    nested), and a ``$ref`` the service completes with its base URL (present, but not compared
    in SQL).
    """

    def __init__(self, users: Table, members: Table, groups: Table) -> None:
        self.users = users
        self.members = members
        self.groups = groups

    def _rows(self) -> tuple[FromClause, Condition, Any, Value]:
        rows = self.members.alias()
        found = self.groups.alias()
        source = rows.join(found, found.c.id == rows.c.group_id)
        element = RelatedRow(
            {
                "value": Column(found.c.id),
                "display": Column(func.nullif(found.c.display_name, "")),
                "type": Constant("direct"),
                "$ref": Derived("groups.$ref"),
            }
        )
        return source, rows.c.member_id == self.users.c.id, found.c.id, element


class Derived(Value):
    """A value the service completes when it answers (a ``$ref`` made absolute from its base
    URL): always there, but the store does not hold what the client sees, so it is not compared.
    """

    always_present = True

    def __init__(self, name: str) -> None:
        self.name = name

    def absent(self) -> Condition:
        return false()

    def text(self) -> ColumnElement[Any]:
        raise InvalidFilterException(
            detail=f"{self.name} is completed from the service's base URL and cannot be compared"
        )


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


class FilterSql(FilterVisitor[Condition]):
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
        return _resolve_filter_path(self.model, path, strict=self.strict, for_comparison=comparison)

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
        _validate_operator(binding, node.op)
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
            operand = default_comparison_key(_Exact if case_exact else _Folded, expected)
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

    # -- Logic and value paths ------------------------------------------------------------

    def visit_not(self, node: Not) -> Condition:
        return not_(self.visit(node.expr))

    def visit_logical_expr(self, node: LogicalExpr) -> Condition:
        terms = [self.visit(term) for term in node.terms]
        return and_(*terms) if node.op == LogicalOperator.and_ else or_(*terms)

    def visit_value_path(self, node: ValuePath) -> Condition:
        """``emails[type eq "work"]``: one element satisfies the inner filter."""
        binding = self.resolve(node.attr_path)
        if binding is None:
            return false()
        _validate_value_selection(binding)
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

    # -- Sorting ---------------------------------------------------------------------------

    def sort_key(self, binding: AttributeBinding) -> ColumnElement[Any]:
        """What ``SearchRequest.sort_value`` gives, as SQL: NULL where it is None."""
        kind = kind_of(binding.target_type)
        head = self.head(binding)
        if not binding.is_multivalued:
            value = head.child(self.sub_key(binding)) if binding.sub_field_name else head
            return self._sortable(value, kind, binding.case_exact)
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
        value = item.child(self.sub_key(binding)) if binding.sub_field_name else item
        first = elements.first(
            self._sortable(value, kind, binding.case_exact, ordered=False), primary
        )
        return self.dialect.ordered(first) if kind == STRING else first

    def _sortable(
        self, value: Value, kind: str, case_exact: bool, *, ordered: bool = True
    ) -> ColumnElement[Any]:
        if kind == STRING:
            key = value.key(self.dialect, case_exact)
            return self.dialect.ordered(key) if ordered else key
        if kind == BOOLEAN:
            return case((value.is_bool(False), 0), (value.is_bool(True), 1))
        if kind == NUMBER:
            return value.number()
        if kind == DATETIME:
            return value.instant()
        raise InvalidPathException(detail=f"cannot sort on a {kind} attribute")


class ItemSql(FilterVisitor[Condition]):
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

    def visit_not(self, node: Not) -> Condition:
        return not_(self.visit(node.expr))

    def visit_logical_expr(self, node: LogicalExpr) -> Condition:
        terms = [self.visit(term) for term in node.terms]
        return and_(*terms) if node.op == LogicalOperator.and_ else or_(*terms)

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
        key = translator.sort_key(binding)
    except InvalidFilterException as error:
        raise InvalidPathException(detail=error.detail) from error
    if search_request.sort_order == SearchRequest.SortOrder.descending:
        return [key.desc().nulls_first(), tie_breaker]
    return [key.asc().nulls_last(), tie_breaker]
