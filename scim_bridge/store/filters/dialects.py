"""What differs between SQLite and PostgreSQL: JSON access, case folding, ordering, substrings.

The documents are stored as written, not folded, so each dialect folds in SQL:

- SQLite calls Python: ``db.py`` registers ``scim_fold`` and ``scim_nfc`` (``SQLITE_FUNCTIONS``,
  ``folding.py``) on every connection, so SQLite folds exactly as scim2-models does.
- PostgreSQL folds with ``normalize(lower(normalize(x, NFC) COLLATE "und-x-icu"), NFC)``: ICU's
  full, context-sensitive lower-casing (final sigma, ``İ`` to ``i̇``), which agreed with Python for
  every code point and for 150,000 random mixed strings on PostgreSQL 15 with ICU 72. It needs a
  UTF-8 database built with ICU; without ICU the database's own ``lower()`` is used, which depends
  on its ctype (glibc's C.UTF-8 differs from Python on ``İ`` only; the "C" ctype folds ASCII only).
  Ordering uses ``COLLATE "C"`` (code point order, as Python compares strings).

The JSON accessors (:class:`SqliteJson`, :class:`PostgresJson`) are the :class:`~.values.Value`
of a stored document and of each node in it.
"""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from typing import Any

from scim2_models import InvalidFilterException
from sqlalchemy import ColumnElement
from sqlalchemy import Numeric
from sqlalchemy import Text
from sqlalchemy import and_
from sqlalchemy import case
from sqlalchemy import cast
from sqlalchemy import column
from sqlalchemy import func
from sqlalchemy import literal
from sqlalchemy import literal_column
from sqlalchemy import text as sql_text
from sqlalchemy import type_coerce
from sqlalchemy.dialects.postgresql import JSONB

from scim_bridge.store.filters.values import Condition
from scim_bridge.store.filters.values import Elements
from scim_bridge.store.filters.values import Value
from scim_bridge.store.filters.values import definite

ICU_COLLATION = "und-x-icu"


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
        composed: ColumnElement[Any] = func.normalize(text, literal_column("NFC"), type_=Text)
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


# -- JSON documents ---------------------------------------------------------------------------


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
