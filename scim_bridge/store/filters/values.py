"""What a filter compares, as SQL reads it: JSON nodes, columns, and rows of join tables.

A :class:`Value` answers the questions the translation asks of one value of a resource: is it
absent (where Python sees ``None``), what is its text, number or instant, what are its
sub-attributes and its elements. The JSON documents are read by the dialects' accessors
(``dialects.py``); this module holds the rest: columns, ``meta`` derived from the row, and the
``members``/``groups`` lists read from ``group_members``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Any

from scim2_models import InvalidFilterException
from sqlalchemy import Boolean
from sqlalchemy import ColumnElement
from sqlalchemy import FromClause
from sqlalchemy import Select
from sqlalchemy import Table
from sqlalchemy import Text
from sqlalchemy import case
from sqlalchemy import cast
from sqlalchemy import false
from sqlalchemy import func
from sqlalchemy import literal
from sqlalchemy import literal_column
from sqlalchemy import not_
from sqlalchemy import null
from sqlalchemy import select
from sqlalchemy import true

if TYPE_CHECKING:
    from scim_bridge.store.filters.dialects import SqlDialect

Condition = ColumnElement[bool]


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
        statement: Select[Any] = select(literal_column("1")).select_from(self.source)
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

    :param owners: the table of the resources that have the attribute.
    :param members: ``group_members``, which ties the two.
    :param related: the table of the resources the elements name.
    """

    def __init__(self, owners: Table, members: Table, related: Table) -> None:
        self.owners = owners
        self.members = members
        self.related = related

    # The columns of ``group_members`` that name the owner and the related resource.
    owner_key: str
    related_key: str

    def _rows(self) -> tuple[FromClause, Condition, Any, Value]:
        """The joined source, the condition tying it to the resource, the order, one element."""
        rows = self.members.alias()
        related = self.related.alias()
        source = rows.join(related, related.c.id == rows.c[self.related_key])
        order, element = self._element(rows, related)
        return source, rows.c[self.owner_key] == self.owners.c.id, order, element

    def _element(self, rows: FromClause, related: FromClause) -> tuple[Any, RelatedRow]:
        """The order of the elements and one element, from a joined row."""
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

    @classmethod
    def entry(
        cls, value: ColumnElement[Any], display: ColumnElement[Any], kind: str, attribute: str
    ) -> RelatedRow:
        """An entry as GET writes it: an id, the display name unless empty, a type, a ``$ref``."""
        return cls(
            {
                "value": Column(value),
                "display": Column(func.nullif(display, "")),
                "type": Constant(kind),
                "$ref": Derived(f"{attribute}.$ref"),
            }
        )

    def absent(self) -> Condition:
        return false()

    def child(self, key: str) -> Value:
        return self.fields.get(key, Nothing())


class MemberRows(RelatedRows):
    """A group's ``members``: rows of ``group_members``, ordered by member id as GET returns them.

    Built as ``MemberRows(groups, group_members, users)``. This mirrors ``GroupStore._members``:
    members are the rows whose User exists (joined with ``users``); each has its id as ``value``,
    its display name if not empty, ``type`` "User", and a ``$ref`` the service completes with its
    base URL (so ``$ref`` is present, but not compared in SQL).
    """

    owner_key, related_key = "group_id", "member_id"

    def _element(self, rows: FromClause, related: FromClause) -> tuple[Any, RelatedRow]:
        # The member's id and display name as group_members holds them (in its primary key).
        element = RelatedRow.entry(rows.c.member_id, rows.c.display, "User", "members")
        return rows.c.member_id, element


class GroupRows(RelatedRows):
    """A user's ``groups`` (RFC 7643 §4.1.2): the groups whose ``group_members`` rows name it.

    Built as ``GroupRows(users, group_members, groups)``. This mirrors ``UserStore._groups``: each
    entry has the group's id as ``value`` (in id order, as GET returns them), its displayName as
    ``display``, ``type`` "direct" (groups are not nested), and a ``$ref`` the service completes
    with its base URL (present, but not compared in SQL).
    """

    owner_key, related_key = "member_id", "group_id"

    def _element(self, rows: FromClause, related: FromClause) -> tuple[Any, RelatedRow]:
        return related.c.id, RelatedRow.entry(
            related.c.id, related.c.display_name, "direct", "groups"
        )


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
